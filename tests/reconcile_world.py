"""A pretend device for reconciler tests: components as lists of running instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shadowsync._tree import nested
from shadowsync.reconcile import Action, Reconciler, Step

if TYPE_CHECKING:
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync._tree import Path


class World:
    """What runs on the pretend device: per component path, the running values in start order.

    The observed state shows the newest running value of each component; ``broken`` values
    fail to start (temporarily, or for good when listed in ``broken_for_good``).
    """

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.running: dict[str, list[JSONValue]] = {name: [] for name in paths}
        self.prepared: dict[str, list[JSONValue]] = {name: [] for name in paths}
        self.broken: set[str] = set()
        self.broken_for_good: set[str] = set()
        self.log: list[tuple[str, str, JSONValue]] = []

    def observed(self) -> JSONObject:
        return nested(
            (self.paths[name], values[-1]) for name, values in self.running.items() if values
        )

    def run(self, step: Step) -> str | None:
        """Carry out ``step``; the error text if it failed."""
        self.log.append((step.component, step.action.value, step.value))
        name, value = step.component, step.value
        if step.action is Action.PREPARE:
            if value not in self.prepared[name]:
                self.prepared[name].append(value)
        elif step.action is Action.START:
            if str(value) in self.broken or str(value) in self.broken_for_good:
                return f"{value} exited with status 1"
            if value not in self.running[name]:
                self.running[name].append(value)
        elif step.action is Action.STOP:
            if value in self.running[name]:
                self.running[name].remove(value)
        elif step.action is Action.RELEASE and value in self.prepared[name]:
            self.prepared[name].remove(value)
        return None

    def answer(self, reconciler: Reconciler, step: Step, now: float) -> None:
        error = self.run(step)
        if error is None:
            reconciler.done(step, observed=self.observed(), now=now)
        else:
            permanent = str(step.value) in self.broken_for_good
            reconciler.failed(
                step, error=error, permanent=permanent, observed=self.observed(), now=now
            )


def drive(reconciler: Reconciler, world: World, now: float, *, rounds: int = 200) -> float:
    """Plan and answer until nothing is left to do; follow deadlines. The time reached."""
    for _ in range(rounds):
        steps = reconciler.plan(now)
        if not steps:
            deadline = reconciler.next_deadline()
            if deadline is None:
                return now
            now = max(now, deadline)
            continue
        for step in steps:
            world.answer(reconciler, step, now)
    raise AssertionError("the reconciler did not come to rest")
