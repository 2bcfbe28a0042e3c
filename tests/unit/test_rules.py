"""Business rules: path patterns, each built-in rule, rule-set evaluation, acknowledgements and
the declarative form."""

from __future__ import annotations

import inspect
import itertools
import json
from typing import Any

import pytest

import shadowsync.rules
from shadowsync import apply_update
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowSyncError
from shadowsync.rules import (
    ACK_KEY,
    DELETED,
    MISSING,
    Acknowledgement,
    AllowedTransitions,
    Change,
    Custom,
    InvalidAcknowledgementError,
    MaxRateOfChange,
    NoFirmwareDowngrade,
    OneOf,
    PathPattern,
    Range,
    Rejection,
    Rule,
    RuleConfigError,
    RuleSet,
    SemanticVersion,
    TypeIs,
    Violation,
    rule_from_dict,
)

T0 = 1_700_000_000


def change(
    path: str,
    old: Any = MISSING,
    new: Any = DELETED,
    *,
    timestamp: int = T0,
    old_timestamp: int | None = None,
) -> Change:
    return Change(
        path=tuple(path.split(".")),
        section="desired",
        old=old,
        new=new,
        timestamp=timestamp,
        old_timestamp=old_timestamp,
    )


def reason(rule: Rule, c: Change) -> str | None:
    violation = rule.check(c)
    return None if violation is None else violation.reason


DOOR = {"closed": ["open", "locked"], "open": ["closed"], "locked": ["closed"]}


# -- the public module --------------------------------------------------------------------------


def test_all_lists_exactly_the_public_names() -> None:
    assert shadowsync.rules.__all__ == [
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
    public = {
        name
        for name, value in vars(shadowsync.rules).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("shadowsync.rules")
    }
    assert public == set(shadowsync.rules.__all__) - {"ACK_KEY", "MISSING", "DELETED"}
    for name in public:
        assert inspect.getdoc(getattr(shadowsync.rules, name)), name


def test_new_errors_belong_to_the_error_tree() -> None:
    assert issubclass(RuleConfigError, InvalidArgumentError)
    assert issubclass(InvalidAcknowledgementError, InvalidDocumentError)
    assert issubclass(InvalidAcknowledgementError, ShadowSyncError)


# -- path patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("temperature", ("temperature",), True),
        ("temperature", ("temperature", "c"), False),
        ("lights.*.brightness", ("lights", "kitchen", "brightness"), True),
        ("lights.*.brightness", ("lights", "brightness"), False),
        ("lights.*.brightness", ("lights", "a", "b", "brightness"), False),
        ("lights.**.brightness", ("lights", "brightness"), True),
        ("lights.**.brightness", ("lights", "floor1", "hall", "brightness"), True),
        ("lights.**.brightness", ("lights", "floor1", "hall", "color"), False),
        ("**", ("anything", "at", "all"), True),
        ("**.version", ("version",), True),
        ("**.version", ("firmware", "version"), True),
        ("*.*", ("firmware",), False),
        ("l*", ("lamp",), False),
        ("l*", ("l*",), True),
        ("**.a.**.b", ("x", "a", "y", "b"), True),
        ("**.a.**.b", ("x", "b", "a"), False),
    ],
)
def test_pattern_matching(pattern: str, path: tuple[str, ...], expected: bool) -> None:
    assert PathPattern.parse(pattern).matches(path) is expected


def test_pattern_from_a_tuple_can_hold_keys_with_dots() -> None:
    pattern = PathPattern.of(("network", "ip.v4"))
    assert pattern.matches(("network", "ip.v4"))
    assert not PathPattern.parse("network.ip.v4").matches(("network", "ip.v4"))
    assert pattern.to_config() == ["network", "ip.v4"]
    assert PathPattern.parse("lights.*.brightness").to_config() == "lights.*.brightness"


def test_pattern_constructors_agree() -> None:
    assert (
        PathPattern.of("a.*.b")
        == PathPattern.of(["a", "*", "b"])
        == PathPattern.of(("a", "*", "b"))
    )
    pattern = PathPattern.parse("a.b")
    assert PathPattern.of(pattern) is pattern
    assert PathPattern.parse("a.**.**.b").parts == ("a", "**", "b")
    assert str(PathPattern.parse("lights.*.brightness")) == "lights.*.brightness"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: PathPattern.parse(""),
            'PathPattern.parse: "" has an empty key; write keys containing dots as a tuple',
        ),
        (
            lambda: PathPattern.parse("a..b"),
            'PathPattern.parse: "a..b" has an empty key; write keys containing dots as a tuple',
        ),
        (lambda: PathPattern.of(()), "PathPattern.parts: a path needs at least one key"),
        (
            lambda: PathPattern.of(("a", 1)),  # type: ignore[arg-type]
            "PathPattern.parts: every key must be a str, got 1",
        ),
        (
            lambda: Range(path="", maximum=1),
            'Range.path: "" has an empty key; write keys containing dots as a tuple',
        ),
    ],
)
def test_bad_patterns_are_refused(build: Any, message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        build()
    assert str(info.value) == message


# -- changes and violations ---------------------------------------------------------------------


def test_change_records_creation_and_deletion() -> None:
    assert change("mode", new="heat").is_creation
    assert change("mode", old="heat").is_deletion
    assert repr(MISSING) == "MISSING"
    assert repr(DELETED) == "DELETED"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"section": "delta"}, "Change.section must be 'desired' or 'reported', got 'delta'"),
        ({"timestamp": -1}, "Change.timestamp must be a non-negative int (epoch seconds), got -1"),
        (
            {"timestamp": True},
            "Change.timestamp must be a non-negative int (epoch seconds), got True",
        ),
        ({"path": ()}, "Change.path must be a non-empty tuple of str keys, got ()"),
        ({"new": None}, "Change.new must be a JSON value or DELETED: null is not allowed here"),
        ({"old": MISSING, "new": DELETED}, "a Change needs an old value, a new value, or both"),
        (
            {"old_timestamp": 1.5},
            "Change.old_timestamp must be a non-negative int or None, got 1.5",
        ),
    ],
)
def test_bad_changes_are_refused(arguments: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "path": ("mode",),
        "section": "desired",
        "old": "off",
        "new": "heat",
        "timestamp": T0,
    }
    with pytest.raises(InvalidArgumentError) as info:
        Change(**{**base, **arguments})
    assert str(info.value) == message


# -- Range --------------------------------------------------------------------------------------


def test_range_keeps_a_thermostat_between_its_limits() -> None:
    thermostat = Range(path="temperature", minimum=10, maximum=30)
    assert reason(thermostat, change("temperature", 21, 22.5)) is None
    assert reason(thermostat, change("temperature", 21, 10)) is None
    assert reason(thermostat, change("temperature", 21, 30.0)) is None
    assert reason(thermostat, change("temperature", 21, 9.5)) == "9.5 is less than the minimum 10"
    assert reason(thermostat, change("temperature", 21, 31)) == "31 is greater than the maximum 30"
    violation = thermostat.check(change("temperature", 21, 31))
    assert violation == Violation(
        rule="range:temperature",
        path=("temperature",),
        value=31,
        reason="31 is greater than the maximum 30",
    )


def test_range_refuses_what_is_not_a_number() -> None:
    thermostat = Range(path="temperature", minimum=10, maximum=30)
    assert reason(thermostat, change("temperature", 21, True)) == "true is not a number"
    assert reason(thermostat, change("temperature", 21, "22")) == '"22" is not a number'
    assert reason(thermostat, change("temperature", 21, [22])) == "[22] is not a number"


def test_range_with_one_bound_and_exclusive_bounds() -> None:
    assert reason(Range(path="speed", minimum=0), change("speed", new=1e9)) is None
    assert reason(Range(path="speed", maximum=100), change("speed", new=-5)) is None
    humidity = Range(path="humidity", minimum=0, maximum=100, inclusive=False)
    assert reason(humidity, change("humidity", new=50)) is None
    assert (
        reason(humidity, change("humidity", new=0))
        == "0 is not greater than the exclusive minimum 0"
    )
    assert (
        reason(humidity, change("humidity", new=100))
        == "100 is not less than the exclusive maximum 100"
    )


def test_range_leaves_deletions_and_other_paths_alone() -> None:
    thermostat = Range(path="temperature", minimum=10, maximum=30)
    assert thermostat.check(change("temperature", old=21)) is None
    assert thermostat.check(change("fan", new=99)) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "Range: give a minimum, a maximum or both"),
        (
            {"minimum": 30, "maximum": 10},
            "Range.maximum: must not be less than the minimum 30, got 10",
        ),
        (
            {"minimum": 5, "maximum": 5, "inclusive": False},
            "Range.maximum: an exclusive range from 5 to 5 holds no number",
        ),
        ({"minimum": True}, "Range.minimum: expected a finite number, got true"),
        ({"maximum": float("nan")}, "Range.maximum: expected a finite number, got NaN"),
        ({"maximum": "30"}, 'Range.maximum: expected a finite number, got "30"'),
        ({"maximum": 30, "inclusive": 1}, "Range.inclusive: expected true or false, got 1"),
        ({"maximum": 30, "name": ""}, 'Range.name: expected a non-empty string, got ""'),
    ],
)
def test_range_configuration_is_checked(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        Range(path="temperature", **arguments)
    assert str(info.value) == message


# -- OneOf --------------------------------------------------------------------------------------


def test_one_of_accepts_only_listed_modes() -> None:
    mode = OneOf(path="mode", values=["heat", "cool", "off"])
    assert reason(mode, change("mode", "off", "heat")) is None
    assert reason(mode, change("mode", "off", "fan")) == '"fan" is not one of "heat", "cool", "off"'
    assert reason(mode, change("mode", "off", 1)) == '1 is not one of "heat", "cool", "off"'
    assert mode.check(change("mode", old="off")) is None


def test_one_of_compares_as_json_does() -> None:
    speeds = OneOf(path="fan.speed", values=[1, 2, 3])
    assert reason(speeds, change("fan.speed", new=2.0)) is None
    assert reason(speeds, change("fan.speed", new=True)) == "true is not one of 1, 2, 3"
    presets = OneOf(path="preset", values=[[18, 21], [16, 19]])
    assert reason(presets, change("preset", new=[16.0, 19])) is None
    assert (
        reason(presets, change("preset", new=[19, 16])) == "[19,16] is not one of [18,21], [16,19]"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "OneOf.values: needs at least one value"),
        ("heat", 'OneOf.values: expected a list of values, got "heat"'),
        (
            [{"a": 1}],
            'OneOf.values: {"a":1} is an object; objects are judged key by key, '
            "so list scalars or arrays",
        ),
        ([None], "OneOf.values: null is not a JSON value (null is not allowed here)"),
        ([float("inf")], "OneOf.values: Infinity is not a JSON value (inf is not a JSON number)"),
    ],
)
def test_one_of_configuration_is_checked(values: Any, message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        OneOf(path="mode", values=values)
    assert str(info.value) == message


# -- TypeIs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("json_type", "good", "bad", "message"),
    [
        ("string", "kitchen", 7, "7 is a number, expected a string"),
        ("number", 2.5, True, "true is a boolean, expected a number"),
        ("integer", 2.0, 2.5, "2.5 is a number, expected an integer"),
        ("integer", 3, "3", '"3" is a string, expected an integer'),
        ("boolean", False, 0, "0 is a number, expected a boolean"),
        ("object", {"r": 255}, [255], "[255] is an array, expected an object"),
        ("array", [1, 2], {"0": 1}, '{"0":1} is an object, expected an array'),
    ],
)
def test_type_is(json_type: str, good: Any, bad: Any, message: str) -> None:
    rule = TypeIs(path="value", json_type=json_type)
    assert rule.check(change("value", new=good)) is None
    assert reason(rule, change("value", new=bad)) == message


def test_type_is_refuses_unknown_types() -> None:
    with pytest.raises(RuleConfigError) as info:
        TypeIs(path="name", json_type="str")
    assert str(info.value) == (
        "TypeIs.json_type: expected one of string, number, integer, boolean, object, array, "
        'got "str"'
    )


# -- AllowedTransitions -------------------------------------------------------------------------


def test_door_lock_state_machine() -> None:
    door = AllowedTransitions(path="door", transitions=DOOR)
    assert reason(door, change("door", "closed", "open")) is None
    assert reason(door, change("door", "closed", "locked")) is None
    assert reason(door, change("door", "locked", "closed")) is None
    assert reason(door, change("door", "locked", "open")) == (
        '"locked" -> "open" is not allowed; from "locked" the door may go to "closed"'
    )
    assert reason(door, change("door", "open", "locked")) == (
        '"open" -> "locked" is not allowed; from "open" the door may go to "closed"'
    )
    assert reason(door, change("door", "closed", "ajar")) == '"ajar" is not a state of door'
    assert reason(door, change("door", "closed", 1)) == "1 is not a state of door"
    assert reason(door, change("door", "ajar", "closed")) == (
        'door is "ajar", which is not a state, so it may not change'
    )
    assert door.check(change("door", old="locked")) is None
    assert door.states == frozenset({"closed", "open", "locked"})


def test_transitions_into_a_final_state() -> None:
    lifecycle = AllowedTransitions(
        path="lifecycle", transitions={"new": ["active"], "active": ["retired"]}
    )
    assert reason(lifecycle, change("lifecycle", "active", "retired")) is None
    assert reason(lifecycle, change("lifecycle", "retired", "active")) == (
        '"retired" -> "active" is not allowed; "retired" is a final state of lifecycle'
    )


def test_allow_initial_says_how_a_state_may_first_appear() -> None:
    first = change("door", new="open")
    assert AllowedTransitions(path="door", transitions=DOOR).check(first) is None
    assert reason(
        AllowedTransitions(path="door", transitions=DOOR, allow_initial=False), first
    ) == ("door may not be set from nothing")
    only_locked = AllowedTransitions(path="door", transitions=DOOR, allow_initial=["locked"])
    assert only_locked.check(change("door", new="locked")) is None
    assert (
        reason(only_locked, first)
        == '"open" cannot be the first state of door; it may start as "locked"'
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"transitions": {}}, "AllowedTransitions.transitions: needs at least one state"),
        (
            {"transitions": ["closed"]},
            "AllowedTransitions.transitions: expected a mapping from a state to the states it "
            'may change to, got ["closed"]',
        ),
        (
            {"transitions": {"closed": "open"}},
            'AllowedTransitions.transitions: the states after "closed" must be a list, got "open"',
        ),
        (
            {"transitions": {"closed": [1]}},
            'AllowedTransitions.transitions: states must be strings, got 1 after "closed"',
        ),
        (
            {"transitions": {1: ["closed"]}},
            "AllowedTransitions.transitions: states must be strings, got 1",
        ),
        (
            {"transitions": DOOR, "allow_initial": ["ajar"]},
            'AllowedTransitions.allow_initial: "ajar" is not a state of the transitions',
        ),
        (
            {"transitions": DOOR, "allow_initial": "closed"},
            "AllowedTransitions.allow_initial: expected true, false or a list of states, "
            'got "closed"',
        ),
    ],
)
def test_transitions_configuration_is_checked(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        AllowedTransitions(path="door", **arguments)
    assert str(info.value) == message


# -- semantic versions and NoFirmwareDowngrade --------------------------------------------------


def test_semver_spec_precedence_example() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.9.0",
        "1.10.0",
        "v2.0.0-rc.1",
        "2.0.0",
    ]
    versions = [SemanticVersion.parse(text) for text in ordered]
    for lower, higher in itertools.pairwise(versions):
        assert lower < higher
        assert higher > lower
        assert lower.compare(higher) == -1
    assert sorted(versions[6:] + versions[:6]) == versions


def test_semver_parts_and_build_metadata() -> None:
    version = SemanticVersion.parse("v1.2.3-rc.1+build.5")
    assert (version.major, version.minor, version.patch) == (1, 2, 3)
    assert version.prerelease == ("rc", "1")
    assert version.build == ("build", "5")
    assert str(version) == "1.2.3-rc.1+build.5"
    plain = SemanticVersion.parse("1.2.3-rc.1")
    assert version.compare(plain) == 0
    assert version <= plain
    assert plain <= version
    assert version != plain


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latest", '"latest" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("1.0", '"1.0" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("01.0.0", '"01.0.0" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("1.0.0-01", '"1.0.0-01" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("1.0.0-", '"1.0.0-" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("1.0.0\n", '"1.0.0\\n" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        ("1.٣.0", '"1.٣.0" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'),
        (
            "1.0.0-" + "a" * 300,
            '"1.0.0-' + "a" * 50 + "... is longer than 256 characters",
        ),
    ],
)
def test_semver_parse_refuses_what_is_not_a_version(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SemanticVersion.parse(text)
    assert str(info.value) == message


def test_firmware_may_only_move_forward() -> None:
    firmware = NoFirmwareDowngrade(path="firmware.version")
    assert reason(firmware, change("firmware.version", "1.9.0", "1.10.0")) is None
    assert reason(firmware, change("firmware.version", "v2.0.0-rc.1", "2.0.0")) is None
    assert reason(firmware, change("firmware.version", "1.0.0-alpha", "1.0.0-alpha.1")) is None
    assert reason(firmware, change("firmware.version", "1.0.0-alpha.1", "1.0.0-beta")) is None
    assert reason(firmware, change("firmware.version", "1.0.0-beta", "1.0.0")) is None
    assert (
        reason(firmware, change("firmware.version", "1.10.0", "1.9.0"))
        == '"1.9.0" is a downgrade from "1.10.0"'
    )
    assert (
        reason(firmware, change("firmware.version", "2.0.0", "v2.0.0-rc.1"))
        == '"v2.0.0-rc.1" is a downgrade from "2.0.0"'
    )
    assert (
        reason(firmware, change("firmware.version", "1.0.0", "1.0.0-beta"))
        == '"1.0.0-beta" is a downgrade from "1.0.0"'
    )


def test_firmware_level_moves_and_build_metadata_are_not_downgrades() -> None:
    firmware = NoFirmwareDowngrade(path="firmware.version")
    assert reason(firmware, change("firmware.version", "1.4.0+build.9", "1.4.0+build.2")) is None
    assert reason(firmware, change("firmware.version", "v1.4.0", "1.4.0")) is None


def test_firmware_must_be_a_semantic_version() -> None:
    firmware = NoFirmwareDowngrade(path="firmware.version")
    assert reason(firmware, change("firmware.version", "1.9.0", "latest")) == (
        '"latest" is not a semantic version (MAJOR.MINOR.PATCH, such as 1.4.2)'
    )
    assert reason(firmware, change("firmware.version", "1.9.0", 2)) == (
        "2 is a number, not a semantic version string"
    )
    # A first version, or one replacing a value that was never a version, is accepted.
    assert reason(firmware, change("firmware.version", new="0.1.0")) is None
    assert reason(firmware, change("firmware.version", "nightly", "0.1.0")) is None
    assert firmware.check(change("firmware.version", old="1.0.0")) is None


# -- MaxRateOfChange ----------------------------------------------------------------------------


def test_setpoint_rate_of_change() -> None:
    setpoint = MaxRateOfChange(path="setpoint", max_delta_per_second=0.5)
    assert reason(setpoint, change("setpoint", 20, 22, timestamp=T0 + 4, old_timestamp=T0)) is None
    assert reason(setpoint, change("setpoint", 22, 20, timestamp=T0 + 4, old_timestamp=T0)) is None
    assert reason(setpoint, change("setpoint", 20, 23, timestamp=T0 + 4, old_timestamp=T0)) == (
        "changed by 3 in 4 s (0.75 per second); the limit is 0.5 per second"
    )
    assert reason(setpoint, change("setpoint", 20, 21, timestamp=T0, old_timestamp=T0)) == (
        "changed by 1 within the second of the previous change; the limit is 0.5 per second"
    )


def test_rate_arithmetic_uses_the_numbers_as_written() -> None:
    # In binary floating point 20.3 - 20.0 is 0.3000000000000007, which would exceed 0.3.
    rule = MaxRateOfChange(path="setpoint", max_delta_per_second=0.3)
    assert reason(rule, change("setpoint", 20.0, 20.3, timestamp=T0 + 1, old_timestamp=T0)) is None
    assert reason(rule, change("setpoint", 20.0, 20.31, timestamp=T0 + 1, old_timestamp=T0)) == (
        "changed by 0.31 in 1 s (0.31 per second); the limit is 0.3 per second"
    )


def test_rate_fails_closed_without_a_timestamp() -> None:
    setpoint = MaxRateOfChange(path="setpoint", max_delta_per_second=0.5)
    assert reason(setpoint, change("setpoint", 20, 20.5)) == (
        "the previous value has no timestamp, so its rate of change cannot be checked "
        "(pass the section's metadata)"
    )


def test_rate_judges_only_numbers_changing_from_numbers() -> None:
    setpoint = MaxRateOfChange(path="setpoint", max_delta_per_second=0.5)
    assert setpoint.check(change("setpoint", new=80)) is None
    assert setpoint.check(change("setpoint", "auto", 80)) is None
    assert setpoint.check(change("setpoint", old=20)) is None
    assert (
        reason(setpoint, change("setpoint", 20, "auto", old_timestamp=T0))
        == '"auto" is not a number'
    )


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        (-1, "MaxRateOfChange.max_delta_per_second: expected a finite number >= 0, got -1"),
        (True, "MaxRateOfChange.max_delta_per_second: expected a finite number >= 0, got true"),
        (
            float("inf"),
            "MaxRateOfChange.max_delta_per_second: expected a finite number >= 0, got Infinity",
        ),
    ],
)
def test_rate_configuration_is_checked(rate: Any, message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        MaxRateOfChange(path="setpoint", max_delta_per_second=rate)
    assert str(info.value) == message


# -- Custom -------------------------------------------------------------------------------------


def test_custom_rule_gives_its_reason() -> None:
    def no_heating_above(c: Change) -> str | None:
        return "heating is off in summer" if c.new == "heat" and c.timestamp > T0 else None

    rule = Custom(name="summer", path="mode", func=no_heating_above)
    assert rule.check(change("mode", "off", "heat", timestamp=T0)) is None
    assert rule.check(change("mode", "off", "heat", timestamp=T0 + 1)) == Violation(
        rule="summer", path=("mode",), value="heat", reason="heating is off in summer"
    )


def test_custom_rule_sees_deletions() -> None:
    rule = Custom(
        name="keep-serial",
        path="serial",
        func=lambda c: "the serial may not be removed" if c.is_deletion else None,
    )
    assert reason(rule, change("serial", old="SN-1")) == "the serial may not be removed"
    assert rule.check(change("serial", "SN-1", "SN-2")) is None


def test_a_failing_custom_rule_refuses_the_change() -> None:
    def broken(c: Change) -> str | None:
        return {"heat": None}[str(c.new)]

    rule = Custom(name="broken", path="mode", func=broken)
    assert reason(rule, change("mode", new="cool")) == "the rule raised KeyError: 'cool'"
    odd = Custom(name="odd", path="mode", func=lambda c: 0)  # type: ignore[arg-type,return-value]
    assert (
        reason(odd, change("mode", new="cool"))
        == "the rule returned 0; expected a reason string or None"
    )
    empty = Custom(name="empty", path="mode", func=lambda c: "")
    assert (
        reason(empty, change("mode", new="cool"))
        == 'the rule returned ""; expected a reason string or None'
    )


def test_custom_rule_configuration_is_checked() -> None:
    with pytest.raises(RuleConfigError) as info:
        Custom(name="x", path="mode", func="not callable")  # type: ignore[arg-type]
    assert str(info.value) == 'Custom.func: expected a callable taking a Change, got "not callable"'
    with pytest.raises(RuleConfigError) as info:
        Custom(name="", path="mode", func=lambda c: None)
    assert str(info.value) == 'Custom.name: expected a non-empty string, got ""'


# -- RuleSet.evaluate ---------------------------------------------------------------------------


THERMOSTAT = RuleSet(
    rules=[
        Range(path="temperature", minimum=10, maximum=30),
        OneOf(path="mode", values=["heat", "cool", "off"]),
        AllowedTransitions(path="door", transitions=DOOR),
        NoFirmwareDowngrade(path="firmware.version"),
        Range(path="lights.*.brightness", minimum=0, maximum=100),
    ]
)


def test_evaluate_reverts_only_the_violating_paths() -> None:
    old = {
        "temperature": 21,
        "mode": "heat",
        "door": "locked",
        "firmware": {"version": "1.9.0", "channel": "stable"},
    }
    new = {
        "temperature": 35,
        "mode": "cool",
        "door": "open",
        "firmware": {"version": "1.10.0", "channel": "beta"},
    }
    outcome = THERMOSTAT.evaluate("desired", old, new, timestamp=T0, desired_version=12)
    assert outcome.accepted == {
        "temperature": 21,
        "mode": "cool",
        "door": "locked",
        "firmware": {"version": "1.10.0", "channel": "beta"},
    }
    assert [(v.rule, v.path, v.value) for v in outcome.violations] == [
        ("range:temperature", ("temperature",), 35),
        ("transitions:door", ("door",), "open"),
    ]
    assert not outcome.ok
    ack = outcome.acknowledgement
    assert ack.desired_version == 12
    assert ack.applied == (("mode",), ("firmware", "version"), ("firmware", "channel"))
    assert [r.path for r in ack.rejected] == [("temperature",), ("door",)]


def test_evaluate_with_nothing_wrong_accepts_the_proposal() -> None:
    old = {"temperature": 21}
    new = {"temperature": 22, "mode": "off"}
    outcome = THERMOSTAT.evaluate("desired", old, new, timestamp=T0)
    assert outcome.ok
    assert outcome.accepted == new
    assert outcome.accepted is not new


def test_a_refused_key_inside_a_new_object_leaves_no_empty_parent() -> None:
    old = {"lights": {"hall": {"brightness": 40}}}
    new = {
        "lights": {
            "hall": {"brightness": 40},
            "porch": {"brightness": 150},
            "desk": {"brightness": 80, "color": "warm"},
        }
    }
    outcome = THERMOSTAT.evaluate("desired", old, new, timestamp=T0)
    assert outcome.accepted == {
        "lights": {"hall": {"brightness": 40}, "desk": {"brightness": 80, "color": "warm"}}
    }
    assert [c.path for c in outcome.changes] == [
        ("lights", "porch", "brightness"),
        ("lights", "desk", "brightness"),
        ("lights", "desk", "color"),
    ]
    assert outcome.violations[0].reason == "150 is greater than the maximum 100"


def test_a_refused_key_inside_an_existing_object_leaves_it_as_it_was() -> None:
    old: dict[str, Any] = {"lights": {"porch": {}}}
    new = {"lights": {"porch": {"brightness": 150}}}
    outcome = THERMOSTAT.evaluate("desired", old, new, timestamp=T0)
    assert outcome.accepted == {"lights": {"porch": {}}}


def test_a_refused_deletion_is_restored() -> None:
    rules = RuleSet(
        rules=[
            Custom(
                name="keep-serial",
                path="device.serial",
                func=lambda c: "required" if c.is_deletion else None,
            )
        ]
    )
    old = {"device": {"serial": "SN-7", "label": "attic"}, "mode": "off"}
    outcome = rules.evaluate("reported", old, {"mode": "off"}, timestamp=T0)
    assert outcome.accepted == {"device": {"serial": "SN-7"}, "mode": "off"}
    assert [(c.path, c.old, c.new) for c in outcome.changes] == [
        (("device", "serial"), "SN-7", DELETED),
        (("device", "label"), "attic", DELETED),
    ]


def test_arrays_are_leaves_and_type_changes_are_one_change() -> None:
    rules = RuleSet(
        rules=[TypeIs(path="schedule", json_type="array"), TypeIs(path="zones", json_type="object")]
    )
    old = {"schedule": [6, 22], "zones": {"a": 1}}
    new = {"schedule": [7, 22], "zones": 3}
    outcome = rules.evaluate("desired", old, new, timestamp=T0)
    assert [(c.path, c.old, c.new) for c in outcome.changes] == [
        (("schedule",), [6, 22], [7, 22]),
        (("zones",), {"a": 1}, 3),
    ]
    assert outcome.accepted == {"schedule": [7, 22], "zones": {"a": 1}}


def test_numbers_equal_by_value_are_not_changes() -> None:
    outcome = THERMOSTAT.evaluate(
        "desired", {"temperature": 21}, {"temperature": 21.0}, timestamp=T0
    )
    assert outcome.changes == ()
    assert outcome.acknowledgement.applied == ()


def test_every_matching_rule_runs_in_order() -> None:
    rules = RuleSet(
        rules=[
            Range(path="temperature", maximum=30),
            TypeIs(path="temperature", json_type="integer"),
            Range(path="fan", maximum=3),
        ]
    )
    outcome = rules.evaluate("desired", {}, {"temperature": 31.5}, timestamp=T0, desired_version=4)
    assert [v.rule for v in outcome.violations] == ["range:temperature", "type:temperature"]
    assert outcome.acknowledgement.rejected == (
        Rejection(
            path=("temperature",),
            rule="range:temperature",
            reason="31.5 is greater than the maximum 30",
        ),
    )
    assert outcome.accepted == {}


def test_metadata_of_a_real_shadow_gives_the_old_timestamp() -> None:
    stored = apply_update(
        None, {"state": {"desired": {"setpoint": 20, "mode": "heat"}}}, timestamp=T0
    ).document
    rules = RuleSet(rules=[MaxRateOfChange(path="setpoint", max_delta_per_second=0.5)])

    def propose(setpoint: float, at: int) -> tuple[Any, ...]:
        outcome = rules.evaluate(
            "desired",
            stored.desired,
            {**stored.desired, "setpoint": setpoint},
            timestamp=at,
            metadata=stored.desired_metadata,
            desired_version=stored.version,
        )
        return outcome.changes[0].old_timestamp, outcome.accepted["setpoint"]

    assert propose(25, T0 + 10) == (T0, 25)
    assert propose(25, T0 + 9) == (T0, 20)


def test_changes_carry_thing_and_shadow_names() -> None:
    seen: list[Change] = []

    def record(c: Change) -> None:
        seen.append(c)

    rules = RuleSet(rules=[Custom(name="record", path="**", func=record)])
    rules.evaluate(
        "reported",
        {"a": 1},
        {"a": 2},
        timestamp=T0,
        thing_name="thermostat-42",
        shadow_name="climate",
    )
    assert [(c.thing_name, c.shadow_name, c.section, c.path) for c in seen] == [
        ("thermostat-42", "climate", "reported", ("a",))
    ]


def test_a_rule_cannot_change_the_outcome_by_mutating_its_change() -> None:
    def meddle(c: Change) -> None:
        assert isinstance(c.new, list)
        c.new.append(99)

    rules = RuleSet(rules=[Custom(name="meddle", path="schedule", func=meddle)])
    outcome = rules.evaluate("desired", {}, {"schedule": [6, 22]}, timestamp=T0)
    assert outcome.accepted == {"schedule": [6, 22]}


def test_a_rule_written_against_the_protocol() -> None:
    class EvenOnly:
        name = "even"
        path = PathPattern.parse("count")

        def check(self, c: Change) -> Violation | None:
            if isinstance(c.new, int) and c.new % 2:
                return Violation.of(self.name, c, f"{c.new} is odd")
            return None

    rules = RuleSet(rules=[EvenOnly()])
    assert isinstance(EvenOnly(), Rule)
    outcome = rules.evaluate("desired", {"count": 2}, {"count": 3}, timestamp=T0)
    assert outcome.accepted == {"count": 2}
    assert outcome.violations[0].reason == "3 is odd"


def test_a_rule_returning_something_else_is_an_error() -> None:
    class Sloppy:
        name = "sloppy"
        path = PathPattern.parse("count")

        def check(self, c: Change) -> Any:
            return "bad"

    with pytest.raises(InvalidArgumentError) as info:
        RuleSet(rules=[Sloppy()]).evaluate("desired", {}, {"count": 1}, timestamp=T0)
    assert str(info.value) == "rule 'sloppy' returned 'bad'; expected a Violation or None"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"section": "delta"}, "section must be 'desired' or 'reported', got 'delta'"),
        ({"timestamp": 1.5}, "timestamp must be a non-negative int (epoch seconds), got 1.5"),
        ({"desired_version": -1}, "desired_version must be a non-negative int, got -1"),
        ({"new": {"mode": None}}, "new is not a valid section: null is not allowed here"),
        ({"old": ["mode"]}, "old must be a JSON object, got an array"),
        ({"new": {"t": float("nan")}}, "new is not a valid section: nan is not a JSON number"),
        ({"metadata": [1]}, "metadata must be an object or None, got [1]"),
    ],
)
def test_evaluate_refuses_bad_input(arguments: dict[str, Any], message: str) -> None:
    call: dict[str, Any] = {"section": "desired", "old": {}, "new": {}, "timestamp": T0}
    call.update(arguments)
    with pytest.raises(InvalidArgumentError) as info:
        THERMOSTAT.evaluate(call.pop("section"), call.pop("old"), call.pop("new"), **call)
    assert str(info.value) == message


def test_a_rule_set_holds_only_rules() -> None:
    with pytest.raises(RuleConfigError) as info:
        RuleSet(rules=[Range(path="t", maximum=1), "range"])  # type: ignore[list-item]
    assert str(info.value) == (
        "rules[1]: expected a rule: an object with a name (str), a path (PathPattern) and a "
        "check method, got 'range'"
    )


# -- acknowledgements ---------------------------------------------------------------------------


def test_acknowledgement_json_shape() -> None:
    old = {"temperature": 21, "mode": "heat", "firmware": {"version": "1.9.0"}}
    new = {"temperature": 45, "mode": "cool", "firmware": {"version": "2.0.0"}}
    outcome = THERMOSTAT.evaluate("desired", old, new, timestamp=T0, desired_version=7)
    ack = outcome.acknowledgement.mark_pending(("firmware", "version"))
    assert ack.to_dict() == {
        "desiredVersion": 7,
        "timestamp": T0,
        "applied": ["/mode"],
        "rejected": [
            {
                "path": "/temperature",
                "rule": "range:temperature",
                "reason": "45 is greater than the maximum 30",
            }
        ],
        "pending": ["/firmware/version"],
    }
    assert ack.to_json() == json.dumps(ack.to_dict(), separators=(",", ":"))
    assert Acknowledgement.from_json(ack.to_json()) == ack
    assert Acknowledgement.from_json(ack.to_json().encode()) == ack
    assert ack.status(("firmware", "version")) == "pending"
    assert ack.mark_applied(("firmware", "version")).status(["firmware", "version"]) == "applied"
    assert ack.status(("temperature",)) == "rejected"


def test_acknowledgement_paths_are_json_pointers() -> None:
    ack = Acknowledgement(desired_version=1, timestamp=T0, applied=[("a/b", "~c")])
    assert ack.to_dict()["applied"] == ["/a~1b/~0c"]
    assert Acknowledgement.from_dict(ack.to_dict()) == ack


def test_a_new_acknowledgement_replaces_the_old_one_in_reported_state() -> None:
    first = Acknowledgement(
        desired_version=3,
        timestamp=T0,
        applied=[("mode",)],
        rejected=[Rejection(path=("door",), rule="transitions:door", reason="not allowed")],
    )
    second = Acknowledgement(desired_version=4, timestamp=T0 + 5, applied=[("door",)])
    doc = apply_update(
        None, {"state": {"reported": {ACK_KEY: first.to_dict()}}}, timestamp=T0
    ).document
    doc = apply_update(
        doc, {"state": {"reported": {ACK_KEY: second.to_dict()}}}, timestamp=T0 + 5
    ).document
    assert Acknowledgement.from_dict(doc.reported["$ack"]) == second  # type: ignore[arg-type]


def test_marking_a_path_not_in_the_group_is_an_error() -> None:
    ack = Acknowledgement(desired_version=1, timestamp=T0, applied=[("mode",)])
    with pytest.raises(InvalidArgumentError) as info:
        ack.mark_applied(("mode",))
    assert str(info.value) == "path /mode is not pending"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "acknowledgement: expected an object, got []"),
        ({"timestamp": T0}, "acknowledgement.desiredVersion: missing required key"),
        (
            {"desiredVersion": 1, "timestamp": T0, "extra": 1},
            "acknowledgement.extra: unknown key "
            "(allowed: desiredVersion, timestamp, applied, rejected, pending)",
        ),
        (
            {"desiredVersion": True, "timestamp": T0},
            "acknowledgement.desiredVersion: expected a non-negative integer, got true",
        ),
        (
            {"desiredVersion": 1, "timestamp": "now"},
            'acknowledgement.timestamp: expected a non-negative integer, got "now"',
        ),
        (
            {"desiredVersion": 1, "timestamp": T0, "applied": "/mode"},
            'acknowledgement.applied: expected an array, got "/mode"',
        ),
        (
            {"desiredVersion": 1, "timestamp": T0, "applied": ["mode"]},
            'acknowledgement.applied[0]: expected a JSON Pointer such as "/mode", got "mode"',
        ),
        (
            {"desiredVersion": 1, "timestamp": T0, "pending": ["/a~2"]},
            'acknowledgement.pending[0]: expected a JSON Pointer such as "/mode", got "/a~2"',
        ),
        (
            {"desiredVersion": 1, "timestamp": T0, "rejected": [{"path": "/a"}]},
            "acknowledgement.rejected[0]: expected an object with path, rule and reason, "
            'got {"path":"/a"}',
        ),
        (
            {
                "desiredVersion": 1,
                "timestamp": T0,
                "rejected": [{"path": "/a", "rule": "r", "reason": 5}],
            },
            "acknowledgement.rejected[0].reason: expected a non-empty string, got 5",
        ),
        (
            {"desiredVersion": 1, "timestamp": T0, "applied": ["/a"], "pending": ["/a"]},
            "acknowledgement: path /a is listed more than once in the acknowledgement",
        ),
    ],
)
def test_acknowledgement_from_dict_validates(data: Any, message: str) -> None:
    with pytest.raises(InvalidAcknowledgementError) as info:
        Acknowledgement.from_dict(data)
    assert str(info.value) == message


def test_acknowledgement_from_json_refuses_text_that_is_not_json() -> None:
    with pytest.raises(
        InvalidAcknowledgementError, match=r"^acknowledgement: not JSON \(Expecting property name"
    ):
        Acknowledgement.from_json("{desiredVersion: 1}")


# -- declarative form ---------------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "rules": [
        {"type": "range", "path": "temperature", "min": 10, "max": 30},
        {"type": "one_of", "path": "mode", "values": ["heat", "cool", "off"]},
        {
            "type": "transitions",
            "path": "door",
            "allowed": {"closed": ["open", "locked"], "open": ["closed"], "locked": ["closed"]},
        },
        {"type": "no_firmware_downgrade", "path": "firmware.version"},
        {"type": "max_rate", "path": "setpoint", "per_second": 0.5},
        {"type": "type", "path": "name", "json_type": "string"},
    ]
}


def test_rules_from_a_config() -> None:
    rules = RuleSet.from_dict(CONFIG)
    assert rules.rules == (
        Range(path="temperature", minimum=10, maximum=30),
        OneOf(path="mode", values=["heat", "cool", "off"]),
        AllowedTransitions(path="door", transitions=DOOR),
        NoFirmwareDowngrade(path="firmware.version"),
        MaxRateOfChange(path="setpoint", max_delta_per_second=0.5),
        TypeIs(path="name", json_type="string"),
    )
    assert rules.to_dict() == CONFIG
    assert RuleSet.from_json(json.dumps(CONFIG)) == rules


def test_config_options_round_trip() -> None:
    config = {
        "rules": [
            {
                "type": "range",
                "path": ["network", "ip.v4", "mtu"],
                "min": 576,
                "inclusive": False,
                "name": "mtu",
            },
            {"type": "transitions", "path": "door", "allowed": DOOR, "allow_initial": ["locked"]},
            {"type": "transitions", "path": "gate", "allowed": DOOR, "allow_initial": False},
        ]
    }
    rules = RuleSet.from_dict(config)
    assert rules.rules[0].name == "mtu"
    assert rules.rules[0].path.matches(("network", "ip.v4", "mtu"))
    assert rules.to_dict() == config


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"type": "range", "path": "t", "maximum": 30},
            "rules[1].maximum: unknown key for a range rule "
            "(allowed: type, path, min, max, inclusive, name)",
        ),
        (
            {"type": "ranges", "path": "t"},
            'rules[1].type: unknown rule type "ranges" '
            "(known: range, one_of, type, transitions, no_firmware_downgrade, max_rate)",
        ),
        (
            {"type": "custom", "path": "t"},
            "rules[1].type: custom rules cannot be read from a config; build Custom in Python",
        ),
        ({"path": "t", "max": 30}, "rules[1].type: missing required key"),
        ({"type": "one_of", "path": "mode"}, "rules[1].values: missing required key"),
        (
            {"type": "range", "path": "t", "min": "10"},
            'rules[1].min: expected a finite number, got "10"',
        ),
        (
            {"type": "range", "path": "t", "min": 30, "max": 10},
            "rules[1].max: must not be less than the minimum 30, got 10",
        ),
        ({"type": "range", "path": "t"}, "rules[1]: give a minimum, a maximum or both"),
        (
            {"type": "range", "path": 5, "max": 1},
            "rules[1].path: expected a dotted string or a list of keys, got 5",
        ),
        (
            {"type": "range", "path": "a..b", "max": 1},
            'rules[1].path: "a..b" has an empty key; write keys containing dots as a tuple',
        ),
        (
            {"type": "one_of", "path": "mode", "values": "heat"},
            'rules[1].values: expected a list of values, got "heat"',
        ),
        (
            {"type": "type", "path": "name", "json_type": "text"},
            "rules[1].json_type: expected one of string, number, integer, boolean, object, "
            'array, got "text"',
        ),
        (
            {"type": "transitions", "path": "door", "allowed": {"closed": "open"}},
            'rules[1].allowed: the states after "closed" must be a list, got "open"',
        ),
        (
            {"type": "max_rate", "path": "setpoint", "per_second": -1},
            "rules[1].per_second: expected a finite number >= 0, got -1",
        ),
        (
            {"type": "no_firmware_downgrade", "path": "fw", "name": 3},
            "rules[1].name: expected a non-empty string, got 3",
        ),
        ("range", 'rules[1]: expected an object with a type, got "range"'),
    ],
)
def test_config_errors_name_the_rule_and_key(entry: Any, message: str) -> None:
    config = {"rules": [{"type": "range", "path": "temperature", "max": 30}, entry]}
    with pytest.raises(RuleConfigError) as info:
        RuleSet.from_dict(config)
    assert str(info.value) == message
    assert info.value.index == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "expected an object with a rules list, got []"),
        ({}, "rules: missing required key"),
        ({"rules": [], "version": 1}, "version: unknown key (allowed: rules)"),
        ({"rules": {"type": "range"}}, 'rules: expected a list of rules, got {"type":"range"}'),
    ],
)
def test_config_errors_at_the_top(config: Any, message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        RuleSet.from_dict(config)
    assert str(info.value) == message


def test_rule_from_dict_alone_says_rule() -> None:
    with pytest.raises(RuleConfigError) as info:
        rule_from_dict({"type": "range", "path": "t", "max": "hot"})
    assert str(info.value) == 'rule.max: expected a finite number, got "hot"'
    assert (info.value.index, info.value.key) == (None, "max")


def test_rule_set_from_json_refuses_text_that_is_not_json() -> None:
    with pytest.raises(RuleConfigError, match=r"^the rule config is not JSON \(Expecting"):
        RuleSet.from_json("{rules: []}")


def test_custom_rules_cannot_be_written_to_a_config() -> None:
    custom = Custom(name="no-night-heating", path="mode", func=lambda c: None)
    with pytest.raises(RuleConfigError) as info:
        RuleSet(rules=[Range(path="t", maximum=1), custom]).to_dict()
    assert str(info.value) == (
        "rules[1]: rule 'no-night-heating' cannot be written to a config: only the built-in rules "
        "have a declarative form (custom checks are Python functions)"
    )
    with pytest.raises(RuleConfigError) as info:
        custom.to_dict()
    assert str(info.value) == (
        "Custom 'no-night-heating': a Custom rule cannot be written to a config: its check is a "
        "Python function. Build it in code and add it to the rules read from the config"
    )


def test_config_rules_and_custom_rules_combine() -> None:
    night = Custom(
        name="no-night-heating",
        path="mode",
        func=lambda c: "not at night" if c.new == "heat" else None,
    )
    rules = RuleSet(rules=[*RuleSet.from_dict(CONFIG).rules, night])
    outcome = rules.evaluate("desired", {"mode": "off"}, {"mode": "heat"}, timestamp=T0)
    assert outcome.accepted == {"mode": "off"}
    assert outcome.violations[0].rule == "no-night-heating"
