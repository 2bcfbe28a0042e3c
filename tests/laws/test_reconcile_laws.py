"""Laws of target-state reconciliation, one per test: what each strategy's step order promises,
that planning hands a step out once, that a target delivered again changes nothing, and that the
saved state reads back as it was."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowsync._tree import MISSING
from shadowsync.reconcile import (
    Action,
    Component,
    Reconciler,
    ReconcilerState,
    UpdateStrategy,
    change_actions,
)
from shadowsync.rules import Acknowledgement, Rejection

strategies = st.sampled_from(list(UpdateStrategy))
values = st.one_of(st.just(MISSING), st.sampled_from(["v1", "v2", {"image": "a:1"}]))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
json_objects = st.dictionaries(
    st.text(min_size=1, max_size=3),
    st.recursive(
        json_leaves,
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
        max_leaves=4,
    ),
    max_size=3,
)
names = st.sampled_from(["db", "web", "cache"])


@given(strategies, values, values)
def test_a_new_value_is_prepared_before_it_starts_and_started_once(
    strategy: UpdateStrategy, old: object, new: object
) -> None:
    actions = change_actions(strategy, old=old, new=new)  # type: ignore[arg-type]
    if new is MISSING:
        assert Action.START not in actions
        assert Action.PREPARE not in actions
    else:
        assert actions.count(Action.START) == 1
        assert actions.index(Action.PREPARE) < actions.index(Action.START)


@given(strategies, values, values)
def test_an_old_value_is_stopped_once_and_only_if_there_is_one(
    strategy: UpdateStrategy, old: object, new: object
) -> None:
    actions = change_actions(strategy, old=old, new=new)  # type: ignore[arg-type]
    assert actions.count(Action.STOP) == (0 if old is MISSING else 1)


@given(values, values)
def test_a_handover_never_stops_the_old_value_before_the_new_one_started(
    old: object, new: object
) -> None:
    actions = change_actions(UpdateStrategy.HANDOVER, old=old, new=new)  # type: ignore[arg-type]
    if Action.STOP in actions and new is not MISSING:
        assert actions.index(Action.START) < actions.index(Action.STOP)


@given(st.dictionaries(names, st.sampled_from(["v1", "v2"])), st.floats(0, 1e6))
def test_a_step_is_handed_out_once(target: dict[str, str], now: float) -> None:
    reconciler = Reconciler(
        [Component(name=n, path=n) for n in ["db", "web", "cache"]], random=lambda: 0.5
    )
    reconciler.observe({}, now=now)
    reconciler.set_target(target, version=1, now=now)
    first = reconciler.plan(now)
    assert len(first) == len(target)
    assert reconciler.plan(now) == []


@given(st.dictionaries(names, st.sampled_from(["v1", "v2"])), st.integers(1, 100))
def test_the_same_target_again_changes_nothing(target: dict[str, str], later: int) -> None:
    reconciler = Reconciler(
        [Component(name=n, path=n) for n in ["db", "web", "cache"]], random=lambda: 0.5
    )
    reconciler.observe({"db": "v0"}, now=0)
    reconciler.set_target(target, version=1, now=0)
    steps = reconciler.plan(0)
    before = reconciler.snapshot()
    assert not reconciler.set_target(dict(target), version=1 + later, now=1)
    assert reconciler.snapshot() == before
    assert reconciler.in_flight == tuple(steps)


@given(
    target=st.none() | json_objects,
    version=st.none() | st.integers(0, 2**40),
    attempts=st.dictionaries(names, st.integers(1, 9)),
    retry_at=st.dictionaries(names, st.floats(0, 1e10)),
    errors=st.dictionaries(names, st.text(max_size=20)),
    rolled_back=st.none() | st.integers(0, 99),
    rejected=st.lists(names, unique=True, max_size=2),
)
def test_a_saved_state_reads_back_as_it_was(
    target: dict[str, object] | None,
    version: int | None,
    attempts: dict[str, int],
    retry_at: dict[str, float],
    errors: dict[str, str],
    rolled_back: int | None,
    rejected: list[str],
) -> None:
    acks = (
        [
            Acknowledgement(
                desired_version=rolled_back or 0,
                timestamp=1,
                rejected=[
                    Rejection(path=(name,), rule=f"reconcile:{name}", reason="x")
                    for name in rejected
                ],
            )
        ]
        if rejected
        else []
    )
    state = ReconcilerState(
        target=target,  # type: ignore[arg-type]
        version=version,
        last_good=target,  # type: ignore[arg-type]
        last_good_version=version,
        rolled_back_from=rolled_back,
        rejected_target=target,  # type: ignore[arg-type]
        attempts=attempts,
        retry_at=retry_at,
        errors=errors,
        last_error=next(iter(errors.values()), None),
        acknowledgements=acks,
    )
    assert ReconcilerState.from_json(state.to_json()) == state
