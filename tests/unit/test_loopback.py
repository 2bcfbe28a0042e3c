"""The loopback pair and its fault injector: a session and the in-memory service, faulty net."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from shadowsync._device.config import SessionConfig
from shadowsync._device.queue import QueueLimits
from shadowsync._device.state import SessionState
from shadowsync._fakes.loopback import FaultInjector, Faults, LoopbackPair
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import Dropped, IntentsConfirmed, IntentsQueued, ShadowDeleted
from shadowsync.rules import Range, RuleSet
from shadowsync.stores import SQLiteStore

if TYPE_CHECKING:
    from pathlib import Path

THING = "dev-1"


def document(pair: LoopbackPair) -> Any:
    """The service's document (typed loosely: tests index into its JSON)."""
    found = pair.service.document(THING)
    assert found is not None
    return found


def test_the_same_seed_gives_the_same_fates() -> None:
    faults = Faults(drop=0.3, duplicate=0.3, reorder=0.3, delay=0.3, jitter=0.5)
    first, second = FaultInjector(7, faults), FaultInjector(7, faults)
    assert [first.schedule(float(t)) for t in range(200)] == [
        second.schedule(float(t)) for t in range(200)
    ]
    assert first.counts == second.counts
    assert first.counts["dropped"] > 0
    assert first.counts["duplicated"] > 0


def test_fates() -> None:
    injector = FaultInjector(1, Faults(latency=0.25))
    assert injector.schedule(10.0) == [10.25]
    injector.configure(duplicate=1.0)
    assert injector.schedule(10.0) == [10.25, 10.25]
    injector.configure(drop=1.0)
    assert injector.schedule(10.0) == []
    injector.configure(drop=0.0, duplicate=0.0, delay=1.0, max_delay=100.0)
    [at] = injector.schedule(10.0)
    assert 10.25 <= at <= 110.25
    injector.heal()
    assert injector.faults == Faults(latency=0.25)
    assert injector.counts == {
        "sent": 4,
        "dropped": 1,
        "duplicated": 1,
        "reordered": 0,
        "delayed": 1,
    }


@pytest.mark.parametrize(
    "kwargs", [{"drop": 1.5}, {"duplicate": -0.1}, {"latency": -1.0}, {"max_delay": float("inf")}]
)
def test_faults_validate(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgumentError):
        Faults(**kwargs)


def test_injector_arguments_are_validated() -> None:
    with pytest.raises(InvalidArgumentError):
        FaultInjector("seed")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        FaultInjector(1, {"drop": 0.5})  # type: ignore[arg-type]


def test_a_perfect_network_syncs() -> None:
    pair = LoopbackPair(THING)
    pair.connect()
    pair.report({"on": True, "level": {"value": 3}})
    assert pair.run_until_quiet()
    assert document(pair).reported == {"on": True, "level": {"value": 3}}
    assert pair.differences() == []
    assert pair.session.state is SessionState.IN_SYNC


def test_differences_say_what_keeps_the_sides_apart() -> None:
    pair = LoopbackPair(THING)
    pair.report({"on": True})
    found = pair.differences()
    assert "the session is offline, not in sync" in found
    assert "1 intents still queued" in found


def test_a_cloud_change_reaches_the_device() -> None:
    pair = LoopbackPair(THING, config=SessionConfig(auto_report=True))
    pair.connect()
    pair.run_until_quiet()
    pair.cloud_update({"state": {"desired": {"mode": "eco"}}})
    assert pair.run_until_quiet()
    assert document(pair).reported == {"mode": "eco"}
    assert pair.differences() == []


def test_messages_to_a_disconnected_device_are_lost() -> None:
    pair = LoopbackPair(THING)
    pair.connect()
    pair.run_until_quiet()
    pair.cloud_update({"state": {"desired": {"mode": "eco"}}})
    assert pair.in_transit > 0
    pair.disconnect()
    assert pair.in_transit == 0
    pair.connect()
    assert pair.run_until_quiet()
    assert pair.session.cloud_document == document(pair)


def test_a_week_offline_expires_old_reports_and_says_so() -> None:
    pair = LoopbackPair(THING)
    pair.report({"a": 1})
    pair.advance(8 * 86_400)
    pair.report({"b": 2})
    pair.connect()
    assert pair.run_until_quiet()
    [record] = [r for e in pair.events if isinstance(e, Dropped) for r in e.records]
    assert (record.intent.path, record.reason) == (("a",), "expired")
    assert document(pair).reported == {"b": 2}


def test_a_reboot_keeps_what_was_queued() -> None:
    pair = LoopbackPair(THING)
    pair.report({"a": 1})
    pair.reboot()
    assert pair.boots == 2
    pair.connect()
    assert pair.run_until_quiet()
    assert document(pair).reported == {"a": 1}


def test_a_reboot_from_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    pair = LoopbackPair(THING, store_factory=lambda: SQLiteStore(path), seed=3)
    pair.connect()
    pair.report({"a": 1})
    pair.run_until_quiet()
    pair.disconnect()
    pair.report({"b": 2})
    pair.reboot()
    assert [i.path for i in pair.queue.pending()] == [("b",)]
    assert pair.session.last_seen_version == document(pair).version
    pair.connect()
    assert pair.run_until_quiet()
    assert document(pair).reported == {"a": 1, "b": 2}
    assert pair.differences() == []
    pair.store.close()


def test_a_cloud_delete_reaches_the_device() -> None:
    pair = LoopbackPair(THING)
    pair.connect()
    pair.report({"a": 1})
    pair.run_until_quiet()
    pair.cloud_delete()
    pair.run_until_quiet()
    assert [e.by_us for e in pair.events if isinstance(e, ShadowDeleted)] == [False]
    assert pair.session.cloud_document is None
    assert pair.differences() == []


def test_run_until_quiet_gives_up_when_the_network_never_delivers() -> None:
    pair = LoopbackPair(THING, faults=Faults(drop=1.0))
    pair.connect()
    pair.report({"a": 1})
    assert not pair.run_until_quiet(max_seconds=600)
    assert pair.session.state in (SessionState.BACKOFF, SessionState.FETCHING)
    assert pair.session.health(pair.now).consecutive_failures > 3
    pair.heal()
    assert pair.run_until_quiet()
    assert pair.differences() == []


def test_advance_refuses_negative_time() -> None:
    with pytest.raises(InvalidArgumentError):
        LoopbackPair(THING).advance(-1)


@pytest.mark.parametrize("seed", range(12))
def test_a_bad_network_converges_once_it_heals(seed: int) -> None:
    pair = LoopbackPair(
        THING,
        seed=seed,
        faults=Faults(drop=0.25, duplicate=0.25, reorder=0.4, delay=0.1, jitter=0.2),
        config=SessionConfig(auto_report=True, queue_limits=QueueLimits(max_intents=8)),
        rules=RuleSet(rules=[Range(path="target", minimum=0, maximum=100)]),
    )
    pair.connect()
    for step in range(30):
        pair.report({"a": step % 4, "n": {"x": step % 3 or None}})
        if step % 3 == 0:
            pair.cloud_update({"state": {"desired": {"target": (step * 37) % 160}}})
        if step % 7 == 3:
            pair.disconnect()
        if step % 7 == 5:
            pair.connect()
        if step % 11 == 10:
            pair.reboot()
            pair.connect()
        pair.advance((step * 13) % 45)
    pair.heal()
    pair.disconnect()
    pair.connect()
    assert pair.run_until_quiet()
    assert pair.differences() == []
    queued = {i.seq for e in pair.events if isinstance(e, IntentsQueued) for i in e.intents}
    settled = {s for e in pair.events if isinstance(e, IntentsConfirmed) for s in e.seqs}
    settled |= {r.intent.seq for e in pair.events if isinstance(e, Dropped) for r in e.records}
    assert queued <= settled
    final = document(pair)
    target = final.desired["target"]
    if 0 <= target <= 100:
        assert final.reported["target"] == target
    else:
        assert "/target" in [r["path"] for r in final.reported["$ack"]["rejected"]]
