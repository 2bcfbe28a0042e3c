"""The attrs validators and argument checks that configuration values share.

Each refuses a bad value with an `InvalidArgumentError` that names the field and shows what it
got, so a wrong setting fails where it is made, not deep inside a later call.

```pycon
>>> import attrs
>>> from shadowsync._validators import count, seconds
>>> @attrs.frozen(kw_only=True)
... class Retry:
...     attempts: int = attrs.field(validator=count)
...     delay: float = attrs.field(validator=seconds)
>>> Retry(attempts=3, delay=0.5)
Retry(attempts=3, delay=0.5)
>>> Retry(attempts=-1, delay=0.5)
Traceback (most recent call last):
...
shadowsync.errors.InvalidArgumentError: attempts must be a non-negative int, got -1

```
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    import attrs

__all__ = [
    "MAX_COUNT",
    "check_now",
    "count",
    "flag",
    "fraction",
    "is_count",
    "is_finite_number",
    "non_negative",
    "positive",
    "seconds",
]

MAX_COUNT = 2**63 - 1
"""The largest count accepted: versions and timestamps are 64-bit on the service."""


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (not a ``bool``) and finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_count(value: object) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) from 0 to `MAX_COUNT`."""
    return type(value) is int and 0 <= value <= MAX_COUNT


def non_negative(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A finite number >= 0."""
    if not is_finite_number(value) or value < 0:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"{attribute.name} must be a finite number >= 0, got {describe(value)}"
        )


def seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A duration: a finite number of seconds >= 0."""
    if not is_finite_number(value) or value < 0:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"{attribute.name} must be a finite number of seconds >= 0, got {describe(value)}"
        )


def positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A finite number > 0."""
    non_negative(instance, attribute, value)
    if value == 0:
        raise InvalidArgumentError(f"{attribute.name} must be positive, got {describe(value)}")


def fraction(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A number from 0 to 1 (NaN refused)."""
    if not is_finite_number(value) or not 0 <= value <= 1:  # type: ignore[operator]
        raise InvalidArgumentError(f"{attribute.name} must be from 0 to 1, got {describe(value)}")


def count(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """An ``int`` from 0 to `MAX_COUNT` (``bool`` refused)."""
    if not is_count(value):
        raise InvalidArgumentError(
            f"{attribute.name} must be a non-negative int, got {describe(value)}"
        )


def flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A ``bool``."""
    if type(value) is not bool:
        raise InvalidArgumentError(f"{attribute.name} must be a bool, got {describe(value)}")


def check_now(now: object) -> float:
    """The current time as every time-taking call means it: epoch seconds, a finite number >= 0.

    Returned as a ``float``; whoever keeps whole seconds (the offline queue) rounds down.
    """
    if not is_finite_number(now) or now < 0:  # type: ignore[operator]
        raise InvalidArgumentError(
            f"now must be epoch seconds (a number >= 0), got {describe(now)}"
        )
    return float(now)  # type: ignore[arg-type]
