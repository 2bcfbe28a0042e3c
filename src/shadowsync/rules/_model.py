"""The vocabulary the rules share: type aliases, errors, the MISSING and DELETED sentinels, and
small checks."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeGuard, TypeVar, cast

from shadowsync._json import describe, dumps_compact, plain_json
from shadowsync._limits import MAX_CONFIGURABLE_DEPTH
from shadowsync._tree import MISSING, Path
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError

if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs

Section: TypeAlias = Literal["desired", "reported"]
Status: TypeAlias = Literal["applied", "rejected", "pending"]

SECTIONS = ("desired", "reported")
"""The sections a rule set judges."""


# -- errors ----------------------------------------------------------------------------------


class RuleConfigError(InvalidArgumentError):
    """A rule or rule set is configured wrongly, in Python or in a declarative config.

    The message starts with where the problem is: ``rules[2].min`` for the ``min`` key of the
    third rule of a config, ``Range.minimum`` for an argument of a rule built in Python.
    ``index`` and ``key`` carry the same information for programs.

    ```pycon
    >>> from shadowsync.rules import RuleSet
    >>> try:
    ...     RuleSet.from_dict({"rules": [{"type": "range", "path": "t", "min": "10"}]})
    ... except RuleConfigError as err:
    ...     print(err, err.index, err.key)
    rules[0].min: expected a finite number, got "10" 0 min

    ```
    """

    def __init__(
        self, problem: str, *, index: int | None = None, key: str | None = None, owner: str = ""
    ) -> None:
        self.problem = problem
        self.index = index
        self.key = key
        self.owner = owner
        where = f"rules[{index}]" if index is not None else owner
        if key is not None:
            where = f"{where}.{key}" if where else key
        super().__init__(f"{where}: {problem}" if where else problem)

    def located(self, *, index: int | None, key: str | None) -> RuleConfigError:
        """The same problem, reported at a config location instead of a Python argument."""
        return RuleConfigError(self.problem, index=index, key=key, owner="rule")


class InvalidAcknowledgementError(InvalidDocumentError):
    """An acknowledgement read back from a reported document is malformed.

    ```pycon
    >>> from shadowsync.rules import Acknowledgement
    >>> try:
    ...     Acknowledgement.from_dict({"desiredVersion": -1, "timestamp": 0})
    ... except InvalidAcknowledgementError as err:
    ...     print(err)
    acknowledgement.desiredVersion: expected a non-negative integer, got -1

    ```
    """


# -- sentinels ---------------------------------------------------------------------------------


class Deleted(enum.Enum):
    """The type of `DELETED`."""

    DELETED = "DELETED"

    def __repr__(self) -> str:
        return "DELETED"


DELETED = Deleted.DELETED
"""The new value of a `Change` that deletes a key."""


# -- small shared checks -------------------------------------------------------------------------


def show(value: object, limit: int = 60) -> str:
    """A value as JSON text for messages, shortened when long."""
    if value is MISSING or value is DELETED:
        return repr(value)
    try:
        text = dumps_compact(value)
    except (TypeError, ValueError, RecursionError):
        return describe(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_copy(value: object) -> Any:
    """A plain JSON copy of ``value``, nested no deeper than a shadow may be, or `JSONProblem`
    (whose ``reason()`` says why not). Rules never take a null as a value."""
    return plain_json(value, max_depth=MAX_CONFIGURABLE_DEPTH, nulls="nowhere")


def loads(text: str | bytes, error: Callable[[str], Exception], not_json: str) -> Any:
    """``text`` parsed as JSON; when it is not JSON, ``error`` of ``not_json`` and the reason."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"{not_json} ({exc})") from None


def is_number(value: object) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (not a ``bool``; NaN and infinities count)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_non_negative_int(value: object) -> bool:
    """Whether ``value`` is an ``int`` >= 0 (not a ``bool``; ``int`` subclasses and any size
    count, unlike `shadowsync._validators.is_count`)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_listlike(value: object) -> TypeGuard[Iterable[Any]]:
    """Whether ``value`` is an iterable of items: not a ``str``, ``bytes`` or mapping, which
    iterate as characters, bytes or keys."""
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


_Item = TypeVar("_Item")


def items_of(
    value: object,
    kind: type[_Item],
    *,
    not_a_list: Callable[[object], Exception],
    wrong_item: Callable[[object], Exception],
) -> tuple[_Item, ...]:
    """``value``'s items as a tuple, each a ``kind``; else the error ``not_a_list(value)`` or
    ``wrong_item(item)`` makes (each caller words its own)."""
    if not is_listlike(value):
        raise not_a_list(value)
    items = tuple(value)
    for item in items:
        if not isinstance(item, kind):
            raise wrong_item(item)
    return items


def check_path(value: object, what: str) -> Path:
    """``value`` if it is a non-empty tuple of ``str`` keys, else `InvalidArgumentError`."""
    if isinstance(value, tuple) and all(isinstance(part, str) for part in value) and value:
        return cast("Path", value)
    raise InvalidArgumentError(
        f"{what} must be a non-empty tuple of str keys, got {describe(value)}"
    )


def check_text(value: object, what: str) -> str:
    """``value`` if it is a non-empty ``str``, else `InvalidArgumentError`."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty str, got {describe(value)}")
    return value


def optional_name(value: object, what: str) -> str | None:
    """``value`` if it is a ``str`` or ``None``, else `InvalidArgumentError`."""
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str or None, got {describe(value)}")
    return value


def epoch_seconds(what: str) -> Callable[[Any, Any, Any], None]:
    """An attrs validator of epoch seconds (a non-negative ``int``) named ``what`` in errors."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not is_non_negative_int(value):
            raise InvalidArgumentError(
                f"{what} must be a non-negative int (epoch seconds), got {describe(value)}"
            )

    return check
