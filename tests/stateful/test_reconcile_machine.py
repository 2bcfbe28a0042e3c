"""The reconciler on a pretend device, under random graphs, failures, target changes and reboots.

Components form a random dependency graph (each may depend on components declared before it),
with random update strategies and locks. Between steps the cloud sets new targets (also while
steps are under way), values start failing for a while or for good, the application holds and
releases its lock, handovers are signalled, time passes, a process of a component that does not
hand over dies, and the device reboots from the reconciler's saved JSON.

Throughout: no step is handed out before its dependencies are at their target; at most one step
per component is under way; a handover never stops the last running instance of a component it
keeps; attempts stay below the limit (the target is rolled back at the limit) and every
rollback's acknowledgement names the failing path; a retry is never further away than the
backoff's maximum, and a new target cancels every retry. At the end, once failures stop and
locks are released, what runs is the target in force.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from shadowsync import Backoff
from shadowsync._tree import MISSING, lookup, nested
from shadowsync.reconcile import (
    Action,
    Component,
    Phase,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    Step,
    UpdateStrategy,
)
from tests.reconcile_world import World

VALUES = ["v1", "v2", "v3", "v4"]
MAX_ATTEMPTS = 3
BACKOFF = Backoff(initial=0.5, multiplier=2, maximum=8, jitter=0.5)


@st.composite
def component_graphs(draw: Any) -> list[Component]:
    count = draw(st.integers(1, 5))
    components = []
    for index in range(count):
        depends = draw(st.sets(st.integers(0, index - 1), max_size=2)) if index else set()
        components.append(
            Component(
                name=f"c{index}",
                path=("apps", f"c{index}"),
                depends_on=[f"c{d}" for d in sorted(depends)],
                strategy=draw(st.sampled_from(list(UpdateStrategy))),
                lock=draw(st.sampled_from([None, "ota"])),
                handover_timeout=draw(st.sampled_from([0, 5, 30])),
            )
        )
    return components


class ReconcilingDevice(RuleBasedStateMachine):
    @initialize(
        components=component_graphs(), random=st.randoms(use_true_random=False), data=st.data()
    )
    def start(self, components: list[Component], random: Any, data: st.DataObject) -> None:
        self.components = {c.name: c for c in components}
        self.random = random
        self.config = ReconcileConfig(max_attempts=MAX_ATTEMPTS, backoff=BACKOFF)
        self.reconciler = Reconciler(components, random=random.random, config=self.config)
        self.world = World({c.name: c.path for c in components})
        self.now = 1000.0
        self.version = 0
        self.under_way: list[Step] = []
        self.reconciler.observe(self.world.observed(), self.now)
        self.set_target(data)

    # -- the cloud -------------------------------------------------------------------------

    @rule(data=st.data())
    def set_target(self, data: st.DataObject) -> None:
        values = {
            name: data.draw(st.sampled_from([*VALUES, None]), label=name)
            for name in self.components
        }
        for name, component in reversed(self.components.items()):
            if values[name] is not None:
                for dependency in component.depends_on:
                    values[dependency] = values[dependency] or "v1"
        target = nested(
            (c.path, values[name]) for name, c in self.components.items() if values[name]
        )
        self.version += 1
        if self.reconciler.status().retry_at is not None:
            event("new target while backing off")
        if self.reconciler.set_target(target, version=self.version, now=self.now):
            assert self.reconciler.status().retry_at is None
            # Only a handover that has started its new value keeps a deadline: its wait.
            assert self.reconciler.next_deadline() is None or any(
                c.strategy is UpdateStrategy.HANDOVER for c in self.components.values()
            )

    # -- the device ------------------------------------------------------------------------

    @rule()
    def plan(self) -> None:
        self.hand_out()

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        if self.under_way:
            self.answer_one(self.under_way.pop(data.draw(st.integers(0, len(self.under_way) - 1))))

    @rule(rounds=st.integers(1, 4))
    def work(self, rounds: int) -> None:
        # Plan-and-answer rounds in one rule: without it few runs get past the first steps.
        for _ in range(rounds):
            self.hand_out()
            while self.under_way:
                self.answer_one(self.under_way.pop(0))

    def hand_out(self) -> None:
        for step in self.reconciler.plan(self.now):
            component = self.components[step.component]
            target = self.reconciler.target
            assert target is not None
            for dependency in component.depends_on:
                path = self.components[dependency].path
                assert lookup(self.world.observed(), path) == lookup(target, path), (
                    f"{step} was handed out before {dependency} converged"
                )
            assert component.lock is None or component.lock not in self.reconciler.held, (
                f"{step} was handed out while its lock is held"
            )
            assert all(s.component != step.component for s in self.under_way)
            self.under_way.append(step)

    def answer_one(self, step: Step) -> None:
        component = self.components[step.component]
        if step.action is Action.STOP and component.strategy is UpdateStrategy.HANDOVER:
            target = self.reconciler.target
            assert target is not None
            if lookup(target, component.path) is not MISSING and step.version == (
                self.reconciler.version
            ):
                others = [v for v in self.world.running[component.name] if v != step.value]
                assert others, f"{step} would leave no instance of {component.name} running"
        before = self.reconciler.status().rolled_back_from
        self.world.answer(self.reconciler, step, self.now)
        after = self.reconciler.status().rolled_back_from
        acks = self.reconciler.take_acknowledgements()
        if after is not None and after != before:
            [ack] = acks
            event("rolled back")
            assert ack.desired_version == after
            failing = ack.rejected[0]
            assert failing.path == component.path
            assert failing.reason.startswith(("failed permanently", f"failed {MAX_ATTEMPTS} times"))
        else:
            assert acks == []
        if self.reconciler.status().retry_at is not None:
            event("backing off")

    @rule(value=st.sampled_from(VALUES), for_good=st.booleans())
    def break_value(self, value: str, for_good: bool) -> None:
        (self.world.broken_for_good if for_good else self.world.broken).add(value)

    @rule()
    def repair(self) -> None:
        self.world.broken.clear()

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        names = [
            name
            for name, c in self.components.items()
            if c.strategy is not UpdateStrategy.HANDOVER and self.world.running[name]
        ]
        if names:
            self.world.running[data.draw(st.sampled_from(names))].clear()
            self.reconciler.observe(self.world.observed(), self.now)

    @rule(hold=st.booleans())
    def lock(self, hold: bool) -> None:
        if hold:
            self.reconciler.hold("ota")
        else:
            self.reconciler.release("ota")

    @rule(data=st.data())
    def signal(self, data: st.DataObject) -> None:
        self.reconciler.signal(data.draw(st.sampled_from(sorted(self.components))), self.now)

    @rule(seconds=st.sampled_from([0.1, 1, 5, 30]))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def reboot(self) -> None:
        saved = ReconcilerState.from_json(self.reconciler.snapshot().to_json())
        held = self.reconciler.held
        self.reconciler = Reconciler(
            list(self.components.values()),
            random=self.random.random,
            config=self.config,
            state=saved,
        )
        for lock in held:
            self.reconciler.hold(lock)
        self.under_way.clear()
        for name, running in self.world.running.items():  # what was configured comes back
            self.world.running[name] = running[-1:]
        self.reconciler.observe(self.world.observed(), self.now)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def attempts_stay_below_the_limit(self) -> None:
        status = self.reconciler.status()
        if status.rolled_back_from is None:
            assert all(n < MAX_ATTEMPTS for n in status.attempts.values()), status

    @invariant()
    def retries_are_never_further_than_the_maximum(self) -> None:
        retry = self.reconciler.status().retry_at
        assert retry is None or retry <= self.now + BACKOFF.maximum

    def teardown(self) -> None:
        if not hasattr(self, "reconciler") or self.reconciler.target is None:
            return
        self.world.broken.clear()
        self.reconciler.release("ota")
        for step in self.under_way:
            self.answer_one(step)
        self.under_way.clear()
        for _ in range(1000):
            self.hand_out()
            if not self.under_way:
                deadline = self.reconciler.next_deadline()
                if deadline is None:
                    break
                self.now = max(self.now, deadline)
            while self.under_way:
                self.answer_one(self.under_way.pop(0))
        else:
            # Only a target rolled back to that fails for good may keep retrying (bounded).
            assert self.world.broken_for_good, "the reconciler did not come to rest"
        status = self.reconciler.status()
        target = self.reconciler.target
        if status.rolled_back_from is None or not self.world.broken_for_good:
            assert status.converged, status
        event(f"ends {status.phase.value}")
        if status.converged:
            assert target is not None
            assert status.phase in (Phase.CONVERGED, Phase.ROLLED_BACK)
            for component in self.components.values():
                wanted = lookup(target, component.path)
                # Nothing left over either: an old instance a handover should have stopped.
                assert self.world.running[component.name] == (
                    [] if wanted is MISSING else [wanted]
                ), (component.name, self.world.running)


ReconcilingDevice.TestCase.settings = settings(stateful_step_count=60)
TestReconcilingDevice = ReconcilingDevice.TestCase
