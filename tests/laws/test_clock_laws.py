"""Algebraic laws of vector clocks and hybrid logical clocks, one law per test."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from shadowsync._conflict.clocks import HLCStamp, HybridLogicalClock, Ordering, VectorClock
from tests.strategies.causality import (
    ClockEvent,
    clock_events,
    hlc_stamps,
    node_ids,
    physical_times,
    vector_clocks,
)

# Vector clocks


@given(vector_clocks(), vector_clocks())
def test_merge_is_commutative(a: VectorClock, b: VectorClock) -> None:
    assert a.merge(b) == b.merge(a)


@given(vector_clocks(), vector_clocks(), vector_clocks())
def test_merge_is_associative(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(vector_clocks())
def test_merge_is_idempotent(a: VectorClock) -> None:
    assert a.merge(a) == a


@given(vector_clocks(), vector_clocks())
def test_merge_is_after_or_equal_to_both(a: VectorClock, b: VectorClock) -> None:
    merged = a.merge(b)
    assert merged.compare(a) in (Ordering.AFTER, Ordering.EQUAL)
    assert merged.compare(b) in (Ordering.AFTER, Ordering.EQUAL)


@given(vector_clocks(), vector_clocks(), node_ids)
def test_merge_is_the_least_upper_bound(a: VectorClock, b: VectorClock, node: str) -> None:
    # No counter of the merge is higher than the larger of the two it came from.
    merged = a.merge(b)
    assert merged.counter(node) == max(a.counter(node), b.counter(node))
    assert set(merged) == set(a) | set(b)


@given(vector_clocks(), vector_clocks())
def test_compare_equal_iff_merge_adds_nothing_either_way(a: VectorClock, b: VectorClock) -> None:
    assert (a.compare(b) is Ordering.EQUAL) == (a.merge(b) == a == b)


@given(vector_clocks(), vector_clocks())
def test_before_iff_merge_gives_the_other(a: VectorClock, b: VectorClock) -> None:
    assert (a.compare(b) in (Ordering.BEFORE, Ordering.EQUAL)) == (a.merge(b) == b)


@given(vector_clocks(), vector_clocks())
def test_compare_is_antisymmetric(a: VectorClock, b: VectorClock) -> None:
    mirror = {
        Ordering.BEFORE: Ordering.AFTER,
        Ordering.AFTER: Ordering.BEFORE,
        Ordering.EQUAL: Ordering.EQUAL,
        Ordering.CONCURRENT: Ordering.CONCURRENT,
    }
    assert b.compare(a) is mirror[a.compare(b)]


@given(vector_clocks(), vector_clocks(), vector_clocks())
def test_before_is_transitive(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    # Make a <= b <= c by construction, then compare the ends.
    low, mid, high = a, a.merge(b), a.merge(b).merge(c)
    assert low.compare(high) in (Ordering.BEFORE, Ordering.EQUAL)
    if low.compare(mid) is Ordering.BEFORE or mid.compare(high) is Ordering.BEFORE:
        assert low.compare(high) is Ordering.BEFORE


@given(vector_clocks(), node_ids)
def test_increment_makes_after(a: VectorClock, node: str) -> None:
    assert a.increment(node).compare(a) is Ordering.AFTER


@given(vector_clocks(), node_ids, node_ids)
def test_independent_increments_are_concurrent(a: VectorClock, x: str, y: str) -> None:
    left, right = a.increment(x), a.increment(y)
    assert left.compare(right) is (Ordering.EQUAL if x == y else Ordering.CONCURRENT)


@given(vector_clocks())
def test_vector_clock_json_round_trips(a: VectorClock) -> None:
    assert VectorClock.from_json(a.to_json()) == a


@given(vector_clocks())
def test_vector_clock_reported_round_trips(a: VectorClock) -> None:
    assert VectorClock.from_reported({"other": 1, **a.to_reported()}) == a


# Hybrid logical clocks


def run(clock: HybridLogicalClock, event: ClockEvent) -> tuple[HybridLogicalClock, HLCStamp]:
    """Apply one event; a restart rebuilds the clock from its persisted last stamp."""
    if event.kind == "restart":
        clock = HybridLogicalClock(clock.node, last=clock.last)
        return clock, clock.now(event.physical_ms)
    if event.kind == "observe":
        assert event.remote is not None
        return clock, clock.observe(event.remote, event.physical_ms)
    return clock, clock.now(event.physical_ms)


@given(st.lists(clock_events, min_size=1, max_size=25))
def test_hlc_stamps_strictly_increase_per_node(events: list[ClockEvent]) -> None:
    clock = HybridLogicalClock("local")
    issued: list[HLCStamp] = []
    for event in events:
        clock, stamp = run(clock, event)
        issued.append(stamp)
        assert clock.last == stamp
    assert all(earlier < later for earlier, later in itertools.pairwise(issued))


@given(st.lists(clock_events, min_size=1, max_size=25))
def test_hlc_receive_is_after_the_send(events: list[ClockEvent]) -> None:
    clock = HybridLogicalClock("local")
    for event in events:
        clock, stamp = run(clock, event)
        if event.remote is not None:
            assert stamp > event.remote


@given(st.lists(clock_events, min_size=1, max_size=25))
def test_hlc_wall_is_never_behind_physical_time(events: list[ClockEvent]) -> None:
    clock = HybridLogicalClock("local")
    for event in events:
        clock, stamp = run(clock, event)
        assert stamp.wall_ms >= event.physical_ms


@given(st.lists(clock_events, min_size=1, max_size=25))
def test_hlc_wall_only_leads_by_what_it_has_seen(events: list[ClockEvent]) -> None:
    # The wall part never runs ahead of the greatest physical or remote time seen, except by
    # one millisecond for each counter overflow.
    clock = HybridLogicalClock("local")
    seen = 0
    previous_wall = -1
    borrowed = 0
    for event in events:
        seen = max(seen, event.physical_ms, event.remote.wall_ms if event.remote else 0)
        clock, stamp = run(clock, event)
        if stamp.counter == 0 and stamp.wall_ms > seen:
            borrowed += stamp.wall_ms > previous_wall
        assert stamp.wall_ms <= seen + borrowed
        previous_wall = stamp.wall_ms


@given(st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), physical_times), max_size=25))
def test_hlc_messages_preserve_happened_before(steps: list[tuple[str, int]]) -> None:
    # Three nodes pass one token around: each hop is a send followed by a receive, so the
    # stamps along the chain must increase even though the nodes' physical clocks disagree.
    clocks = {node: HybridLogicalClock(node) for node in ("x", "y", "z")}
    token = clocks["x"].now(0)
    for node, physical in steps:
        received = clocks[node].observe(token, physical)
        assert received > token
        token = clocks[node].now(physical)
        assert token > received


@given(hlc_stamps())
def test_hlc_string_form_round_trips(stamp: HLCStamp) -> None:
    assert HLCStamp.parse(str(stamp)) == stamp


@given(hlc_stamps(), hlc_stamps())
def test_hlc_string_form_sorts_like_stamps(a: HLCStamp, b: HLCStamp) -> None:
    assert (str(a) < str(b)) == (a < b)
    assert (str(a) == str(b)) == (a == b)


@given(
    hlc_stamps(st.text(min_size=1, max_size=4).filter(lambda s: s.isprintable())),
    hlc_stamps(st.text(min_size=1, max_size=4).filter(lambda s: s.isprintable())),
)
def test_hlc_string_form_sorts_like_stamps_for_any_node_text(a: HLCStamp, b: HLCStamp) -> None:
    assert (str(a) < str(b)) == (a < b)
