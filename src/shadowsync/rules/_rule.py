"""What a rule judges (`Change`), what it reports (`Violation`) and what it is (`Rule`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from shadowsync._json import JSONProblem, JSONValue, describe
from shadowsync._tree import MISSING, Missing, Path
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules._model import (
    DELETED,
    SECTIONS,
    Deleted,
    Section,
    check_path,
    check_text,
    epoch_seconds,
    is_non_negative_int,
    json_copy,
    optional_name,
)

# At run time, so that typing.get_type_hints resolves the annotations of the Rule protocol.
from shadowsync.rules._paths import PathPattern  # noqa: TC001

if TYPE_CHECKING:
    from collections.abc import Callable


def _json_or(sentinel: object, what: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is sentinel:
            return
        try:
            json_copy(value)
        except JSONProblem as bad:
            raise InvalidArgumentError(
                f"{what} must be a JSON value or {describe(sentinel)}: {bad.reason()}"
            ) from None

    return check


def _optional_timestamp(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not is_non_negative_int(value):
        raise InvalidArgumentError(
            f"Change.old_timestamp must be a non-negative int or None, got {describe(value)}"
        )


@attrs.frozen(kw_only=True)
class Change:
    """One leaf of a section that a proposed update would create, change or delete.

    ``old`` is `MISSING` when the key is new; ``new`` is `DELETED` when the key goes
    away. ``timestamp`` is when the change is proposed and ``old_timestamp`` when the old value
    was written (from the section's metadata; ``None`` when unknown), both in epoch seconds.

    ```pycon
    >>> change = Change(path=("mode",), section="desired", old="heat", new="cool",
    ...                 timestamp=1700000000)
    >>> change.is_creation, change.is_deletion
    (False, False)

    ```
    """

    path: Path = attrs.field(validator=lambda _i, _a, v: check_path(v, "Change.path"))
    section: Section = attrs.field()
    old: JSONValue | Missing = attrs.field(hash=False, validator=_json_or(MISSING, "Change.old"))
    new: JSONValue | Deleted = attrs.field(hash=False, validator=_json_or(DELETED, "Change.new"))
    timestamp: int = attrs.field(validator=epoch_seconds("Change.timestamp"))
    old_timestamp: int | None = attrs.field(default=None, validator=_optional_timestamp)
    thing_name: str | None = attrs.field(
        default=None, validator=lambda _i, _a, v: optional_name(v, "Change.thing_name")
    )
    shadow_name: str | None = attrs.field(
        default=None, validator=lambda _i, _a, v: optional_name(v, "Change.shadow_name")
    )

    @section.validator
    def _check_section(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in SECTIONS:
            raise InvalidArgumentError(
                f"Change.section must be 'desired' or 'reported', got {describe(value)}"
            )

    def __attrs_post_init__(self) -> None:
        if self.old is MISSING and self.new is DELETED:
            raise InvalidArgumentError("a Change needs an old value, a new value, or both")

    @property
    def is_creation(self) -> bool:
        """Whether the key did not exist before this change."""
        return self.old is MISSING

    @property
    def is_deletion(self) -> bool:
        """Whether this change deletes the key."""
        return self.new is DELETED


@attrs.frozen(kw_only=True)
class Violation:
    """A change a rule refuses: which rule, at which path, the refused value, and why.

    ```pycon
    >>> Violation(rule="range:temperature", path=("temperature",), value=45,
    ...           reason="45 is greater than the maximum 30").reason
    '45 is greater than the maximum 30'

    ```
    """

    rule: str = attrs.field(validator=lambda _i, _a, v: check_text(v, "Violation.rule"))
    path: Path = attrs.field(validator=lambda _i, _a, v: check_path(v, "Violation.path"))
    value: JSONValue | Deleted = attrs.field(
        hash=False, validator=_json_or(DELETED, "Violation.value")
    )
    reason: str = attrs.field(validator=lambda _i, _a, v: check_text(v, "Violation.reason"))

    @classmethod
    def of(cls, rule: str, change: Change, reason: str) -> Violation:
        """The violation of ``change`` by the rule named ``rule``.

        ```pycon
        >>> change = Change(path=("mode",), section="desired", old=MISSING, new="fan",
        ...                 timestamp=0)
        >>> Violation.of("one_of:mode", change, "not allowed").value
        'fan'

        ```
        """
        return cls(rule=rule, path=change.path, value=change.new, reason=reason)


@runtime_checkable
class Rule(Protocol):
    """What a rule is: a ``name``, the ``path`` it applies to, and ``check``.

    `RuleSet` calls ``check`` only with changes whose path ``path`` matches. ``check``
    returns ``None`` when the change is fine and a `Violation` otherwise. It must not
    change anything and should not raise; an exception from ``check`` propagates out of
    `RuleSet.evaluate` (use `Custom` to turn exceptions into violations).

    ```pycon
    >>> from shadowsync.rules import Range
    >>> isinstance(Range(path="temperature", maximum=30), Rule)
    True

    ```
    """

    @property
    def name(self) -> str:
        """The name reported in violations and acknowledgements."""
        ...

    @property
    def path(self) -> PathPattern:
        """The paths this rule judges."""
        ...

    def check(self, change: Change) -> Violation | None:
        """``None`` if ``change`` is allowed, else the violation."""
        ...
