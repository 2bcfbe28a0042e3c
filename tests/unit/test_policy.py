"""Resolution policy: which strategy settles a conflict where, severities, review escalation, and
the declarative configuration."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync._conflict.merge import ChangeClass, merge
from shadowsync._conflict.policy import (
    DEFAULT_SOURCE_PRIORITIES,
    PolicyConfigError,
    PolicyRule,
    ResolutionPolicy,
    strategy_from_name,
)
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import PathPattern
from shadowsync.strategies import (
    Conflict,
    FieldMerge,
    LastWriterWins,
    ManualReview,
    OwnerWins,
    Priority,
    Resolution,
    Severity,
    Strategy,
)

if TYPE_CHECKING:
    from shadowsync import JSONObject

DEVICE: JSONObject = {
    "mode": "heat",
    "target_c": 21,
    "fan": {"mode": "auto", "speed": 2},
    "firmware": {"version": "1.4.2", "channel": "stable"},
    "lights": {"kitchen": {"brightness": 80, "rgb": [255, 200, 150]}},
}


def clash(*paths: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(base, ours, theirs)`` where both sides changed every given leaf differently."""
    ours, theirs = copy.deepcopy(DEVICE), copy.deepcopy(DEVICE)
    for path in paths:
        for side, suffix in ((ours, "-ours"), (theirs, "-theirs")):
            node: Any = side
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = f"{node[path[-1]]}{suffix}"
    return copy.deepcopy(DEVICE), ours, theirs


# --------------------------------------------------------------------------------------------
# strategy_from_name
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("last_writer_wins", LastWriterWins),
        ("LAST_WRITER_WINS", LastWriterWins),
        ("lww", LastWriterWins),
        ("LWW", LastWriterWins),
        ("field_merge", FieldMerge),
        ("FIELD_LEVEL_MERGE", FieldMerge),
        ("field_level", FieldMerge),
        ("priority", Priority),
        ("PRIORITY_BASED", Priority),
        ("owner_wins", OwnerWins),
        ("manual_review", ManualReview),
        ("MANUAL", ManualReview),
    ],
)
def test_strategy_from_name_knows_every_builtin_and_alias(name: str, kind: type) -> None:
    strategy = strategy_from_name(name)
    assert type(strategy) is kind
    assert isinstance(strategy, Strategy)


def test_strategy_from_name_builds_priority_from_source_priorities() -> None:
    default = strategy_from_name("priority")
    assert isinstance(default, Priority)
    assert dict(default.sources) == dict(DEFAULT_SOURCE_PRIORITIES)
    assert dict(DEFAULT_SOURCE_PRIORITIES) == {"operator": 3, "cloud": 2, "device": 1}
    custom = strategy_from_name("priority", source_priorities={"device": 9, "cloud": 1})
    assert isinstance(custom, Priority)
    assert dict(custom.sources) == {"device": 9, "cloud": 1}


@pytest.mark.parametrize("name", ["coin_flip", "", "last writer wins", None, 3, ["lww"]])
def test_strategy_from_name_refuses_unknown_names(name: object) -> None:
    with pytest.raises(PolicyConfigError, match="unknown strategy"):
        strategy_from_name(name)


def test_policy_config_error_is_an_invalid_argument_error() -> None:
    assert issubclass(PolicyConfigError, InvalidArgumentError)


# --------------------------------------------------------------------------------------------
# PolicyRule
# --------------------------------------------------------------------------------------------


def test_a_rule_without_selectors_matches_everywhere() -> None:
    rule = PolicyRule(strategy=ManualReview())
    assert rule.matches(thing=None, shadow=None, section="desired", path=("mode",))
    assert rule.matches(thing="thermostat-1", shadow="config", section="reported", path=("a", "b"))


def test_rule_thing_and_shadow_are_shell_patterns() -> None:
    rule = PolicyRule(strategy=ManualReview(), thing="thermostat-*", shadow="fw-?")
    assert rule.matches(thing="thermostat-12", shadow="fw-a", section="desired", path=("x",))
    assert not rule.matches(thing="pump-12", shadow="fw-a", section="desired", path=("x",))
    assert not rule.matches(thing="thermostat-12", shadow="fw-ab", section="desired", path=("x",))
    assert not rule.matches(thing=None, shadow="fw-a", section="desired", path=("x",))
    assert not rule.matches(thing="Thermostat-12", shadow="fw-a", section="desired", path=("x",))


def test_rule_with_an_empty_shadow_selects_the_classic_shadow() -> None:
    rule = PolicyRule(strategy=ManualReview(), shadow="")
    assert rule.matches(thing="lamp", shadow=None, section="desired", path=("on",))
    assert not rule.matches(thing="lamp", shadow="config", section="desired", path=("on",))


def test_rule_section_and_path() -> None:
    rule = PolicyRule(strategy=ManualReview(), section="reported", path="firmware.*")
    assert rule.path == PathPattern.parse("firmware.*")
    assert rule.matches(thing=None, shadow=None, section="reported", path=("firmware", "version"))
    assert not rule.matches(thing=None, shadow=None, section="desired", path=("firmware", "x"))
    assert not rule.matches(thing=None, shadow=None, section="reported", path=("firmware",))
    dotted_key = PolicyRule(strategy=ManualReview(), path=("ip.v4", "mask"))
    assert dotted_key.matches(thing=None, shadow=None, section="desired", path=("ip.v4", "mask"))


def test_rule_validation() -> None:
    with pytest.raises(PolicyConfigError, match="section must be desired or reported"):
        PolicyRule(strategy=ManualReview(), section="delta")
    with pytest.raises(PolicyConfigError, match="strategy must be a Strategy"):
        PolicyRule(strategy="manual_review")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# ResolutionPolicy: precedence and severities
# --------------------------------------------------------------------------------------------


def test_default_policy_is_last_writer_wins_without_escalation() -> None:
    policy = ResolutionPolicy()
    assert policy.strategy_for(section="desired", path=("mode",)) == LastWriterWins()
    assert policy.severity_for(("mode",)) is Severity.MEDIUM
    assert policy.auto_resolve_threshold is None
    assert policy.manual_review_severity is None


def test_rules_then_shadow_defaults_then_the_default() -> None:
    review, fields, owner = ManualReview(), FieldMerge(), OwnerWins()
    policy = ResolutionPolicy(
        default=LastWriterWins(),
        rules=[
            PolicyRule(strategy=review, path="firmware.**"),
            PolicyRule(strategy=fields, path="firmware.channel"),
            PolicyRule(strategy=fields, thing="thermostat-*", path="schedule"),
        ],
        shadow_defaults={"config": owner},
    )
    assert policy.rules == tuple(policy.rules)
    place: dict[str, Any] = {"section": "desired", "thing": "thermostat-7", "shadow": "config"}
    assert policy.strategy_for(path=("firmware", "channel"), **place) is review
    assert policy.strategy_for(path=("schedule",), **place) is fields
    assert policy.strategy_for(path=("mode",), **place) is owner
    assert policy.strategy_for(path=("mode",), section="desired", thing="t") is policy.default
    other_thing = {**place, "thing": "pump-1"}
    assert policy.strategy_for(path=("schedule",), **other_thing) is owner


def test_severity_from_the_first_matching_field_pattern() -> None:
    policy = ResolutionPolicy(
        field_severity={
            "firmware.version": Severity.CRITICAL,
            "firmware.**": Severity.HIGH,
            "lights.*.brightness": Severity.LOW,
        },
        default_severity=Severity.MEDIUM,
    )
    assert policy.severity_for(("firmware", "version")) is Severity.CRITICAL
    assert policy.severity_for(("firmware", "channel")) is Severity.HIGH
    assert policy.severity_for(("lights", "kitchen", "brightness")) is Severity.LOW
    assert policy.severity_for(("mode",)) is Severity.MEDIUM


def test_merge_uses_the_strategy_chosen_for_each_path() -> None:
    policy = ResolutionPolicy(
        default=LastWriterWins(prefer="theirs"),
        rules=[PolicyRule(strategy=ManualReview(), path="firmware.**")],
    )
    base, ours, theirs = clash(("mode",), ("firmware", "version"))
    result = merge(base, ours, theirs, policy=policy)
    by_path = {record.path: record for record in result.report}
    assert by_path[("mode",)].strategy == "last_writer_wins"
    assert result.merged["mode"] == "heat-theirs"
    assert by_path[("firmware", "version")].strategy == "manual_review"
    assert result.merged["firmware"] == {"version": "1.4.2-ours", "channel": "stable"}
    assert [item.path for item in result.reviews] == [("firmware", "version")]


def test_merge_passes_thing_and_shadow_names_to_the_policy() -> None:
    policy = ResolutionPolicy(
        default=LastWriterWins(prefer="theirs"),
        rules=[PolicyRule(strategy=ManualReview(), thing="thermostat-*", shadow="")],
        shadow_defaults={"config": LastWriterWins(prefer="ours")},
    )
    base, ours, theirs = clash(("mode",))
    classic = merge(base, ours, theirs, policy=policy, thing_name="thermostat-3")
    assert classic.report.records[0].strategy == "manual_review"
    named = merge(
        base, ours, theirs, policy=policy, thing_name="thermostat-3", shadow_name="config"
    )
    assert named.merged["mode"] == "heat-ours"
    assert named.reviews == ()
    other = merge(base, ours, theirs, policy=policy, thing_name="pump-1")
    assert other.merged["mode"] == "heat-theirs"


def test_a_rule_for_one_section_leaves_the_other_to_the_default() -> None:
    policy = ResolutionPolicy(rules=[PolicyRule(strategy=OwnerWins(), section="reported")])
    base, ours, theirs = clash(("target_c",))
    reported = merge(base, ours, theirs, policy=policy, section="reported")
    assert reported.report.records[0].strategy == "owner_wins"
    assert reported.merged["target_c"] == "21-ours"
    desired = merge(base, ours, theirs, policy=policy, section="desired")
    assert desired.report.records[0].strategy == "last_writer_wins"


def test_severities_are_recorded_in_the_report() -> None:
    policy = ResolutionPolicy(
        field_severity={"firmware.version": Severity.HIGH}, default_severity=Severity.LOW
    )
    base, ours, theirs = clash(("mode",), ("firmware", "version"))
    result = merge(base, ours, theirs, policy=policy)
    assert {record.path: record.severity for record in result.report} == {
        ("mode",): Severity.LOW,
        ("firmware", "version"): Severity.HIGH,
    }
    assert {r["path"]: r["severity"] for r in result.report.to_json()} == {
        "mode": "low",
        "firmware.version": "high",
    }


class Recording:
    """A strategy that keeps every conflict it is asked about."""

    def __init__(self) -> None:
        self.seen: list[Conflict] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def commutative(self) -> bool:
        return False

    def resolve(self, conflict: Conflict) -> Resolution:
        self.seen.append(conflict)
        return Resolution(value=conflict.theirs, winner="theirs", reason="recorded")


def test_strategies_see_the_severity_sources_and_stamps_of_each_conflict() -> None:
    recording = Recording()
    policy = ResolutionPolicy(default=recording, field_severity={"firmware.**": Severity.CRITICAL})
    base, ours, theirs = clash(("firmware", "channel"))
    merge(
        base,
        ours,
        theirs,
        policy=policy,
        section="reported",
        ours_source="operator",
        theirs_source="device",
        ours_stamps={("firmware",): 10},
        theirs_stamps={("firmware", "channel"): 20},
    )
    assert recording.seen == [
        Conflict(
            path=("firmware", "channel"),
            section="reported",
            base="stable",
            ours="stable-ours",
            theirs="stable-theirs",
            ours_stamp=10,
            theirs_stamp=20,
            ours_source="operator",
            theirs_source="device",
            severity=Severity.CRITICAL,
        )
    ]


# --------------------------------------------------------------------------------------------
# Escalation to review: by severity, and by the number of conflicts
# --------------------------------------------------------------------------------------------


def test_conflicts_at_or_above_the_review_severity_are_held() -> None:
    policy = ResolutionPolicy(
        default=LastWriterWins(prefer="theirs"),
        field_severity={
            "firmware.version": Severity.CRITICAL,
            "firmware.channel": Severity.HIGH,
            "lights.**": Severity.LOW,
        },
        manual_review_severity=Severity.HIGH,
    )
    base, ours, theirs = clash(
        ("firmware", "version"), ("firmware", "channel"), ("mode",), ("lights", "kitchen", "rgb")
    )
    result = merge(base, ours, theirs, policy=policy)
    held = {item.path for item in result.reviews}
    assert held == {("firmware", "version"), ("firmware", "channel")}
    assert result.merged["firmware"] == ours["firmware"]
    assert result.merged["mode"] == theirs["mode"]
    assert result.merged["lights"] == theirs["lights"]
    by_path = {record.path: record for record in result.report}
    assert by_path[("firmware", "channel")].strategy == "manual_review"
    assert by_path[("firmware", "channel")].reason == (
        "held for manual review: severity high requires review"
    )
    assert by_path[("firmware", "version")].reason == (
        "held for manual review: severity critical requires review"
    )
    assert by_path[("mode",)].strategy == "last_writer_wins"
    assert result.escalated is False


def test_review_severity_applies_whatever_the_path_strategy() -> None:
    policy = ResolutionPolicy(
        rules=[PolicyRule(strategy=OwnerWins(), path="firmware.**")],
        field_severity={"firmware.**": Severity.CRITICAL},
        manual_review_severity=Severity.CRITICAL,
    )
    base, ours, theirs = clash(("firmware", "version"))
    result = merge(base, ours, theirs, policy=policy)
    assert result.merged == ours
    assert len(result.reviews) == 1


def test_more_conflicts_than_the_threshold_holds_every_conflict() -> None:
    policy = ResolutionPolicy(default=LastWriterWins(prefer="theirs"), auto_resolve_threshold=1)
    base, ours, theirs = clash(("mode",), ("firmware", "version"))
    theirs["fan"]["speed"] = 3
    result = merge(base, ours, theirs, policy=policy)
    assert result.escalated is True
    assert {item.path for item in result.reviews} == {("mode",), ("firmware", "version")}
    assert result.merged["mode"] == ours["mode"]
    assert result.merged["firmware"] == ours["firmware"]
    assert result.merged["fan"] == {"mode": "auto", "speed": 3}
    for record in result.report:
        assert record.strategy == "manual_review"
        assert record.winner == "ours"
        assert record.reason == "held for manual review: too many conflicts in one merge"
        assert record.review_id is not None
    assert {change.path: change.change for change in result.changes}[("fan",)] is (
        ChangeClass.THEIRS_ONLY
    )


def test_exactly_the_threshold_is_still_resolved_automatically() -> None:
    policy = ResolutionPolicy(default=LastWriterWins(prefer="theirs"), auto_resolve_threshold=2)
    base, ours, theirs = clash(("mode",), ("firmware", "version"))
    result = merge(base, ours, theirs, policy=policy)
    assert result.escalated is False
    assert result.reviews == ()
    assert result.merged == theirs


def test_a_zero_threshold_holds_any_conflict_but_not_a_clean_merge() -> None:
    policy = ResolutionPolicy(auto_resolve_threshold=0)
    base, ours, theirs = clash(("mode",))
    assert merge(base, ours, theirs, policy=policy).escalated is True
    clean = merge(base, ours, base, policy=policy)
    assert (clean.escalated, clean.merged) == (False, ours)


# --------------------------------------------------------------------------------------------
# ResolutionPolicy.from_dict
# --------------------------------------------------------------------------------------------

SEED_CONFIG: dict[str, Any] = {
    "strategy": "FIELD_LEVEL_MERGE",
    "field_priorities": {"firmware.version": "high", "temperature": "low", "mode": "medium"},
    "auto_resolve_threshold": 5,
    "manual_review_severity": "high",
}


def test_from_dict_reads_the_seed_device_config() -> None:
    policy = ResolutionPolicy.from_dict(SEED_CONFIG)
    assert policy.default == FieldMerge()
    assert dict(policy.field_severity) == {
        "firmware.version": Severity.HIGH,
        "temperature": Severity.LOW,
        "mode": Severity.MEDIUM,
    }
    assert policy.auto_resolve_threshold == 5
    assert policy.manual_review_severity is Severity.HIGH
    assert policy.rules == ()
    assert dict(policy.shadow_defaults) == {}


def test_from_dict_config_drives_a_merge() -> None:
    policy = ResolutionPolicy.from_dict(SEED_CONFIG)
    base, ours, theirs = clash(("firmware", "version"), ("mode",))
    ours["lights"]["kitchen"]["rgb"] = [255, 0, 0, 1]
    theirs["lights"]["kitchen"]["rgb"] = [255, 200, 150, 7]
    result = merge(base, ours, theirs, policy=policy)
    assert [item.path for item in result.reviews] == [("firmware", "version")]
    assert result.merged["firmware"]["version"] == "1.4.2-ours"  # type: ignore[call-overload,index]
    assert result.merged["lights"]["kitchen"]["rgb"] == [255, 0, 1, 7]  # type: ignore[call-overload,index]


def test_from_dict_with_sources_shadows_and_paths() -> None:
    policy = ResolutionPolicy.from_dict(
        {
            "strategy": "lww",
            "source_priorities": {"operator": 10, "device": 5, "cloud": 1},
            "shadows": {"config": "priority", "telemetry": "owner_wins"},
            "paths": [
                {"path": "firmware.**", "strategy": "manual_review"},
                {"path": "schedule", "strategy": "field_merge", "section": "desired"},
                {"strategy": "priority", "thing": "pump-*", "shadow": ""},
            ],
        }
    )
    assert policy.default == LastWriterWins()
    assert dict(policy.shadow_defaults) == {
        "config": Priority(sources={"operator": 10, "device": 5, "cloud": 1}),
        "telemetry": OwnerWins(),
    }
    assert policy.rules == (
        PolicyRule(strategy=ManualReview(), path="firmware.**"),
        PolicyRule(strategy=FieldMerge(), path="schedule", section="desired"),
        PolicyRule(
            strategy=Priority(sources={"operator": 10, "device": 5, "cloud": 1}),
            thing="pump-*",
            shadow="",
        ),
    )
    base, ours, theirs = clash(("mode",))
    by_device = merge(base, ours, theirs, policy=policy, shadow_name="config")
    assert by_device.merged["mode"] == "heat-ours"
    assert by_device.report.records[0].reason == "device has priority 5"


def test_from_dict_of_an_empty_config_is_the_default_policy() -> None:
    assert ResolutionPolicy.from_dict({}) == ResolutionPolicy()


BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"strategy": "lww", "stratgy": "lww"}, "stratgy"),
    ({"auto_resolve": 3}, "auto_resolve"),
    ({"strategy": "coin_flip"}, "strategy"),
    ({"strategy": 3}, "strategy"),
    ({"field_priorities": ["firmware.version"]}, "field_priorities"),
    ({"field_priorities": {"firmware.version": "urgent"}}, "field_priorities"),
    ({"field_priorities": {"firmware..version": "high"}}, "field_priorities"),
    ({"field_priorities": {"firmware.version": 3}}, "field_priorities"),
    ({"auto_resolve_threshold": -1}, "auto_resolve_threshold"),
    ({"auto_resolve_threshold": "5"}, "auto_resolve_threshold"),
    ({"auto_resolve_threshold": True}, "auto_resolve_threshold"),
    ({"auto_resolve_threshold": 2.0}, "auto_resolve_threshold"),
    ({"manual_review_severity": "urgent"}, "manual_review_severity"),
    ({"manual_review_severity": 3}, "manual_review_severity"),
    ({"source_priorities": {"cloud": "high"}}, "source_priorities"),
    ({"source_priorities": {"cloud": True}}, "source_priorities"),
    ({"source_priorities": ["cloud"]}, "source_priorities"),
    ({"shadows": ["config"]}, "shadows"),
    ({"shadows": {"config": "coin_flip"}}, "shadows"),
    ({"paths": {"path": "mode", "strategy": "lww"}}, "paths"),
    ({"paths": "firmware.**"}, "paths"),
    ({"paths": [{"path": "mode"}]}, "paths[0]"),
    ({"paths": ["mode"]}, "paths[0]"),
    ({"paths": [{"path": "mode", "strategy": "lww", "when": "always"}]}, "paths[0]"),
    ({"paths": [{"path": "mode", "strategy": "coin_flip"}]}, "paths[0]"),
    ({"paths": [{"path": "mode", "strategy": "lww", "section": "delta"}]}, "paths[0]"),
    ({"paths": [{"path": "", "strategy": "lww"}]}, "paths[0]"),
    ({"paths": [{"path": 5, "strategy": "lww"}]}, "paths[0]"),
    ({"paths": [{"strategy": "lww", "thing": 5}]}, "paths[0].thing"),
    ({"paths": [{"strategy": "lww", "shadow": ["a"]}]}, "paths[0].shadow"),
]


@pytest.mark.parametrize(
    ("config", "key"), BAD_CONFIGS, ids=[f"{key}-{i}" for i, (_, key) in enumerate(BAD_CONFIGS)]
)
def test_from_dict_refuses_bad_configs_naming_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        ResolutionPolicy.from_dict(config)
    assert key in str(caught.value)


@pytest.mark.parametrize("config", [None, [], "lww", 5])
def test_from_dict_refuses_a_config_that_is_not_an_object(config: Any) -> None:
    with pytest.raises(PolicyConfigError, match="must be an object"):
        ResolutionPolicy.from_dict(config)


def test_from_dict_does_not_change_its_input() -> None:
    config = {
        **SEED_CONFIG,
        "source_priorities": {"cloud": 1, "device": 2},
        "shadows": {"config": "priority"},
        "paths": [{"path": "firmware.**", "strategy": "manual"}],
    }
    snapshot = copy.deepcopy(config)
    ResolutionPolicy.from_dict(config)
    assert config == snapshot


# --------------------------------------------------------------------------------------------
# ResolutionPolicy built directly
# --------------------------------------------------------------------------------------------


def test_a_user_strategy_in_a_policy_rule() -> None:
    recording = Recording()
    policy = ResolutionPolicy(rules=[PolicyRule(strategy=recording, path="lights.**")])
    base, ours, theirs = clash(("lights", "kitchen", "brightness"), ("mode",))
    result = merge(base, ours, theirs, policy=policy)
    assert [conflict.path for conflict in recording.seen] == [("lights", "kitchen", "brightness")]
    assert {record.path: record.strategy for record in result.report} == {
        ("mode",): "last_writer_wins",
        ("lights", "kitchen", "brightness"): "recording",
    }


BAD_POLICIES: list[tuple[dict[str, Any], str]] = [
    ({"default": "lww"}, "default"),
    ({"auto_resolve_threshold": -1}, "auto_resolve_threshold"),
    ({"auto_resolve_threshold": True}, "auto_resolve_threshold"),
    ({"shadow_defaults": {"config": "lww"}}, "shadow_defaults"),
    ({"field_severity": {"firmware.version": "urgent"}}, "field_severity"),
    ({"manual_review_severity": "urgent"}, "manual_review_severity"),
    ({"default_severity": "urgent"}, "default_severity"),
    ({"rules": ["firmware.** -> manual_review"]}, "rules"),
]


@pytest.mark.parametrize(
    ("kwargs", "key"), BAD_POLICIES, ids=[f"{key}-{i}" for i, (_, key) in enumerate(BAD_POLICIES)]
)
def test_a_policy_with_bad_values_is_refused_at_construction(
    kwargs: dict[str, Any], key: str
) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        ResolutionPolicy(**kwargs)
    assert key in str(caught.value)
