"""A week offline: queue 10,000 intents over 20 shadows, then replay them.

``python -m benchmarks.offline [--smoke]``

A fleet of 4 devices, each with a classic shadow and 4 named shadows (telemetry, config,
diagnostics, location), is offline for a week. Over that week the devices make 10,000 changes,
stamped by one hybrid logical clock per device and spread evenly over the week: telemetry
overwritten again and again (most of the traffic), object merges (GPS fixes, sensor groups),
alarms raised and cleared (writes then deletes), a schedule reset then edited day by day (a
reset followed by merges, which takes a delete then a write on replay) and acknowledgements.

For a `SQLiteStore` (WAL, ``synchronous=FULL``, in a temporary directory) and a `MemoryStore`
it times:

* **put**: queuing all intents, one durable `put` each (coalescing happens here);
* **replay**: composing what is pending into update requests (`OfflineQueue.replay`);
* **confirm**: confirming every batch (the store deletes the intents).

It also times coalescing and replaying the *raw* log: all intents appended to a store without
coalescing (as a store written by something else, or by a queue that never coalesced), then
one `replay` that composes all of them. It reports intents per second, the number of updates
published against the 10,000 a device without a queue would publish, and checks that applying
the updates gives the same reported state as applying every intent on its own in stamp order.
``--smoke`` runs a tiny version (300 intents over 4 shadows) in well under 5 seconds; it checks
the same equivalence and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowsync import HLCStamp, ShadowDocument, ShadowLimits, apply_update, json_equal
from shadowsync._device.intent import ACK_PATH, Intent
from shadowsync._device.queue import OfflineQueue, QueueLimits
from shadowsync.stores import MemoryStore, SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync._device.replay import ReplayBatch
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync.stores import Store

WEEK = 7 * 24 * 3600
NOW = 1_700_000_000 + WEEK
"""The moment the devices come back online (epoch seconds)."""

SHADOW_KINDS: tuple[str | None, ...] = (None, "telemetry", "config", "diagnostics", "location")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROOMY = ShadowLimits(max_document_bytes=30 * 1024)


def _change(kind: str | None, rng: random.Random, step: int) -> tuple[tuple[str, ...], Any]:
    """One realistic change to a shadow of this kind: (path, value)."""
    roll = rng.random()
    if kind is None:
        if roll < 0.6:
            return ("status", "uptime"), step * 60
        if roll < 0.9:
            return ("status", "state"), rng.choice(["online", "idle", "busy"])
        return ("firmware",), {"version": f"1.{rng.randrange(3)}.{rng.randrange(10)}"}
    if kind == "telemetry":
        if roll < 0.7:
            sensor = rng.choice(["temperature", "humidity", "pressure"])
            return ("sensors", sensor), round(rng.uniform(0, 100), 2)
        if roll < 0.85:
            return ("sensors",), {
                "temperature": round(rng.uniform(15, 30), 1),
                "humidity": rng.randrange(20, 80),
            }
        return ("battery",), {"level": rng.randrange(101), "charging": rng.random() < 0.3}
    if kind == "config":
        if roll < 0.05:
            return ("schedule",), None
        if roll < 0.45:
            day = rng.choice(DAYS)
            return ("schedule", day), {"on": f"{rng.randrange(5, 9):02d}:00", "off": "22:00"}
        if roll < 0.75:
            return ("brightness",), rng.randrange(101)
        return ("mode",), rng.choice(["eco", "comfort", "away"])
    if kind == "diagnostics":
        alarm = f"a{rng.randrange(30):02d}"
        if roll < 0.3:
            return ("alarms", alarm), {"code": rng.randrange(100, 999), "since": step}
        if roll < 0.5:
            return ("alarms", alarm), None
        if roll < 0.8:
            counter = rng.choice(["reboots", "dropped_packets", "retries"])
            return ("counters", counter), step
        return ("errors",), [rng.randrange(100) for _ in range(rng.randrange(1, 5))]
    if roll < 0.8:
        return ("gps",), {
            "lat": round(rng.uniform(-90, 90), 5),
            "lon": round(rng.uniform(-180, 180), 5),
            "fix": rng.random() < 0.9,
        }
    return ("cell", "id"), f"cell-{rng.randrange(50)}"


def workload(count: int, things: int, shadow_kinds: tuple[str | None, ...]) -> list[Intent]:
    """``count`` intents spread evenly over a week, over ``things`` x ``shadow_kinds`` shadows."""
    rng = random.Random(20_240_611)
    start = NOW - WEEK + 60
    counters: dict[str, tuple[int, int]] = {}
    intents = []
    for step in range(count):
        thing = f"sensor-{rng.randrange(things):02d}"
        kind = rng.choice(shadow_kinds)
        created = start + step * (WEEK - 120) // count
        wall, counter = counters.get(thing, (0, -1))
        wall_ms = max(wall, created * 1000)
        counter = counter + 1 if wall_ms == wall else 0
        counters[thing] = (wall_ms, counter)
        stamp = HLCStamp(wall_ms=wall_ms, counter=counter, node=thing)
        if kind is None and rng.random() < 0.05:
            path: tuple[str, ...] = ACK_PATH
            value: JSONValue = {
                "desiredVersion": step,
                "timestamp": created,
                "applied": ["/mode"],
                "rejected": [],
                "pending": [],
            }
            intent_kind = "ack"
        else:
            path, value = _change(kind, rng, step)
            intent_kind = "report"
        intents.append(
            Intent(
                thing_name=thing,
                shadow_name=kind,
                kind="ack" if intent_kind == "ack" else "report",
                path=path,
                value=value,
                created_at=created,
                stamp=stamp,
            )
        )
    return intents


def _initial() -> JSONObject:
    """What the cloud held when the devices went offline."""
    return {
        "status": {"state": "online", "uptime": 0, "since": 1},
        "sensors": {"temperature": 20.0, "co2": 400},
        "schedule": {"mon": {"on": "07:00", "off": "22:00"}, "holiday": True},
        "alarms": {"a00": {"code": 500, "since": 0}, "old": {"code": 1, "since": 0}},
        "mode": "comfort",
    }


def _document() -> ShadowDocument:
    return apply_update(
        None, {"state": {"reported": _initial()}}, timestamp=1, limits=ROOMY
    ).document


def reference(intents: list[Intent]) -> dict[tuple[str, str | None], JSONObject]:
    """Every intent applied as its own update, in stamp order (what 10,000 updates would do)."""
    documents: dict[tuple[str, str | None], ShadowDocument] = {}
    ordered = sorted(enumerate(intents), key=lambda pair: (pair[1].stamp, pair[0]))
    for _, intent in ordered:
        key = (intent.thing_name, intent.shadow_name)
        documents[key] = apply_update(
            documents.get(key) or _document(),
            {"state": {"reported": intent.reported_patch()}},
            timestamp=2,
            limits=ROOMY,
        ).document
    return {key: document.reported for key, document in documents.items()}


def replayed(batches: tuple[ReplayBatch, ...]) -> dict[tuple[str, str | None], JSONObject]:
    """The replayed updates applied in order, as the cloud would."""
    documents: dict[tuple[str, str | None], ShadowDocument] = {}
    for batch in batches:
        key = (batch.thing_name, batch.shadow_name)
        documents[key] = apply_update(
            documents.get(key) or _document(), batch.request, timestamp=3, limits=ROOMY
        ).document
    return {key: document.reported for key, document in documents.items()}


def _tokens() -> Callable[[], str]:
    count = 0

    def token() -> str:
        nonlocal count
        count += 1
        return f"replay-{count}"

    return token


def run(store: Store, intents: list[Intent]) -> dict[str, Any]:
    """Put, replay and confirm on one store; timings and counts."""
    queue = OfflineQueue(store, limits=QueueLimits(max_intents=len(intents)))
    started = time.perf_counter()
    for intent in intents:
        queue.put(intent, now=intent.created_at)
    put_seconds = time.perf_counter() - started
    pending = len(queue.pending())
    started = time.perf_counter()
    batches = queue.replay(now=NOW, token=_tokens())
    replay_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches:
        queue.confirm(batch.client_token)
    confirm_seconds = time.perf_counter() - started
    stats = queue.stats(now=NOW)
    lost = stats.expired + stats.queue_full + stats.rejected
    return {
        "put_seconds": put_seconds,
        "replay_seconds": replay_seconds,
        "confirm_seconds": confirm_seconds,
        "pending": pending,
        "superseded": stats.superseded,
        "lost": lost,
        "left": stats.count,
        "batches": batches,
        "shadows": len({(batch.thing_name, batch.shadow_name) for batch in batches}),
    }


def run_raw(intents: list[Intent]) -> dict[str, Any]:
    """Coalesce and replay the raw log: every intent appended to the store, none coalesced."""
    store = MemoryStore()
    try:
        for intent in intents:
            store.append(intent)
        queue = OfflineQueue(store, limits=QueueLimits(max_intents=len(intents)))
        started = time.perf_counter()
        batches = queue.replay(now=NOW, token=_tokens())
        seconds = time.perf_counter() - started
        carried = len({seq for batch in batches for seq in batch.seqs})
    finally:
        store.close()
    return {"seconds": seconds, "batches": batches, "carried": carried}


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


def _check(
    name: str, expected: dict[tuple[str, str | None], JSONObject], batches: tuple[ReplayBatch, ...]
) -> bool:
    got = replayed(batches)
    differ = [
        key
        for key in set(expected) | set(got)
        if not json_equal(expected.get(key, {}), got.get(key, {}))
    ]
    if differ:
        print(f"  FAILED: {name}: {len(differ)} shadows differ from the reference", file=sys.stderr)
    return not differ


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if a replay does not match the reference."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks results")
    args = parser.parse_args(argv)
    count, things, kinds = (
        (300, 2, (None, "telemetry")) if args.smoke else (10_000, 4, SHADOW_KINDS)
    )
    intents = workload(count, things, kinds)
    shadows = len({(intent.thing_name, intent.shadow_name) for intent in intents})
    expected = reference(intents)
    ok = True
    print(f"offline queue: {count:,} intents over {shadows} shadows, spread over a week")
    print(f"without a queue a device publishes {count:,} updates, one per change\n")

    header = (
        f"{'store':<8} {'put/s':>8} {'pending':>8} {'replay ms':>10} {'updates':>8} "
        f"{'confirm ms':>11} {'total/s':>9}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as directory:
        stores: list[tuple[str, Callable[[], Store]]] = [
            ("sqlite", lambda: SQLiteStore(Path(directory) / "queue.db")),
            ("memory", MemoryStore),
        ]
        for name, make in stores:
            store = make()
            try:
                result = run(store, intents)
            finally:
                store.close()
            total = result["put_seconds"] + result["replay_seconds"] + result["confirm_seconds"]
            print(
                f"{name:<8} {_rate(count, result['put_seconds']):>8} {result['pending']:>8,} "
                f"{result['replay_seconds'] * 1000:>10.1f} {len(result['batches']):>8,} "
                f"{result['confirm_seconds'] * 1000:>11.1f} {_rate(count, total):>9}"
            )
            ok &= _check(name, expected, result["batches"])
            if result["lost"] or result["left"]:
                ok = False
                print(
                    f"  FAILED: {name}: {result['lost']} intents lost, "
                    f"{result['left']} left pending",
                    file=sys.stderr,
                )

    raw = run_raw(intents)
    print(
        f"\ncoalesce + replay of the raw log ({count:,} intents, none coalesced at put): "
        f"{raw['seconds'] * 1000:.1f} ms, {_rate(count, raw['seconds'])} intents/s, "
        f"{len(raw['batches'])} updates carrying {raw['carried']:,} intents"
    )
    ok &= _check("raw log", expected, raw["batches"])
    print(
        "\nput/s: durable puts per second, coalescing included; pending: intents left after "
        "coalescing;\ntotal/s: intents per second through put, replay and confirm."
    )
    print("replay equivalence: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
