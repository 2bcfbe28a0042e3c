"""The three-way merge of one shadow section: classification, key-by-key merging, reports,
review items and write stamps from AWS metadata."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shadowsync import JSONObject, ShadowDocument, apply_update
from shadowsync._conflict.merge import (
    ChangeClass,
    ConflictRecord,
    ConflictReport,
    MergeResult,
    PathChange,
    ReviewItem,
    merge,
    stamps_from_metadata,
)
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowSyncError
from shadowsync.rules import MaxRateOfChange, RuleSet
from shadowsync.strategies import (
    MISSING,
    Conflict,
    ConflictKind,
    FieldMerge,
    LastWriterWins,
    ManualReview,
    Resolution,
    Severity,
)
from tests.strategies.merge import Path, Value, nested, with_edit

THERMOSTAT: JSONObject = {
    "mode": "heat",
    "target_c": 21,
    "fan": {"mode": "auto", "speed": 2},
    "schedule": {"days": ["mon", "tue", "wed", "thu", "fri"], "wake": "07:00"},
}
FIRMWARE: JSONObject = {"firmware": {"version": "1.4.2", "channel": "stable", "auto_update": True}}
LIGHTS: JSONObject = {
    "lights": {
        "kitchen": {"on": True, "brightness": 80, "rgb": [255, 200, 150]},
        "hall": {"on": False, "brightness": 10},
    }
}


def edit(section: JSONObject, *changes: tuple[Path, Value]) -> JSONObject:
    """A copy of ``section`` with each ``(path, value)`` applied (MISSING deletes)."""
    out = copy.deepcopy(section)
    for path, value in changes:
        out = with_edit(out, path, value)
    return out


def changes_of(result: MergeResult) -> dict[Path, ChangeClass]:
    return {change.path: change.change for change in result.changes}


# --------------------------------------------------------------------------------------------
# Classification of every changed path
# --------------------------------------------------------------------------------------------


def test_unchanged_sides_merge_to_the_base_with_no_changes() -> None:
    result = merge(THERMOSTAT, copy.deepcopy(THERMOSTAT), copy.deepcopy(THERMOSTAT))
    assert result.merged == THERMOSTAT
    assert result.changes == ()
    assert result.report == ConflictReport()
    assert result.reviews == ()
    assert result.has_conflicts is False
    assert result.escalated is False


def test_a_change_on_our_side_only_is_a_fast_forward() -> None:
    ours = edit(THERMOSTAT, (("target_c",), 22.5))
    result = merge(THERMOSTAT, ours, THERMOSTAT)
    assert result.merged == ours
    assert result.changes == (PathChange(path=("target_c",), change=ChangeClass.OURS_ONLY),)
    assert not result.report


def test_a_change_on_their_side_only_is_a_fast_forward() -> None:
    theirs = edit(THERMOSTAT, (("mode",), "cool"))
    result = merge(THERMOSTAT, THERMOSTAT, theirs)
    assert result.merged == theirs
    assert result.changes == (PathChange(path=("mode",), change=ChangeClass.THEIRS_ONLY),)
    assert not result.report


def test_the_same_change_on_both_sides_is_taken_once_without_conflict() -> None:
    ours = edit(THERMOSTAT, (("mode",), "cool"), (("target_c",), 22))
    theirs = edit(THERMOSTAT, (("mode",), "cool"), (("target_c",), 22.0))
    result = merge(THERMOSTAT, ours, theirs)
    assert result.merged["mode"] == "cool"
    assert result.merged["target_c"] == 22
    assert changes_of(result) == {
        ("mode",): ChangeClass.BOTH_SAME,
        ("target_c",): ChangeClass.BOTH_SAME,
    }
    assert not result.report


def test_the_same_deletion_on_both_sides_is_both_same() -> None:
    ours = edit(FIRMWARE, (("firmware", "channel"), MISSING))
    result = merge(FIRMWARE, ours, copy.deepcopy(ours))
    assert result.merged == {"firmware": {"version": "1.4.2", "auto_update": True}}
    assert changes_of(result) == {("firmware",): ChangeClass.BOTH_SAME}


def test_a_change_older_than_the_base_is_stale_and_ignored() -> None:
    base = {"target_c": 20}
    result = merge(
        base,
        {"target_c": 21},
        {"target_c": 23},
        ours_stamps={("target_c",): 90},
        theirs_stamps={("target_c",): 150},
        base_stamps={("target_c",): 100},
    )
    assert result.merged == {"target_c": 23}
    assert result.changes == (PathChange(path=("target_c",), change=ChangeClass.STALE),)
    assert not result.report


def test_a_stale_change_on_their_side_is_ignored_too() -> None:
    result = merge(
        {"target_c": 20},
        {"target_c": 21},
        {"target_c": 23},
        ours_stamps={("target_c",): 120},
        theirs_stamps={("target_c",): 99},
        base_stamps={("target_c",): 100},
        policy=LastWriterWins(prefer="theirs"),
    )
    assert result.merged == {"target_c": 21}
    assert changes_of(result) == {("target_c",): ChangeClass.STALE}


def test_a_change_in_the_same_second_as_the_base_is_not_stale() -> None:
    # Metadata timestamps are whole seconds: equal to the base's stamp is not "older".
    result = merge(
        {"t": 20},
        {"t": 21},
        {"t": 23},
        base_stamps={("t",): 100},
        ours_stamps={("t",): 150},
        theirs_stamps={("t",): 100},
    )
    assert changes_of(result) == {("t",): ChangeClass.CONCURRENT}
    assert result.merged == {"t": 21}
    assert len(result.report) == 1


def test_equal_stamps_break_ties_by_numeric_value() -> None:
    result = merge({"t": 5}, {"t": 9}, {"t": 10})
    assert result.merged == {"t": 10}


def test_rules_in_a_merge_see_the_time_of_the_value_in_force() -> None:
    guard = RuleSet(rules=[MaxRateOfChange(path="setpoint", max_delta_per_second=1)])
    result = merge(
        {"setpoint": 20},
        {"setpoint": 20},
        {"setpoint": 20.5},
        rules=guard,
        timestamp=1_700_003_600,
        metadata={"setpoint": {"timestamp": 1_700_000_000}},
    )
    assert result.merged == {"setpoint": 20.5}
    too_fast = merge(
        {"setpoint": 20},
        {"setpoint": 20},
        {"setpoint": 90},
        rules=guard,
        timestamp=1_700_000_010,
        metadata={"setpoint": {"timestamp": 1_700_000_000}},
    )
    assert too_fast.merged == {"setpoint": 20}


@pytest.mark.parametrize(("ours_stamp", "theirs_stamp"), [(120, 130), (80, 90)])
def test_both_sides_fresh_or_both_stale_is_a_true_conflict(
    ours_stamp: int, theirs_stamp: int
) -> None:
    result = merge(
        {"target_c": 20},
        {"target_c": 21},
        {"target_c": 23},
        ours_stamps={("target_c",): ours_stamp},
        theirs_stamps={("target_c",): theirs_stamp},
        base_stamps={("target_c",): 100},
    )
    assert changes_of(result) == {("target_c",): ChangeClass.CONCURRENT}
    assert result.merged == {"target_c": 23}
    assert result.report.records[0].reason == f"theirs written later ({theirs_stamp})"


def test_concurrent_changes_reach_the_strategy_and_are_reported() -> None:
    ours = edit(THERMOSTAT, (("target_c",), 22))
    theirs = edit(THERMOSTAT, (("target_c",), 19))
    result = merge(
        THERMOSTAT,
        ours,
        theirs,
        ours_stamps={("target_c",): 1_700_000_100},
        theirs_stamps={("target_c",): 1_700_000_050},
    )
    assert result.merged == ours
    assert changes_of(result) == {("target_c",): ChangeClass.CONCURRENT}
    assert result.report.records == (
        ConflictRecord(
            path=("target_c",),
            section="desired",
            kind=ConflictKind.CONCURRENT_MODIFICATION,
            severity=Severity.MEDIUM,
            base=21,
            ours=22,
            theirs=19,
            strategy="last_writer_wins",
            winner="ours",
            value=22,
            reason="ours written later (1700000100)",
        ),
    )
    assert result.has_conflicts is True
    assert result.reviews == ()


def test_a_boolean_and_a_number_are_different_values() -> None:
    result = merge({"on": 0}, {"on": False}, {"on": 1})
    assert changes_of(result) == {("on",): ChangeClass.CONCURRENT}
    assert result.report.records[0].kind is ConflictKind.DATA_TYPE_CONFLICT


# --------------------------------------------------------------------------------------------
# Objects merge key by key
# --------------------------------------------------------------------------------------------


def test_disjoint_nested_edits_are_both_kept() -> None:
    ours = edit(THERMOSTAT, (("fan", "speed"), 3))
    theirs = edit(THERMOSTAT, (("fan", "mode"), "on"), (("schedule", "wake"), "06:30"))
    result = merge(THERMOSTAT, ours, theirs)
    assert result.merged == edit(
        THERMOSTAT, (("fan", "speed"), 3), (("fan", "mode"), "on"), (("schedule", "wake"), "06:30")
    )
    assert changes_of(result) == {
        ("fan", "speed"): ChangeClass.OURS_ONLY,
        ("fan", "mode"): ChangeClass.THEIRS_ONLY,
        ("schedule",): ChangeClass.THEIRS_ONLY,
    }
    assert not result.report


def test_an_object_changed_on_one_side_only_is_classified_once_at_the_object() -> None:
    ours = edit(THERMOSTAT, (("fan", "speed"), 3), (("fan", "mode"), "on"))
    result = merge(THERMOSTAT, ours, THERMOSTAT)
    assert result.changes == (PathChange(path=("fan",), change=ChangeClass.OURS_ONLY),)
    assert result.merged == ours


def test_added_and_deleted_keys_in_one_object_are_merged() -> None:
    ours = edit(LIGHTS, (("lights", "porch"), {"on": True, "brightness": 40}))
    theirs = edit(LIGHTS, (("lights", "hall"), MISSING), (("lights", "kitchen", "brightness"), 60))
    result = merge(LIGHTS, ours, theirs)
    assert result.merged == {
        "lights": {
            "kitchen": {"on": True, "brightness": 60, "rgb": [255, 200, 150]},
            "porch": {"on": True, "brightness": 40},
        }
    }
    assert changes_of(result) == {
        ("lights", "porch"): ChangeClass.OURS_ONLY,
        ("lights", "hall"): ChangeClass.THEIRS_ONLY,
        ("lights", "kitchen"): ChangeClass.THEIRS_ONLY,
    }


def test_a_nested_conflict_is_reported_at_its_full_path_beside_merged_siblings() -> None:
    ours = edit(
        LIGHTS, (("lights", "kitchen", "brightness"), 100), (("lights", "hall", "on"), True)
    )
    theirs = edit(LIGHTS, (("lights", "kitchen", "brightness"), 30))
    result = merge(LIGHTS, ours, theirs, policy=LastWriterWins(prefer="ours"))
    assert result.merged == ours
    [record] = result.report
    assert record.path == ("lights", "kitchen", "brightness")
    assert record.to_json()["path"] == "lights.kitchen.brightness"
    assert changes_of(result)[("lights", "hall")] is ChangeClass.OURS_ONLY


def test_objects_created_on_both_sides_merge_key_by_key() -> None:
    ours = {"fan": {"speed": 3}}
    theirs = {"fan": {"mode": "auto"}}
    result = merge({}, ours, theirs)
    assert result.merged == {"fan": {"speed": 3, "mode": "auto"}}
    assert not result.report


def test_a_scalar_replaced_by_objects_on_both_sides_merges_the_objects() -> None:
    result = merge({"fan": "off"}, {"fan": {"speed": 3}}, {"fan": {"speed": 3, "mode": "on"}})
    assert result.merged == {"fan": {"speed": 3, "mode": "on"}}
    assert changes_of(result) == {
        ("fan", "speed"): ChangeClass.BOTH_SAME,
        ("fan", "mode"): ChangeClass.THEIRS_ONLY,
    }


def test_deleting_the_last_key_of_an_object_leaves_an_empty_object() -> None:
    base = {"fan": {"speed": 2}, "mode": "heat"}
    result = merge(base, {"fan": {}, "mode": "heat"}, {"fan": {"speed": 2}, "mode": "cool"})
    assert result.merged == {"fan": {}, "mode": "cool"}


def test_arrays_are_whole_values() -> None:
    ours = edit(THERMOSTAT, (("schedule", "days"), ["mon", "tue"]))
    theirs = edit(THERMOSTAT, (("schedule", "days"), ["sat", "sun"]))
    result = merge(THERMOSTAT, ours, theirs)
    [record] = result.report
    assert record.path == ("schedule", "days")
    assert result.merged["schedule"] == {"days": ["sat", "sun"], "wake": "07:00"}


# --------------------------------------------------------------------------------------------
# Deletion against edit, data-type conflicts
# --------------------------------------------------------------------------------------------


def test_deletion_against_edit_is_a_data_type_conflict_with_missing() -> None:
    ours = edit(FIRMWARE, (("firmware", "channel"), MISSING))
    theirs = edit(FIRMWARE, (("firmware", "channel"), "beta"))
    result = merge(FIRMWARE, ours, theirs)
    [record] = result.report
    assert record.ours is MISSING
    assert record.theirs == "beta"
    assert record.base == "stable"
    assert record.kind is ConflictKind.DATA_TYPE_CONFLICT
    assert result.merged == edit(FIRMWARE, (("firmware", "channel"), "beta"))
    rendered = record.to_json()
    assert (rendered["ours"], rendered["theirs"], rendered["base"]) == (None, "beta", "stable")


def test_a_deletion_that_wins_removes_the_key() -> None:
    ours = edit(FIRMWARE, (("firmware", "channel"), MISSING))
    theirs = edit(FIRMWARE, (("firmware", "channel"), "beta"))
    result = merge(
        FIRMWARE,
        ours,
        theirs,
        ours_stamps={("firmware", "channel"): 300},
        theirs_stamps={("firmware", "channel"): 200},
    )
    assert result.merged == ours
    [record] = result.report
    assert record.value is MISSING
    assert record.to_json()["value"] is None


def test_deleting_an_object_against_an_edit_inside_it_conflicts_at_the_object() -> None:
    ours = edit(THERMOSTAT, (("fan",), MISSING))
    theirs = edit(THERMOSTAT, (("fan", "speed"), 3))
    result = merge(THERMOSTAT, ours, theirs, policy=LastWriterWins(prefer="ours"))
    [record] = result.report
    assert record.path == ("fan",)
    assert record.theirs == {"mode": "auto", "speed": 3}
    assert record.kind is ConflictKind.DATA_TYPE_CONFLICT
    assert "fan" not in result.merged


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("21", 21.5), ({"c": 21}, 21), ([21, 22], 21), (True, 21)],
)
def test_different_json_types_are_a_data_type_conflict(ours: Any, theirs: Any) -> None:
    result = merge(
        {"target_c": 20},
        {"target_c": ours},
        {"target_c": theirs},
        policy=LastWriterWins(prefer="theirs"),
    )
    [record] = result.report
    assert record.path == ("target_c",)
    assert record.kind is ConflictKind.DATA_TYPE_CONFLICT
    assert record.to_json()["kind"] == "data_type_conflict"
    assert result.merged == {"target_c": theirs}


# --------------------------------------------------------------------------------------------
# Strategies inside the merge
# --------------------------------------------------------------------------------------------


def test_field_merge_combines_schedule_days_edited_on_both_sides() -> None:
    ours = edit(THERMOSTAT, (("schedule", "days"), ["mon", "tue", "wed", "thu", "fri", "sat"]))
    theirs = edit(THERMOSTAT, (("schedule", "days"), ["tue", "wed", "thu", "fri"]))
    result = merge(THERMOSTAT, ours, theirs, policy=FieldMerge())
    assert result.merged["schedule"] == {
        "days": ["tue", "wed", "thu", "fri", "sat"],
        "wake": "07:00",
    }
    [record] = result.report
    assert (record.winner, record.strategy) == ("merged", "field_merge")


def test_stamps_of_an_ancestor_apply_to_nested_conflicts() -> None:
    ours = edit(THERMOSTAT, (("fan", "speed"), 3))
    theirs = edit(THERMOSTAT, (("fan", "speed"), 1))
    result = merge(
        THERMOSTAT, ours, theirs, ours_stamps={("fan",): 500}, theirs_stamps={("fan",): 400}
    )
    assert result.merged["fan"] == {"mode": "auto", "speed": 3}
    assert result.report.records[0].reason == "ours written later (500)"


def test_a_replaced_object_is_stamped_by_its_newest_leaf() -> None:
    ours = edit(THERMOSTAT, (("fan",), "off"))
    theirs = edit(THERMOSTAT, (("fan", "speed"), 3))
    result = merge(
        THERMOSTAT,
        ours,
        theirs,
        ours_stamps={("fan",): 450},
        theirs_stamps={("fan", "mode"): 100, ("fan", "speed"): 460},
    )
    assert result.merged["fan"] == {"mode": "auto", "speed": 3}
    assert result.report.records[0].reason == "theirs written later (460)"


def test_manual_review_keeps_ours_and_records_a_review_item() -> None:
    ours = edit(FIRMWARE, (("firmware", "version"), "1.4.3"))
    theirs = edit(FIRMWARE, (("firmware", "version"), "1.5.0"))
    result = merge(FIRMWARE, ours, theirs, policy=ManualReview())
    assert result.merged == ours
    [item] = result.reviews
    [record] = result.report
    assert item == ReviewItem(
        id=item.id,
        path=("firmware", "version"),
        section="desired",
        current="1.4.3",
        proposed="1.5.0",
        base="1.4.2",
        reason="held for manual review",
    )
    assert record.review_id == item.id
    assert (record.strategy, record.winner, record.value) == ("manual_review", "ours", "1.4.3")
    assert len(item.id) == 20
    assert all(ch in "0123456789abcdef" for ch in item.id)


def test_manual_review_keeping_theirs_proposes_ours() -> None:
    ours = edit(FIRMWARE, (("firmware", "version"), "1.4.3"))
    theirs = edit(FIRMWARE, (("firmware", "version"), "1.5.0"))
    result = merge(FIRMWARE, ours, theirs, policy=ManualReview(keep="theirs"))
    assert result.merged == theirs
    [item] = result.reviews
    assert (item.current, item.proposed) == ("1.5.0", "1.4.3")


def test_review_item_approve_and_reject_give_the_exact_update_state() -> None:
    ours = edit(LIGHTS, (("lights", "kitchen", "rgb"), [255, 0, 0]))
    theirs = edit(LIGHTS, (("lights", "kitchen", "rgb"), [0, 0, 255]))
    result = merge(LIGHTS, ours, theirs, policy=ManualReview(), section="reported")
    [item] = result.reviews
    assert item.approve() == {"reported": {"lights": {"kitchen": {"rgb": [0, 0, 255]}}}}
    assert item.reject() == {"reported": {"lights": {"kitchen": {"rgb": [255, 0, 0]}}}}
    held = ShadowDocument(reported=result.merged, version=7, timestamp=1_700_000_000)
    approved = apply_update(held, {"state": item.approve()}, timestamp=1_700_000_100)
    assert approved.document.reported == theirs
    rejected = apply_update(held, {"state": item.reject()}, timestamp=1_700_000_100)
    assert rejected.document.reported == ours


def test_approving_a_proposed_deletion_deletes_the_field() -> None:
    ours = edit(FIRMWARE, (("firmware", "channel"), "beta"))
    theirs = edit(FIRMWARE, (("firmware", "channel"), MISSING))
    result = merge(FIRMWARE, ours, theirs, policy=ManualReview())
    [item] = result.reviews
    assert item.proposed is MISSING
    assert item.approve() == {"desired": {"firmware": {"channel": None}}}
    held = ShadowDocument(desired=result.merged, timestamp=1_700_000_000)
    approved = apply_update(held, {"state": item.approve()}, timestamp=1_700_000_001)
    assert approved.document.desired == theirs
    assert item.to_json()["proposed"] is None


def test_approving_a_scalar_over_a_held_object_replaces_it() -> None:
    ours = edit(THERMOSTAT, (("fan",), {"mode": "on", "speed": 4}))
    theirs = edit(THERMOSTAT, (("fan",), "off"))
    result = merge(THERMOSTAT, ours, theirs, policy=ManualReview(keep="theirs"))
    [item] = result.reviews
    held = ShadowDocument(desired=result.merged, timestamp=1_700_000_000)
    approved = apply_update(held, {"state": item.approve()}, timestamp=1_700_000_001)
    assert approved.document.desired == ours


def test_review_ids_are_stable_and_distinguish_conflicts() -> None:
    ours = edit(FIRMWARE, (("firmware", "version"), "1.4.3"))
    theirs = edit(FIRMWARE, (("firmware", "version"), "1.5.0"))
    first = merge(FIRMWARE, ours, theirs, policy=ManualReview()).reviews[0]
    again = merge(
        copy.deepcopy(FIRMWARE), copy.deepcopy(ours), copy.deepcopy(theirs), policy=ManualReview()
    ).reviews[0]
    assert first.id == again.id
    other_value = merge(
        FIRMWARE, ours, edit(FIRMWARE, (("firmware", "version"), "2.0.0")), policy=ManualReview()
    ).reviews[0]
    other_section = merge(FIRMWARE, ours, theirs, policy=ManualReview(), section="reported")
    swapped = merge(FIRMWARE, theirs, ours, policy=ManualReview()).reviews[0]
    ids = {first.id, other_value.id, other_section.reviews[0].id, swapped.id}
    assert len(ids) == 4


def test_review_item_approve_returns_a_fresh_object() -> None:
    ours = edit(LIGHTS, (("lights", "kitchen", "rgb"), [255, 0, 0]))
    theirs = edit(LIGHTS, (("lights", "kitchen", "rgb"), [0, 0, 255]))
    [item] = merge(LIGHTS, ours, theirs, policy=ManualReview()).reviews
    state = item.approve()
    state["desired"]["lights"]["kitchen"]["rgb"].append(7)  # type: ignore[call-overload,index,union-attr]
    assert item.proposed == [0, 0, 255]
    assert item.approve() == {"desired": {"lights": {"kitchen": {"rgb": [0, 0, 255]}}}}
    assert theirs["lights"]["kitchen"]["rgb"] == [0, 0, 255]  # type: ignore[call-overload,index]


# --------------------------------------------------------------------------------------------
# Custom strategies and broken strategies
# --------------------------------------------------------------------------------------------


class CoolestWins:
    """A user strategy: the lower set point wins (saves energy); anything else is held."""

    @property
    def name(self) -> str:
        return "coolest_wins"

    @property
    def commutative(self) -> bool:
        return True

    def resolve(self, conflict: Conflict) -> Resolution:
        ours, theirs = conflict.ours, conflict.theirs
        if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
            if ours <= theirs:
                return Resolution(value=ours, winner="ours", reason="lower set point")
            return Resolution(value=theirs, winner="theirs", reason="lower set point")
        return ManualReview().resolve(conflict)


def test_a_user_strategy_is_used_as_the_policy() -> None:
    ours = edit(THERMOSTAT, (("target_c",), 19), (("mode",), "eco"))
    theirs = edit(THERMOSTAT, (("target_c",), 23), (("mode",), "boost"))
    result = merge(THERMOSTAT, ours, theirs, policy=CoolestWins())
    assert result.merged == ours
    by_path = {record.path: record for record in result.report}
    assert by_path[("target_c",)].strategy == "coolest_wins"
    assert by_path[("target_c",)].reason == "lower set point"
    assert [item.path for item in result.reviews] == [("mode",)]


class FixedAnswer:
    """A strategy that always answers the same thing, whatever the conflict."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    @property
    def name(self) -> str:
        return "fixed"

    @property
    def commutative(self) -> bool:
        return False

    def resolve(self, conflict: Conflict) -> Resolution:
        return self.answer  # type: ignore[return-value]


@pytest.mark.parametrize(
    "answer", [None, 22, "ours", (22, "ours"), {"value": 22, "winner": "ours"}]
)
def test_a_strategy_returning_something_else_than_a_resolution_is_refused(answer: object) -> None:
    with pytest.raises(ShadowSyncError, match="not a Resolution"):
        merge({"target_c": 20}, {"target_c": 21}, {"target_c": 23}, policy=FixedAnswer(answer))


@pytest.mark.parametrize(
    ("winner", "value"), [("ours", 23), ("theirs", 21), ("ours", MISSING), ("base", 99)]
)
def test_a_strategy_lying_about_the_winner_is_refused(winner: str, value: Value) -> None:
    answer = Resolution(value=value, winner=winner, reason="trust me")  # type: ignore[arg-type]
    with pytest.raises(ShadowSyncError, match="fixed"):
        merge({"target_c": 20}, {"target_c": 21}, {"target_c": 23}, policy=FixedAnswer(answer))


def test_a_strategy_may_restore_the_base() -> None:
    answer = Resolution(value=20, winner="base", reason="revert both")
    result = merge({"target_c": 20}, {"target_c": 21}, {"target_c": 23}, policy=FixedAnswer(answer))
    assert result.merged == {"target_c": 20}
    assert result.report.records[0].winner == "base"


@pytest.mark.parametrize("value", [None, {21, 22}, float("nan")], ids=["null", "set", "nan"])
def test_a_strategy_value_that_cannot_be_stored_is_refused(value: object) -> None:
    answer = Resolution(value=value, winner="merged", reason="invented")  # type: ignore[arg-type]
    with pytest.raises(ShadowSyncError):
        merge({"target_c": 20}, {"target_c": 21}, {"target_c": 23}, policy=FixedAnswer(answer))


# --------------------------------------------------------------------------------------------
# Arguments, inputs and outputs
# --------------------------------------------------------------------------------------------


def test_absent_sections_are_empty_objects() -> None:
    result = merge(None, {"mode": "heat"}, None)
    assert result.merged == {"mode": "heat"}
    assert changes_of(result) == {("mode",): ChangeClass.OURS_ONLY}
    assert merge(None, None, None).merged == {}


@pytest.mark.parametrize("bad", [[], "heat", 5])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_section_that_is_not_an_object_is_refused(bad: object, position: int) -> None:
    args: list[Any] = [{}, {}, {}]
    args[position] = bad
    name = ("base", "ours", "theirs")[position]
    with pytest.raises(InvalidDocumentError, match=f"{name} must be an object"):
        merge(*args)


@pytest.mark.parametrize(
    ("sections", "where"),
    [
        (({}, {"mode": None}, {}), "ours.mode"),
        (({}, {}, {"target_c": float("nan")}), "theirs.target_c"),
        (({"fan": {"speed": {1, 2}}}, {}, {}), "base.fan.speed"),
        (({}, {"rgb": [255, None, 0]}, {}), "ours.rgb[1]"),
        (({}, {}, {"lights": {7: "on"}}), "theirs.lights"),
    ],
)
def test_a_section_holding_something_a_shadow_cannot_store_is_refused(
    sections: tuple[Any, Any, Any], where: str
) -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        merge(*sections)
    assert where in str(caught.value)


def test_an_unknown_section_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="section must be 'desired' or 'reported'"):
        merge({}, {}, {}, section="delta")  # type: ignore[arg-type]


def test_a_policy_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(
        InvalidArgumentError, match="policy must be a ResolutionPolicy or a Strategy"
    ):
        merge({}, {}, {}, policy="last_writer_wins")  # type: ignore[arg-type]


def test_sections_too_deep_to_merge_raise_a_document_error() -> None:
    ours = {"a": nested(5000, 1)}
    theirs = {"a": nested(5000, 2)}
    with pytest.raises(InvalidDocumentError, match="nest too deeply"):
        merge({}, ours, theirs)


def test_inputs_are_not_changed_by_a_merge() -> None:
    base = copy.deepcopy({**THERMOSTAT, **FIRMWARE, **LIGHTS})
    ours = edit(base, (("fan", "speed"), 4), (("schedule", "days"), ["sat"]), (("mode",), MISSING))
    theirs = edit(base, (("schedule", "days"), ["sun"]), (("lights", "hall"), MISSING))
    stamps: dict[Path, int] = {("schedule",): 5}
    snapshot = copy.deepcopy((base, ours, theirs, stamps))
    result = merge(base, ours, theirs, policy=FieldMerge(), ours_stamps=stamps)
    assert (base, ours, theirs, stamps) == snapshot
    assert result.merged["schedule"] == {"days": ["sat", "sun"], "wake": "07:00"}


def test_the_merged_section_shares_nothing_with_the_inputs() -> None:
    ours = edit(LIGHTS, (("lights", "porch"), {"on": True, "rgb": [1, 2, 3]}))
    result = merge(LIGHTS, ours, LIGHTS)
    result.merged["lights"]["porch"]["rgb"].append(4)  # type: ignore[call-overload,index,union-attr]
    result.merged["lights"]["kitchen"]["on"] = False  # type: ignore[call-overload,index]
    assert ours["lights"]["porch"]["rgb"] == [1, 2, 3]  # type: ignore[call-overload,index]
    assert LIGHTS["lights"]["kitchen"]["on"] is True  # type: ignore[call-overload,index]


def test_the_report_is_not_changed_by_mutating_the_inputs_afterwards() -> None:
    ours = edit(THERMOSTAT, (("schedule", "days"), ["sat", "sun"]))
    theirs = edit(THERMOSTAT, (("schedule", "days"), ["mon"]))
    base = copy.deepcopy(THERMOSTAT)
    result = merge(base, ours, theirs, policy=ManualReview())
    before = (result.report.to_json(), [item.to_json() for item in result.reviews])
    ours["schedule"]["days"].append("holiday")  # type: ignore[call-overload,index,union-attr]
    theirs["schedule"]["days"].clear()  # type: ignore[call-overload,index,union-attr]
    base["schedule"]["days"].pop()  # type: ignore[call-overload,index,union-attr]
    after = (result.report.to_json(), [item.to_json() for item in result.reviews])
    assert after == before


# --------------------------------------------------------------------------------------------
# Report shapes
# --------------------------------------------------------------------------------------------


def test_conflict_record_json_shape() -> None:
    ours = edit(FIRMWARE, (("firmware", "version"), "1.4.3"))
    theirs = edit(FIRMWARE, (("firmware", "version"), "1.5.0"))
    result = merge(FIRMWARE, ours, theirs, policy=ManualReview(), section="reported")
    [item] = result.reviews
    assert result.report.to_json() == [
        {
            "path": "firmware.version",
            "pointer": "/firmware/version",
            "section": "reported",
            "kind": "concurrent_modification",
            "severity": "medium",
            "base": "1.4.2",
            "ours": "1.4.3",
            "theirs": "1.5.0",
            "strategy": "manual_review",
            "winner": "ours",
            "value": "1.4.3",
            "reason": "held for manual review",
            "reviewId": item.id,
        }
    ]
    assert item.to_json() == {
        "id": item.id,
        "path": "firmware.version",
        "pointer": "/firmware/version",
        "section": "reported",
        "current": "1.4.3",
        "proposed": "1.5.0",
        "base": "1.4.2",
        "reason": "held for manual review",
    }


def test_report_counts_iterates_and_is_falsy_when_empty() -> None:
    base = {"target_c": 21, "mode": "heat", "fan": {"speed": 2}}
    ours = {"target_c": 22, "mode": "cool", "fan": {"speed": 3}}
    theirs = {"target_c": "warm", "mode": "off", "fan": {"speed": 1}}
    report = merge(base, ours, theirs).report
    assert len(report) == 3
    assert [record.path for record in report] == [("target_c",), ("mode",), ("fan", "speed")]
    assert report.count_by_kind() == {
        ConflictKind.DATA_TYPE_CONFLICT: 1,
        ConflictKind.CONCURRENT_MODIFICATION: 2,
    }
    assert bool(report) is True
    empty = ConflictReport()
    assert (len(empty), bool(empty), empty.count_by_kind(), empty.to_json()) == (0, False, {}, [])


def test_report_json_renders_objects_and_arrays_as_copies() -> None:
    ours = edit(THERMOSTAT, (("fan",), "off"))
    theirs = edit(THERMOSTAT, (("fan", "speed"), 3))
    [rendered] = merge(THERMOSTAT, ours, theirs).report.to_json()
    assert rendered["ours"] == "off"
    assert rendered["theirs"] == {"mode": "auto", "speed": 3}
    assert rendered["base"] == {"mode": "auto", "speed": 2}
    rendered["theirs"]["speed"] = 9
    assert theirs["fan"] == {"mode": "auto", "speed": 3}


# --------------------------------------------------------------------------------------------
# Write stamps from AWS metadata
# --------------------------------------------------------------------------------------------


def test_stamps_from_aws_documentation_metadata() -> None:
    metadata = {
        "color": {"timestamp": 1469564492},
        "colors": [
            {"timestamp": 1469564492},
            {"timestamp": 1469564492},
            {"timestamp": 1469564510},
        ],
        "lights": {"kitchen": {"on": {"timestamp": 1469564400}}},
    }
    assert stamps_from_metadata(metadata) == {
        ("color",): 1469564492,
        ("colors",): 1469564510,
        ("lights", "kitchen", "on"): 1469564400,
    }


def test_stamps_from_metadata_written_by_updates() -> None:
    first = apply_update(
        None,
        {
            "state": {
                "desired": {
                    "target_c": 21,
                    "schedule": [{"at": "07:00", "c": 20}, {"at": "22:00", "c": 17}],
                    "rgb": [255, 128, 0],
                    "fan": {"mode": "auto", "speed": 2},
                    "tags": [],
                    "extra": {},
                }
            }
        },
        timestamp=100,
    )
    second = apply_update(
        first.document, {"state": {"desired": {"fan": {"speed": 3}}}}, timestamp=200
    )
    assert stamps_from_metadata(second.document.desired_metadata) == {
        ("target_c",): 100,
        ("schedule",): 100,
        ("rgb",): 100,
        ("fan", "mode"): 100,
        ("fan", "speed"): 200,
    }


def test_stamps_from_metadata_handle_fields_named_timestamp() -> None:
    result = apply_update(
        None,
        {
            "state": {
                "reported": {"timestamp": 5, "clock": {"timestamp": 6}, "log": [{"timestamp": 7}]}
            }
        },
        timestamp=300,
    )
    assert stamps_from_metadata(result.document.reported_metadata) == {
        ("timestamp",): 300,
        ("clock", "timestamp"): 300,
        ("log",): 300,
    }


@pytest.mark.parametrize("bad", [[{"timestamp": 1}], "metadata", None, 5])
def test_stamps_from_metadata_refuses_non_objects(bad: object) -> None:
    with pytest.raises(InvalidDocumentError, match="metadata must be an object"):
        stamps_from_metadata(bad)  # type: ignore[arg-type]


def test_stamps_from_metadata_refuse_absurd_nesting() -> None:
    metadata: Any = {"timestamp": 1}
    for _ in range(100):
        metadata = {"a": metadata, "b": {"timestamp": 1}}
    with pytest.raises(InvalidDocumentError, match="metadata nests too deeply"):
        stamps_from_metadata(metadata)


def test_metadata_stamps_settle_a_device_and_cloud_conflict() -> None:
    base = apply_update(
        None, {"state": {"desired": {**THERMOSTAT, **FIRMWARE}}}, timestamp=1_700_000_000
    ).document
    device = apply_update(
        base,
        {"state": {"desired": {"target_c": 19, "fan": {"speed": 1}}}},
        timestamp=1_700_000_300,
    ).document
    cloud = apply_update(
        base,
        {"state": {"desired": {"target_c": 23, "firmware": {"channel": "beta"}}}},
        timestamp=1_700_000_200,
    ).document
    result = merge(
        base.desired,
        device.desired,
        cloud.desired,
        ours_stamps=stamps_from_metadata(device.desired_metadata),
        theirs_stamps=stamps_from_metadata(cloud.desired_metadata),
        base_stamps=stamps_from_metadata(base.desired_metadata),
    )
    assert result.merged["target_c"] == 19
    assert result.merged["fan"] == {"mode": "auto", "speed": 1}
    assert result.merged["firmware"] == {"version": "1.4.2", "channel": "beta", "auto_update": True}
    [record] = result.report
    assert (record.path, record.winner) == (("target_c",), "ours")
    assert record.reason == "ours written later (1700000300)"


def test_a_cloud_change_replayed_with_an_old_stamp_is_stale() -> None:
    base = apply_update(None, {"state": {"desired": {"target_c": 21}}}, timestamp=500).document
    device = apply_update(base, {"state": {"desired": {"target_c": 19}}}, timestamp=600).document
    replayed_cloud = ShadowDocument(
        desired={"target_c": 25}, desired_metadata={"target_c": {"timestamp": 400}}
    )
    result = merge(
        base.desired,
        device.desired,
        replayed_cloud.desired,
        ours_stamps=stamps_from_metadata(device.desired_metadata),
        theirs_stamps=stamps_from_metadata(replayed_cloud.desired_metadata),
        base_stamps=stamps_from_metadata(base.desired_metadata),
    )
    assert result.merged == {"target_c": 19}
    assert changes_of(result) == {("target_c",): ChangeClass.STALE}


def test_merge_result_is_frozen_and_escalation_defaults_to_false() -> None:
    result = MergeResult(merged={}, report=ConflictReport(), reviews=(), changes=())
    assert result.escalated is False
    assert result.has_conflicts is False
    with pytest.raises(AttributeError):
        result.escalated = True  # type: ignore[misc]


def test_a_policy_object_is_accepted_in_place_of_a_strategy() -> None:
    policy = ResolutionPolicy(default=LastWriterWins(prefer="ours"))
    result = merge({"mode": "heat"}, {"mode": "eco"}, {"mode": "cool"}, policy=policy)
    assert result.merged == {"mode": "eco"}


def test_conflict_json_pointer_stays_exact_where_the_dotted_path_is_ambiguous() -> None:
    base = {"a.b": {"c/d": 1}, "a": {"b": {"c/d": 1}}}
    ours = {"a.b": {"c/d": 2}, "a": {"b": {"c/d": 2}}}
    theirs = {"a.b": {"c/d": 3}, "a": {"b": {"c/d": 3}}}
    result = merge(base, ours, theirs, policy=ManualReview())
    records = result.report.to_json()
    assert [record["path"] for record in records] == ["a.b.c/d", "a.b.c/d"]
    assert sorted(record["pointer"] for record in records) == ["/a.b/c~1d", "/a/b/c~1d"]
    assert sorted(item.to_json()["pointer"] for item in result.reviews) == [
        "/a.b/c~1d",
        "/a/b/c~1d",
    ]
