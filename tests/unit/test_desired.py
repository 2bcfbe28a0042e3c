"""Local desired changes (`ShadowSession.desire`): durable, merged three ways on reconnect; and
the periodic GET that catches what a dead subscription missed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowsync import SessionConfig, SessionState, ShadowSession
from shadowsync._device.desired import patch_state_name
from shadowsync.events import ConflictResolved, DeltaReceived, Event, Publish, Subscribe
from shadowsync.stores import MemoryStore, SQLiteStore
from shadowsync.strategies import LastWriterWins
from shadowsync.testing import InMemoryShadowService, LoopbackPair, ManualClock

if TYPE_CHECKING:
    from pathlib import Path


def _deltas(events: list[Event]) -> list[tuple[int | None, dict[str, Any]]]:
    return [(e.version, e.state) for e in events if isinstance(e, DeltaReceived)]


def _conflicts(events: list[Event]) -> list[ConflictResolved]:
    return [e for e in events if isinstance(e, ConflictResolved) and e.section == "desired"]


def _online_pair(**options: Any) -> LoopbackPair:
    pair = LoopbackPair("thermostat-1", **options)
    pair.connect()
    pair.cloud_update({"state": {"desired": {"target_c": 21, "mode": "heat"}}})
    pair.report({"target_c": 21, "mode": "heat"})
    assert pair.run_until_quiet()
    pair.events.clear()
    return pair


def test_a_newer_cloud_write_wins_over_an_offline_local_change() -> None:
    pair = _online_pair()
    start = pair.now
    pair.disconnect()
    pair.advance(10)
    pair.desire({"target_c": 19})
    pair.advance(50)
    pair.cloud_update({"state": {"desired": {"target_c": 24}}})
    pair.advance(10)
    assert pair.now == start + 70
    pair.connect()
    assert pair.run_until_quiet()

    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired == {"target_c": 24, "mode": "heat"}
    (conflict,) = _conflicts(pair.events)
    (record,) = conflict.report.records
    assert record.path == ("target_c",)
    assert (record.base, record.ours, record.theirs) == (21, 19, 24)
    assert record.winner == "theirs"
    assert record.value == 24
    assert record.reason == "cloud owns desired"
    # Told to apply 24 once, never 19.
    assert _deltas(pair.events) == [(document.version, {"target_c": 24})]
    assert pair.session.accepted_desired == {"target_c": 24, "mode": "heat"}
    assert pair.store.get_state(patch_state_name("thermostat-1", None)) == _EMPTY_PATCH


_EMPTY_PATCH: dict[str, Any] = {"patch": {}, "base": {}, "since": None, "stamps": []}


def test_a_path_the_cloud_did_not_change_is_sent_and_announced_once() -> None:
    pair = _online_pair()
    pair.disconnect()
    pair.advance(10)
    pair.desire({"target_c": 19})
    pair.advance(50)
    pair.cloud_update({"state": {"desired": {"mode": "cool"}}})
    pair.connect()
    assert pair.run_until_quiet()

    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired == {"target_c": 19, "mode": "cool"}
    assert _conflicts(pair.events) == []
    # One announcement of the combined change, none for the delta of our own update.
    deltas = _deltas(pair.events)
    assert len(deltas) == 1
    assert deltas[0][1] == {"target_c": 19, "mode": "cool"}
    assert pair.differences() == []


def test_the_policy_can_give_the_device_the_desired_state() -> None:
    pair = _online_pair(policy=LastWriterWins())
    pair.disconnect()
    pair.advance(10)
    pair.cloud_update({"state": {"desired": {"target_c": 24}}})
    pair.advance(50)
    pair.desire({"target_c": 19})  # newer than the cloud's write: last writer wins
    pair.connect()
    assert pair.run_until_quiet()

    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired["target_c"] == 19
    (conflict,) = _conflicts(pair.events)
    assert conflict.report.records[0].winner == "ours"
    assert [state for _, state in _deltas(pair.events)] == [{"target_c": 19}]


def test_a_local_change_survives_a_reboot_and_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    pair = _online_pair(store_factory=lambda: SQLiteStore(path))
    pair.disconnect()
    pair.advance(10)
    pair.desire({"target_c": 19, "schedule": {"night": 17}})
    pair.reboot()
    saved = pair.store.get_state(patch_state_name("thermostat-1", None))
    assert saved is not None
    assert saved["patch"] == {"target_c": 19, "schedule": {"night": 17}}
    assert saved["base"] == {"target_c": 21, "mode": "heat"}
    pair.connect()
    assert pair.run_until_quiet()

    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired == {"target_c": 19, "mode": "heat", "schedule": {"night": 17}}
    assert _conflicts(pair.events) == []
    assert pair.differences() == []


def test_after_a_reboot_a_newer_cloud_write_still_wins(tmp_path: Path) -> None:
    path = tmp_path / "device.db"
    pair = _online_pair(store_factory=lambda: SQLiteStore(path))
    pair.disconnect()
    pair.advance(10)
    pair.desire({"target_c": 19})
    pair.reboot()
    pair.advance(50)
    pair.cloud_update({"state": {"desired": {"target_c": 24}}})
    pair.connect()
    assert pair.run_until_quiet()

    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired["target_c"] == 24
    (conflict,) = _conflicts(pair.events)
    assert conflict.report.records[0].ours == 19


def test_a_deleted_key_is_a_local_change_too() -> None:
    pair = _online_pair()
    pair.disconnect()
    pair.desire({"mode": None})
    pair.connect()
    assert pair.run_until_quiet()
    document = pair.service.document("thermostat-1")
    assert document is not None
    assert document.desired == {"target_c": 21}


def test_the_patch_is_one_state_entry_per_shadow() -> None:
    store = MemoryStore()
    assert patch_state_name("t", None) == "desired/t"
    assert patch_state_name("t", "configuration") == "desired/t/configuration"
    long_name = patch_state_name("t" * 128, "s" * 64)
    assert long_name.startswith("desired#")
    assert len(long_name) <= 128
    store.put_state(long_name, {"patch": {}})
    assert store.get_state(long_name) == {"patch": {}}


def _drive(
    session: ShadowSession, service: InMemoryShadowService, outputs: list[Event]
) -> list[Event]:
    """Carry a session's publishes to the service and every answer back."""
    pending, seen = list(outputs), []
    while pending:
        output = pending.pop(0)
        if isinstance(output, Publish):
            for topic, payload in service.handle(output.topic, output.payload):
                pending += session.receive_message(topic, payload, service.now())
        elif not isinstance(output, Subscribe):
            seen.append(output)
    return seen


def test_a_periodic_get_finds_what_a_dead_subscription_missed() -> None:
    clock = ManualClock(1_700_000_000.0)
    service = InMemoryShadowService(clock=clock)
    session = ShadowSession(
        "lamp",
        store=MemoryStore(),
        token=iter(f"t{n}" for n in range(100)).__next__,
        random=lambda: 0.5,
        config=SessionConfig(refresh_interval=300),
    )
    _drive(session, service, session.connected(clock()))
    assert session.state is SessionState.IN_SYNC
    assert session.next_deadline() == clock() + 300
    # The cloud writes; its delta never reaches the device (the subscription died silently).
    service.update("lamp", {"state": {"desired": {"on": True}}})
    clock.advance(299)
    assert session.tick(clock()) == []
    clock.advance(1)
    events = _drive(session, service, session.tick(clock()))
    assert [e.state for e in events if isinstance(e, DeltaReceived)] == [{"on": True}]
    assert session.next_deadline() == clock() + 300


def test_without_a_refresh_interval_an_idle_session_has_no_deadline() -> None:
    clock = ManualClock(1_700_000_000.0)
    service = InMemoryShadowService(clock=clock)
    session = ShadowSession("lamp", store=MemoryStore(), token=lambda: "t", random=lambda: 0.5)
    _drive(session, service, session.connected(clock()))
    assert session.state is SessionState.IN_SYNC
    assert session.next_deadline() is None
