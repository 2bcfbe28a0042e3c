"""Join-semilattice laws of StampedState and convergence of its value, one law per test."""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from shadowsync._conflict.stamped import StampedState
from tests.strategies.causality import (
    Operation,
    model_value,
    operation_logs,
    slow,
    stamped_states,
    state_of,
)

if TYPE_CHECKING:
    import random


@given(stamped_states, stamped_states)
def test_join_is_commutative(a: StampedState, b: StampedState) -> None:
    assert a.join(b) == b.join(a)


@given(stamped_states, stamped_states, stamped_states)
def test_join_is_associative(a: StampedState, b: StampedState, c: StampedState) -> None:
    assert a.join(b).join(c) == a.join(b.join(c))


@given(stamped_states)
def test_join_is_idempotent(a: StampedState) -> None:
    assert a.join(a) == a


@given(stamped_states, stamped_states)
def test_join_is_an_upper_bound(a: StampedState, b: StampedState) -> None:
    # Joining again with either side changes nothing: the join already includes both.
    joined = a.join(b)
    assert joined.join(a) == joined
    assert joined.join(b) == joined


@slow
@given(st.lists(stamped_states, min_size=3, max_size=4))
def test_every_merge_order_of_replicas_gives_the_same_value(replicas: list[StampedState]) -> None:
    values = {
        repr(functools.reduce(StampedState.join, order).value())
        for order in itertools.permutations(replicas)
    }
    assert len(values) == 1


@slow
@given(st.lists(stamped_states, min_size=3, max_size=4))
def test_every_merge_order_of_replicas_gives_the_same_state(replicas: list[StampedState]) -> None:
    first, *others = (
        functools.reduce(StampedState.join, order) for order in itertools.permutations(replicas)
    )
    assert all(other == first for other in others)


@given(operation_logs, st.randoms(use_true_random=False))
def test_the_order_writes_arrive_in_does_not_matter(
    log: list[Operation], rng: random.Random
) -> None:
    shuffled = list(log)
    rng.shuffle(shuffled)
    assert state_of(shuffled) == state_of(log)


@given(operation_logs)
def test_value_is_every_write_replayed_in_stamp_order(log: list[Operation]) -> None:
    # Keeping one entry per path and dropping dominated ones loses nothing that shows.
    assert state_of(log).value() == model_value(log)


@slow
@given(st.lists(operation_logs, min_size=2, max_size=4))
def test_joined_replicas_show_every_write_they_received(logs: list[list[Operation]]) -> None:
    joined = functools.reduce(StampedState.join, map(state_of, logs))
    assert joined.value() == model_value(itertools.chain.from_iterable(logs))


@given(stamped_states)
def test_json_form_round_trips(a: StampedState) -> None:
    assert StampedState.from_json(a.to_json()) == a


@given(stamped_states)
def test_json_form_is_canonical(a: StampedState) -> None:
    assert StampedState.from_json(a.to_json()).to_json() == a.to_json()


@given(stamped_states)
def test_from_value_of_value_shows_the_same_value(a: StampedState) -> None:
    stamp = a.latest
    if stamp is None:
        assert a.value() == {}
        return
    assert StampedState.from_value(a.value(), stamp).value() == a.value()
