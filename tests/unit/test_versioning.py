"""Version checks: message classification, change classification, clocks as causality."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync._conflict.clocks import VectorClock
from shadowsync._conflict.versioning import (
    Causality,
    MessageClass,
    classify_change,
    classify_clocks,
    classify_message,
)
from shadowsync.errors import InvalidArgumentError


@pytest.mark.parametrize(
    ("message", "last_seen", "expected"),
    [
        (3, 8, MessageClass.STALE),
        (7, 8, MessageClass.STALE),
        (0, 8, MessageClass.STALE),
        (8, 8, MessageClass.CURRENT),
        (9, 8, MessageClass.NEXT),
        (10, 8, MessageClass.GAP),
        (1000, 8, MessageClass.GAP),
        (0, None, MessageClass.CURRENT),
        (1, None, MessageClass.NEXT),
        (2, None, MessageClass.GAP),
        (0, 0, MessageClass.CURRENT),
        (1, 0, MessageClass.NEXT),
    ],
)
def test_classify_message(message: int, last_seen: int | None, expected: MessageClass) -> None:
    assert classify_message(message, last_seen) is expected


def test_a_repeated_message_is_evaluated_again_not_dropped() -> None:
    result = classify_message(8, 8)
    assert result.evaluate
    assert not result.resync


def test_only_stale_messages_are_dropped_and_only_gaps_ask_for_a_get() -> None:
    assert [c.evaluate for c in MessageClass] == [False, True, True, True]
    assert [c.resync for c in MessageClass] == [False, False, False, True]


@pytest.mark.parametrize(
    ("message", "last_seen", "name"),
    [
        (-1, 3, "message_version"),
        (True, 3, "message_version"),
        (1.0, 3, "message_version"),
        ("4", 3, "message_version"),
        (4, -1, "last_seen_version"),
        (4, False, "last_seen_version"),
        (4, 2.5, "last_seen_version"),
    ],
)
def test_classify_message_refuses_bad_versions(message: Any, last_seen: Any, name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{name} must be a non-negative int"):
        classify_message(message, last_seen)


@given(
    versions=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    start=st.none() | st.integers(0, 3),
)
def test_duplicated_and_reordered_delivery_never_goes_back(
    versions: list[int], start: int | None
) -> None:
    # A client evaluates what classify_message lets through and tracks the greatest version.
    last_seen = start
    evaluated: list[int] = []
    for version in versions:
        verdict = classify_message(version, last_seen)
        if verdict.evaluate:
            evaluated.append(version)
            last_seen = version
    floor = 0 if start is None else start
    # Evaluated versions never go backwards, so an older state never overwrites a newer one.
    assert evaluated == sorted(evaluated)
    # The newest delivered version is always evaluated, at every delivery of it.
    newest = max(versions)
    if newest >= floor:
        assert evaluated.count(newest) == versions.count(newest)
        assert last_seen == newest
    # Nothing older than what was already evaluated got through.
    assert all(version >= floor for version in evaluated)


@given(versions=st.permutations(list(range(1, 9))))
def test_out_of_order_delivery_is_flagged_as_a_gap(versions: list[int]) -> None:
    last_seen: int | None = None
    gaps = 0
    for version in versions:
        verdict = classify_message(version, last_seen)
        gaps += verdict.resync
        if verdict.evaluate:
            last_seen = version
    in_order = versions == sorted(versions)
    assert (gaps == 0) == in_order


@pytest.mark.parametrize(
    ("base", "changed", "remote", "expected"),
    [
        (5, False, 5, Causality.IN_SYNC),
        (5, False, 6, Causality.FAST_FORWARD),
        (5, False, 9, Causality.FAST_FORWARD),
        (5, True, 5, Causality.LOCAL_FAST_FORWARD),
        (5, True, 6, Causality.CONCURRENT),
        (5, True, 4, Causality.STALE),
        (5, False, 4, Causality.STALE),
        (0, False, 0, Causality.IN_SYNC),
        (0, True, 1, Causality.CONCURRENT),
    ],
)
def test_classify_change(base: int, changed: bool, remote: int, expected: Causality) -> None:
    assert classify_change(base, changed, remote) is expected


@pytest.mark.parametrize(
    ("base", "changed", "remote", "message"),
    [
        (-1, False, 3, "base_version must be a non-negative int"),
        (None, False, 3, "base_version must be a non-negative int"),
        (3, False, -3, "remote_version must be a non-negative int"),
        (3, False, True, "remote_version must be a non-negative int"),
        (3, 1, 3, "local_changed must be a bool, got 1"),
        (3, None, 3, "local_changed must be a bool, got None"),
    ],
)
def test_classify_change_refuses_bad_input(
    base: Any, changed: Any, remote: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        classify_change(base, changed, remote)


def vc(**counters: int) -> VectorClock:
    return VectorClock(entries=counters)


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        (vc(cloud=2), vc(cloud=2), Causality.IN_SYNC),
        (vc(cloud=2), vc(cloud=3), Causality.FAST_FORWARD),
        (vc(cloud=2, device=1), vc(cloud=2), Causality.LOCAL_FAST_FORWARD),
        (vc(cloud=2, device=1), vc(cloud=3), Causality.CONCURRENT),
    ],
)
def test_classify_clocks(ours: VectorClock, theirs: VectorClock, expected: Causality) -> None:
    assert classify_clocks(ours, theirs) is expected


def test_classify_clocks_with_a_base_tells_stale_from_ahead() -> None:
    base = vc(cloud=2)
    ours = vc(cloud=2, device=1)
    assert classify_clocks(ours, vc(cloud=1), base=base) is Causality.STALE
    assert classify_clocks(ours, vc(cloud=1)) is Causality.LOCAL_FAST_FORWARD
    assert classify_clocks(ours, base, base=base) is Causality.LOCAL_FAST_FORWARD
    assert classify_clocks(ours, vc(cloud=3), base=base) is Causality.CONCURRENT
    assert classify_clocks(base, vc(cloud=3), base=base) is Causality.FAST_FORWARD


@given(
    base=st.integers(0, 5),
    changed=st.booleans(),
    remote=st.integers(0, 8),
)
def test_clocks_and_versions_agree_for_one_remote_writer(
    base: int, changed: bool, remote: int
) -> None:
    # The remote's version is the cloud's counter; a local change is a device event.
    base_clock = vc(cloud=base)
    ours = base_clock.increment("device") if changed else base_clock
    theirs = vc(cloud=remote)
    by_clock = classify_clocks(ours, theirs, base=base_clock)
    assert by_clock is classify_change(base, changed, remote)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (({"a": 1}, vc()), "ours"),
        ((vc(), None), "theirs"),
    ],
)
def test_classify_clocks_needs_clocks(args: tuple[Any, Any], name: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{name} must be a VectorClock"):
        classify_clocks(*args)


def test_classify_clocks_base_must_be_a_clock_or_none() -> None:
    with pytest.raises(InvalidArgumentError, match="base must be a VectorClock, got dict"):
        classify_clocks(vc(), vc(), base={})  # type: ignore[arg-type]
