"""The AWS IoT Device Shadow service limits, as a value."""

from __future__ import annotations

import re
from typing import Any

import attrs

from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError, InvalidNameError

AWS_MAX_DOCUMENT_BYTES = 8 * 1024
"""AWS's limit on the desired + reported data of one shadow (metadata excluded)."""

LOCAL_MAX_DOCUMENT_BYTES = 30 * 1024
"""The largest document size a local service may be configured for (as Greengrass allows)."""

MAX_CONFIGURABLE_DEPTH = 32
"""Bound on ``max_depth``; it also bounds every recursion over stored documents."""

_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]+")
_SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]+")


def _positive_at_most(bound: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or not 1 <= value <= bound:
            raise InvalidArgumentError(
                f"{attribute.name} must be an int from 1 to {bound}, got {describe(value)}"
            )

    return check


@attrs.frozen(kw_only=True)
class ShadowLimits:
    """Limits checked on every update, before anything is stored.

    The defaults are the AWS IoT Core limits. ``max_document_bytes`` may be raised to 30 KB for a
    local shadow service (as Greengrass allows); size is measured on the merged document.

    ```pycon
    >>> ShadowLimits().max_document_bytes
    8192
    >>> ShadowLimits(max_document_bytes=30 * 1024).max_depth
    6

    ```
    """

    max_document_bytes: int = attrs.field(
        default=AWS_MAX_DOCUMENT_BYTES, validator=_positive_at_most(LOCAL_MAX_DOCUMENT_BYTES)
    )
    """Bytes of compact UTF-8 JSON of ``{"desired": ..., "reported": ...}`` after the merge."""
    max_depth: int = attrs.field(default=6, validator=_positive_at_most(MAX_CONFIGURABLE_DEPTH))
    """Nesting levels inside ``desired``/``reported``; the section object is level 1."""
    max_client_token_bytes: int = attrs.field(default=64, validator=_positive_at_most(1024))
    """UTF-8 bytes allowed in a ``clientToken``."""
    max_thing_name_length: int = attrs.field(default=128, validator=_positive_at_most(128))
    """Characters allowed in a thing name (pattern ``[a-zA-Z0-9:_-]+``)."""
    max_shadow_name_length: int = attrs.field(default=64, validator=_positive_at_most(64))
    """Characters allowed in a shadow name (pattern ``[$a-zA-Z0-9:_-]+``)."""

    def client_token_problem(self, token: object) -> str | None:
        """Why ``token`` is not a valid ``clientToken`` (``None`` when it is one).

        ```pycon
        >>> ShadowLimits().client_token_problem("x" * 65)
        'clientToken is 65 bytes; the limit is 64'

        ```
        """
        if not isinstance(token, str):
            return f"clientToken must be a string, got {type(token).__name__}"
        try:
            size = len(token.encode("utf-8"))
        except UnicodeEncodeError:
            return "clientToken is not UTF-8"
        if size > self.max_client_token_bytes:
            return f"clientToken is {size} bytes; the limit is {self.max_client_token_bytes}"
        return None

    def check_thing_name(self, name: object) -> str:
        """Return ``name`` if it is a valid thing name, else raise `InvalidNameError`."""
        return _check_name(name, "thing", _THING_NAME, self.max_thing_name_length)

    def check_shadow_name(self, name: object) -> str:
        """Return ``name`` if it is a valid shadow name, else raise `InvalidNameError`."""
        return _check_name(name, "shadow", _SHADOW_NAME, self.max_shadow_name_length)


def _check_name(name: object, kind: str, pattern: re.Pattern[str], max_length: int) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(
            f"Invalid {kind} name", detail=f"expected a string, got {type(name).__name__}"
        )
    if not 1 <= len(name) <= max_length:
        raise InvalidNameError(
            f"Invalid {kind} name",
            detail=f"{name[:40]!r}... must be 1 to {max_length} characters, has {len(name)}"
            if len(name) > 40
            else f"{describe(name)} must be 1 to {max_length} characters, has {len(name)}",
        )
    if pattern.fullmatch(name) is None:
        raise InvalidNameError(
            f"Invalid {kind} name",
            detail=f"{describe(name)} must match {pattern.pattern} (no '/', '+', '#' or spaces)",
        )
    return name


DEFAULT_LIMITS = ShadowLimits()
"""The AWS IoT Core limits."""
