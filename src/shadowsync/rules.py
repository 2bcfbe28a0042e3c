"""Business rules: judge each proposed change of a shadow section before it is applied.

A rule looks at one `Change` (a leaf of a section that a proposed update would set,
create or delete) and returns a `Violation` or ``None``. A `RuleSet` is a chain
of rules in the shape of a structlog processor chain: every change is passed down the chain in
order, every rule whose `PathPattern` matches the change's path sees it, and every
violation is collected. The outcome keeps the changes no rule objected to and reverts the others,
and says so in an `Acknowledgement` the device can report back.

```pycon
>>> rules = RuleSet(rules=[
...     Range(path="temperature", minimum=10, maximum=30),
...     OneOf(path="mode", values=["heat", "cool", "off"]),
... ])
>>> outcome = rules.evaluate(
...     "desired",
...     {"temperature": 21, "mode": "heat"},
...     {"temperature": 45, "mode": "cool"},
...     timestamp=1700000000,
...     desired_version=7,
... )
>>> outcome.accepted
{'temperature': 21, 'mode': 'cool'}
>>> [(v.rule, v.reason) for v in outcome.violations]
[('range:temperature', '45 is greater than the maximum 30')]
>>> outcome.acknowledgement.to_dict()["applied"]
['/mode']

```

Rules are also built from plain dicts (for example JSON kept next to a device's configuration):

```pycon
>>> config = {"rules": [{"type": "range", "path": "temperature", "max": 30}]}
>>> [rule] = RuleSet.from_dict(config).rules
>>> rule.maximum, rule.name
(30, 'range:temperature')

```

Everything here is pure: time is passed in as epoch seconds, nothing reads a clock.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, cast, runtime_checkable

import attrs

from shadowsync._json import JSONObject, JSONValue, copy_json, describe, dumps_compact, json_equal
from shadowsync._json import _BadValue as _BadJSON
from shadowsync._json import _normalize as _normalize_json
from shadowsync._limits import MAX_CONFIGURABLE_DEPTH
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError

__all__ = [
    "ACK_KEY",
    "Acknowledgement",
    "AllowedTransitions",
    "Change",
    "Custom",
    "DELETED",
    "InvalidAcknowledgementError",
    "MISSING",
    "MaxRateOfChange",
    "NoFirmwareDowngrade",
    "OneOf",
    "PathPattern",
    "Range",
    "Rejection",
    "Rule",
    "RuleConfigError",
    "RuleOutcome",
    "RuleSet",
    "SemanticVersion",
    "TypeIs",
    "Violation",
    "rule_from_dict",
]

ACK_KEY = "$ack"
"""The reported-state key suggested for an `Acknowledgement` (``reported["$ack"]``)."""

Section: TypeAlias = Literal["desired", "reported"]
Status: TypeAlias = Literal["applied", "rejected", "pending"]
Path: TypeAlias = tuple[str, ...]

_SECTIONS = ("desired", "reported")


# -- errors ----------------------------------------------------------------------------------


class RuleConfigError(InvalidArgumentError):
    """A rule or rule set is configured wrongly, in Python or in a declarative config.

    The message starts with where the problem is: ``rules[2].min`` for the ``min`` key of the
    third rule of a config, ``Range.minimum`` for an argument of a rule built in Python.
    ``index`` and ``key`` carry the same information for programs.

    ```pycon
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
    >>> try:
    ...     Acknowledgement.from_dict({"desiredVersion": -1, "timestamp": 0})
    ... except InvalidAcknowledgementError as err:
    ...     print(err)
    acknowledgement.desiredVersion: expected a non-negative integer, got -1

    ```
    """


# -- sentinels ---------------------------------------------------------------------------------


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


class _Deleted(enum.Enum):
    DELETED = "DELETED"

    def __repr__(self) -> str:
        return "DELETED"


MISSING = _Missing.MISSING
"""The old value of a `Change` that creates a key (there was no value before)."""

DELETED = _Deleted.DELETED
"""The new value of a `Change` that deletes a key."""


# -- small shared checks -------------------------------------------------------------------------


def _show(value: object, limit: int = 60) -> str:
    """A value as JSON text for messages, shortened when long."""
    if value is MISSING or value is DELETED:
        return repr(value)
    try:
        text = dumps_compact(value)
    except (TypeError, ValueError, RecursionError):
        return describe(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_path(value: object, what: str) -> Path:
    if isinstance(value, tuple) and all(isinstance(part, str) for part in value) and value:
        return cast("Path", value)
    raise InvalidArgumentError(
        f"{what} must be a non-empty tuple of str keys, got {describe(value)}"
    )


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty str, got {describe(value)}")
    return value


def _optional_name(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str or None, got {describe(value)}")
    return value


def _encode_pointer(path: Path) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


_POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def _decode_pointer(text: str) -> Path | None:
    if _POINTER.fullmatch(text) is None:
        return None
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:])


# -- path patterns -------------------------------------------------------------------------------


def _to_parts(value: object) -> Path:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RuleConfigError(
            f"expected a tuple of str keys, got {_show(value)}", owner="PathPattern", key="parts"
        )
    parts = tuple(value)
    for part in parts:
        if not isinstance(part, str):
            raise RuleConfigError(
                f"every key must be a str, got {_show(part)}", owner="PathPattern", key="parts"
            )
    if not parts:
        raise RuleConfigError("a path needs at least one key", owner="PathPattern", key="parts")
    collapsed: list[str] = []
    for part in parts:
        # "**.**" means the same as "**"; keeping one makes matching linear.
        if part == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(part)
    return tuple(collapsed)


@attrs.frozen(kw_only=True)
class PathPattern:
    """Which paths of a section a rule applies to.

    Each part is a key, ``*`` (exactly one key, whatever it is) or ``**`` (any number of keys,
    including none). Only a whole part is a wildcard: ``"l*"`` is a plain key. Build one from a
    dotted string with `parse`, or from a tuple of keys (needed when a key contains a dot).

    ```pycon
    >>> pattern = PathPattern.parse("lights.*.brightness")
    >>> pattern.matches(("lights", "kitchen", "brightness"))
    True
    >>> pattern.matches(("lights", "kitchen", "color"))
    False
    >>> PathPattern.of(("**", "brightness")).matches(("brightness",))
    True

    ```
    """

    parts: Path = attrs.field(converter=_to_parts)

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """Parse a dotted pattern such as ``"lights.*.brightness"``.

        ```pycon
        >>> PathPattern.parse("firmware.version").parts
        ('firmware', 'version')

        ```
        """
        if not isinstance(text, str):
            raise RuleConfigError(
                f"expected a dotted str, got {_show(text)}", owner="PathPattern", key="parse"
            )
        parts = text.split(".")
        if not text or "" in parts:
            raise RuleConfigError(
                f"{_show(text)} has an empty key; write keys containing dots as a tuple",
                owner="PathPattern",
                key="parse",
            )
        return cls(parts=tuple(parts))

    @classmethod
    def of(cls, value: str | Sequence[str] | PathPattern) -> PathPattern:
        """A pattern from a dotted string, a sequence of keys, or a pattern (returned as is).

        ```pycon
        >>> PathPattern.of("mode") == PathPattern.of(["mode"])
        True

        ```
        """
        if isinstance(value, PathPattern):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(parts=_to_parts(value))

    def matches(self, path: Sequence[str]) -> bool:
        """Whether ``path`` (a tuple of keys into a section) matches this pattern.

        ```pycon
        >>> PathPattern.parse("a.**").matches(("a", "b", "c"))
        True

        ```
        """
        parts = self.parts
        states = self._closure({0})
        for key in path:
            step = set()
            for i in states:
                if i == len(parts):
                    continue
                part = parts[i]
                if part == "**":
                    step.add(i)  # "**" swallows this key and may swallow more
                elif part == "*" or part == key:
                    step.add(i + 1)
            if not step:
                return False
            states = self._closure(step)
        return len(parts) in states

    def _closure(self, states: set[int]) -> set[int]:
        """Add the states reachable by letting each ``**`` match no key at all."""
        result = set(states)
        for i, part in enumerate(self.parts):
            if part == "**" and i in result:
                result.add(i + 1)
        return result

    def to_config(self) -> str | list[str]:
        """The declarative form: a dotted string, or a list of keys when a key has a dot.

        ```pycon
        >>> PathPattern.of(("ip.v4", "mask")).to_config()
        ['ip.v4', 'mask']

        ```
        """
        if all(part and "." not in part for part in self.parts):
            return ".".join(self.parts)
        return list(self.parts)

    def __str__(self) -> str:
        return ".".join(self.parts)


@functools.lru_cache(maxsize=1024)
def _cached_pattern(text: str) -> PathPattern:
    """`PathPattern.parse`, cached: policies and strategies match the same patterns repeatedly."""
    return PathPattern.parse(text)


PathLike: TypeAlias = "str | Sequence[str] | PathPattern"


def _pattern_for(owner: str, value: PathLike) -> PathPattern:
    try:
        return PathPattern.of(value)
    except RuleConfigError as err:
        raise RuleConfigError(err.problem, owner=owner, key="path") from None


# -- changes and violations ------------------------------------------------------------------


def _json_or(sentinel: object, what: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is sentinel:
            return
        try:
            _normalize_json(value, 1, MAX_CONFIGURABLE_DEPTH, "null is not a value")
        except _BadJSON as bad:
            raise InvalidArgumentError(
                f"{what} must be a JSON value or {describe(sentinel)}: {bad.reason}"
            ) from None

    return check


def _timestamp(what: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not _is_count(value):
            raise InvalidArgumentError(
                f"{what} must be a non-negative int (epoch seconds), got {describe(value)}"
            )

    return check


def _optional_timestamp(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not _is_count(value):
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

    path: Path = attrs.field(validator=lambda _i, _a, v: _check_path(v, "Change.path"))
    section: Section = attrs.field()
    old: JSONValue | _Missing = attrs.field(hash=False, validator=_json_or(MISSING, "Change.old"))
    new: JSONValue | _Deleted = attrs.field(hash=False, validator=_json_or(DELETED, "Change.new"))
    timestamp: int = attrs.field(validator=_timestamp("Change.timestamp"))
    old_timestamp: int | None = attrs.field(default=None, validator=_optional_timestamp)
    thing_name: str | None = attrs.field(
        default=None, validator=lambda _i, _a, v: _optional_name(v, "Change.thing_name")
    )
    shadow_name: str | None = attrs.field(
        default=None, validator=lambda _i, _a, v: _optional_name(v, "Change.shadow_name")
    )

    @section.validator
    def _check_section(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in _SECTIONS:
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

    rule: str = attrs.field(validator=lambda _i, _a, v: _check_text(v, "Violation.rule"))
    path: Path = attrs.field(validator=lambda _i, _a, v: _check_path(v, "Violation.path"))
    value: JSONValue | _Deleted = attrs.field(
        hash=False, validator=_json_or(DELETED, "Violation.value")
    )
    reason: str = attrs.field(validator=lambda _i, _a, v: _check_text(v, "Violation.reason"))

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


# -- built-in rules ------------------------------------------------------------------------------


def _range_path(value: PathLike) -> PathPattern:
    return _pattern_for("Range", value)


def _one_of_path(value: PathLike) -> PathPattern:
    return _pattern_for("OneOf", value)


def _type_is_path(value: PathLike) -> PathPattern:
    return _pattern_for("TypeIs", value)


def _allowed_transitions_path(value: PathLike) -> PathPattern:
    return _pattern_for("AllowedTransitions", value)


def _no_firmware_downgrade_path(value: PathLike) -> PathPattern:
    return _pattern_for("NoFirmwareDowngrade", value)


def _max_rate_of_change_path(value: PathLike) -> PathPattern:
    return _pattern_for("MaxRateOfChange", value)


def _custom_path(value: PathLike) -> PathPattern:
    return _pattern_for("Custom", value)


def _default_name(kind: str) -> Any:
    return attrs.Factory(lambda self: f"{kind}:{self.path}", takes_self=True)


def _name_validator(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or not value:
            raise RuleConfigError(
                f"expected a non-empty string, got {_show(value)}", owner=owner, key="name"
            )

    return check


def _applies(pattern: PathPattern, change: Change) -> bool:
    """Built-in rules judge values, never absence, and only on their own paths."""
    return change.new is not DELETED and pattern.matches(change.path)


def _finite_number(owner: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if optional and value is None:
            return
        if not _is_number(value) or not math.isfinite(cast("float", value)):
            raise RuleConfigError(
                f"expected a finite number, got {_show(value)}", owner=owner, key=attribute.name
            )

    return check


def _bool(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, bool):
            raise RuleConfigError(
                f"expected true or false, got {_show(value)}", owner=owner, key=attribute.name
            )

    return check


@attrs.frozen(kw_only=True)
class Range:
    """Numbers at ``path`` must lie between ``minimum`` and ``maximum``.

    Either bound may be left out, not both. ``inclusive`` applies to both bounds. Anything that
    is not a number (booleans included) is a violation; deleting the key is not.

    ```pycon
    >>> rule = Range(path="temperature", minimum=10, maximum=30)
    >>> change = Change(path=("temperature",), section="desired", old=21, new=35, timestamp=0)
    >>> rule.check(change).reason
    '35 is greater than the maximum 30'

    ```
    """

    path: PathPattern = attrs.field(converter=_range_path)
    minimum: int | float | None = attrs.field(
        default=None, validator=_finite_number("Range", optional=True)
    )
    maximum: int | float | None = attrs.field(
        default=None, validator=_finite_number("Range", optional=True)
    )
    inclusive: bool = attrs.field(default=True, validator=_bool("Range"))
    name: str = attrs.field(default=_default_name("range"), validator=_name_validator("Range"))

    kind: ClassVar[str] = "range"

    def __attrs_post_init__(self) -> None:
        if self.minimum is None and self.maximum is None:
            raise RuleConfigError("give a minimum, a maximum or both", owner="Range")
        if self.minimum is not None and self.maximum is not None:
            if self.maximum < self.minimum:
                raise RuleConfigError(
                    f"must not be less than the minimum {_show(self.minimum)}, "
                    f"got {_show(self.maximum)}",
                    owner="Range",
                    key="maximum",
                )
            if self.maximum == self.minimum and not self.inclusive:
                raise RuleConfigError(
                    f"an exclusive range from {_show(self.minimum)} to {_show(self.maximum)} "
                    "holds no number",
                    owner="Range",
                    key="maximum",
                )

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        value = change.new
        if not _is_number(value):
            return Violation.of(self.name, change, f"{_show(value)} is not a number")
        number = cast("int | float", value)
        low, high = self.minimum, self.maximum
        if self.inclusive:
            if low is not None and number < low:
                reason = f"{_show(number)} is less than the minimum {_show(low)}"
                return Violation.of(self.name, change, reason)
            if high is not None and number > high:
                reason = f"{_show(number)} is greater than the maximum {_show(high)}"
                return Violation.of(self.name, change, reason)
        else:
            if low is not None and number <= low:
                reason = f"{_show(number)} is not greater than the exclusive minimum {_show(low)}"
                return Violation.of(self.name, change, reason)
            if high is not None and number >= high:
                reason = f"{_show(number)} is not less than the exclusive maximum {_show(high)}"
                return Violation.of(self.name, change, reason)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config: dict[str, Any] = {"type": self.kind, "path": self.path.to_config()}
        if self.minimum is not None:
            config["min"] = self.minimum
        if self.maximum is not None:
            config["max"] = self.maximum
        if not self.inclusive:
            config["inclusive"] = False
        return _with_name(config, self)


def _to_values(value: Iterable[JSONValue]) -> tuple[JSONValue, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RuleConfigError(
            f"expected a list of values, got {_show(value)}", owner="OneOf", key="values"
        )
    items = tuple(value)
    for item in items:
        if isinstance(item, Mapping):
            raise RuleConfigError(
                f"{_show(item)} is an object; objects are judged key by key, "
                "so list scalars or arrays",
                owner="OneOf",
                key="values",
            )
        try:
            _normalize_json(item, 1, MAX_CONFIGURABLE_DEPTH, "null is not a value")
        except _BadJSON as bad:
            raise RuleConfigError(
                f"{_show(item)} is not a JSON value ({bad.reason})", owner="OneOf", key="values"
            ) from None
    if not items:
        raise RuleConfigError("needs at least one value", owner="OneOf", key="values")
    return items


@attrs.frozen(kw_only=True)
class OneOf:
    """The value at ``path`` must be one of ``values`` (an enumeration).

    Values compare as JSON does (``1 == 1.0``, ``true != 1``). Objects are compared key by key
    by the rule set, so ``values`` holds scalars and arrays only.

    ```pycon
    >>> rule = OneOf(path="mode", values=["heat", "cool", "off"])
    >>> change = Change(path=("mode",), section="desired", old="off", new="fan", timestamp=0)
    >>> rule.check(change).reason
    '"fan" is not one of "heat", "cool", "off"'

    ```
    """

    path: PathPattern = attrs.field(converter=_one_of_path)
    values: tuple[JSONValue, ...] = attrs.field(converter=_to_values, hash=False)
    name: str = attrs.field(default=_default_name("one_of"), validator=_name_validator("OneOf"))

    kind: ClassVar[str] = "one_of"

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        value = cast("JSONValue", change.new)
        if any(json_equal(value, allowed) for allowed in self.values):
            return None
        choices = ", ".join(_show(allowed) for allowed in self.values)
        return Violation.of(self.name, change, f"{_show(value)} is not one of {choices}")

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config = {"type": self.kind, "path": self.path.to_config(), "values": list(self.values)}
        return _with_name(cast("dict[str, Any]", copy_json(cast("JSONValue", config))), self)


_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")


def _has_json_type(value: JSONValue, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "number":
        return _is_number(value)
    if json_type == "integer":
        # As in JSON Schema: 2.0 is an integer, since numbers compare by value.
        return _is_number(value) and float(cast("float", value)).is_integer()
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _json_type_validator(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _JSON_TYPES:
        raise RuleConfigError(
            f"expected one of {', '.join(_JSON_TYPES)}, got {_show(value)}",
            owner="TypeIs",
            key="json_type",
        )


@attrs.frozen(kw_only=True)
class TypeIs:
    """The value at ``path`` must have a JSON type.

    ``json_type`` is one of ``string``, ``number``, ``integer`` (a number without a fraction:
    ``2.0`` counts), ``boolean`` (never a number), ``object`` or ``array``.

    ```pycon
    >>> rule = TypeIs(path="name", json_type="string")
    >>> change = Change(path=("name",), section="desired", old=MISSING, new=7, timestamp=0)
    >>> rule.check(change).reason
    '7 is a number, expected a string'

    ```
    """

    path: PathPattern = attrs.field(converter=_type_is_path)
    json_type: str = attrs.field(validator=_json_type_validator)
    name: str = attrs.field(default=_default_name("type"), validator=_name_validator("TypeIs"))

    kind: ClassVar[str] = "type"

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        value = cast("JSONValue", change.new)
        if _has_json_type(value, self.json_type):
            return None
        article = "an" if self.json_type[0] in "aeiou" else "a"
        reason = f"{_show(value)} is {_json_kind(value)}, expected {article} {self.json_type}"
        return Violation.of(self.name, change, reason)

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config = {"type": self.kind, "path": self.path.to_config(), "json_type": self.json_type}
        return _with_name(config, self)


def _to_transitions(value: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    def fail(problem: str) -> RuleConfigError:
        return RuleConfigError(problem, owner="AllowedTransitions", key="transitions")

    if not isinstance(value, Mapping):
        raise fail(
            f"expected a mapping from a state to the states it may change to, got {_show(value)}"
        )
    if not value:
        raise fail("needs at least one state")
    table: dict[str, tuple[str, ...]] = {}
    for old, targets in value.items():
        if not isinstance(old, str):
            raise fail(f"states must be strings, got {_show(old)}")
        if isinstance(targets, (str, bytes, Mapping)) or not isinstance(targets, Iterable):
            raise fail(f"the states after {_show(old)} must be a list, got {_show(targets)}")
        row = tuple(targets)
        for target in row:
            if not isinstance(target, str):
                raise fail(f"states must be strings, got {_show(target)} after {_show(old)}")
        table[old] = row
    return table


def _to_initial(value: bool | Iterable[str]) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RuleConfigError(
            f"expected true, false or a list of states, got {_show(value)}",
            owner="AllowedTransitions",
            key="allow_initial",
        )
    states = tuple(value)
    for state in states:
        if not isinstance(state, str):
            raise RuleConfigError(
                f"states must be strings, got {_show(state)}",
                owner="AllowedTransitions",
                key="allow_initial",
            )
    return states


@attrs.frozen(kw_only=True)
class AllowedTransitions:
    """The value at ``path`` is a state in a state machine and may only move along its edges.

    ``transitions`` maps each state to the states it may change to; states are strings, and a
    state that only appears as a target is final. A value that is not a state is a violation,
    and so is any change away from a value that is not a state (a stored value from before the
    rule existed must be fixed by hand). ``allow_initial`` says which first values may appear
    where there was none: ``True`` any state, ``False`` none, or a list of states.

    ```pycon
    >>> door = AllowedTransitions(path="door", transitions={
    ...     "closed": ["open", "locked"], "open": ["closed"], "locked": ["closed"]})
    >>> change = Change(path=("door",), section="desired", old="open", new="locked",
    ...                 timestamp=0)
    >>> door.check(change).reason
    '"open" -> "locked" is not allowed; from "open" the door may go to "closed"'

    ```
    """

    path: PathPattern = attrs.field(converter=_allowed_transitions_path)
    transitions: dict[str, tuple[str, ...]] = attrs.field(converter=_to_transitions, hash=False)
    allow_initial: bool | tuple[str, ...] = attrs.field(default=True, converter=_to_initial)
    name: str = attrs.field(
        default=_default_name("transitions"), validator=_name_validator("AllowedTransitions")
    )

    kind: ClassVar[str] = "transitions"

    def __attrs_post_init__(self) -> None:
        if isinstance(self.allow_initial, tuple):
            for state in self.allow_initial:
                if state not in self.states:
                    raise RuleConfigError(
                        f"{_show(state)} is not a state of the transitions",
                        owner="AllowedTransitions",
                        key="allow_initial",
                    )

    @property
    def states(self) -> frozenset[str]:
        """Every state: those with transitions and those they lead to."""
        found = set(self.transitions)
        for targets in self.transitions.values():
            found.update(targets)
        return frozenset(found)

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        new = change.new
        label = str(self.path)
        if not isinstance(new, str) or new not in self.states:
            return Violation.of(self.name, change, f"{_show(new)} is not a state of {label}")
        old = change.old
        if old is MISSING:
            if self.allow_initial is True:
                return None
            if self.allow_initial is False:
                return Violation.of(self.name, change, f"{label} may not be set from nothing")
            if new in self.allow_initial:
                return None
            starts = ", ".join(_show(state) for state in self.allow_initial)
            reason = f"{_show(new)} cannot be the first state of {label}; it may start as {starts}"
            return Violation.of(self.name, change, reason)
        if not isinstance(old, str) or old not in self.states:
            reason = f"{label} is {_show(old)}, which is not a state, so it may not change"
            return Violation.of(self.name, change, reason)
        targets = self.transitions.get(old, ())
        if new in targets:
            return None
        if targets:
            where = f"from {_show(old)} the {label} may go to " + ", ".join(map(_show, targets))
        else:
            where = f"{_show(old)} is a final state of {label}"
        return Violation.of(
            self.name, change, f"{_show(old)} -> {_show(new)} is not allowed; {where}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config: dict[str, Any] = {
            "type": self.kind,
            "path": self.path.to_config(),
            "allowed": {state: list(targets) for state, targets in self.transitions.items()},
        }
        if self.allow_initial is not True:
            initial = self.allow_initial
            config["allow_initial"] = initial if isinstance(initial, bool) else list(initial)
        return _with_name(config, self)


# -- semantic versions -------------------------------------------------------------------------

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
    if not _is_count(value):
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
        problem = _semver_problem(text)
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


def _semver_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"{_show(value)} is {_json_kind(value)}, not a semantic version string"
    if len(value) > _MAX_VERSION_LENGTH:
        return f"{_show(value)} is longer than {_MAX_VERSION_LENGTH} characters"
    if _SEMVER.fullmatch(value) is None:
        return f"{_show(value)} is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)"
    return None


@attrs.frozen(kw_only=True)
class NoFirmwareDowngrade:
    """The semantic version at ``path`` may only go up (or stay level).

    Versions follow Semantic Versioning 2.0.0 (see `SemanticVersion`), with or without
    a leading ``v``; build metadata is ignored. A new value that is not a semantic version is a
    violation. When the old value is missing or not a semantic version, any valid version is
    accepted.

    ```pycon
    >>> rule = NoFirmwareDowngrade(path="firmware.version")
    >>> def bump(old, new):
    ...     change = Change(path=("firmware", "version"), section="desired", old=old, new=new,
    ...                     timestamp=0)
    ...     violation = rule.check(change)
    ...     return None if violation is None else violation.reason
    >>> print(bump("1.9.0", "1.10.0"))
    None
    >>> bump("2.0.0", "v2.0.0-rc.1")
    '"v2.0.0-rc.1" is a downgrade from "2.0.0"'
    >>> bump("1.9.0", "latest")
    '"latest" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'

    ```
    """

    path: PathPattern = attrs.field(converter=_no_firmware_downgrade_path)
    name: str = attrs.field(
        default=_default_name("no_firmware_downgrade"),
        validator=_name_validator("NoFirmwareDowngrade"),
    )

    kind: ClassVar[str] = "no_firmware_downgrade"

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        problem = _semver_problem(change.new)
        if problem is not None:
            return Violation.of(self.name, change, problem)
        new = SemanticVersion.parse(cast("str", change.new))
        old = change.old
        if _semver_problem(old) is not None:
            return None
        if new < SemanticVersion.parse(cast("str", old)):
            reason = f"{_show(change.new)} is a downgrade from {_show(old)}"
            return Violation.of(self.name, change, reason)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        return _with_name({"type": self.kind, "path": self.path.to_config()}, self)


def _exact(number: int | float) -> Fraction:
    # A float's shortest repr is the decimal the user wrote, so 20.3 - 20.0 is exactly 0.3.
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _rate_validator(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not math.isfinite(cast("float", value)) or cast("float", value) < 0:
        raise RuleConfigError(
            f"expected a finite number >= 0, got {_show(value)}",
            owner="MaxRateOfChange",
            key="max_delta_per_second",
        )


@attrs.frozen(kw_only=True)
class MaxRateOfChange:
    """A number at ``path`` may change by at most ``max_delta_per_second`` per elapsed second.

    The elapsed time runs from ``Change.old_timestamp`` (when the old value was written, taken
    from the section's metadata) to ``Change.timestamp``. Fail closed: a change of a value whose
    time is unknown, or within the same second, is a violation. A first value, a deletion, or a
    change away from a non-number is not judged. Arithmetic is exact on the numbers as written
    (``20.3 -> 20.0`` is a change of exactly ``0.3``).

    ```pycon
    >>> rule = MaxRateOfChange(path="setpoint", max_delta_per_second=0.5)
    >>> change = Change(path=("setpoint",), section="desired", old=20, new=25,
    ...                 timestamp=1000, old_timestamp=996)
    >>> rule.check(change).reason
    'changed by 5 in 4 s (1.25 per second); the limit is 0.5 per second'

    ```
    """

    path: PathPattern = attrs.field(converter=_max_rate_of_change_path)
    max_delta_per_second: int | float = attrs.field(validator=_rate_validator)
    name: str = attrs.field(
        default=_default_name("max_rate"), validator=_name_validator("MaxRateOfChange")
    )

    kind: ClassVar[str] = "max_rate"

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        new = change.new
        if not _is_number(new):
            return Violation.of(self.name, change, f"{_show(new)} is not a number")
        old = change.old
        if old is MISSING or not _is_number(old):
            return None
        delta = abs(_exact(cast("int | float", new)) - _exact(cast("int | float", old)))
        if change.old_timestamp is None:
            reason = (
                "the previous value has no timestamp, so its rate of change cannot be checked "
                "(pass the section's metadata)"
            )
            return Violation.of(self.name, change, reason)
        elapsed = change.timestamp - change.old_timestamp
        limit = _exact(self.max_delta_per_second)
        if elapsed > 0 and delta <= limit * elapsed:
            return None
        if elapsed <= 0:
            reason = (
                f"changed by {_fraction(delta)} within the second of the previous change; "
                f"the limit is {_show(self.max_delta_per_second)} per second"
            )
        else:
            reason = (
                f"changed by {_fraction(delta)} in {elapsed} s "
                f"({_fraction(delta / elapsed)} per second); "
                f"the limit is {_show(self.max_delta_per_second)} per second"
            )
        return Violation.of(self.name, change, reason)

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config = {
            "type": self.kind,
            "path": self.path.to_config(),
            "per_second": self.max_delta_per_second,
        }
        return _with_name(config, self)


def _fraction(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


def _callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise RuleConfigError(
            f"expected a callable taking a Change, got {_show(value)}", owner="Custom", key="func"
        )


@attrs.frozen(kw_only=True)
class Custom:
    """A rule written as a function: ``func(change)`` returns a reason string or ``None``.

    ``func`` sees every change at ``path``, deletions included. A non-empty string is the
    reason of a violation. An exception raised by ``func``, or a return value that is neither a
    non-empty string nor ``None``, is also a violation whose reason names it: a broken rule
    refuses the change (fails closed) rather than stopping the whole evaluation. Custom rules
    cannot be written to a declarative config.

    ```pycon
    >>> def no_night_heating(change):
    ...     hour = change.timestamp // 3600 % 24
    ...     return "no heating at night" if change.new == "heat" and hour < 6 else None
    >>> rule = Custom(name="no-night-heating", path="mode", func=no_night_heating)
    >>> change = Change(path=("mode",), section="desired", old="off", new="heat",
    ...                 timestamp=3600)
    >>> rule.check(change).reason
    'no heating at night'

    ```
    """

    name: str = attrs.field(validator=_name_validator("Custom"))
    path: PathPattern = attrs.field(converter=_custom_path)
    func: Callable[[Change], str | None] = attrs.field(validator=_callable)

    kind: ClassVar[str] = "custom"

    def check(self, change: Change) -> Violation | None:
        """Judge ``change`` by calling ``func``; see the class docstring."""
        if not self.path.matches(change.path):
            return None
        try:
            result: object = self.func(change)
        except Exception as exc:
            return Violation.of(self.name, change, f"the rule raised {type(exc).__name__}: {exc}")
        if result is None:
            return None
        if isinstance(result, str) and result:
            return Violation.of(self.name, change, result)
        return Violation.of(
            self.name,
            change,
            f"the rule returned {_show(result)}; expected a reason string or None",
        )

    def to_dict(self) -> dict[str, Any]:
        """Always raises: a Python function has no declarative form."""
        raise RuleConfigError(
            "a Custom rule cannot be written to a config: its check is a Python function. "
            "Build it in code and add it to the rules read from the config",
            owner=f"Custom {describe(self.name)}",
        )


def _with_name(config: dict[str, Any], rule: Any) -> dict[str, Any]:
    if rule.name != f"{rule.kind}:{rule.path}":
        config["name"] = rule.name
    return config


# -- declarative form ---------------------------------------------------------------------------

_BuiltIn: TypeAlias = (
    Range | OneOf | TypeIs | AllowedTransitions | NoFirmwareDowngrade | MaxRateOfChange
)

# config key -> constructor argument, per rule type (and the keys that must be present).
_CONFIG: dict[str, tuple[type[Any], dict[str, str], tuple[str, ...]]] = {
    "range": (
        Range,
        {"path": "path", "min": "minimum", "max": "maximum", "inclusive": "inclusive"},
        ("path",),
    ),
    "one_of": (OneOf, {"path": "path", "values": "values"}, ("path", "values")),
    "type": (TypeIs, {"path": "path", "json_type": "json_type"}, ("path", "json_type")),
    "transitions": (
        AllowedTransitions,
        {"path": "path", "allowed": "transitions", "allow_initial": "allow_initial"},
        ("path", "allowed"),
    ),
    "no_firmware_downgrade": (NoFirmwareDowngrade, {"path": "path"}, ("path",)),
    "max_rate": (
        MaxRateOfChange,
        {"path": "path", "per_second": "max_delta_per_second"},
        ("path", "per_second"),
    ),
}


def _config_path(value: object) -> str | tuple[str, ...]:
    """A config path: a dotted string or a list of keys (JSON has no tuples)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise RuleConfigError(f"expected a dotted string or a list of keys, got {_show(value)}")


def rule_from_dict(config: Mapping[str, Any], *, index: int | None = None) -> Rule:
    """Build a built-in rule from its declarative form.

    ``config`` has a ``type`` and that type's keys: ``range`` (``path``, ``min``, ``max``,
    ``inclusive``), ``one_of`` (``path``, ``values``), ``type`` (``path``, ``json_type``),
    ``transitions`` (``path``, ``allowed``, ``allow_initial``), ``no_firmware_downgrade``
    (``path``) and ``max_rate`` (``path``, ``per_second``); every type also takes an optional
    ``name``. ``path`` is a dotted string or a list of keys. Errors are
    `RuleConfigError`, located at ``rules[index]`` when ``index`` is given.

    ```pycon
    >>> rule_from_dict({"type": "one_of", "path": "mode", "values": ["heat", "off"]}).name
    'one_of:mode'
    >>> try:
    ...     rule_from_dict({"type": "one_of", "path": "mode", "value": ["heat"]})
    ... except RuleConfigError as err:
    ...     print(err)
    rule.value: unknown key for a one_of rule (allowed: type, path, values, name)

    ```
    """

    def fail(problem: str, key: str | None = None) -> RuleConfigError:
        return RuleConfigError(problem, index=index, key=key, owner="rule")

    if not isinstance(config, Mapping):
        raise fail(f"expected an object with a type, got {_show(config)}")
    if "type" not in config:
        raise fail("missing required key", "type")
    kind = config["type"]
    if not isinstance(kind, str) or kind not in _CONFIG:
        if kind == "custom":
            raise fail("custom rules cannot be read from a config; build Custom in Python", "type")
        raise fail(f"unknown rule type {_show(kind)} (known: {', '.join(_CONFIG)})", "type")
    cls, keys, required = _CONFIG[kind]
    allowed = ("type", *keys, "name")
    for key in config:
        if key not in allowed:
            raise fail(f"unknown key for a {kind} rule (allowed: {', '.join(allowed)})", str(key))
    for key in required:
        if key not in config:
            raise fail("missing required key", key)
    arguments: dict[str, Any] = {}
    for key, value in config.items():
        if key == "type":
            continue
        if key == "path":
            try:
                value = _config_path(value)
            except RuleConfigError as err:
                raise fail(err.problem, "path") from None
        arguments[keys.get(key, key)] = value
    try:
        return cast("Rule", cls(**arguments))
    except RuleConfigError as err:
        back = {argument: key for key, argument in keys.items()}
        where = back.get(err.key, err.key) if err.key is not None else None
        raise err.located(index=index, key=where) from None


def _check_rules(value: Iterable[Rule]) -> tuple[Rule, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RuleConfigError(f"expected a list of rules, got {_show(value)}", owner="RuleSet")
    rules = tuple(value)
    for index, rule in enumerate(rules):
        name = getattr(rule, "name", None)
        if (
            not isinstance(name, str)
            or not name
            or not isinstance(getattr(rule, "path", None), PathPattern)
            or not callable(getattr(rule, "check", None))
        ):
            raise RuleConfigError(
                "expected a rule: an object with a name (str), a path (PathPattern) and a "
                f"check method, got {describe(rule)}",
                index=index,
            )
    return rules


# -- evaluation --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Rejection:
    """A path an acknowledgement reports as rejected, with the first rule that refused it.

    ```pycon
    >>> Rejection(path=("door",), rule="transitions:door", reason="not allowed").pointer
    '/door'

    ```
    """

    path: Path = attrs.field(validator=lambda _i, _a, v: _check_path(v, "Rejection.path"))
    rule: str = attrs.field(validator=lambda _i, _a, v: _check_text(v, "Rejection.rule"))
    reason: str = attrs.field(validator=lambda _i, _a, v: _check_text(v, "Rejection.reason"))

    @property
    def pointer(self) -> str:
        """The path as a JSON Pointer (RFC 6901), as in `Acknowledgement.to_dict`."""
        return _encode_pointer(self.path)


def _to_paths(value: Iterable[Sequence[str]]) -> tuple[Path, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgumentError(f"expected a sequence of paths, got {describe(value)}")
    return tuple(_check_path(tuple(p) if isinstance(p, list) else p, "a path") for p in value)


def _to_rejections(value: Iterable[Rejection]) -> tuple[Rejection, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgumentError(f"expected a sequence of Rejection, got {describe(value)}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, Rejection):
            raise InvalidArgumentError(f"expected a Rejection, got {describe(item)}")
    return items


_ACK_KEYS = ("desiredVersion", "timestamp", "applied", "rejected", "pending")


@attrs.frozen(kw_only=True)
class Acknowledgement:
    """What happened to each path of a desired change: applied, rejected (and why) or pending.

    ``desired_version`` is the shadow version of the desired state being answered, so the cloud
    can tell which request an acknowledgement is about. The JSON form (`to_dict`) is meant
    for the device's reported state under `ACK_KEY` (``reported["$ack"]``):

        {"desiredVersion": 7, "timestamp": 1700000000,
         "applied": ["/mode"],
         "rejected": [{"path": "/temperature", "rule": "range:temperature",
                       "reason": "45 is greater than the maximum 30"}],
         "pending": ["/firmware/version"]}

    Paths are JSON Pointers (RFC 6901). Every key is always present and holds a scalar or an
    array, so reporting a new acknowledgement replaces the previous one under the shadow's
    deep merge instead of mixing with it. It counts towards the document size limit.

    ```pycon
    >>> ack = Acknowledgement(desired_version=7, timestamp=1700000000, applied=[("mode",)],
    ...                       pending=[("firmware", "version")])
    >>> ack.status(("mode",)), ack.status(("firmware", "version")), ack.status(("x",))
    ('applied', 'pending', None)
    >>> Acknowledgement.from_dict(ack.to_dict()) == ack
    True

    ```
    """

    desired_version: int = attrs.field()
    timestamp: int = attrs.field(validator=_timestamp("Acknowledgement.timestamp"))
    applied: tuple[Path, ...] = attrs.field(default=(), converter=_to_paths)
    rejected: tuple[Rejection, ...] = attrs.field(default=(), converter=_to_rejections)
    pending: tuple[Path, ...] = attrs.field(default=(), converter=_to_paths)

    @desired_version.validator
    def _check_version(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not _is_count(value):
            raise InvalidArgumentError(
                f"Acknowledgement.desired_version must be a non-negative int, got {describe(value)}"
            )

    def __attrs_post_init__(self) -> None:
        seen: set[Path] = set()
        for path in (*self.applied, *(r.path for r in self.rejected), *self.pending):
            if path in seen:
                raise InvalidArgumentError(
                    f"path {_encode_pointer(path)} is listed more than once in the acknowledgement"
                )
            seen.add(path)

    def status(self, path: Sequence[str]) -> Status | None:
        """``"applied"``, ``"rejected"``, ``"pending"``, or ``None`` for a path not listed."""
        key = tuple(path)
        if key in self.applied:
            return "applied"
        if any(rejection.path == key for rejection in self.rejected):
            return "rejected"
        if key in self.pending:
            return "pending"
        return None

    def mark_pending(self, *paths: Sequence[str]) -> Acknowledgement:
        """A copy with applied ``paths`` moved to pending (accepted, not yet in effect).

        ```pycon
        >>> ack = Acknowledgement(desired_version=3, timestamp=0, applied=[("door",)])
        >>> ack.mark_pending(("door",)).pending
        (('door',),)

        ```
        """
        moving = self._take(paths, self.applied, "applied")
        return attrs.evolve(
            self,
            applied=[p for p in self.applied if p not in moving],
            pending=[*self.pending, *moving],
        )

    def mark_applied(self, *paths: Sequence[str]) -> Acknowledgement:
        """A copy with pending ``paths`` moved to applied (now in effect).

        ```pycon
        >>> ack = Acknowledgement(desired_version=3, timestamp=0, pending=[("door",)])
        >>> ack.mark_applied(("door",)).applied
        (('door',),)

        ```
        """
        moving = self._take(paths, self.pending, "pending")
        return attrs.evolve(
            self,
            pending=[p for p in self.pending if p not in moving],
            applied=[*self.applied, *moving],
        )

    def _take(
        self, paths: tuple[Sequence[str], ...], group: tuple[Path, ...], name: str
    ) -> list[Path]:
        moving = [tuple(path) for path in paths]
        for path in moving:
            if path not in group:
                raise InvalidArgumentError(f"path {_encode_pointer(path)} is not {name}")
        return moving

    def to_dict(self) -> JSONObject:
        """The JSON form (see the class docstring), ready for ``reported["$ack"]``."""
        return {
            "desiredVersion": self.desired_version,
            "timestamp": self.timestamp,
            "applied": [_encode_pointer(path) for path in self.applied],
            "rejected": [
                {"path": r.pointer, "rule": r.rule, "reason": r.reason} for r in self.rejected
            ],
            "pending": [_encode_pointer(path) for path in self.pending],
        }

    def to_json(self) -> str:
        """The JSON form as compact text."""
        return dumps_compact(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Acknowledgement:
        """Read and validate the JSON form, for example ``document.reported["$ack"]``.

        Raises `InvalidAcknowledgementError` naming the offending key.
        """

        def fail(where: str, problem: str) -> InvalidAcknowledgementError:
            return InvalidAcknowledgementError(f"acknowledgement{where}: {problem}")

        if not isinstance(data, Mapping):
            raise fail("", f"expected an object, got {_show(data)}")
        for key in data:
            if key not in _ACK_KEYS:
                raise fail(f".{key}", f"unknown key (allowed: {', '.join(_ACK_KEYS)})")
        for key in ("desiredVersion", "timestamp"):
            if key not in data:
                raise fail(f".{key}", "missing required key")
            if not _is_count(data[key]):
                raise fail(f".{key}", f"expected a non-negative integer, got {_show(data[key])}")

        def items(key: str) -> list[Any]:
            value = data.get(key, [])
            if not isinstance(value, list):
                raise fail(f".{key}", f"expected an array, got {_show(value)}")
            return value

        def pointer(where: str, value: object) -> Path:
            path = _decode_pointer(value) if isinstance(value, str) else None
            if path is None:
                raise fail(where, f'expected a JSON Pointer such as "/mode", got {_show(value)}')
            return path

        applied = [pointer(f".applied[{i}]", v) for i, v in enumerate(items("applied"))]
        pending = [pointer(f".pending[{i}]", v) for i, v in enumerate(items("pending"))]
        rejected = []
        for i, entry in enumerate(items("rejected")):
            where = f".rejected[{i}]"
            if not isinstance(entry, Mapping) or set(entry) != {"path", "rule", "reason"}:
                raise fail(
                    where, f"expected an object with path, rule and reason, got {_show(entry)}"
                )
            for key in ("rule", "reason"):
                if not isinstance(entry[key], str) or not entry[key]:
                    raise fail(
                        f"{where}.{key}", f"expected a non-empty string, got {_show(entry[key])}"
                    )
            rejected.append(
                Rejection(
                    path=pointer(f"{where}.path", entry["path"]),
                    rule=entry["rule"],
                    reason=entry["reason"],
                )
            )
        try:
            return cls(
                desired_version=data["desiredVersion"],
                timestamp=data["timestamp"],
                applied=applied,
                rejected=rejected,
                pending=pending,
            )
        except InvalidArgumentError as err:
            raise fail("", str(err)) from None

    @classmethod
    def from_json(cls, data: str | bytes) -> Acknowledgement:
        """Read and validate the JSON form from text or UTF-8 bytes."""
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InvalidAcknowledgementError(f"acknowledgement: not JSON ({exc})") from None
        return cls.from_dict(parsed)


@attrs.frozen(kw_only=True)
class RuleOutcome:
    """The result of `RuleSet.evaluate`.

    ``accepted`` is the proposed section with every refused change reverted to its old value
    (a refused new key is removed, a refused deletion restored), so no refused value is in it.
    ``changes`` lists every change found, ``violations`` every violation (a change refused by
    two rules has two), and ``acknowledgement`` the per-path answer for the device to report.

    ```pycon
    >>> outcome = RuleSet(rules=[TypeIs(path="name", json_type="string")]).evaluate(
    ...     "reported", {"name": "hall"}, {"name": 7, "on": True}, timestamp=1700000000)
    >>> outcome.ok, outcome.accepted, [change.path for change in outcome.changes]
    (False, {'name': 'hall', 'on': True}, [('name',), ('on',)])

    ```
    """

    section: Section
    accepted: JSONObject = attrs.field(hash=False)
    changes: tuple[Change, ...]
    violations: tuple[Violation, ...]
    acknowledgement: Acknowledgement

    @property
    def ok(self) -> bool:
        """Whether every change was accepted."""
        return not self.violations


def _section_copy(value: object, what: str) -> JSONObject:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{what} must be a JSON object, got {_json_kind(value)}")
    try:
        result = _normalize_json(
            value, 1, MAX_CONFIGURABLE_DEPTH, "null is not a value in a section (leave the key out)"
        )
    except _BadJSON as bad:
        raise InvalidArgumentError(f"{what} is not a valid section: {bad.reason}") from None
    assert isinstance(result, dict)
    return result


def _diff(old: JSONObject, new: JSONObject, prefix: Path, out: list[tuple[Path, Any, Any]]) -> None:
    """Leaf-by-leaf differences: objects recurse, anything else (arrays too) is one leaf."""
    for key, value in new.items():
        path = (*prefix, key)
        if key not in old:
            _whole(value, path, out, created=True)
            continue
        before = old[key]
        if type(before) is dict and type(value) is dict:
            _diff(before, value, path, out)
        elif not json_equal(before, value):
            out.append((path, before, value))
    for key, before in old.items():
        if key not in new:
            _whole(before, (*prefix, key), out, created=False)


def _whole(
    value: JSONValue, path: Path, out: list[tuple[Path, Any, Any]], *, created: bool
) -> None:
    if type(value) is dict and value:
        assert isinstance(value, dict)
        for key, item in value.items():
            _whole(item, (*path, key), out, created=created)
    elif created:
        out.append((path, MISSING, value))
    else:
        out.append((path, value, DELETED))


def _lookup(section: JSONValue, path: Path) -> JSONValue | _Missing:
    node = section
    for key in path:
        if type(node) is not dict:
            return MISSING
        assert isinstance(node, dict)
        if key not in node:
            return MISSING
        node = node[key]
    return node


def _written_at(metadata: Mapping[str, Any] | None, path: Path) -> int | None:
    """When the value at ``path`` was last written, from per-leaf ``{"timestamp": t}`` metadata."""
    node: Any = metadata
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return _latest(node, MAX_CONFIGURABLE_DEPTH + 2)


def _latest(node: Any, budget: int) -> int | None:
    if budget <= 0:
        return None
    if isinstance(node, Mapping):
        stamp = node.get("timestamp")
        if _is_count(stamp):
            return cast("int", stamp)
        children: Iterable[Any] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    found = [t for t in (_latest(child, budget - 1) for child in children) if t is not None]
    return max(found) if found else None


def _revert(accepted: JSONObject, old: JSONObject, change: Change) -> None:
    path = change.path
    if change.old is MISSING:
        parents: list[JSONObject] = [accepted]
        for key in path[:-1]:
            child = parents[-1][key]
            assert isinstance(child, dict)
            parents.append(child)
        del parents[-1][path[-1]]
        # Drop objects that exist only to hold refused keys, so the refusal leaves no trace.
        for depth in range(len(path) - 1, 0, -1):
            if parents[depth] or _lookup(old, path[:depth]) is not MISSING:
                break
            del parents[depth - 1][path[depth - 1]]
        return
    node = accepted
    for key in path[:-1]:
        child = node.setdefault(key, {})
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = copy_json(change.old)


@attrs.frozen(kw_only=True)
class RuleSet:
    """An ordered chain of rules, judged against each change of a section.

    ```pycon
    >>> rules = RuleSet(rules=[AllowedTransitions(path="door", transitions={
    ...     "closed": ["open", "locked"], "open": ["closed"], "locked": ["closed"]})])
    >>> outcome = rules.evaluate("desired", {"door": "locked"}, {"door": "open"},
    ...                          timestamp=1700000000, desired_version=12)
    >>> outcome.accepted, outcome.acknowledgement.to_dict()["rejected"][0]["path"]
    ({'door': 'locked'}, '/door')

    ```
    """

    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_check_rules)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RuleSet:
        """Build a rule set from ``{"rules": [...]}`` (see `rule_from_dict`).

        ```pycon
        >>> RuleSet.from_dict({"rules": [{"type": "type", "path": "name", "json_type": "string"}]}
        ...                   ).rules[0].name
        'type:name'

        ```
        """
        if not isinstance(config, Mapping):
            raise RuleConfigError(f"expected an object with a rules list, got {_show(config)}")
        for key in config:
            if key != "rules":
                raise RuleConfigError("unknown key (allowed: rules)", key=str(key))
        if "rules" not in config:
            raise RuleConfigError("missing required key", key="rules")
        entries = config["rules"]
        if not isinstance(entries, list):
            raise RuleConfigError(f"expected a list of rules, got {_show(entries)}", key="rules")
        return cls(rules=[rule_from_dict(entry, index=i) for i, entry in enumerate(entries)])

    @classmethod
    def from_json(cls, text: str | bytes) -> RuleSet:
        """Build a rule set from JSON text (see `from_dict`)."""
        try:
            config = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RuleConfigError(f"the rule config is not JSON ({exc})") from None
        return cls.from_dict(config)

    def to_dict(self) -> dict[str, Any]:
        """The declarative form; raises `RuleConfigError` for rules that have none."""
        out = []
        for index, rule in enumerate(self.rules):
            to_dict = getattr(rule, "to_dict", None)
            if isinstance(rule, Custom) or not callable(to_dict):
                raise RuleConfigError(
                    f"rule {describe(rule.name)} cannot be written to a config: only the built-in "
                    "rules have a declarative form (custom checks are Python functions)",
                    index=index,
                )
            out.append(to_dict())
        return {"rules": out}

    def check(self, change: Change) -> tuple[Violation, ...]:
        """Run ``change`` through the chain: the violations of every rule that matches its path."""
        found = []
        for rule in self.rules:
            if not rule.path.matches(change.path):
                continue
            violation = rule.check(change)
            if violation is None:
                continue
            if not isinstance(violation, Violation):
                raise InvalidArgumentError(
                    f"rule {rule.name!r} returned {describe(violation)}; "
                    "expected a Violation or None"
                )
            found.append(violation)
        return tuple(found)

    def evaluate(
        self,
        section: Section,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        *,
        timestamp: int,
        metadata: Mapping[str, Any] | None = None,
        desired_version: int = 0,
        thing_name: str | None = None,
        shadow_name: str | None = None,
    ) -> RuleOutcome:
        """Judge the change of a whole section from ``old`` to ``new``.

        ``old`` and ``new`` are complete sections (a deleted key is absent; ``null`` is refused).
        They are compared leaf by leaf: objects recurse, arrays and scalars are leaves, a new
        or removed object contributes each of its leaves. Every change is passed through
        `check`. ``metadata`` is the per-leaf metadata of ``old`` (as in a shadow
        document) and gives each change its ``old_timestamp``. ``desired_version`` is the
        version the acknowledgement answers (``0`` when there is none yet).

        ```pycon
        >>> RuleSet().evaluate("reported", {}, {"on": True}, timestamp=5).accepted
        {'on': True}

        ```
        """
        if section not in _SECTIONS:
            raise InvalidArgumentError(
                f"section must be 'desired' or 'reported', got {describe(section)}"
            )
        if not _is_count(timestamp):
            raise InvalidArgumentError(
                f"timestamp must be a non-negative int (epoch seconds), got {describe(timestamp)}"
            )
        if not _is_count(desired_version):
            raise InvalidArgumentError(
                f"desired_version must be a non-negative int, got {describe(desired_version)}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidArgumentError(
                f"metadata must be an object or None, got {describe(metadata)}"
            )
        before = _section_copy(old, "old")
        after = _section_copy(new, "new")
        found: list[tuple[Path, Any, Any]] = []
        _diff(before, after, (), found)
        changes = tuple(
            Change(
                path=path,
                section=section,
                old=copy_json(old_value) if old_value is not MISSING else MISSING,
                new=copy_json(new_value) if new_value is not DELETED else DELETED,
                timestamp=timestamp,
                old_timestamp=None if old_value is MISSING else _written_at(metadata, path),
                thing_name=thing_name,
                shadow_name=shadow_name,
            )
            for path, old_value, new_value in found
        )
        accepted = after
        violations: list[Violation] = []
        applied: list[Path] = []
        rejected: list[Rejection] = []
        for change in changes:
            refused = self.check(change)
            if not refused:
                applied.append(change.path)
                continue
            violations.extend(refused)
            first = refused[0]
            rejected.append(Rejection(path=change.path, rule=first.rule, reason=first.reason))
            _revert(accepted, before, change)
        return RuleOutcome(
            section=section,
            accepted=accepted,
            changes=changes,
            violations=tuple(violations),
            acknowledgement=Acknowledgement(
                desired_version=desired_version,
                timestamp=timestamp,
                applied=applied,
                rejected=rejected,
            ),
        )
