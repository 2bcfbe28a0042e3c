"""Update planning as pure functions: the reported merge, the plan, and what an update sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowsync import HLCStamp, ResolutionPolicy, ShadowDocument
from shadowsync._device.intent import Intent
from shadowsync._device.plan import (
    Planned,
    escalation,
    merge_patches,
    merge_reported,
    needed,
    plan_updates,
    update_body,
)
from shadowsync._device.replay import ReplayBatch
from shadowsync._tree import leaf_paths
from shadowsync.strategies import OwnerWins
from tests.strategies.device import token_counter

if TYPE_CHECKING:
    from shadowsync._json import JSONObject, JSONValue

NOW = 1_700_000_000


def intent(path: tuple[str, ...], value: JSONValue, ms: int = 0) -> Intent:
    return Intent(
        thing_name="lamp",
        shadow_name=None,
        kind="report",
        path=path,
        value=value,
        created_at=NOW,
        stamp=HLCStamp(wall_ms=NOW * 1000 + ms, counter=0, node="lamp"),
    )


def document(reported: JSONObject, version: int = 3) -> ShadowDocument:
    return ShadowDocument.from_dict({"state": {"reported": reported}, "version": version})


def batch(token: str, reported: JSONObject, *seqs: int) -> ReplayBatch:
    return ReplayBatch(
        thing_name="lamp",
        shadow_name=None,
        client_token=token,
        request={"state": {"reported": reported}, "clientToken": token},
        seqs=seqs,
    )


# -- the reported merge ------------------------------------------------------------------------


def merged(base: JSONObject, pending: list[Intent], cloud: JSONObject) -> JSONObject:
    result = merge_reported(
        base=base,
        pending=pending,
        cloud=document(cloud),
        policy=ResolutionPolicy(default=OwnerWins()),
        thing_name="lamp",
        shadow_name=None,
    )
    return result.merged


def test_a_write_back_to_the_base_value_still_counts_as_a_change() -> None:
    # The device reported "b", then "a" again; the cloud still holds "b".
    assert merged({"mode": "a"}, [intent(("mode",), "a")], {"mode": "b"}) == {"mode": "a"}


def test_the_markers_never_leak_into_the_result_or_its_report() -> None:
    result = merge_reported(
        base={"mode": "a", "fan": {"speed": 1}},
        pending=[intent(("mode",), "a"), intent(("fan",), {"speed": 1})],
        cloud=document({"mode": "b", "fan": {"speed": 2}}),
        policy=ResolutionPolicy(default=OwnerWins()),
        thing_name="lamp",
        shadow_name=None,
    )
    assert result.merged == {"mode": "a", "fan": {"speed": 1}}
    assert result.report
    assert "shadowsync" not in repr(result.report)
    assert all(record.base in ("a", 1) for record in result.report)


def test_changes_on_one_side_only_are_taken_as_they_are() -> None:
    assert merged({"a": 1, "b": 1}, [intent(("a",), 2)], {"a": 1, "b": 3}) == {"a": 2, "b": 3}


# -- the plan ----------------------------------------------------------------------------------


def test_the_plan_sends_batches_then_the_desired_patch() -> None:
    tokens = token_counter("p")
    plan = plan_updates(
        batches=[batch("b1", {"on": True}, 1), batch("b2", {"hvac": {"mode": "cool"}}, 2, 3)],
        target={"on": True},
        desired_patch={"level": 4},
        create_first=False,
        token=tokens,
    )
    assert [(p.kind, p.token) for p in plan] == [
        ("reported", "b1"),
        ("reported", "b2"),
        ("desired", "p1"),
    ]
    assert leaf_paths(plan[1].touched) == [("hvac", "mode")]
    assert plan[1].seqs == (2, 3)
    assert plan[2].state == {"desired": {"level": 4}}


def test_a_shadow_not_known_to_exist_is_created_empty_first() -> None:
    plan = plan_updates(
        batches=[batch("b1", {"on": True}, 1)],
        target={"on": True},
        desired_patch={},
        create_first=True,
        token=token_counter("p"),
    )
    assert [(p.kind, p.token) for p in plan] == [("create", "p1"), ("reported", "b1")]


def test_nothing_to_send_plans_nothing_even_for_a_new_shadow() -> None:
    plan = plan_updates(
        batches=[], target={}, desired_patch={}, create_first=True, token=token_counter("p")
    )
    assert plan == []


def test_desired_patches_merge_and_keep_deletions() -> None:
    patch: JSONObject = {"hvac": {"mode": "cool", "fan": 2}, "level": 3}
    merge_patches(patch, {"hvac": {"fan": None}, "level": {"max": 9}})
    assert patch == {"hvac": {"mode": "cool", "fan": None}, "level": {"max": 9}}


# -- what one update sends ---------------------------------------------------------------------


def test_only_what_the_cloud_lacks_is_sent() -> None:
    theirs: JSONObject = {"hvac": {"mode": "cool", "fan": 1}, "on": True}
    target: JSONObject = {"hvac": {"mode": "heat"}, "on": True}
    assert needed({"hvac": {}, "on": True}, theirs, target) == {
        "hvac": {"mode": "heat", "fan": None}
    }
    assert needed({"on": True}, theirs, target) == {}


def test_a_path_under_a_non_object_is_written_whole_above() -> None:
    assert needed(
        {"hvac": {"mode": "cool"}}, {"hvac": 3}, {"hvac": {"mode": "cool", "fan": 1}}
    ) == {"hvac": {"mode": "cool", "fan": 1}}


def test_the_update_body_carries_the_version_under_compare_and_set() -> None:
    planned = Planned(kind="reported", token="t1", touched={"on": True}, target={"on": True})
    cloud = document({"on": False}, version=7)
    assert update_body(planned, cloud, compare_and_set=True) == {
        "state": {"reported": {"on": True}},
        "clientToken": "t1",
        "version": 7,
    }
    assert "version" not in (update_body(planned, cloud, compare_and_set=False) or {})
    assert update_body(planned, document({"on": True}), compare_and_set=True) is None


def test_a_create_is_an_empty_update_without_a_version() -> None:
    planned = Planned(kind="create", token="t0")
    assert update_body(planned, None, compare_and_set=True) == {"state": {}, "clientToken": "t0"}


def test_escalation_holds_each_pending_intent_once() -> None:
    review = escalation(
        previous=(),
        pending=[intent(("mode",), "heat"), intent(("mode",), "heat", ms=1)],
        theirs={"mode": "cool"},
        base={"mode": "off"},
        conflicts=6,
        max_conflict_retries=5,
    )
    assert review.escalated
    assert [(item.path, item.current, item.proposed, item.base) for item in review.items] == [
        (("mode",), "cool", "heat", "off")
    ]
    assert review.reason.startswith("6 version conflicts in a row")
