"""The reconciler: step order per strategy, dependencies, locks, backoff, rollback, bad input."""

from __future__ import annotations

import pytest

from shadowsync import Backoff
from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile import (
    Action,
    Component,
    ComponentError,
    Phase,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    ReconcileStateError,
    StepError,
    TargetError,
    UpdateStrategy,
    change_actions,
)
from shadowsync.rules import Acknowledgement
from tests.reconcile_world import World, drive

NO_JITTER = ReconcileConfig(
    max_attempts=3, backoff=Backoff(initial=0.5, multiplier=2, maximum=60, jitter=0)
)


def one(strategy: UpdateStrategy | str, **extra: object) -> tuple[Reconciler, World]:
    component = Component(name="web", path=("apps", "web"), strategy=strategy, **extra)  # type: ignore[arg-type]
    reconciler = Reconciler([component], random=lambda: 0.0, config=NO_JITTER)
    return reconciler, World({"web": component.path})


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            "prepare-then-switch",
            [("prepare", "v2"), ("stop", "v1"), ("start", "v2")],
        ),
        (
            "stop-then-prepare",
            [("stop", "v1"), ("prepare", "v2"), ("start", "v2")],
        ),
        (
            "release-then-prepare",
            [("stop", "v1"), ("release", "v1"), ("prepare", "v2"), ("start", "v2")],
        ),
        (
            "handover",
            [("prepare", "v2"), ("start", "v2"), ("stop", "v1")],
        ),
    ],
)
def test_each_strategy_changes_a_running_value_in_its_order(
    strategy: str, expected: list[tuple[str, str]]
) -> None:
    reconciler, world = one(strategy)
    world.running["web"] = ["v1"]
    world.prepared["web"] = ["v1"]
    reconciler.observe(world.observed(), now=0)
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    drive(reconciler, world, now=0)
    assert [(action, value) for _, action, value in world.log] == expected
    assert world.observed() == {"apps": {"web": "v2"}}
    assert reconciler.status().phase is Phase.CONVERGED


@pytest.mark.parametrize("strategy", [s.value for s in UpdateStrategy])
def test_a_first_install_is_prepare_then_start_whatever_the_strategy(strategy: str) -> None:
    reconciler, world = one(strategy)
    reconciler.observe({}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    drive(reconciler, world, now=0)
    assert [(a, v) for _, a, v in world.log] == [("prepare", "v1"), ("start", "v1")]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("prepare-then-switch", [("stop", "v1")]),
        ("stop-then-prepare", [("stop", "v1")]),
        ("release-then-prepare", [("stop", "v1"), ("release", "v1")]),
        ("handover", [("stop", "v1")]),
    ],
)
def test_a_removal_stops_the_old_value(strategy: str, expected: list[tuple[str, str]]) -> None:
    reconciler, world = one(strategy)
    world.running["web"] = ["v1"]
    reconciler.observe(world.observed(), now=0)
    reconciler.set_target({}, version=3, now=0)
    drive(reconciler, world, now=0)
    assert [(a, v) for _, a, v in world.log] == expected
    assert world.observed() == {}


def test_change_actions_of_nothing_to_nothing_is_empty() -> None:
    from shadowsync._tree import MISSING

    assert change_actions(UpdateStrategy.HANDOVER, old=MISSING, new=MISSING) == ()


def test_handover_waits_for_the_signal_then_stops_the_old() -> None:
    reconciler, world = one("handover", handover_timeout=30)
    world.running["web"] = ["v1"]
    reconciler.observe(world.observed(), now=0)
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    for now in (0, 1):
        [step] = reconciler.plan(now)
        world.answer(reconciler, step, now)
    assert world.running["web"] == ["v1", "v2"]
    assert reconciler.plan(5) == []
    assert reconciler.next_deadline() == 31
    reconciler.signal("web", now=6)
    [stop] = reconciler.plan(6)
    assert (stop.action, stop.value) == (Action.STOP, "v1")


def test_handover_stops_the_old_at_the_timeout_without_a_signal() -> None:
    reconciler, world = one("handover", handover_timeout=10)
    world.running["web"] = ["v1"]
    reconciler.observe(world.observed(), now=0)
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    for now in (0, 0):
        [step] = reconciler.plan(now)
        world.answer(reconciler, step, now)
    assert reconciler.plan(9.9) == []
    [stop] = reconciler.plan(10)
    assert stop.action is Action.STOP


def test_a_step_waits_until_its_dependencies_converged() -> None:
    db = Component(name="db", path="db")
    web = Component(name="web", path="web", depends_on=["db"])
    reconciler = Reconciler([web, db], random=lambda: 0.0)
    world = World({"db": ("db",), "web": ("web",)})
    reconciler.observe({}, now=0)
    reconciler.set_target({"db": 1, "web": 1}, version=1, now=0)
    drive(reconciler, world, now=0)
    assert [name for name, _, _ in world.log] == ["db", "db", "web", "web"]


def test_a_held_lock_defers_the_update_and_says_so() -> None:
    reconciler, world = one("prepare-then-switch", lock="ota")
    world.running["web"] = ["v1"]
    reconciler.observe(world.observed(), now=0)
    reconciler.hold("ota")
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    assert reconciler.plan(0) == []
    status = reconciler.status()
    assert status.phase is Phase.BLOCKED
    assert status.blocked_on == ("web: lock 'ota' is held",)
    reconciler.release("ota")
    drive(reconciler, world, now=1)
    assert world.observed() == {"apps": {"web": "v2"}}


def test_failures_back_off_exponentially_then_roll_back_with_an_ack() -> None:
    reconciler, world = one("prepare-then-switch")
    reconciler.observe({}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    drive(reconciler, world, now=0)
    world.broken.add("v2")
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=100)
    retries = []
    now = 100.0
    for _ in range(20):
        steps = reconciler.plan(now)
        for step in steps:
            world.answer(reconciler, step, now)
        status = reconciler.status()
        if status.phase is Phase.ROLLED_BACK:
            break
        if not steps:
            deadline = reconciler.next_deadline()
            assert deadline is not None
            retries.append(deadline - now)
            now = deadline
    assert retries == [0.5, 1.0]
    [ack] = reconciler.take_acknowledgements()
    assert ack.desired_version == 2
    assert [(r.pointer, r.rule) for r in ack.rejected] == [("/apps/web", "reconcile:web")]
    assert ack.rejected[0].reason == "failed 3 times: v2 exited with status 1"
    drive(reconciler, world, now=now)
    assert world.observed() == {"apps": {"web": "v1"}}
    status = reconciler.status()
    assert (status.phase, status.version, status.rolled_back_from) == (Phase.ROLLED_BACK, 1, 2)
    assert status.converged
    # The same target delivered again is not tried again; a new one is.
    assert not reconciler.set_target({"apps": {"web": "v2"}}, version=5, now=now)
    assert reconciler.set_target({"apps": {"web": "v3"}}, version=6, now=now)
    assert reconciler.status().rolled_back_from is None


def test_a_permanent_failure_rolls_back_at_once_and_names_the_others() -> None:
    db = Component(name="db", path="db")
    web = Component(name="web", path="web")
    reconciler = Reconciler([db, web], random=lambda: 0.0, config=NO_JITTER)
    world = World({"db": ("db",), "web": ("web",)})
    reconciler.observe({}, now=0)
    reconciler.set_target({"db": "d1", "web": "w1"}, version=1, now=0)
    drive(reconciler, world, now=0)
    world.broken_for_good.add("w2")
    reconciler.set_target({"db": "d2", "web": "w2"}, version=2, now=10)
    drive(reconciler, world, now=10)
    [ack] = reconciler.take_acknowledgements()
    assert {r.pointer: r.reason for r in ack.rejected} == {
        "/web": "failed permanently: w2 exited with status 1",
        "/db": "rolled back to version 1 because web failed permanently",
    }
    assert Acknowledgement.from_dict(ack.to_dict()) == ack
    assert world.observed() == {"db": "d1", "web": "w1"}


def test_a_first_target_that_fails_rolls_back_to_what_ran_before() -> None:
    reconciler, world = one("prepare-then-switch")
    world.running["web"] = ["v0"]
    reconciler.observe(world.observed(), now=0)
    world.broken_for_good.add("v1")
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    drive(reconciler, world, now=0)
    [ack] = reconciler.take_acknowledgements()
    assert ack.rejected[0].pointer == "/apps/web"
    assert world.observed() == {"apps": {"web": "v0"}}
    assert reconciler.status().version is None


def test_a_new_target_cancels_the_backoff() -> None:
    reconciler, world = one("prepare-then-switch")
    reconciler.observe({}, now=0)
    world.broken.add("v1")
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    for step in reconciler.plan(0):
        world.answer(reconciler, step, 0)
    for step in reconciler.plan(0):
        world.answer(reconciler, step, 0)
    assert reconciler.status().phase is Phase.BACKING_OFF
    assert reconciler.status().attempts == {"web": 1}
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0.1)
    assert reconciler.next_deadline() is None
    [step] = reconciler.plan(0.1)
    assert (step.action, step.value) == (Action.PREPARE, "v2")


def test_a_step_of_a_replaced_target_is_answered_but_not_counted() -> None:
    reconciler, _world = one("prepare-then-switch")
    reconciler.observe({}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    [step] = reconciler.plan(0)
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    assert reconciler.plan(0) == []  # one step in flight per component
    reconciler.failed(step, error="disk full", now=1)
    assert reconciler.status().attempts == {}
    [step] = reconciler.plan(1)
    assert step.value == "v2"


def test_an_unknown_step_answer_is_refused() -> None:
    reconciler, _world = one("prepare-then-switch")
    reconciler.observe({}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    [step] = reconciler.plan(0)
    reconciler.done(step, observed={}, now=0)
    with pytest.raises(StepError, match="not a step in flight"):
        reconciler.done(step, observed={}, now=0)


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (
            [
                Component(name="a", path="a", depends_on=["b"]),
                Component(name="b", path="b", depends_on=["a"]),
            ],
            "cycle: a -> b -> a",
        ),
        ([Component(name="a", path="a", depends_on=["zz"])], "depends on 'zz'"),
        ([Component(name="a", path="a"), Component(name="a", path="b")], "two components"),
        ([Component(name="a", path="x"), Component(name="b", path=("x", "y"))], "overlapping"),
    ],
)
def test_declarations_that_cannot_be_planned_are_refused(
    components: list[Component], message: str
) -> None:
    with pytest.raises(ComponentError, match=message):
        Reconciler(components, random=lambda: 0.0)


def test_bad_component_values_are_refused() -> None:
    with pytest.raises(ComponentError, match="strategy"):
        Component(name="a", path="a", strategy="yolo")
    with pytest.raises(ComponentError, match="path"):
        Component(name="a", path=())
    with pytest.raises(ComponentError, match="accepts"):
        Component(name="a", path="a", accepts=["integer"])


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ([], "must be a JSON object"),
        ({"ghost": 1}, "no component owns /ghost"),
        ({"web": "v1"}, "depends on 'db', which the target does not hold"),
        ({"db": 5, "web": "v1"}, "takes object or string, got 5"),
        ({"db": float("nan"), "web": 1}, "not plain JSON"),
    ],
)
def test_a_target_that_cannot_be_planned_is_refused_and_the_last_kept(
    target: object, message: str
) -> None:
    db = Component(name="db", path="db", accepts=["string", "object"])
    web = Component(name="web", path="web", depends_on=["db"])
    reconciler = Reconciler([db, web], random=lambda: 0.0)
    reconciler.observe({}, now=0)
    reconciler.set_target({"db": "d1", "web": "w1"}, version=1, now=0)
    with pytest.raises(TargetError, match=message):
        reconciler.set_target(target, version=2, now=0)  # type: ignore[arg-type]
    assert reconciler.target == {"db": "d1", "web": "w1"}
    assert reconciler.version == 1


def test_the_durable_state_survives_a_reboot() -> None:
    reconciler, world = one("prepare-then-switch")
    reconciler.observe({}, now=0)
    world.broken.add("v1")
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    for _ in range(2):
        for step in reconciler.plan(0):
            world.answer(reconciler, step, 0)
    saved = ReconcilerState.from_json(reconciler.snapshot().to_json())
    assert saved == reconciler.snapshot()
    component = reconciler.components[0]
    again = Reconciler([component], random=lambda: 0.0, config=NO_JITTER, state=saved)
    again.observe(world.observed(), now=0.2)
    assert again.status().attempts == {"web": 1}
    assert again.plan(0.2) == []  # still backing off until 0.5
    assert again.next_deadline() == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "expected an object"),
        ('{"format": 2}', "format"),
        ('{"format": 1, "x": 1}', "unknown key"),
        ('{"format": 1, "version": -1}', "state.version"),
        ('{"format": 1, "attempts": {"web": 0}}', "state.attempts.web"),
        ('{"format": 1, "acknowledgements": [{}]}', "acknowledgements"),
    ],
)
def test_a_damaged_state_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ReconcileStateError, match=message):
        ReconcilerState.from_json(text)


def test_a_state_naming_unknown_components_is_refused() -> None:
    with pytest.raises(TargetError, match="unknown components: gone"):
        Reconciler(
            [Component(name="web", path="web")],
            random=lambda: 0.0,
            state=ReconcilerState(attempts={"gone": 1}),
        )


def test_status_reports_as_json() -> None:
    reconciler, _ = one("prepare-then-switch")
    assert reconciler.status().phase is Phase.IDLE
    reconciler.observe({}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=4, now=0)
    assert reconciler.status().to_dict() == {
        "status": "applying",
        "version": 4,
        "blockedOn": [],
        "attempts": [],
        "lastError": None,
        "retryAt": None,
        "rolledBackFrom": None,
    }


def test_a_new_target_while_a_handover_starts_its_new_value_still_stops_the_old() -> None:
    reconciler, world = one("handover", handover_timeout=5)
    reconciler.observe({"apps": {"web": "v1"}}, now=0)
    reconciler.set_target({"apps": {"web": "v1"}}, version=1, now=0)
    world.running["web"] = ["v1"]
    reconciler.set_target({"apps": {"web": "v2"}}, version=2, now=0)
    [prepare] = reconciler.plan(now=0)
    world.answer(reconciler, prepare, now=0)
    [start] = reconciler.plan(now=0)
    assert start.action is Action.START
    # A new target while v2 is starting beside v1: once v2 runs, v1 must still be stopped by
    # the handover, or it would be left running for good.
    reconciler.set_target({"apps": {"web": "v3"}}, version=3, now=0)
    world.answer(reconciler, start, now=0)
    drive(reconciler, world, now=0)
    assert world.running["web"] == ["v3"]


def test_releasing_a_lock_that_is_not_a_name_is_refused() -> None:
    reconciler, _ = one("handover")
    with pytest.raises(InvalidArgumentError, match="lock"):
        reconciler.release(["ota"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "why"),
    [
        ({"apps": {"web": float("nan")}}, "Out of range float"),
        ({"apps": {"web": {1, 2}}}, "set"),
        ({"apps": {"web": {1: "a", "1": "b"}}}, "key is not a str"),
    ],
)
def test_an_observed_state_that_cannot_be_saved_is_refused(observed: object, why: str) -> None:
    reconciler, _ = one("handover")
    with pytest.raises(InvalidArgumentError, match=why):
        reconciler.observe(observed, now=0)  # type: ignore[arg-type]
    reconciler.observe({"apps": {"web": "v1"}}, now=0)
    assert ReconcilerState.from_json(reconciler.snapshot().to_json()).baseline == {
        "apps": {"web": "v1"}
    }


def test_a_target_whose_keys_json_would_change_is_refused() -> None:
    reconciler, _ = one("handover")
    with pytest.raises(TargetError, match="key is not a str"):
        reconciler.set_target({"apps": {"web": {1: "a", "1": "b"}}}, version=1, now=0)


def test_accepts_of_unhashable_names_is_refused() -> None:
    with pytest.raises(ComponentError, match="accepts"):
        Component(name="web", path="web", accepts=[["string"]])
