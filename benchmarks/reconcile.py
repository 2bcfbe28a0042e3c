"""Planning a target of 1,000 components with 10% changed.

``python -m benchmarks.reconcile [--smoke]``

A device runs 1,000 components in chains of ten (each depends on the one before it, so a
change deep in a chain waits for its dependencies), every one observed at its target; then a
new target changes 10% of them, spread over the chains. It times, each as the median of several
repeats:

* **first plan**: `Reconciler.set_target` plus the first `Reconciler.plan` on a reconciler that
  had converged (what a device pays when a new target arrives);
* **idle plan**: `plan` when nothing is left to do (what a device pays on every loop);
* **apply**: every round of plan and answer until the new target has converged.

It reports them against `compute_delta` of the same target and observed state (what the shadow
service computes for a delta), as a ratio, and checks that the first plan hands out exactly the
changed components whose dependencies are at their target and that the apply converges.
``--smoke`` runs 100 components once and exits 1 on a wrong result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import TYPE_CHECKING

from shadowsync import compute_delta
from shadowsync._tree import place
from shadowsync.reconcile import Component, Reconciler, Step

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync._json import JSONObject

CHAIN = 10


def _components(count: int) -> list[Component]:
    return [
        Component(
            name=f"c{i}",
            path=("apps", f"c{i}"),
            depends_on=[f"c{i - 1}"] if i % CHAIN else [],
        )
        for i in range(count)
    ]


def _states(count: int) -> tuple[JSONObject, JSONObject, set[str]]:
    """The observed state, the new target, and the components it changes (every tenth, shifted
    along the chains so that some changes wait for others)."""
    observed: JSONObject = {
        "apps": {f"c{i}": {"image": "app:1", "env": {"N": str(i)}} for i in range(count)}
    }
    target: JSONObject = {
        "apps": {f"c{i}": {"image": "app:1", "env": {"N": str(i)}} for i in range(count)}
    }
    changed = {f"c{i}" for i in range(count) if i % CHAIN == (i // CHAIN) % CHAIN}
    for name in changed:
        place(target, ("apps", name, "image"), "app:2")
    return observed, target, changed


def _converged(components: list[Component], observed: JSONObject) -> Reconciler:
    reconciler = Reconciler(components, random=lambda: 0.5)
    reconciler.observe(observed, now=0)
    reconciler.set_target(observed, version=1, now=0)
    assert reconciler.status().converged
    return reconciler


def _median(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _apply(reconciler: Reconciler, observed: JSONObject) -> int:
    """Plan and answer (every step succeeds at once) until converged; the steps run."""
    apps = observed["apps"]
    assert isinstance(apps, dict)
    current: JSONObject = {"apps": dict(apps)}
    count, now = 0, 1.0
    while steps := reconciler.plan(now):
        for step in steps:
            count += 1
            _act(current, step)
            reconciler.done(step, observed=current, now=now)
        now += 1
    return count


def _act(current: JSONObject, step: Step) -> None:
    apps = current["apps"]
    assert isinstance(apps, dict)
    if step.action.value == "stop":
        apps.pop(step.component, None)
    elif step.action.value == "start":
        apps[step.component] = step.value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small run that checks results")
    args = parser.parse_args(argv)
    count, repeats = (100, 1) if args.smoke else (1000, 15)
    components = _components(count)
    observed, target, changed = _states(count)
    ready = {n for n in changed if int(n[1:]) % CHAIN == 0 or f"c{int(n[1:]) - 1}" not in changed}

    def first_plan() -> list[Step]:
        reconciler = fresh.pop()
        reconciler.set_target(target, version=2, now=1)
        return reconciler.plan(now=1)

    fresh = [_converged(components, observed) for _ in range(repeats + 1)]
    steps = first_plan()
    planned = {step.component for step in steps}
    first = _median(first_plan, repeats)
    idle_reconciler = _converged(components, observed)
    idle = _median(lambda: idle_reconciler.plan(now=1), repeats)
    delta = _median(lambda: compute_delta(target, observed), repeats)
    applying = [_converged(components, observed) for _ in range(repeats + 1)]
    for reconciler in applying:
        reconciler.set_target(target, version=2, now=1)
    run_steps = _apply(applying.pop(), observed)
    apply_time = _median(lambda: _apply(applying.pop(), observed), repeats)

    ok = planned == ready and run_steps == 3 * len(changed)
    print(f"reconcile: {count} components, {len(changed)} changed ({len(ready)} runnable at once)")
    print(f"  compute_delta {delta * 1e3:8.3f} ms  (the shadow's delta of the same states)")
    print(f"  first plan    {first * 1e3:8.3f} ms  ({first / delta:6.1f}x compute_delta)")
    print(f"  idle plan     {idle * 1e3:8.3f} ms  ({idle / delta:6.1f}x compute_delta)")
    print(f"  apply         {apply_time * 1e3:8.3f} ms  for {run_steps} steps")
    if not ok:
        print(f"  WRONG: planned {sorted(planned ^ ready)} differ, {run_steps} steps run")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
