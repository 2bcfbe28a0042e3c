"""The built-in rules: `Range`, `OneOf`, `TypeIs`, `AllowedTransitions`, `NoFirmwareDowngrade`,
`MaxRateOfChange` and `Custom`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar, cast

import attrs

from shadowsync._json import (
    JSONProblem,
    JSONValue,
    copy_json,
    describe,
    json_equal,
    kind_phrase,
)
from shadowsync._tree import MISSING
from shadowsync.rules._model import (
    DELETED,
    RuleConfigError,
    is_listlike,
    is_number,
    items_of,
    json_copy,
    show,
)
from shadowsync.rules._paths import PathLike, PathPattern, pattern_for
from shadowsync.rules._rule import Change, Violation
from shadowsync.rules._semver import SemanticVersion, semver_problem


def _range_path(value: PathLike) -> PathPattern:
    return pattern_for("Range", value)


def _one_of_path(value: PathLike) -> PathPattern:
    return pattern_for("OneOf", value)


def _type_is_path(value: PathLike) -> PathPattern:
    return pattern_for("TypeIs", value)


def _allowed_transitions_path(value: PathLike) -> PathPattern:
    return pattern_for("AllowedTransitions", value)


def _no_firmware_downgrade_path(value: PathLike) -> PathPattern:
    return pattern_for("NoFirmwareDowngrade", value)


def _max_rate_of_change_path(value: PathLike) -> PathPattern:
    return pattern_for("MaxRateOfChange", value)


def _custom_path(value: PathLike) -> PathPattern:
    return pattern_for("Custom", value)


def _default_name(kind: str) -> Any:
    return attrs.Factory(lambda self: f"{kind}:{self.path}", takes_self=True)


def _name_validator(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or not value:
            raise RuleConfigError(
                f"expected a non-empty string, got {show(value)}", owner=owner, key="name"
            )

    return check


def _applies(pattern: PathPattern, change: Change) -> bool:
    """Built-in rules judge values, never absence, and only on their own paths."""
    return change.new is not DELETED and pattern.matches(change.path)


def _finite_number(owner: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if optional and value is None:
            return
        if not is_number(value) or not math.isfinite(cast("float", value)):
            raise RuleConfigError(
                f"expected a finite number, got {show(value)}", owner=owner, key=attribute.name
            )

    return check


def _bool(owner: str) -> Callable[[Any, Any, Any], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, bool):
            raise RuleConfigError(
                f"expected true or false, got {show(value)}", owner=owner, key=attribute.name
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
                    f"must not be less than the minimum {show(self.minimum)}, "
                    f"got {show(self.maximum)}",
                    owner="Range",
                    key="maximum",
                )
            if self.maximum == self.minimum and not self.inclusive:
                raise RuleConfigError(
                    f"an exclusive range from {show(self.minimum)} to {show(self.maximum)} "
                    "holds no number",
                    owner="Range",
                    key="maximum",
                )

    def check(self, change: Change) -> Violation | None:
        """Judge ``change``; see the class docstring."""
        if not _applies(self.path, change):
            return None
        value = change.new
        if not is_number(value):
            return Violation.of(self.name, change, f"{show(value)} is not a number")
        number = cast("int | float", value)
        low, high = self.minimum, self.maximum
        if self.inclusive:
            if low is not None and number < low:
                reason = f"{show(number)} is less than the minimum {show(low)}"
                return Violation.of(self.name, change, reason)
            if high is not None and number > high:
                reason = f"{show(number)} is greater than the maximum {show(high)}"
                return Violation.of(self.name, change, reason)
        else:
            if low is not None and number <= low:
                reason = f"{show(number)} is not greater than the exclusive minimum {show(low)}"
                return Violation.of(self.name, change, reason)
            if high is not None and number >= high:
                reason = f"{show(number)} is not less than the exclusive maximum {show(high)}"
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
    if not is_listlike(value):
        raise RuleConfigError(
            f"expected a list of values, got {show(value)}", owner="OneOf", key="values"
        )
    items = tuple(value)
    for item in items:
        if isinstance(item, Mapping):
            raise RuleConfigError(
                f"{show(item)} is an object; objects are judged key by key, "
                "so list scalars or arrays",
                owner="OneOf",
                key="values",
            )
        try:
            json_copy(item)
        except JSONProblem as bad:
            raise RuleConfigError(
                f"{show(item)} is not a JSON value ({bad.reason()})", owner="OneOf", key="values"
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
        choices = ", ".join(show(allowed) for allowed in self.values)
        return Violation.of(self.name, change, f"{show(value)} is not one of {choices}")

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        config = {"type": self.kind, "path": self.path.to_config(), "values": list(self.values)}
        return _with_name(cast("dict[str, Any]", copy_json(cast("JSONValue", config))), self)


_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")


def _has_json_type(value: JSONValue, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "number":
        return is_number(value)
    if json_type == "integer":
        # As in JSON Schema: 2.0 is an integer, since numbers compare by value.
        return is_number(value) and float(cast("float", value)).is_integer()
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _json_type_validator(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _JSON_TYPES:
        raise RuleConfigError(
            f"expected one of {', '.join(_JSON_TYPES)}, got {show(value)}",
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
        reason = f"{show(value)} is {kind_phrase(value)}, expected {article} {self.json_type}"
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
            f"expected a mapping from a state to the states it may change to, got {show(value)}"
        )
    if not value:
        raise fail("needs at least one state")
    table: dict[str, tuple[str, ...]] = {}
    for old, targets in value.items():
        if not isinstance(old, str):
            raise fail(f"states must be strings, got {show(old)}")
        after = f" after {show(old)}"
        table[old] = _states(targets, fail, f"the states{after} must be a list", after)
    return table


def _states(
    value: object, fail: Callable[[str], RuleConfigError], not_a_list: str, where: str = ""
) -> tuple[str, ...]:
    """``value``'s states (strings); ``not_a_list`` says what ``value`` should have been."""
    return items_of(
        value,
        str,
        not_a_list=lambda v: fail(f"{not_a_list}, got {show(v)}"),
        wrong_item=lambda state: fail(f"states must be strings, got {show(state)}{where}"),
    )


def _to_initial(value: bool | Iterable[str]) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value

    def fail(problem: str) -> RuleConfigError:
        return RuleConfigError(problem, owner="AllowedTransitions", key="allow_initial")

    return _states(value, fail, "expected true, false or a list of states")


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
                        f"{show(state)} is not a state of the transitions",
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
            return Violation.of(self.name, change, f"{show(new)} is not a state of {label}")
        old = change.old
        if old is MISSING:
            if self.allow_initial is True:
                return None
            if self.allow_initial is False:
                return Violation.of(self.name, change, f"{label} may not be set from nothing")
            if new in self.allow_initial:
                return None
            starts = ", ".join(show(state) for state in self.allow_initial)
            reason = f"{show(new)} cannot be the first state of {label}; it may start as {starts}"
            return Violation.of(self.name, change, reason)
        if not isinstance(old, str) or old not in self.states:
            reason = f"{label} is {show(old)}, which is not a state, so it may not change"
            return Violation.of(self.name, change, reason)
        targets = self.transitions.get(old, ())
        if new in targets:
            return None
        if targets:
            where = f"from {show(old)} the {label} may go to " + ", ".join(map(show, targets))
        else:
            where = f"{show(old)} is a final state of {label}"
        return Violation.of(
            self.name, change, f"{show(old)} -> {show(new)} is not allowed; {where}"
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
        problem = semver_problem(change.new)
        if problem is not None:
            return Violation.of(self.name, change, problem)
        new = SemanticVersion.parse(cast("str", change.new))
        old = change.old
        if semver_problem(old) is not None:
            return None
        if new < SemanticVersion.parse(cast("str", old)):
            reason = f"{show(change.new)} is a downgrade from {show(old)}"
            return Violation.of(self.name, change, reason)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The declarative form, accepted by `rule_from_dict`."""
        return _with_name({"type": self.kind, "path": self.path.to_config()}, self)


def _exact(number: int | float) -> Fraction:
    # A float's shortest repr is the decimal the user wrote, so 20.3 - 20.0 is exactly 0.3.
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _rate_validator(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not is_number(value) or not math.isfinite(cast("float", value)) or cast("float", value) < 0:
        raise RuleConfigError(
            f"expected a finite number >= 0, got {show(value)}",
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
        if not is_number(new):
            return Violation.of(self.name, change, f"{show(new)} is not a number")
        old = change.old
        if old is MISSING or not is_number(old):
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
                f"the limit is {show(self.max_delta_per_second)} per second"
            )
        else:
            reason = (
                f"changed by {_fraction(delta)} in {elapsed} s "
                f"({_fraction(delta / elapsed)} per second); "
                f"the limit is {show(self.max_delta_per_second)} per second"
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
            f"expected a callable taking a Change, got {show(value)}", owner="Custom", key="func"
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
            f"the rule returned {show(result)}; expected a reason string or None",
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
