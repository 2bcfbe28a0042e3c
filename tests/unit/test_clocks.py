"""Vector clocks, HLC stamps and the hybrid logical clock: examples, edges and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from shadowsync import apply_update
from shadowsync._conflict.clocks import (
    MAX_HLC_COUNTER,
    MAX_HLC_WALL_MS,
    MAX_NODE_ID_LENGTH,
    MAX_VECTOR_CLOCK_ENTRIES,
    MAX_VECTOR_COUNTER,
    SYNC_KEY,
    VECTOR_CLOCK_KEY,
    ClockSkewError,
    HLCStamp,
    HybridLogicalClock,
    Ordering,
    VectorClock,
    check_node_id,
)
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowSyncError


def vc(**counters: int) -> VectorClock:
    return VectorClock(entries=counters)


def stamp(wall_ms: int, counter: int = 0, node: str = "n") -> HLCStamp:
    return HLCStamp(wall_ms=wall_ms, counter=counter, node=node)


# Node ids


def test_node_id_accepts_thing_names_and_unicode() -> None:
    assert check_node_id("thermostat-42") == "thermostat-42"
    assert check_node_id("x" * MAX_NODE_ID_LENGTH) == "x" * MAX_NODE_ID_LENGTH
    assert check_node_id("capteur-é-中") == "capteur-é-中"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("", "1 to 128 characters, got 0"),
        ("x" * (MAX_NODE_ID_LENGTH + 1), "1 to 128 characters, got 129"),
        ("a\nb", "contains '\\n'"),
        ("a\x7fb", "contains '\\x7f'"),
        ("a\ud800", "lone surrogates"),
        (7, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
    ],
)
def test_bad_node_ids_are_refused(node: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match="node id") as info:
        check_node_id(node)
    assert message in str(info.value)


def test_node_id_error_class_can_be_chosen() -> None:
    with pytest.raises(InvalidDocumentError):
        check_node_id("", InvalidDocumentError)


# Vector clocks


def test_empty_clock_counts_zero_everywhere() -> None:
    clock = VectorClock()
    assert len(clock) == 0
    assert clock.counter("anyone") == 0
    assert "anyone" not in clock
    assert clock.to_json() == {}


def test_zero_counters_are_dropped_so_equal_clocks_are_equal() -> None:
    assert vc(a=1, b=0) == vc(a=1)
    assert hash(vc(a=1, b=0)) == hash(vc(a=1))
    assert vc(a=0) == VectorClock()


def test_clock_is_a_sorted_read_only_mapping() -> None:
    clock = vc(b=2, a=1)
    assert list(clock) == ["a", "b"]
    assert clock["b"] == 2
    assert dict(clock) == {"a": 1, "b": 2}
    assert clock.entries == (("a", 1), ("b", 2))
    with pytest.raises(KeyError):
        clock["c"]
    assert clock != {"a": 1, "b": 2}  # a clock is a value of its own type


def test_clock_accepts_pairs_and_another_clock() -> None:
    assert VectorClock(entries=[("a", 2), ("b", 1)]) == vc(a=2, b=1)
    assert VectorClock(entries=vc(a=3)) == vc(a=3)


def test_increment_adds_one_and_leaves_the_original_alone() -> None:
    original = vc(a=1)
    bumped = original.increment("a").increment("b")
    assert dict(bumped) == {"a": 2, "b": 1}
    assert dict(original) == {"a": 1}


def test_merge_is_pointwise_max() -> None:
    assert dict(vc(a=3, b=1).merge(vc(b=4, c=2))) == {"a": 3, "b": 4, "c": 2}


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ({}, {}, Ordering.EQUAL),
        ({"a": 1}, {"a": 1}, Ordering.EQUAL),
        ({}, {"a": 1}, Ordering.BEFORE),
        ({"a": 1}, {"a": 2, "b": 1}, Ordering.BEFORE),
        ({"a": 2}, {"a": 1}, Ordering.AFTER),
        ({"a": 1, "b": 1}, {"b": 1}, Ordering.AFTER),
        ({"a": 1}, {"b": 1}, Ordering.CONCURRENT),
        ({"a": 2, "b": 1}, {"a": 1, "b": 2}, Ordering.CONCURRENT),
    ],
)
def test_compare(left: dict[str, int], right: dict[str, int], expected: Ordering) -> None:
    assert VectorClock(entries=left).compare(VectorClock(entries=right)) is expected


def test_dominates_means_after_or_equal() -> None:
    assert vc(a=2).dominates(vc(a=1))
    assert vc(a=1).dominates(vc(a=1))
    assert not vc(a=1).dominates(vc(a=2))
    assert not vc(a=1).dominates(vc(b=1))


def test_increment_at_the_maximum_is_refused() -> None:
    clock = vc(a=MAX_VECTOR_COUNTER)
    with pytest.raises(InvalidArgumentError, match="counter of node 'a' is at its maximum"):
        clock.increment("a")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("ab", "mapping or (node, counter) pairs, got str"),
        (5, "mapping or (node, counter) pairs, got int"),
        ([("a", 1, 2)], "must be a (node, counter) pair"),
        ({"a": -1}, "counter of node 'a' must be an int from 0"),
        ({"a": True}, "counter of node 'a' must be an int from 0"),
        ({"a": 1.0}, "counter of node 'a' must be an int from 0"),
        ({"a": MAX_VECTOR_COUNTER + 1}, "must be an int from 0 to 9007199254740991"),
        ({"": 1}, "node id must be 1 to 128 characters"),
        ([("a", 1), ("a", 2)], "node 'a' appears twice"),
        ({f"n{i}": 1 for i in range(MAX_VECTOR_CLOCK_ENTRIES + 1)}, "at most 32 nodes, got 33"),
    ],
)
def test_bad_constructor_input_is_refused(entries: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        VectorClock(entries=entries)
    assert message in str(info.value)


def test_merge_and_compare_need_a_clock() -> None:
    with pytest.raises(InvalidArgumentError, match="can only merge a VectorClock, got dict"):
        vc(a=1).merge({"a": 2})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="can only compare with a VectorClock"):
        vc(a=1).compare({"a": 2})  # type: ignore[arg-type]


def test_json_form_round_trips() -> None:
    clock = vc(cloud=3, device=12)
    assert clock.to_json() == {"cloud": 3, "device": 12}
    assert VectorClock.from_json(clock.to_json()) == clock
    assert VectorClock.from_json({}) == VectorClock()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([["a", 1]], "must be a JSON object, got list"),
        ("a", "must be a JSON object, got str"),
        ({"a": 0}, "counter of node 'a' must be an int from 1"),
        ({"a": -2}, "counter of node 'a' must be an int from 1"),
        ({"a": "1"}, "got '1'"),
        ({"a": 1.5}, "got 1.5"),
        ({"a": True}, "got True"),
        ({"a": None}, "got None"),
        ({"a": MAX_VECTOR_COUNTER + 1}, "from 1 to 9007199254740991"),
        ({"": 1}, "node id must be 1 to 128 characters"),
        ({"a\tb": 1}, "contains '\\t'"),
        ({1: 1}, "node id must be a string, got int"),
        ({f"n{i}": 1 for i in range(MAX_VECTOR_CLOCK_ENTRIES + 1)}, "at most 32 nodes, got 33"),
    ],
)
def test_bad_json_is_an_invalid_document(obj: object, message: str) -> None:
    with pytest.raises(InvalidDocumentError) as info:
        VectorClock.from_json(obj)
    assert message in str(info.value)


def test_clock_rides_under_reported_sync_key() -> None:
    clock = vc(cloud=1, device=2)
    assert clock.to_reported() == {SYNC_KEY: {VECTOR_CLOCK_KEY: {"cloud": 1, "device": 2}}}
    assert SYNC_KEY == "$sync"
    assert VECTOR_CLOCK_KEY == "vc"
    assert VectorClock.from_reported({"temp": 1, **clock.to_reported()}) == clock
    assert VectorClock.from_reported({}) == VectorClock()
    assert VectorClock.from_reported({SYNC_KEY: {}}) == VectorClock()


@pytest.mark.parametrize(
    ("reported", "message"),
    [
        ([], "reported must be a JSON object"),
        ({SYNC_KEY: 3}, "reported.$sync must be a JSON object, got int"),
        ({SYNC_KEY: {VECTOR_CLOCK_KEY: {"a": 0}}}, "reported.$sync.vc: vector clock counter"),
        ({SYNC_KEY: {VECTOR_CLOCK_KEY: [1]}}, "reported.$sync.vc: a vector clock must be"),
    ],
)
def test_bad_stored_clock_is_an_invalid_document(reported: Any, message: str) -> None:
    with pytest.raises(InvalidDocumentError) as info:
        VectorClock.from_reported(reported)
    assert message in str(info.value)


def test_stored_clock_survives_aws_updates_and_stays_out_of_the_delta() -> None:
    first = vc(cloud=1)
    created = apply_update(
        None,
        {"state": {"desired": {"temp": 21}, "reported": {"temp": 19, **first.to_reported()}}},
        timestamp=1700000000,
    )
    assert created.document.delta == {"temp": 21}
    stored = VectorClock.from_reported(created.document.reported)
    assert stored == first
    # A writer merges, increments, and writes the dominating clock; the deep merge keeps it.
    second = stored.merge(vc(device=4)).increment("device")
    updated = apply_update(
        created.document,
        {"state": {"reported": {"temp": 21, **second.to_reported()}}, "version": 1},
        timestamp=1700000001,
    )
    assert VectorClock.from_reported(updated.document.reported) == vc(cloud=1, device=5)
    assert updated.document.delta is None


# HLC stamps


def test_stamp_string_form_is_fixed_width() -> None:
    assert str(stamp(0, 0, "a")) == "000000000000000-00000-a"
    assert str(stamp(MAX_HLC_WALL_MS, MAX_HLC_COUNTER, "a")) == "999999999999999-65535-a"
    assert str(stamp(1700000000123, 42, "dev-1")) == "001700000000123-00042-dev-1"


def test_stamps_order_by_wall_then_counter_then_node() -> None:
    ordered = [stamp(1, 5, "z"), stamp(2, 0, "a"), stamp(2, 1, "a"), stamp(2, 1, "b")]
    assert sorted(ordered) == ordered
    assert sorted(str(s) for s in reversed(ordered)) == [str(s) for s in ordered]


def test_parse_round_trips_and_accepts_dashes_in_node() -> None:
    text = "001700000000123-00042-dev-1-a"
    parsed = HLCStamp.parse(text)
    assert parsed == stamp(1700000000123, 42, "dev-1-a")
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (42, "must be a string, got int"),
        ("", "is not an HLC stamp"),
        ("42-0-n", "is not an HLC stamp"),
        ("000000000000042-0-n", "is not an HLC stamp"),
        ("000000000000042-00000-", "is not an HLC stamp"),
        ("000000000000042-00000", "is not an HLC stamp"),
        ("0000000000000042-00000-n", "is not an HLC stamp"),
        ("00000000000004２-00000-n", "is not an HLC stamp"),  # a full-width digit  # noqa: RUF001
        (" 000000000000042-00000-n", "is not an HLC stamp"),
        ("000000000000042-65536-n", "counter 65536 is above 65535"),
        ("000000000000042-00000-a\nb", "contains '\\n'"),
        ("000000000000042-00000-" + "x" * (MAX_NODE_ID_LENGTH + 1), "is not an HLC stamp"),
    ],
)
def test_parse_refuses_anything_but_the_exact_form(text: object, message: str) -> None:
    with pytest.raises(InvalidDocumentError) as info:
        HLCStamp.parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"wall_ms": -1, "counter": 0, "node": "n"}, "wall_ms must be an int from 0"),
        ({"wall_ms": MAX_HLC_WALL_MS + 1, "counter": 0, "node": "n"}, "wall_ms must be an int"),
        ({"wall_ms": True, "counter": 0, "node": "n"}, "wall_ms must be an int"),
        ({"wall_ms": 1.0, "counter": 0, "node": "n"}, "wall_ms must be an int"),
        ({"wall_ms": 1, "counter": MAX_HLC_COUNTER + 1, "node": "n"}, "counter must be an int"),
        ({"wall_ms": 1, "counter": -1, "node": "n"}, "counter must be an int from 0 to 65535"),
        ({"wall_ms": 1, "counter": 0, "node": ""}, "node id must be 1 to 128"),
    ],
)
def test_bad_stamp_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        HLCStamp(**fields)
    assert message in str(info.value)


# Hybrid logical clock


def test_first_stamp_is_the_physical_time() -> None:
    clock = HybridLogicalClock("n")
    assert clock.last is None
    assert clock.now(0) == stamp(0, 0)
    assert clock.last == stamp(0, 0)


def test_now_follows_physical_time_and_counts_within_a_millisecond() -> None:
    clock = HybridLogicalClock("n")
    assert [clock.now(t) for t in (10, 10, 10, 11, 20)] == [
        stamp(10, 0),
        stamp(10, 1),
        stamp(10, 2),
        stamp(11, 0),
        stamp(20, 0),
    ]


def test_physical_clock_going_back_does_not_move_stamps_back() -> None:
    clock = HybridLogicalClock("n")
    clock.now(1000)
    assert clock.now(5) == stamp(1000, 1)
    assert clock.now(999) == stamp(1000, 2)
    assert clock.now(1001) == stamp(1001, 0)


def test_restart_with_persisted_last_continues_after_it() -> None:
    before = HybridLogicalClock("n")
    before.now(1_700_000_000_000)
    persisted = before.last
    # After a reboot the physical clock reads an hour earlier.
    after = HybridLogicalClock("n", last=persisted)
    assert after.last == persisted
    assert after.now(1_699_999_996_400) == stamp(1_700_000_000_000, 1)


def test_observe_a_remote_ahead_takes_its_wall_and_counts_past_it() -> None:
    clock = HybridLogicalClock("n")
    clock.now(100)
    assert clock.observe(stamp(500, 7, "m"), 120) == stamp(500, 8)
    assert clock.now(130) == stamp(500, 9)


def test_observe_a_remote_behind_counts_past_our_own() -> None:
    clock = HybridLogicalClock("n")
    clock.now(100)
    clock.now(100)
    assert clock.observe(stamp(50, 9, "m"), 90) == stamp(100, 2)


def test_observe_at_the_same_wall_takes_the_larger_counter() -> None:
    clock = HybridLogicalClock("n")
    clock.now(100)
    assert clock.observe(stamp(100, 4, "m"), 100) == stamp(100, 5)
    clock2 = HybridLogicalClock("n", last=stamp(100, 9))
    assert clock2.observe(stamp(100, 4, "m"), 100) == stamp(100, 10)


def test_observe_behind_physical_time_resets_the_counter() -> None:
    clock = HybridLogicalClock("n", last=stamp(100, 3))
    assert clock.observe(stamp(150, 3, "m"), 200) == stamp(200, 0)


def test_observe_without_history() -> None:
    assert HybridLogicalClock("n").observe(stamp(500, 2, "m"), 10) == stamp(500, 3)
    assert HybridLogicalClock("n").observe(stamp(5, 2, "m"), 10) == stamp(10, 0)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    clock = HybridLogicalClock("n", last=stamp(100, MAX_HLC_COUNTER))
    assert clock.now(100) == stamp(101, 0)
    remote = stamp(300, MAX_HLC_COUNTER, "m")
    assert HybridLogicalClock("n").observe(remote, 0) == stamp(301, 0)


def test_the_last_millisecond_cannot_be_passed() -> None:
    clock = HybridLogicalClock("n", last=stamp(MAX_HLC_WALL_MS, MAX_HLC_COUNTER))
    with pytest.raises(InvalidArgumentError, match="has reached the largest wall_ms"):
        clock.now(0)
    assert clock.last == stamp(MAX_HLC_WALL_MS, MAX_HLC_COUNTER)


def test_skew_guard_refuses_a_stamp_too_far_ahead_and_keeps_the_clock() -> None:
    clock = HybridLogicalClock("n", max_offset_ms=1000)
    clock.now(5000)
    far = stamp(7001, 0, "m")
    with pytest.raises(ClockSkewError) as info:
        clock.observe(far, 6000)
    err = info.value
    assert isinstance(err, ShadowSyncError)
    assert (err.remote, err.physical_ms, err.max_offset_ms, err.offset_ms) == (
        far,
        6000,
        1000,
        1001,
    )
    assert "1001 ms ahead of local physical time 6000; at most 1000 ms is allowed" in str(err)
    assert clock.last == stamp(5000, 0)
    # Exactly at the limit is accepted.
    assert clock.observe(stamp(7000, 0, "m"), 6000) == stamp(7000, 1)


def test_skew_guard_ignores_remote_stamps_behind() -> None:
    clock = HybridLogicalClock("n", max_offset_ms=0)
    assert clock.observe(stamp(10, 0, "m"), 5000) == stamp(5000, 0)
    assert clock.max_offset_ms == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"node": ""}, "node id must be 1 to 128"),
        ({"node": "n", "max_offset_ms": -1}, "max_offset_ms must be a non-negative int or None"),
        ({"node": "n", "max_offset_ms": True}, "max_offset_ms must be a non-negative int"),
        ({"node": "n", "last": "000000000000001-00000-n"}, "last must be an HLCStamp or None"),
        ({"node": "n", "last": HLCStamp(wall_ms=1, counter=0, node="m")}, "issued by node 'm'"),
    ],
)
def test_bad_clock_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        HybridLogicalClock(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("physical", [-1, True, 1.5, MAX_HLC_WALL_MS + 1, "5"])
def test_bad_physical_time_is_refused(physical: Any) -> None:
    clock = HybridLogicalClock("n")
    with pytest.raises(InvalidArgumentError, match="physical_ms must be an int from 0"):
        clock.now(physical)
    with pytest.raises(InvalidArgumentError, match="physical_ms must be an int from 0"):
        clock.observe(stamp(1), physical)
    assert clock.last is None


def test_observe_needs_a_stamp() -> None:
    with pytest.raises(InvalidArgumentError, match="remote must be an HLCStamp, got str"):
        HybridLogicalClock("n").observe("000000000000001-00000-m", 1)  # type: ignore[arg-type]


def test_clock_repr_shows_its_state() -> None:
    clock = HybridLogicalClock("n", max_offset_ms=5)
    clock.now(3)
    assert repr(clock) == (
        "HybridLogicalClock('n', max_offset_ms=5, last=HLCStamp(wall_ms=3, counter=0, node='n'))"
    )
    assert clock.node == "n"
