"""The offline queue: intents, coalescing, bounds and expiry, replay, confirm and fail, reopen."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pytest

from shadowsync import HLCStamp, ShadowLimits, UpdateRequest, apply_update
from shadowsync._device.intent import ACK_PATH, Intent
from shadowsync._device.queue import (
    DropRecord,
    OfflineQueue,
    PutResult,
    QueueLimits,
    QueueStats,
)
from shadowsync._json import encoded_size
from shadowsync.errors import InvalidArgumentError, InvalidNameError, ShadowSyncError
from shadowsync.stores import MemoryStore, SQLiteStore
from tests.strategies.device import token_counter

if TYPE_CHECKING:
    from pathlib import Path

    from shadowsync._device.replay import ReplayBatch
    from shadowsync._json import JSONObject, JSONValue

NOW = 1_700_000_000
"""Epoch seconds used as ``now`` and as the creation time of the intents below."""


def stamp(ms: int = 0, counter: int = 0) -> HLCStamp:
    return HLCStamp(wall_ms=NOW * 1000 + ms, counter=counter, node="lamp")


def intent(
    path: tuple[str, ...] | str,
    value: JSONValue,
    ms: int = 0,
    *,
    thing: str = "lamp",
    shadow: str | None = None,
    created_at: int = NOW,
) -> Intent:
    return Intent(
        thing_name=thing,
        shadow_name=shadow,
        kind="report",
        path=(path,) if isinstance(path, str) else path,
        value=value,
        created_at=created_at,
        stamp=stamp(ms),
    )


def ack(value: JSONValue, ms: int = 0) -> Intent:
    return Intent(
        thing_name="lamp",
        shadow_name=None,
        kind="ack",
        path=ACK_PATH,
        value=value,
        created_at=NOW,
        stamp=stamp(ms),
    )


def fresh(**kwargs: Any) -> OfflineQueue:
    return OfflineQueue(MemoryStore(), **kwargs)


def replay_all(queue: OfflineQueue, now: int = NOW) -> tuple[ReplayBatch, ...]:
    return queue.replay(now=now, token=token_counter())


def requests(batches: tuple[ReplayBatch, ...]) -> list[JSONObject]:
    return [batch.request["state"]["reported"] for batch in batches]


def reported_after(initial: JSONObject, batches: tuple[ReplayBatch, ...]) -> JSONObject:
    document = apply_update(None, {"state": {"reported": initial}}, timestamp=1).document
    for batch in batches:
        document = apply_update(document, batch.request, timestamp=2).document
    return document.reported


# --- Intent ---


def test_an_intent_validates_and_copies_its_value() -> None:
    value: dict[str, Any] = {"level": 3, "tags": ["a"]}
    made = intent("light", value)
    value["level"] = 4
    value["tags"].append("b")
    assert made.value == {"level": 3, "tags": ["a"]}
    assert made.reported_patch() == {"light": {"level": 3, "tags": ["a"]}}
    assert made.reported_patch() is not made.reported_patch()
    assert made.size == encoded_size(made.reported_patch())
    assert made.depth == 3  # reported (1) holds light, light (2) holds tags, tags is level 3


def test_intent_depth_counts_path_and_value_levels() -> None:
    assert intent(("a", "b", "c", "d", "e", "f"), 1).depth == 6
    assert intent("a", {"b": [[1]]}).depth == 4
    assert intent("a", None).depth == 1


def test_intent_accepts_a_list_path_and_str_subclasses() -> None:
    class Key(str):
        pass

    made = intent(["a", Key("b")], 1)  # type: ignore[arg-type]
    assert made.path == ("a", "b")
    assert type(made.path[1]) is str


def test_an_intent_normalizes_json_subclasses() -> None:
    class Flag(int):
        pass

    value: Any = {"n": Flag(3), "t": (1, 2)}
    made = intent("a", value)
    assert made.value == {"n": 3, "t": [1, 2]}
    assert isinstance(made.value, dict)
    assert type(made.value["n"]) is int


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"thing_name": "bad name"}, InvalidNameError, "thing"),
        ({"thing_name": ""}, InvalidNameError, "thing"),
        ({"shadow_name": "a/b"}, InvalidNameError, "shadow"),
        ({"kind": "desired"}, InvalidArgumentError, "kind"),
        ({"path": "light"}, InvalidArgumentError, "tuple of object keys"),
        ({"path": ()}, InvalidArgumentError, "at least one key"),
        ({"path": ("a", 1)}, InvalidArgumentError, "keys must be strings"),
        ({"path": ("a",) * 33}, InvalidArgumentError, "can ever fit"),
        ({"path": ("\ud800",)}, InvalidArgumentError, "surrogate"),
        ({"value": math.nan}, InvalidArgumentError, "not a JSON number"),
        ({"value": [1, None]}, InvalidArgumentError, "Array values must not be null"),
        ({"value": {"a": [None]}}, InvalidArgumentError, "must not be null"),
        ({"value": {1, 2}}, InvalidArgumentError, "not a JSON type"),
        ({"value": {"k": object()}}, InvalidArgumentError, "not a JSON type"),
        ({"value": "\udfff"}, InvalidArgumentError, "surrogate"),
        (
            {"value": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            None,
            "levels",
        ),
        ({"created_at": -1}, InvalidArgumentError, "created_at"),
        ({"created_at": True}, InvalidArgumentError, "created_at"),
        ({"created_at": 1.5}, InvalidArgumentError, "created_at"),
        ({"stamp": "000000000000001-00000-lamp"}, InvalidArgumentError, "HLCStamp"),
        ({"seq": -1}, InvalidArgumentError, "seq"),
        ({"path": ("$ack",)}, InvalidArgumentError, "kind='ack'"),
        ({"kind": "ack"}, InvalidArgumentError, "acknowledgement intent has path"),
    ],
)
def test_bad_intents_raise_shadowsync_errors(
    changes: dict[str, Any], error: type[Exception] | None, match: str
) -> None:
    fields: dict[str, Any] = {
        "thing_name": "lamp",
        "shadow_name": None,
        "kind": "report",
        "path": ("a",),
        "value": 1,
        "created_at": NOW,
        "stamp": stamp(),
    }
    fields.update(changes)
    with pytest.raises(error or InvalidArgumentError, match=match):
        Intent(**fields)


def test_acknowledgements_are_objects_at_the_ack_path() -> None:
    assert ack({"desiredVersion": 3}).path == ("$ack",)
    assert ack(None).value is None
    with pytest.raises(InvalidArgumentError, match="must be an object"):
        ack([1, 2])


def test_the_ack_path_is_the_rules_ack_key() -> None:
    from shadowsync.rules import ACK_KEY

    assert ACK_PATH == (ACK_KEY,)


# --- QueueLimits ---


@pytest.mark.parametrize(
    "changes",
    [
        {"max_intents": 0},
        {"max_bytes": -1},
        {"max_age_seconds": 1.5},
        {"max_intents": True},
        {"on_full": "drop_newest"},
        {"max_drop_records": 0},
    ],
)
def test_bad_queue_limits_raise(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        QueueLimits(**changes)


def test_queue_constructor_checks_its_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="Store"):
        OfflineQueue(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="QueueLimits"):
        OfflineQueue(MemoryStore(), limits={"max_intents": 3})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="ShadowLimits"):
        OfflineQueue(MemoryStore(), shadow_limits=8192)  # type: ignore[arg-type]


# --- put and coalescing ---


def test_put_assigns_increasing_seqs() -> None:
    queue = fresh()
    results = [queue.put(intent(f"k{n}", n), now=NOW) for n in range(3)]
    assert [result.seq for result in results] == [1, 2, 3]
    assert all(result.dropped == () for result in results)
    assert [item.seq for item in queue.pending()] == [1, 2, 3]
    assert queue.pending()[0].value == 0


def test_a_newer_write_to_the_same_path_supersedes_the_older() -> None:
    queue = fresh()
    queue.put(intent("temp", 21, ms=1), now=NOW)
    result = queue.put(intent("temp", 22, ms=2), now=NOW)
    assert result.seq == 2
    [record] = result.dropped
    assert record.reason == "superseded"
    assert record.intent.seq == 1
    assert record.at == NOW
    assert "seq 2" in record.detail
    assert [item.value for item in queue.pending()] == [22]


def test_a_delete_is_a_value_and_supersedes_too() -> None:
    queue = fresh()
    queue.put(intent("temp", 21, ms=1), now=NOW)
    assert queue.put(intent("temp", None, ms=2), now=NOW).dropped[0].intent.value == 21
    assert queue.put(intent("temp", 5, ms=3), now=NOW).dropped[0].intent.value is None
    assert [item.value for item in queue.pending()] == [5]


def test_a_write_at_a_path_supersedes_pending_writes_below_it() -> None:
    queue = fresh()
    queue.put(intent(("sensors", "a"), 1, ms=1), now=NOW)
    queue.put(intent(("sensors", "b", "c"), 2, ms=2), now=NOW)
    queue.put(intent(("other",), 3, ms=3), now=NOW)
    result = queue.put(intent("sensors", None, ms=4), now=NOW)
    assert sorted(record.intent.seq for record in result.dropped) == [1, 2]
    assert [item.path for item in queue.pending()] == [("other",), ("sensors",)]


def test_an_object_covering_every_member_of_an_older_write_supersedes_it() -> None:
    queue = fresh()
    queue.put(intent("light", {"level": 1, "color": {"r": 1}}, ms=1), now=NOW)
    result = queue.put(intent("light", {"level": 2, "color": 0, "on": True}, ms=2), now=NOW)
    assert [record.intent.seq for record in result.dropped] == [1]


def test_a_deeper_write_supersedes_an_older_write_that_only_touched_its_path() -> None:
    queue = fresh()
    queue.put(intent("light", {"level": 1}, ms=1), now=NOW)
    result = queue.put(intent(("light", "level"), 2, ms=2), now=NOW)
    assert [record.intent.seq for record in result.dropped] == [1]


def test_merges_do_not_supersede_writes_they_do_not_cover() -> None:
    queue = fresh()
    queue.put(intent("light", {"level": 1, "dim": 2}, ms=1), now=NOW)
    assert queue.put(intent("light", {"color": "red"}, ms=2), now=NOW).dropped == ()
    assert queue.put(intent(("light", "on"), True, ms=3), now=NOW).dropped == ()
    # An older write of several members is not covered by a newer write of one of them.
    assert queue.put(intent(("light", "level"), 5, ms=4), now=NOW).dropped == ()
    [batch] = replay_all(queue)
    assert requests((batch,)) == [{"light": {"level": 5, "dim": 2, "color": "red", "on": True}}]


def test_a_reset_then_a_merge_is_not_coalesced_away() -> None:
    # "sensors = 5" made sensors a fresh object for the later merge; dropping it would let the
    # merge keep whatever the cloud holds under sensors.
    queue = fresh()
    queue.put(intent("sensors", 5, ms=1), now=NOW)
    assert queue.put(intent("sensors", {"a": 1}, ms=2), now=NOW).dropped == ()
    assert queue.put(intent(("sensors", "b"), 2, ms=3), now=NOW).dropped == ()
    batches = replay_all(queue)
    assert reported_after({"sensors": {"old": True}, "x": 1}, batches) == {
        "sensors": {"a": 1, "b": 2},
        "x": 1,
    }


def test_an_older_stamp_arriving_late_is_covered_and_not_queued() -> None:
    queue = fresh()
    queue.put(intent("temp", 22, ms=5), now=NOW)
    result = queue.put(intent("temp", 21, ms=1), now=NOW)
    assert result.seq is None
    [record] = result.dropped
    assert record.reason == "superseded"
    assert record.intent.value == 21
    assert record.intent.seq == 0
    assert [item.value for item in queue.pending()] == [22]


def test_equal_stamps_are_ordered_by_put() -> None:
    queue = fresh()
    queue.put(intent("temp", 1, ms=1), now=NOW)
    assert queue.put(intent("temp", 2, ms=1), now=NOW).dropped[0].intent.value == 1
    assert [item.value for item in queue.pending()] == [2]


def test_coalescing_stays_within_one_thing_and_shadow() -> None:
    queue = fresh()
    queue.put(intent("temp", 1, ms=1), now=NOW)
    queue.put(intent("temp", 2, ms=2, shadow="cfg"), now=NOW)
    queue.put(intent("temp", 3, ms=3, thing="pump"), now=NOW)
    assert len(queue.pending()) == 3
    assert [item.value for item in queue.pending("lamp")] == [1, 2]
    assert [item.value for item in queue.pending("lamp", None)] == [1]
    assert [item.value for item in queue.pending(shadow_name="cfg")] == [2]
    assert [item.value for item in queue.pending("pump", "cfg")] == []


def test_acknowledgements_coalesce_to_the_latest() -> None:
    queue = fresh()
    queue.put(ack({"desiredVersion": 1, "applied": ["/a"]}, ms=1), now=NOW)
    result = queue.put(ack({"desiredVersion": 2, "applied": ["/b"]}, ms=2), now=NOW)
    assert [record.intent.value for record in result.dropped] == [
        {"desiredVersion": 1, "applied": ["/a"]}
    ]
    [batch] = replay_all(queue)
    assert requests((batch,)) == [{"$ack": {"desiredVersion": 2, "applied": ["/b"]}}]


def test_put_ignores_the_seq_it_is_given() -> None:
    queue = fresh()
    result = queue.put(attrs.evolve(intent("a", 1), seq=77), now=NOW)
    assert result.seq == 1
    assert queue.pending()[0].seq == 1


def test_the_queued_intent_is_a_private_copy() -> None:
    queue = fresh()
    made = intent("a", {"b": [1]})
    queue.put(made, now=NOW)
    made.value["b"].append(2)  # type: ignore[index, call-overload, union-attr]
    assert queue.pending()[0].value == {"b": [1]}


@pytest.mark.parametrize("now", [-1, math.nan, math.inf, True, "now"])
def test_now_must_be_epoch_seconds(now: Any) -> None:
    queue = fresh()
    with pytest.raises(InvalidArgumentError, match="now"):
        queue.put(intent("a", 1), now=now)
    with pytest.raises(InvalidArgumentError, match="now"):
        queue.expire(now=now)
    with pytest.raises(InvalidArgumentError, match="now"):
        queue.replay(now=now, token=token_counter())
    with pytest.raises(InvalidArgumentError, match="now"):
        queue.stats(now=now)


def test_a_fractional_now_counts_as_the_whole_second_it_falls_in() -> None:
    queue = fresh(limits=QueueLimits(max_age_seconds=1))
    assert queue.put(intent("a", 1, created_at=0), now=1.5).seq == 1  # one second old: kept
    assert queue.stats(now=1.5).oldest_age == 1
    assert queue.expire(now=1.999) == ()
    [record] = queue.expire(now=2.5)
    assert (record.reason, record.at) == ("expired", 2)
    assert type(record.at) is int


def test_put_takes_only_intents() -> None:
    with pytest.raises(InvalidArgumentError, match="Intent"):
        fresh().put({"path": ["a"]}, now=NOW)  # type: ignore[arg-type]


# --- bounds and expiry ---


def test_intents_expire_after_max_age() -> None:
    queue = fresh(limits=QueueLimits(max_age_seconds=100))
    queue.put(intent("a", 1, created_at=NOW), now=NOW)
    queue.put(intent("b", 2, created_at=NOW + 50), now=NOW + 50)
    assert queue.expire(now=NOW + 100) == ()  # exactly max_age old is kept
    [record] = queue.expire(now=NOW + 101)
    assert record.reason == "expired"
    assert record.intent.path == ("a",)
    assert record.at == NOW + 101
    assert [item.path for item in queue.pending()] == [("b",)]
    result = queue.put(intent("c", 3, created_at=NOW + 200), now=NOW + 200)
    assert [record.reason for record in result.dropped] == ["expired"]
    assert [item.path for item in queue.pending()] == [("c",)]


def test_an_intent_already_expired_is_not_queued() -> None:
    queue = fresh(limits=QueueLimits(max_age_seconds=10))
    result = queue.put(intent("a", 1, created_at=NOW - 11), now=NOW)
    assert result.seq is None
    assert [record.reason for record in result.dropped] == ["expired"]
    assert queue.pending() == ()


def test_replay_drops_expired_intents_first() -> None:
    queue = fresh(limits=QueueLimits(max_age_seconds=10))
    queue.put(intent("a", 1), now=NOW)
    assert replay_all(queue, now=NOW + 11) == ()
    assert [record.reason for record in queue.drops()] == ["expired"]


def test_drop_oldest_makes_room_by_count() -> None:
    queue = fresh(limits=QueueLimits(max_intents=2))
    queue.put(intent("a", 1), now=NOW)
    queue.put(intent("b", 2), now=NOW)
    result = queue.put(intent("c", 3), now=NOW)
    assert result.seq == 3
    [record] = result.dropped
    assert (record.reason, record.intent.seq) == ("queue_full", 1)
    assert [item.seq for item in queue.pending()] == [2, 3]


def test_drop_oldest_makes_room_by_bytes() -> None:
    first = intent("a", "x" * 50)
    queue = fresh(limits=QueueLimits(max_bytes=2 * first.size + 10))
    queue.put(first, now=NOW)
    queue.put(intent("b", "x" * 50), now=NOW)
    result = queue.put(intent("c", "y" * 80), now=NOW)
    assert [record.intent.seq for record in result.dropped] == [1, 2]
    assert queue.stats(now=NOW).bytes <= 2 * first.size + 10


def test_superseding_frees_room_before_the_policy_applies() -> None:
    queue = fresh(limits=QueueLimits(max_intents=2, on_full="reject_new"))
    queue.put(intent("a", 1, ms=1), now=NOW)
    queue.put(intent("b", 2, ms=2), now=NOW)
    result = queue.put(intent("a", 3, ms=3), now=NOW)
    assert result.seq == 3
    assert [record.reason for record in result.dropped] == ["superseded"]


def test_reject_new_refuses_the_new_intent_and_keeps_the_old() -> None:
    queue = fresh(limits=QueueLimits(max_intents=1, on_full="reject_new"))
    queue.put(intent("a", 1), now=NOW)
    result = queue.put(intent("b", 2), now=NOW)
    assert result.seq is None
    [record] = result.dropped
    assert (record.reason, record.intent.path) == ("queue_full", ("b",))
    assert [item.path for item in queue.pending()] == [("a",)]


def test_an_intent_larger_than_the_whole_queue_is_refused_under_either_policy() -> None:
    policies: tuple[Literal["drop_oldest", "reject_new"], ...] = ("drop_oldest", "reject_new")
    for policy in policies:
        queue = fresh(limits=QueueLimits(max_bytes=100, on_full=policy))
        queue.put(intent("a", 1), now=NOW)
        result = queue.put(intent("b", "x" * 200), now=NOW)
        assert result.seq is None
        assert result.dropped[0].reason == "queue_full"
        assert len(queue.pending()) == 1


def test_an_intent_too_large_for_any_update_is_rejected_at_put() -> None:
    queue = fresh()
    result = queue.put(intent("blob", {"small": 1, "huge": "x" * 9000}), now=NOW)
    assert result.seq is None
    [record] = result.dropped
    assert record.reason == "rejected"
    assert "blob.huge" in record.detail
    assert "8192" in record.detail
    too_deep = intent(("a", "b", "c", "d", "e", "f"), {"g": 1})
    assert queue.put(too_deep, now=NOW).dropped[0].reason == "rejected"
    assert queue.pending() == ()


def test_an_intent_that_fits_exactly_is_queued() -> None:
    limits = ShadowLimits(max_document_bytes=100)
    base = intent("blob", "")
    exact = intent("blob", "x" * (100 - 13 - base.size))
    assert 13 + exact.size == 100
    queue = fresh(shadow_limits=limits)
    assert queue.put(exact, now=NOW).seq == 1
    [batch] = replay_all(queue)
    assert batch.size == 100


# --- replay ---


def test_one_update_carries_everything_that_fits() -> None:
    queue = fresh()
    queue.put(intent(("light", "level"), 10, ms=1), now=NOW)
    queue.put(intent(("light", "color"), "red", ms=2), now=NOW)
    queue.put(intent("temp", None, ms=3), now=NOW)
    [batch] = queue.replay(now=NOW, token=lambda: "tok-1")
    assert batch.thing_name == "lamp"
    assert batch.shadow_name is None
    assert batch.client_token == "tok-1"
    assert batch.request == {
        "state": {"reported": {"light": {"level": 10, "color": "red"}, "temp": None}},
        "clientToken": "tok-1",
    }
    assert batch.seqs == (1, 2, 3)
    assert batch.depends_on == ()
    assert batch.size == encoded_size(batch.request["state"])


def test_replay_is_deterministic_and_grouped_by_shadow() -> None:
    def build() -> OfflineQueue:
        queue = fresh()
        queue.put(intent("a", 1, thing="pump"), now=NOW)
        queue.put(intent("a", 2, shadow="cfg"), now=NOW)
        queue.put(intent("a", 3), now=NOW)
        return queue

    first = replay_all(build())
    assert [(batch.thing_name, batch.shadow_name) for batch in first] == [
        ("lamp", None),
        ("lamp", "cfg"),
        ("pump", None),
    ]
    assert first == replay_all(build())


def test_replay_can_be_restricted_to_one_shadow() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    queue.put(intent("a", 2, shadow="cfg"), now=NOW)
    token = token_counter()
    [named] = queue.replay(now=NOW, token=token, thing_name="lamp", shadow_name="cfg")
    [classic] = queue.replay(now=NOW, token=token, thing_name="lamp", shadow_name=None)
    assert named.shadow_name == "cfg"
    assert classic.shadow_name is None
    # Replaying one shadow keeps the other shadow's batch valid.
    assert queue.confirm(named.client_token) == (2,)
    assert queue.confirm(classic.client_token) == (1,)


def test_a_reset_then_a_merge_takes_a_delete_then_a_write() -> None:
    queue = fresh()
    queue.put(intent("sensors", None, ms=1), now=NOW)
    queue.put(intent(("sensors", "a"), 1, ms=2), now=NOW)
    queue.put(intent("mode", "eco", ms=3), now=NOW)
    reset, write = replay_all(queue)
    assert requests((reset, write)) == [{"sensors": None, "mode": "eco"}, {"sensors": {"a": 1}}]
    assert write.depends_on == (reset.client_token,)
    assert reset.depends_on == ()
    assert reported_after({"sensors": {"b": 2}, "mode": "x"}, (reset, write)) == {
        "sensors": {"a": 1},
        "mode": "eco",
    }
    # Both batches carry the sensors intents: they leave only when both are confirmed.
    assert set(reset.seqs) >= {1, 2}
    assert set(write.seqs) >= {1, 2}
    assert queue.confirm(write.client_token) == ()
    assert queue.confirm(reset.client_token) == (1, 2, 3)


def test_an_exact_empty_object_is_written_after_its_reset() -> None:
    queue = fresh()
    queue.put(intent("cfg", 1, ms=1), now=NOW)
    queue.put(intent("cfg", {}, ms=2), now=NOW)
    batches = replay_all(queue)
    assert requests(batches) == [{"cfg": None}, {"cfg": {}}]
    assert reported_after({"cfg": {"x": 1}}, batches) == {"cfg": {}}


def test_a_change_too_large_for_one_update_is_split_within_the_limit() -> None:
    limits = ShadowLimits(max_document_bytes=120)
    queue = fresh(shadow_limits=limits)
    for n in range(12):
        queue.put(intent(("sensors", f"s{n:02d}"), "v" * 10, ms=n), now=NOW)
    batches = replay_all(queue)
    assert len(batches) > 1
    for batch in batches:
        UpdateRequest.parse(batch.request, limits=limits)
        assert batch.size == encoded_size(batch.request["state"]) <= 120
        assert batch.depends_on == ()
    merged: dict[str, Any] = {}
    for body in requests(batches):
        merged.update(body["sensors"])  # type: ignore[arg-type]
    assert merged == {f"s{n:02d}": "v" * 10 for n in range(12)}
    # No two batches share an intent here, so each confirm removes exactly its batch.
    for batch in batches:
        assert queue.confirm(batch.client_token) == batch.seqs
    assert queue.pending() == ()


def test_packing_uses_the_fewest_updates_the_sizes_allow() -> None:
    limits = ShadowLimits(max_document_bytes=100)
    queue = fresh(shadow_limits=limits)
    # Four values of 30 bytes each: "k?":"..." is 37 bytes, two per update fit (15 + 2*37+1).
    for n in range(4):
        queue.put(intent(f"k{n}", "x" * 30), now=NOW)
    assert len(replay_all(queue)) == 2


def test_one_intent_split_across_updates_leaves_when_all_are_confirmed() -> None:
    limits = ShadowLimits(max_document_bytes=80)
    queue = fresh(shadow_limits=limits)
    queue.put(intent("big", {"a": "x" * 40, "b": "y" * 40}), now=NOW)
    first, second = replay_all(queue)
    assert first.seqs == second.seqs == (1,)
    assert queue.confirm(first.client_token) == ()
    assert queue.stats(now=NOW).in_flight == 1
    assert queue.confirm(second.client_token) == (1,)
    assert queue.confirm(second.client_token) == ()


def test_an_intent_that_no_longer_fits_is_rejected_at_replay(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStore(path) as store:
        OfflineQueue(store).put(intent("blob", "x" * 500), now=NOW)
    with SQLiteStore(path) as store:
        small = OfflineQueue(store, shadow_limits=ShadowLimits(max_document_bytes=100))
        assert replay_all(small) == ()
        [record] = small.drops()
        assert record.reason == "rejected"
        assert store.intents() == []


def test_a_reset_that_cannot_fit_drops_what_overlaps_it() -> None:
    # {"reported":{"a":{}}} is 21 bytes, but the reset it needs first, {"reported":{"a":null}},
    # is 23: the exact value at "a" can never be sent within 21 bytes.
    limits = ShadowLimits(max_document_bytes=21)
    queue = fresh(shadow_limits=limits)
    queue.put(intent("a", 0, ms=1), now=NOW)
    queue.put(intent("a", {}, ms=2), now=NOW)
    queue.put(intent("b", 1, ms=3), now=NOW)
    batches = replay_all(queue)
    assert requests(batches) == [{"b": 1}]
    assert sorted(record.intent.seq for record in queue.drops()) == [1, 2]
    assert {record.reason for record in queue.drops()} == {"rejected"}
    assert "cannot fit" in queue.drops()[0].detail


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        (["same", "same"], "twice"),
        ([""], "non-empty"),
        ([42], "non-empty str"),
        (["x" * 65], "64"),
        (["\ud800"], "UTF-8"),
    ],
)
def test_client_tokens_are_checked(tokens: list[Any], match: str) -> None:
    queue = fresh(shadow_limits=ShadowLimits(max_document_bytes=30))
    queue.put(intent("a", "x" * 8), now=NOW)
    queue.put(intent("b", "y" * 8), now=NOW)
    supply = iter(tokens)
    with pytest.raises(InvalidArgumentError, match=match):
        queue.replay(now=NOW, token=lambda: next(supply))
    assert queue.stats(now=NOW).in_flight == 0


def test_a_token_still_outstanding_cannot_be_reused() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    queue.put(intent("b", 1, shadow="cfg"), now=NOW)
    queue.replay(now=NOW, token=lambda: "t", shadow_name="cfg")
    with pytest.raises(InvalidArgumentError, match="twice"):
        queue.replay(now=NOW, token=lambda: "t", shadow_name=None)


def test_token_must_be_callable() -> None:
    with pytest.raises(InvalidArgumentError, match="callable"):
        fresh().replay(now=NOW, token="t1")  # type: ignore[arg-type]


# --- confirm, fail, replay again ---


def test_confirm_removes_the_batch_and_ignores_unknown_tokens() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    [batch] = replay_all(queue)
    queue.put(intent("b", 2), now=NOW)  # after the replay: not in the batch
    assert queue.confirm("nope") == ()
    assert queue.confirm(batch.client_token) == (1,)
    assert [item.seq for item in queue.pending()] == [2]
    assert queue.confirm(batch.client_token) == ()


def test_a_new_replay_forgets_earlier_tokens_of_the_same_shadows() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    token = token_counter()
    [old] = queue.replay(now=NOW, token=token)
    [new] = queue.replay(now=NOW, token=token)
    assert old.client_token != new.client_token
    assert queue.confirm(old.client_token) == ()
    assert queue.confirm(new.client_token) == (1,)


def test_an_intent_superseded_while_in_flight_is_not_confirmed_twice() -> None:
    queue = fresh()
    queue.put(intent("a", 1, ms=1), now=NOW)
    [batch] = replay_all(queue)
    queue.put(intent("a", 2, ms=2), now=NOW)
    assert queue.confirm(batch.client_token) == ()
    stats = queue.stats(now=NOW)
    assert (stats.count, stats.superseded, stats.confirmed) == (1, 1, 0)


def test_fail_drops_the_batch_as_rejected() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    [batch] = replay_all(queue)
    [record] = queue.fail(batch.client_token, reason="400 Invalid JSON", now=NOW + 5)
    assert (record.reason, record.detail, record.at) == ("rejected", "400 Invalid JSON", NOW + 5)
    assert queue.pending() == ()
    assert queue.fail(batch.client_token, reason="again", now=NOW) == ()
    with pytest.raises(InvalidArgumentError):
        queue.fail("x", reason=400, now=NOW)  # type: ignore[arg-type]


def test_fail_of_one_batch_of_a_group_keeps_what_the_others_carried() -> None:
    queue = fresh()
    queue.put(intent("sensors", None, ms=1), now=NOW)
    queue.put(intent(("sensors", "a"), 1, ms=2), now=NOW)
    queue.put(intent("mode", "eco", ms=3), now=NOW)
    reset, write = replay_all(queue)
    assert queue.confirm(reset.client_token) == ()
    dropped = queue.fail(write.client_token, reason="413", now=NOW)
    assert sorted(record.intent.seq for record in dropped) == sorted(write.seqs)
    # "mode" rode only in the accepted reset batch: it is confirmed, not dropped.
    assert queue.pending() == ()
    assert queue.stats(now=NOW).confirmed == 3 - len(write.seqs)


def test_batches_not_confirmed_are_replayed_with_new_tokens() -> None:
    queue = fresh()
    queue.put(intent("a", 1), now=NOW)
    token = token_counter()
    [lost] = queue.replay(now=NOW, token=token)
    [again] = queue.replay(now=NOW, token=token)
    assert again.request["state"] == lost.request["state"]
    assert again.seqs == lost.seqs


# --- stats and drops ---


def test_stats_report_counts_bytes_and_age() -> None:
    queue = fresh(limits=QueueLimits(max_intents=2))
    assert queue.stats(now=NOW) == QueueStats(
        count=0,
        bytes=0,
        oldest_age=None,
        oldest_created_at=None,
        shadows=0,
        in_flight=0,
        loaded=0,
        puts=0,
        confirmed=0,
        expired=0,
        queue_full=0,
        superseded=0,
        rejected=0,
    )
    first = intent("a", 1, created_at=NOW - 30, ms=1)
    queue.put(first, now=NOW)
    queue.put(intent("a", 2, ms=2), now=NOW)
    queue.put(intent("b", 3, shadow="cfg", ms=3), now=NOW)
    queue.put(intent("c", 4, ms=4), now=NOW)
    replay_all(queue)
    stats = queue.stats(now=NOW + 10)
    assert stats.count == 2
    assert stats.bytes == sum(item.size for item in queue.pending())
    assert stats.oldest_created_at == NOW
    assert stats.oldest_age == 10
    assert stats.shadows == 2
    assert stats.in_flight == 2
    assert (stats.puts, stats.superseded, stats.queue_full) == (4, 1, 1)
    assert len(queue.drops()) == 2
    assert all(isinstance(record, DropRecord) for record in queue.drops())


def test_drops_since_a_mark_returns_only_what_was_dropped_after_it() -> None:
    queue = fresh()
    queue.put(intent("a", 1, ms=1), now=NOW)
    queue.put(intent("a", 2, ms=2), now=NOW)
    mark = queue.drop_count
    assert mark == 1
    queue.put(intent("a", 3, ms=3), now=NOW)
    later = queue.drops(since=mark)
    assert [(record.intent.value, record.reason) for record in later] == [(2, "superseded")]
    assert [record.intent.value for record in queue.drops()] == [1, 2]
    assert queue.drops(since=queue.drop_count) == ()
    assert queue.drops(since=10**9) == ()
    with pytest.raises(InvalidArgumentError, match="since"):
        queue.drops(since=-1)


def test_only_the_latest_drop_records_are_kept_while_the_counters_count_every_drop() -> None:
    queue = fresh(limits=QueueLimits(max_drop_records=5))
    for value in range(1, 101):
        queue.put(intent("a", value, ms=value), now=NOW)
    assert queue.drop_count == 99
    assert queue.stats(now=NOW).superseded == 99
    kept = queue.drops()
    assert [record.intent.value for record in kept] == [95, 96, 97, 98, 99]
    assert len(queue._drops) <= 2 * 5  # memory stays bounded, whatever the number of drops
    # A reader that fell behind the kept window gets what is still kept, never a gap inside it.
    assert queue.drops(since=3) == kept
    assert [record.intent.value for record in queue.drops(since=97)] == [98, 99]


def test_oldest_age_is_never_negative() -> None:
    queue = fresh()
    queue.put(intent("a", 1, created_at=NOW + 100), now=NOW)
    assert queue.stats(now=NOW).oldest_age == 0


def test_limits_are_exposed() -> None:
    limits = QueueLimits(max_intents=5)
    queue = fresh(limits=limits, shadow_limits=ShadowLimits(max_depth=4))
    assert queue.limits is limits
    assert queue.shadow_limits.max_depth == 4


# --- reopening ---


def test_the_queue_reopens_from_sqlite_with_its_order(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with SQLiteStore(path) as store:
        queue = OfflineQueue(store)
        queue.put(intent("a", 1, ms=1), now=NOW)
        queue.put(intent("b", {"c": [1.0, "x"]}, ms=2, shadow="cfg"), now=NOW)
        queue.put(intent("a", 3, ms=3), now=NOW)
        before = queue.pending()
    with SQLiteStore(path) as store:
        reopened = OfflineQueue(store)
        assert reopened.pending() == before
        assert reopened.stats(now=NOW).loaded == 2
        assert reopened.put(intent("d", 4, ms=4), now=NOW).seq == 4
        # Coalescing works against what was loaded.
        assert reopened.put(intent("a", 5, ms=5), now=NOW).dropped[0].intent.seq == 3
        batches = replay_all(reopened)
        assert requests(batches) == [{"d": 4, "a": 5}, {"b": {"c": [1.0, "x"]}}]


def test_a_store_returning_seqs_out_of_order_is_refused() -> None:
    class Backwards(MemoryStore):
        def intents(self) -> list[Intent]:
            return list(reversed(super().intents()))

    store = Backwards()
    store.append(intent("a", 1))
    store.append(intent("b", 2))
    with pytest.raises(ShadowSyncError, match="seqs must increase"):
        OfflineQueue(store)


def test_results_are_frozen_values() -> None:
    result = PutResult(seq=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.seq = 2  # type: ignore[misc]
