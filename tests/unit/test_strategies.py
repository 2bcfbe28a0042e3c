"""Conflict-resolution strategies, decided one conflict at a time: who wins, with what, and why."""

from __future__ import annotations

from typing import Any, Literal

import attrs
import pytest

from shadowsync._conflict.clocks import HLCStamp
from shadowsync.errors import InvalidArgumentError
from shadowsync.strategies import (
    MISSING,
    Conflict,
    ConflictKind,
    FieldMerge,
    LastWriterWins,
    ManualReview,
    OwnerWins,
    Priority,
    Resolution,
    Severity,
    Strategy,
    conflict_kind,
)

# --------------------------------------------------------------------------------------------
# Conflict, ConflictKind, Severity, MISSING
# --------------------------------------------------------------------------------------------


def test_conflict_defaults_describe_a_device_cloud_clash_in_desired() -> None:
    conflict = Conflict(path=("fan", "speed"), base=2, ours=3, theirs=1)
    assert conflict.section == "desired"
    assert (conflict.ours_source, conflict.theirs_source) == ("device", "cloud")
    assert (conflict.ours_stamp, conflict.theirs_stamp) == (None, None)
    assert conflict.severity is Severity.MEDIUM
    assert conflict.dotted_path == "fan.speed"
    assert conflict.kind is ConflictKind.CONCURRENT_MODIFICATION


def test_conflict_is_frozen() -> None:
    conflict = Conflict(path=("mode",), ours="heat", theirs="cool")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        conflict.ours = "off"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("ours", "theirs", "kind"),
    [
        ("heat", "cool", ConflictKind.CONCURRENT_MODIFICATION),
        (21, 21.5, ConflictKind.CONCURRENT_MODIFICATION),
        (True, False, ConflictKind.CONCURRENT_MODIFICATION),
        ([255, 0, 0], [0, 0, 255], ConflictKind.CONCURRENT_MODIFICATION),
        ({"on": True}, {"on": False}, ConflictKind.CONCURRENT_MODIFICATION),
        (True, 1, ConflictKind.DATA_TYPE_CONFLICT),
        ("21", 21, ConflictKind.DATA_TYPE_CONFLICT),
        ([1], {"0": 1}, ConflictKind.DATA_TYPE_CONFLICT),
        (MISSING, "beta", ConflictKind.DATA_TYPE_CONFLICT),
        ({"mode": "auto"}, MISSING, ConflictKind.DATA_TYPE_CONFLICT),
        (None, 0, ConflictKind.DATA_TYPE_CONFLICT),
    ],
)
def test_conflict_kind_compares_json_types(
    ours: object, theirs: object, kind: ConflictKind
) -> None:
    assert conflict_kind(ours, theirs) is kind  # type: ignore[arg-type]
    assert conflict_kind(theirs, ours) is kind  # type: ignore[arg-type]
    assert Conflict(path=("x",), ours=ours, theirs=theirs).kind is kind  # type: ignore[arg-type]


def test_severity_is_ordered() -> None:
    assert Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("low", Severity.LOW),
        ("Medium", Severity.MEDIUM),
        ("HIGH", Severity.HIGH),
        ("critical", Severity.CRITICAL),
        (Severity.HIGH, Severity.HIGH),
    ],
)
def test_severity_parse_accepts_names_in_any_case(text: object, expected: Severity) -> None:
    assert Severity.parse(text) is expected


@pytest.mark.parametrize("bad", ["urgent", "", 3, None, ["high"]])
def test_severity_parse_rejects_other_values(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="severity must be one of"):
        Severity.parse(bad)


def test_missing_is_a_singleton_with_a_short_repr() -> None:
    assert repr(MISSING) == "MISSING"
    assert MISSING is MISSING
    assert MISSING != None  # noqa: E711


# --------------------------------------------------------------------------------------------
# LastWriterWins
# --------------------------------------------------------------------------------------------


def thermostat_conflict(**changes: Any) -> Conflict:
    conflict = Conflict(path=("target_c",), base=20, ours=21, theirs=23)
    return attrs.evolve(conflict, **changes)


def test_lww_picks_the_later_stamp_on_either_side() -> None:
    theirs_later = thermostat_conflict(ours_stamp=105, theirs_stamp=110)
    assert LastWriterWins().resolve(theirs_later) == Resolution(
        value=23, winner="theirs", reason="theirs written later (110)"
    )
    ours_later = thermostat_conflict(ours_stamp=120, theirs_stamp=110)
    assert LastWriterWins().resolve(ours_later) == Resolution(
        value=21, winner="ours", reason="ours written later (120)"
    )


def test_lww_stamps_beat_the_preference() -> None:
    conflict = thermostat_conflict(ours_stamp=120, theirs_stamp=110)
    assert LastWriterWins(prefer="theirs").resolve(conflict).winner == "ours"


def test_lww_orders_hybrid_logical_clock_stamps() -> None:
    device = HLCStamp(wall_ms=1_700_000_000_000, counter=4, node="device-1")
    cloud = HLCStamp(wall_ms=1_700_000_000_000, counter=2, node="cloud")
    resolution = LastWriterWins().resolve(
        thermostat_conflict(ours_stamp=device, theirs_stamp=cloud)
    )
    assert (resolution.winner, resolution.value) == ("ours", 21)
    assert resolution.reason == f"ours written later ({device})"


def test_lww_with_equal_stamps_picks_the_larger_value_whatever_the_side() -> None:
    conflict = thermostat_conflict(ours_stamp=110, theirs_stamp=110)
    swapped = attrs.evolve(conflict, ours=conflict.theirs, theirs=conflict.ours)
    first, second = LastWriterWins().resolve(conflict), LastWriterWins().resolve(swapped)
    assert first.value == second.value == 23
    assert (first.winner, second.winner) == ("theirs", "ours")
    assert first.reason == "equal stamps: larger value wins (deterministic)"


def test_lww_with_equal_stamps_prefers_a_value_over_a_deletion() -> None:
    conflict = Conflict(
        path=("firmware", "channel"),
        base="stable",
        ours=MISSING,
        theirs="beta",
        ours_stamp=7,
        theirs_stamp=7,
    )
    assert LastWriterWins().resolve(conflict).value == "beta"
    swapped = attrs.evolve(conflict, ours="beta", theirs=MISSING)
    assert LastWriterWins().resolve(swapped).value == "beta"


def test_lww_with_one_stamp_picks_the_stamped_side() -> None:
    only_ours = thermostat_conflict(ours_stamp=105)
    assert LastWriterWins(prefer="theirs").resolve(only_ours) == Resolution(
        value=21, winner="ours", reason="only ours has a write stamp"
    )
    only_theirs = thermostat_conflict(theirs_stamp=105)
    assert LastWriterWins(prefer="ours").resolve(only_theirs) == Resolution(
        value=23, winner="theirs", reason="only theirs has a write stamp"
    )


def test_lww_without_stamps_takes_the_preferred_side() -> None:
    conflict = thermostat_conflict()
    assert LastWriterWins(prefer="theirs").resolve(conflict) == Resolution(
        value=23, winner="theirs", reason="no write stamps: theirs preferred"
    )
    # Without a preference the larger value wins, whichever side it is on.
    assert LastWriterWins().resolve(conflict) == Resolution(
        value=23, winner="theirs", reason="no write stamps: larger value wins (deterministic)"
    )
    assert LastWriterWins(prefer="ours").resolve(conflict) == Resolution(
        value=21, winner="ours", reason="no write stamps: ours preferred"
    )


def test_lww_without_stamps_or_preference_ignores_which_side_is_ours() -> None:
    conflict = Conflict(path=("fan", "mode"), base="auto", ours="on", theirs=MISSING)
    swapped = attrs.evolve(conflict, ours=conflict.theirs, theirs=conflict.ours)
    first, second = LastWriterWins().resolve(conflict), LastWriterWins().resolve(swapped)
    assert first.value == second.value == "on"
    assert (first.winner, second.winner) == ("ours", "theirs")
    assert first.reason == "no write stamps: larger value wins (deterministic)"


def test_lww_can_delete() -> None:
    conflict = Conflict(path=("mode",), base="heat", ours=MISSING, theirs="cool", ours_stamp=9)
    resolution = LastWriterWins().resolve(conflict)
    assert resolution.value is MISSING
    assert resolution.winner == "ours"


def test_lww_name_and_commutativity() -> None:
    assert LastWriterWins().name == "last_writer_wins"
    assert LastWriterWins().commutative is True
    assert LastWriterWins(prefer="ours").commutative is False
    assert LastWriterWins().resolve(thermostat_conflict()).review is False


# --------------------------------------------------------------------------------------------
# OwnerWins
# --------------------------------------------------------------------------------------------


def firmware_conflict(section: str, ours_source: str, theirs_source: str) -> Conflict:
    return Conflict(
        path=("firmware", "version"),
        section=section,  # type: ignore[arg-type]
        base="1.4.2",
        ours="1.4.3",
        theirs="1.5.0",
        ours_source=ours_source,
        theirs_source=theirs_source,
    )


@pytest.mark.parametrize(
    ("section", "ours_source", "theirs_source", "winner", "reason"),
    [
        ("desired", "device", "cloud", "theirs", "cloud owns desired"),
        ("desired", "cloud", "device", "ours", "cloud owns desired"),
        ("reported", "device", "cloud", "ours", "device owns reported"),
        ("reported", "cloud", "device", "theirs", "device owns reported"),
    ],
)
def test_owner_wins_gives_desired_to_the_cloud_and_reported_to_the_device(
    section: str, ours_source: str, theirs_source: str, winner: str, reason: str
) -> None:
    conflict = firmware_conflict(section, ours_source, theirs_source)
    resolution = OwnerWins().resolve(conflict)
    assert resolution.winner == winner
    assert resolution.value == (conflict.ours if winner == "ours" else conflict.theirs)
    assert resolution.reason == reason


def test_owner_wins_falls_back_when_both_sides_have_the_same_source() -> None:
    conflict = attrs.evolve(
        firmware_conflict("desired", "cloud", "cloud"), ours_stamp=50, theirs_stamp=40
    )
    resolution = OwnerWins().resolve(conflict)
    assert (resolution.winner, resolution.reason) == ("ours", "ours written later (50)")


def test_owner_wins_falls_back_when_neither_side_is_the_owner() -> None:
    conflict = firmware_conflict("desired", "device", "operator")
    resolution = OwnerWins(fallback=LastWriterWins(prefer="ours")).resolve(conflict)
    assert (resolution.winner, resolution.reason) == ("ours", "no write stamps: ours preferred")


def test_owner_wins_with_custom_owners_and_a_review_fallback() -> None:
    strategy = OwnerWins(owners={"desired": "operator"}, fallback=ManualReview())
    by_operator = strategy.resolve(firmware_conflict("desired", "cloud", "operator"))
    assert (by_operator.winner, by_operator.reason) == ("theirs", "operator owns desired")
    unowned = strategy.resolve(firmware_conflict("reported", "device", "cloud"))
    assert unowned.review is True
    assert unowned.value == "1.4.3"


def test_owner_wins_name() -> None:
    assert OwnerWins().name == "owner_wins"
    assert OwnerWins().commutative is True


def test_commutativity_follows_the_fallback() -> None:
    preferring = LastWriterWins(prefer="theirs")
    assert OwnerWins(fallback=preferring).commutative is False
    assert Priority(sources=SOURCE_PRIORITIES, fallback=preferring).commutative is False
    assert OwnerWins(fallback=FieldMerge()).commutative is False
    assert OwnerWins(fallback=ManualReview()).commutative is False
    nested = OwnerWins(fallback=Priority(sources=SOURCE_PRIORITIES))
    assert nested.commutative is True


@pytest.mark.parametrize(
    "strategy",
    [
        OwnerWins(),
        Priority(sources={"operator": 3, "cloud": 2, "device": 1}),
        OwnerWins(fallback=LastWriterWins(prefer="theirs")),
        Priority(sources={"cloud": 2}, fallback=LastWriterWins(prefer="ours")),
    ],
    ids=["owner_wins", "priority", "owner_wins_preferring", "priority_preferring"],
)
def test_a_commutative_claim_holds_when_two_devices_clash(strategy: Strategy) -> None:
    """``commutative`` promises the value does not depend on which side is ours. Two devices
    (same source, no stamps) go to the fallback, so the claim must follow the fallback's."""
    conflict = Conflict(
        path=("mode",),
        section="desired",
        base="heat",
        ours="cool",
        theirs="off",
        ours_source="device",
        theirs_source="device",
    )
    swapped = attrs.evolve(conflict, ours=conflict.theirs, theirs=conflict.ours)
    kept = strategy.resolve(conflict).value == strategy.resolve(swapped).value
    assert kept or not strategy.commutative


# --------------------------------------------------------------------------------------------
# Priority
# --------------------------------------------------------------------------------------------

SOURCE_PRIORITIES = {"operator": 3, "cloud": 2, "device": 1}


def test_priority_by_source() -> None:
    strategy = Priority(sources=SOURCE_PRIORITIES)
    conflict = Conflict(
        path=("mode",), base="heat", ours="eco", theirs="boost", ours_source="operator"
    )
    assert strategy.resolve(conflict) == Resolution(
        value="eco", winner="ours", reason="operator has priority 3"
    )
    device_vs_cloud = attrs.evolve(conflict, ours_source="device", theirs_source="cloud")
    assert strategy.resolve(device_vs_cloud) == Resolution(
        value="boost", winner="theirs", reason="cloud has priority 2"
    )


def test_priority_field_override_applies_to_matching_paths_only() -> None:
    strategy = Priority(sources=SOURCE_PRIORITIES, fields={"firmware.*": {"device": 5}})
    on_firmware = firmware_conflict("reported", "device", "cloud")
    resolution = strategy.resolve(on_firmware)
    assert (resolution.winner, resolution.value) == ("ours", "1.4.3")
    assert resolution.reason == "device has priority 5"
    elsewhere = attrs.evolve(on_firmware, path=("lights", "kitchen", "brightness"))
    assert strategy.resolve(elsewhere).winner == "theirs"
    assert strategy.priority_of(("firmware", "version"), "cloud") == 2
    assert strategy.priority_of(("firmware", "version"), "device") == 5
    assert strategy.priority_of(("firmware", "version", "major"), "device") == 1


def test_priority_first_matching_field_pattern_wins() -> None:
    strategy = Priority(
        sources=SOURCE_PRIORITIES,
        fields={"lights.**": {"device": 9, "cloud": 1}, "lights.*.rgb": {"cloud": 10}},
    )
    assert strategy.priority_of(("lights", "kitchen", "rgb"), "cloud") == 1
    conflict = Conflict(
        path=("lights", "kitchen", "rgb"), base=[0, 0, 0], ours=[255, 0, 0], theirs=[0, 0, 255]
    )
    assert strategy.resolve(conflict).value == [255, 0, 0]


def test_priority_ties_go_to_the_fallback() -> None:
    strategy = Priority(sources={"cloud": 2, "device": 2}, fallback=LastWriterWins(prefer="ours"))
    resolution = strategy.resolve(thermostat_conflict())
    assert (resolution.winner, resolution.reason) == ("ours", "no write stamps: ours preferred")


def test_priority_unknown_source_goes_to_the_fallback() -> None:
    strategy = Priority(sources={"cloud": 2})
    resolution = strategy.resolve(thermostat_conflict(ours_stamp=200, theirs_stamp=100))
    assert (resolution.winner, resolution.value) == ("ours", 21)


def test_priority_never_lets_the_lower_source_overwrite_with_a_deletion() -> None:
    strategy = Priority(sources=SOURCE_PRIORITIES)
    conflict = Conflict(
        path=("mode",), base="heat", ours=MISSING, theirs="cool", ours_stamp=999, theirs_stamp=1
    )
    resolution = strategy.resolve(conflict)
    assert (resolution.winner, resolution.value) == ("theirs", "cool")


@pytest.mark.parametrize(
    "sources", [{"cloud": "high"}, {"cloud": True}, {3: 1}, ["cloud"], {"cloud": 1.5}]
)
def test_priority_rejects_sources_that_are_not_names_to_ints(sources: object) -> None:
    with pytest.raises(InvalidArgumentError, match="sources must map source names to ints"):
        Priority(sources=sources)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (["firmware.*"], "fields must map path patterns"),
        ({3: {"cloud": 1}}, "field pattern 3 is not a string"),
        ({"firmware.*": {"cloud": "1"}}, "fields must map source names to ints"),
    ],
)
def test_priority_rejects_malformed_field_overrides(fields: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Priority(sources=SOURCE_PRIORITIES, fields=fields)  # type: ignore[arg-type]


def test_priority_name() -> None:
    assert Priority(sources=SOURCE_PRIORITIES).name == "priority"
    assert Priority(sources=SOURCE_PRIORITIES).commutative is True


# --------------------------------------------------------------------------------------------
# FieldMerge
# --------------------------------------------------------------------------------------------


def schedule_conflict(base: object, ours: object, theirs: object) -> Conflict:
    return Conflict(path=("schedule", "days"), base=base, ours=ours, theirs=theirs)  # type: ignore[arg-type]


def test_field_merge_merges_arrays_of_scalars_against_the_base() -> None:
    conflict = schedule_conflict(["mon", "tue"], ["mon", "tue", "wed"], ["tue", "fri"])
    assert FieldMerge().resolve(conflict) == Resolution(
        value=["tue", "wed", "fri"],
        winner="merged",
        reason="array elements merged against the base",
    )


def test_field_merge_keeps_ours_order_then_theirs_new_elements() -> None:
    conflict = schedule_conflict([], ["sat", "mon"], ["sun", "mon", "fri"])
    assert FieldMerge().resolve(conflict).value == ["sat", "mon", "sun", "fri"]


def test_field_merge_without_a_base_array_unions_both_sides() -> None:
    for base in (MISSING, "weekdays"):
        conflict = schedule_conflict(base, ["mon"], ["tue", "mon"])
        assert FieldMerge().resolve(conflict).value == ["mon", "tue"]


def test_field_merge_compares_array_numbers_by_value() -> None:
    conflict = Conflict(path=("rgb",), base=[255], ours=[255.0, 128], theirs=[255, 64])
    assert FieldMerge().resolve(conflict).value == [255.0, 128, 64]
    booleans = Conflict(path=("flags",), base=[], ours=[1], theirs=[True])
    assert FieldMerge().resolve(booleans).value == [1, True]


def test_field_merge_removal_on_either_side_wins_over_keeping() -> None:
    conflict = schedule_conflict(["mon", "tue", "wed"], ["mon", "tue"], ["tue", "wed", "thu"])
    assert FieldMerge().resolve(conflict).value == ["tue", "thu"]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (21, 23),
        ([{"at": "07:00"}], [{"at": "08:00"}]),
        ([[1, 2]], [[3]]),
        ([1, 2], "off"),
        (MISSING, [1, 2]),
    ],
)
def test_field_merge_sends_everything_else_to_the_fallback(ours: object, theirs: object) -> None:
    conflict = Conflict(path=("x",), base=MISSING, ours=ours, theirs=theirs, ours_stamp=5)  # type: ignore[arg-type]
    resolution = FieldMerge().resolve(conflict)
    assert resolution == Resolution(value=ours, winner="ours", reason="only ours has a write stamp")  # type: ignore[arg-type]
    held = FieldMerge(fallback=ManualReview()).resolve(conflict)
    assert held.review is True


def test_field_merge_name() -> None:
    assert FieldMerge().name == "field_merge"
    assert FieldMerge().commutative is False


# --------------------------------------------------------------------------------------------
# ManualReview
# --------------------------------------------------------------------------------------------


def test_manual_review_keeps_ours_and_asks_for_review() -> None:
    resolution = ManualReview().resolve(firmware_conflict("desired", "device", "cloud"))
    assert resolution == Resolution(
        value="1.4.3", winner="ours", reason="held for manual review", review=True
    )


def test_manual_review_can_keep_theirs() -> None:
    resolution = ManualReview(keep="theirs").resolve(
        firmware_conflict("desired", "device", "cloud")
    )
    assert (resolution.value, resolution.winner, resolution.review) == ("1.5.0", "theirs", True)


def test_manual_review_name() -> None:
    assert ManualReview().name == "manual_review"
    assert ManualReview().commutative is False


# --------------------------------------------------------------------------------------------
# The Strategy protocol
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    [
        LastWriterWins(),
        OwnerWins(),
        Priority(sources=SOURCE_PRIORITIES),
        FieldMerge(),
        ManualReview(),
    ],
)
def test_builtins_satisfy_the_strategy_protocol(strategy: object) -> None:
    assert isinstance(strategy, Strategy)


class CoolestWins:
    """A user strategy: the lower set point wins (saves energy)."""

    @property
    def name(self) -> str:
        return "coolest_wins"

    @property
    def commutative(self) -> bool:
        return True

    def resolve(self, conflict: Conflict) -> Resolution:
        if isinstance(conflict.ours, (int, float)) and isinstance(conflict.theirs, (int, float)):
            side: Literal["ours", "theirs"] = (
                "ours" if conflict.ours <= conflict.theirs else "theirs"
            )
            value = conflict.ours if side == "ours" else conflict.theirs
            return Resolution(value=value, winner=side, reason="lower set point")
        return LastWriterWins().resolve(conflict)


def test_a_user_class_satisfies_the_protocol_and_can_wrap_builtins() -> None:
    assert isinstance(CoolestWins(), Strategy)
    assert not isinstance(object(), Strategy)
    resolution = OwnerWins(fallback=CoolestWins()).resolve(
        attrs.evolve(thermostat_conflict(), theirs_source="device")
    )
    assert (resolution.value, resolution.reason) == (21, "lower set point")


def test_resolution_defaults_to_no_review() -> None:
    resolution = Resolution(value=MISSING, winner="base", reason="reverted")
    assert resolution.review is False
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        resolution.review = True  # type: ignore[misc]
