"""The cloud side: what one delta-event decision, an offline sync and a fleet report cost.

``python -m benchmarks.cloud [--smoke]``

* **resolve**: `handle_delta_event` on the 8 KB benchmark shadow (about 10% of its desired
  leaves pending, a third of those also changed by the device, so they conflict), with a
  history of 1, 100 and 1,000 records to replay for the base. It is compared in the same
  process with `apply_update` of the 8 KB update request (the write the decision leads to;
  timed in alternating batches with the decision by the suite's harness, so the ratio holds
  on a busy machine) and with deepdiff comparing the shadow's desired and reported sections
  (what a hand-written resolver would typically run). The project's target for the decision
  is at most 4x `apply_update`.
* **offline_sync**: 200 cached changes over 4 shadows of one device.
* **health_report**: a fleet of 1,000 devices with 4 shadows each.

* **resolver against moto**: the resolver Lambda handler on a moto server (`benchmarks.cloud_moto`)
  with histories of 1 and 10,000 records: invocations per second, DynamoDB items read and written
  per invocation, for a new event and for the same event delivered again.

``--smoke`` runs a small version in a few seconds and exits 1 if a decision is not
deterministic or its update does not apply. ``--profile`` also prints a cProfile of the decision
with a history of 1 record (the functions with the most time of their own, then the most time
with what they call).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import pstats
import random
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

from benchmarks.documents import LIMITS, make_case
from benchmarks.timing import FULL, SMOKE, Bench, measure_pair, repeated
from shadowsync import ResolutionPolicy, ShadowDocument, apply_update
from shadowsync.audit import AuditLog
from shadowsync.cloud import handle_delta_event, health_report, offline_sync

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync._json import JSONObject

T0 = 1_700_000_000

RESOLVE_TARGET = 4.0
"""The project's target for one decision on the 8 KB shadow, as a multiple of apply_update."""


def _time(call: Callable[[], object], *, budget: float) -> float:
    """Median seconds per call over repeats of an auto-sized loop."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        elapsed = time.perf_counter() - start
        if elapsed > budget / 10 or loops > 10_000:
            break
        loops *= 2
    samples = []
    for _ in range(5):
        gc.collect()
        start = time.perf_counter()
        for _ in range(loops):
            call()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def _leaves(section: JSONObject, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in section.items():
        if isinstance(value, dict) and value:
            out.extend(_leaves(value, (*prefix, key)))
        else:
            out.append((*prefix, key))
    return out


def _set(section: JSONObject, path: tuple[str, ...], value: Any) -> None:
    node: Any = section
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def resolver_inputs(history_length: int) -> tuple[dict[str, Any], ShadowDocument, AuditLog]:
    """An 8 KB shadow with pending and conflicting paths, and a history ending at its base."""
    case = make_case("8 KB", 8 * 1024, seed=7919 + 8 * 1024)
    base = ShadowDocument.from_dict(case.previous.to_dict())
    delta = base.delta or {}
    pending = _leaves(delta)
    log = AuditLog()
    state: dict[str, Any] | None = None
    reported = base.reported
    # A history of small reported changes that ends at the base state.
    for index in range(history_length):
        version = index + 1
        new = {"desired": base.desired, "reported": dict(reported, heartbeat=index)}
        if index == history_length - 1:
            new = {"desired": base.desired, "reported": reported}
        log.append(
            "gateway-1",
            "configuration",
            previous_state=state,
            new_state=new,
            version=version,
            timestamp=T0 + index,
            change_type="update",
            decision="accept",
            reason="benchmark history",
        )
        state = new
    # The device changes a third of the pending paths on its own: those conflict.
    device = base.reported
    for path in pending[::3]:
        if path[0] in device:
            _set(device, path, "device-" + "-".join(path))
    now = apply_update(
        None,
        {"state": {"desired": base.desired, "reported": device}},
        timestamp=T0 + history_length + 10,
        limits=LIMITS,
        previous_version=history_length,
    ).document
    event = {
        **((now.delta_metadata and {"state": now.delta}) or {}),
        "thingName": "gateway-1",
        "shadowName": "configuration",
        "version": now.version,
    }
    return event, now, log


def _resolve(
    event: dict[str, Any], shadow: ShadowDocument, log: AuditLog, policy: ResolutionPolicy
) -> object:
    return handle_delta_event(
        event, shadow, now=T0 + 10_000, history=log, policy=policy, limits=LIMITS
    )


def _call(function: Callable[[], object]) -> object:
    return function()


def profile(calls: int = 300) -> str:
    """cProfile of `handle_delta_event` on the 8 KB shadow with a history of 1 record."""
    event, shadow, log = resolver_inputs(1)
    resolve = functools.partial(_resolve, event, shadow, log, ResolutionPolicy())
    resolve()  # the shadow's own delta is computed once and kept, as in the timed runs
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        resolve()
    profiler.disable()
    out = io.StringIO()
    out.write(f"\n=== handle_delta_event x {calls} (8 KB, history 1) ===\n")
    for order in ("tottime", "cumulative"):
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(20)
    return out.getvalue()


def offline_inputs(changes: int) -> tuple[dict[str, Any], dict[str | None, Any]]:
    rng = random.Random(5)
    names = ["telemetry", "configuration", "maintenance", None]
    shadows: dict[str | None, Any] = {}
    for name in names:
        values = {f"k{i}": rng.randint(0, 100) for i in range(40)}
        shadows[name] = apply_update(
            None, {"state": {"reported": values}}, timestamp=T0 + rng.randint(0, 7200)
        ).document
    cached = [
        {
            "shadowName": rng.choice(names),
            "state": {f"k{rng.randint(0, 60)}": rng.randint(0, 100) for _ in range(3)},
            "timestamp": T0 + rng.randint(0, 7200),
        }
        for _ in range(changes)
    ]
    request = {"thingName": "gateway-1", "offlineDurationSeconds": 7200, "cachedChanges": cached}
    return request, shadows


def fleet_inputs(devices: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(11)
    fleet: dict[str, Any] = {}
    for n in range(devices):
        shadows: dict[str | None, ShadowDocument] = {}
        for name in (None, "configuration", "telemetry", "maintenance"):
            written = T0 - rng.choice((60, 600, 7200))
            state: dict[str, Any] = {"reported": {"rate": 30, "mode": "normal"}}
            if rng.random() < 0.2:
                state["desired"] = {"rate": 60}
            shadows[name] = apply_update(None, {"state": state}, timestamp=written).document
        fleet[f"device-{n:05d}"] = shadows
    return {
        "thingNames": sorted(fleet),
        "shadowNames": ["$default", "configuration", "telemetry", "maintenance"],
    }, fleet


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if a check fails."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cloud", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a small run that checks results")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of one decision"
    )
    args = parser.parse_args(argv)
    budget = 0.05 if args.smoke else 1.0
    lengths = (1, 10) if args.smoke else (1, 100, 1000)
    ok = True
    policy = ResolutionPolicy()

    case = make_case("8 KB", 8 * 1024, seed=7919 + 8 * 1024)

    def update(_: object) -> object:
        return apply_update(case.previous, case.request, timestamp=T0 + 60, limits=LIMITS)

    update_bench = Bench("apply_update(8 KB shadow, 8 KB request)", update, repeated(None))
    update_seconds = _time(functools.partial(update, None), budget=budget)
    from deepdiff import DeepDiff

    previous = case.previous
    diff_seconds = _time(lambda: DeepDiff(previous.desired, previous.reported), budget=budget)
    print("resolve a delta event on the 8 KB shadow (ratios: ours / peer)")
    header = f"{'history':>8} {'resolve µs':>11} {'/ apply_update':>15} {'/ DeepDiff':>11}"
    print(header)
    print("-" * len(header))
    ratios: dict[int, float] = {}
    for length in lengths:
        event, shadow, log = resolver_inputs(length)
        first = handle_delta_event(
            event, shadow, now=T0 + 10_000, history=log, policy=policy, limits=LIMITS
        )
        again = handle_delta_event(
            event, shadow, now=T0 + 10_000, history=log, policy=policy, limits=LIMITS
        )
        if first.to_json() != again.to_json() or first.record.checksum != again.record.checksum:
            print("  FAILED: the same event gave two decisions", file=sys.stderr)
            ok = False
        if first.update is not None:
            apply_update(shadow, first.update, timestamp=T0 + 10_000, limits=LIMITS)
        resolve = functools.partial(_resolve, event, shadow, log, policy)
        seconds = _time(resolve, budget=budget)
        decision, write = measure_pair(
            Bench("handle_delta_event", _call, repeated(resolve)),
            update_bench,
            SMOKE if args.smoke else FULL,
        )
        ratios[length] = decision.per_call_ns / write.per_call_ns
        print(
            f"{length:>8,} {seconds * 1e6:>11.0f} {ratios[length]:>15.2f} "
            f"{seconds / diff_seconds:>11.2f}"
        )
    print(
        f"(apply_update: {update_seconds * 1e6:.0f} µs, DeepDiff: {diff_seconds * 1e6:.0f} µs; "
        f"{len(first.report)} conflicts, {len(first.pending)} paths pending)"
    )
    verdict = "met" if ratios[lengths[0]] <= RESOLVE_TARGET else "NOT met"
    print(
        f"target: one decision (history {lengths[0]}) / apply_update <= {RESOLVE_TARGET:g}: "
        f"{ratios[lengths[0]]:.2f} ({verdict}; reported, not enforced)\n"
    )
    if args.profile:
        print(profile(30 if args.smoke else 300))

    changes = 40 if args.smoke else 200
    request, shadows = offline_inputs(changes)
    result = offline_sync(request, shadows, now=T0 + 7200)
    for decision in result.decisions:
        if decision.update is not None:
            apply_update(shadows[decision.shadow_name], decision.update, timestamp=T0 + 7200)
    seconds = _time(lambda: offline_sync(request, shadows, now=T0 + 7200), budget=budget)
    print(
        f"offline_sync: {changes} cached changes over 4 shadows in {seconds * 1e3:.1f} ms "
        f"({changes / seconds:,.0f} changes/s); {result.processed_changes} applied, "
        f"{result.conflicts_detected} clashed"
    )

    devices = 50 if args.smoke else 1000
    health_request, fleet = fleet_inputs(devices)
    seconds = _time(lambda: health_report(health_request, fleet, now=T0), budget=budget)
    report = health_report(health_request, fleet, now=T0)
    print(
        f"health_report: {devices:,} devices x 4 shadows in {seconds * 1e3:.1f} ms "
        f"({devices / seconds:,.0f} devices/s); {report.count('healthy')} healthy, "
        f"{report.count('warning')} warning, {report.count('offline')} offline"
    )
    if len(report.devices) != devices:
        print("  FAILED: the report lost devices", file=sys.stderr)
        ok = False

    from benchmarks.cloud_moto import run

    rows = run((1, 100) if args.smoke else (1, 10_000), 5 if args.smoke else 50)
    print("\nthe resolver handler against moto (items per invocation: read / written)")
    header = f"{'history':>8} {'invocations/s':>14} {'items':>8} {'retry/s':>8} {'items':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['history']:>8,} {row['per_second']:>14.1f} "
            f"{row['read']:>3} / {row['written']:<2} {row['replay_per_second']:>8.1f} "
            f"{row['replay_read']:>3} / {row['replay_written']:<2}"
        )
    if len({(row["read"], row["written"]) for row in rows}) != 1:
        print("  FAILED: the items per invocation grow with the history", file=sys.stderr)
        ok = False
    if any(row["replay_written"] for row in rows):
        print("  FAILED: a retried event wrote", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
