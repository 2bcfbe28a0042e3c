"""Semantic versions (Semantic Versioning 2.0.0), as `NoFirmwareDowngrade` compares them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._json import describe, kind_phrase
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules._model import is_non_negative_int, show

if TYPE_CHECKING:
    from collections.abc import Callable

_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    r"[vV]?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_PRERELEASE_ID = re.compile(_IDENT)
_BUILD_ID = re.compile(r"[0-9a-zA-Z-]+")
_MAX_VERSION_LENGTH = 256


def _identifiers(pattern: re.Pattern[str], what: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, tuple) or not all(
            isinstance(item, str) and pattern.fullmatch(item) for item in value
        ):
            raise InvalidArgumentError(
                f"SemanticVersion.{attribute.name} must be a tuple of {what}, got {describe(value)}"
            )

    return check


def _version_number(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not is_non_negative_int(value):
        raise InvalidArgumentError(
            f"SemanticVersion.{attribute.name} must be a non-negative int, got {describe(value)}"
        )


@attrs.frozen(kw_only=True)
class SemanticVersion:
    """A version per Semantic Versioning 2.0.0, ordered by semver precedence.

    ``<``, ``<=``, ``>`` and ``>=`` compare precedence: numbers numerically, then a pre-release
    is lower than its release, then pre-release identifiers one by one (numeric ones
    numerically and below alphanumeric ones, which compare in ASCII order; more identifiers win
    when all before are equal). Build metadata does not count, so two versions differing only
    in build compare equal by `compare` while ``==`` (all fields) tells them apart.

    ```pycon
    >>> SemanticVersion.parse("1.9.0") < SemanticVersion.parse("1.10.0")
    True
    >>> SemanticVersion.parse("v2.0.0-rc.1") < SemanticVersion.parse("2.0.0")
    True
    >>> str(SemanticVersion.parse("v1.0.0-alpha.1+build.5"))
    '1.0.0-alpha.1+build.5'

    ```
    """

    major: int = attrs.field(validator=_version_number)
    minor: int = attrs.field(validator=_version_number)
    patch: int = attrs.field(validator=_version_number)
    prerelease: tuple[str, ...] = attrs.field(
        default=(), validator=_identifiers(_PRERELEASE_ID, "pre-release identifiers")
    )
    build: tuple[str, ...] = attrs.field(
        default=(), validator=_identifiers(_BUILD_ID, "build identifiers")
    )

    @classmethod
    def parse(cls, text: str) -> SemanticVersion:
        """Parse ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``, with or without a leading ``v``.

        Raises `InvalidArgumentError` when ``text`` is not one.

        ```pycon
        >>> SemanticVersion.parse("v1.2.3-beta.2").prerelease
        ('beta', '2')

        ```
        """
        problem = semver_problem(text)
        if problem is not None:
            raise InvalidArgumentError(problem)
        match = _SEMVER.fullmatch(text)
        assert match is not None
        major, minor, patch, pre, build = match.groups()
        return cls(
            major=int(major),
            minor=int(minor),
            patch=int(patch),
            prerelease=tuple(pre.split(".")) if pre else (),
            build=tuple(build.split(".")) if build else (),
        )

    @property
    def precedence(self) -> tuple[Any, ...]:
        """A sort key that orders versions by semver precedence."""
        if not self.prerelease:
            # A release ranks above every pre-release of the same numbers.
            return (self.major, self.minor, self.patch, 1, ())
        ids = tuple(
            (0, int(item), "") if item.isdigit() else (1, 0, item) for item in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0, ids)

    def compare(self, other: SemanticVersion) -> int:
        """``-1``, ``0`` or ``1`` as this version has lower, equal or higher precedence.

        ```pycon
        >>> SemanticVersion.parse("1.0.0+a").compare(SemanticVersion.parse("1.0.0+b"))
        0

        ```
        """
        mine, theirs = self.precedence, other.precedence
        return (mine > theirs) - (mine < theirs)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return bool(self.precedence < other.precedence)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return bool(self.precedence <= other.precedence)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return bool(self.precedence > other.precedence)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return bool(self.precedence >= other.precedence)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def semver_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{show(value)} is {kind_phrase(value)}, not a semantic version string"
    if len(value) > _MAX_VERSION_LENGTH:
        return f"{show(value)} is longer than {_MAX_VERSION_LENGTH} characters"
    if _SEMVER.fullmatch(value) is None:
        return f"{show(value)} is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)"
    return None
