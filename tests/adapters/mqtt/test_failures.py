"""Broker restarts, lost replies, hostile input and failing callbacks, through a real mosquitto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from shadowsync import SessionState
from shadowsync.events import (
    Dropped,
    IntentsConfirmed,
    IntentsQueued,
    MessageIgnored,
    RequestFailed,
    StateChanged,
)
from shadowsync.stores import SQLiteStore
from tests.adapters.mqtt.conftest import fast_config, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from shadowsync.testing import InMemoryShadowService
    from tests.adapters.mqtt.conftest import Rig


def test_reports_queued_across_a_broker_restart_are_delivered_exactly_once(
    own_rig: Rig,
    service: InMemoryShadowService,
    service_errors: list[BaseException],
    tmp_path: Path,
) -> None:
    rig = own_rig
    cloud = rig.service_bridge(service, service_errors)
    with SQLiteStore(tmp_path / "device.db") as store:
        device = rig.device(store=store)
        assert wait_for(device.in_sync)
        device.bridge.report({"temp_c": 20.0})
        assert wait_for(lambda: device.in_sync() and device.recorder.of(IntentsConfirmed))

        rig.broker.stop()
        assert wait_for(lambda: device.bridge.state is SessionState.OFFLINE)
        queued = []
        for reading in (20.5, 21.0, 21.5):
            queued += device.bridge.report({"temp_c": reading, "reading": reading * 2})
        queued += device.bridge.report({"door": "open"})
        assert device.session.queue.pending("lamp-1", None)  # durable in the SQLite file
        rig.broker.start()

        def converged() -> bool:
            document = service.document("lamp-1")
            return (
                cloud.ready
                and device.in_sync()
                and document is not None
                and document.reported == {"temp_c": 21.5, "reading": 43.0, "door": "open"}
            )

        assert wait_for(converged)
        confirmed = [seq for event in device.recorder.of(IntentsConfirmed) for seq in event.seqs]
        dropped = [r.intent.seq for event in device.recorder.of(Dropped) for r in event.records]
        queued_seqs = [
            intent.seq for e in queued if isinstance(e, IntentsQueued) for intent in e.intents
        ]
        assert len(confirmed) == len(set(confirmed)), "an intent was confirmed twice"
        # Every intent is accounted for once: confirmed, or superseded by a newer reading.
        assert sorted(confirmed + dropped) == sorted(set(confirmed) | set(queued_seqs))
        assert all(r.reason == "superseded" for e in device.recorder.of(Dropped) for r in e.records)
        assert device.session.queue.pending("lamp-1", None) == ()
        assert device.session.cloud_document == service.document("lamp-1")
        assert device.recorder.errors == []
        assert service_errors == []


def test_a_lost_reply_is_retried_by_the_scheduler(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    device = rig.device()
    assert wait_for(device.in_sync)
    cloud.close()  # requests now go unanswered

    device.bridge.report({"on": True})
    assert wait_for(lambda: device.recorder.of(RequestFailed))
    assert wait_for(lambda: device.bridge.state is SessionState.BACKOFF)
    assert service.document("lamp-1") is None

    rig.service_bridge(service, service_errors)

    def converged() -> bool:
        document = service.document("lamp-1")
        return device.in_sync() and document is not None and document.reported == {"on": True}

    assert wait_for(converged)
    retries = [e for e in device.recorder.of(StateChanged) if e.trigger.value == "retry"]
    assert retries, "the scheduler should have retried after the backoff"
    assert device.recorder.errors == []


def test_malformed_and_hostile_messages_are_ignored_and_the_bridge_keeps_working(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    rig.service_bridge(service, service_errors)
    service.update("lamp-1", {"state": {"reported": {"on": True}}})
    device = rig.device()
    assert wait_for(device.in_sync)
    device.client.subscribe("sensors/#", qos=1)  # an unrelated topic the device also reads
    attacker = rig.client("attacker")
    rig.run(attacker)
    probe = "sensors/lamp-1/probe"

    def ignored() -> list[MessageIgnored]:
        return [e for e in device.recorder.of(MessageIgnored) if e.topic != probe]

    def heard_probe() -> bool:
        # The subscription is in place once the device hears on it (its SUBACK goes to paho).
        attacker.publish(probe, b"0", qos=1)
        return len(device.recorder.of(MessageIgnored)) > len(ignored())

    assert wait_for(heard_probe)
    prefix = "$aws/things/lamp-1/shadow"
    hostile = [
        (f"{prefix}/update/delta", b"\xff\xfe not UTF-8"),
        (f"{prefix}/update/delta", b"{not json"),
        (f"{prefix}/update/delta", b"[1, 2, 3]"),
        (f"{prefix}/update/delta", b'{"state": {"on": true}, "version": "seven"}'),
        (f"{prefix}/update/documents", b"[" * 5000 + b"]" * 5000),
        (f"{prefix}/get/accepted", b'{"state": 1}'),
        (f"{prefix}/update/delta", b"x" * 300_000),
        ("sensors/lamp-1/temperature", b"21.5"),
    ]
    for topic, payload in hostile:
        attacker.publish(topic, payload, qos=1)
    # Well-formed but absurd: the session takes it for a gap in versions and fetches again.
    absurd = json.dumps({"state": {}, "version": 10**400}).encode()
    attacker.publish(f"{prefix}/update/delta", absurd, qos=1)

    def refetched() -> bool:
        changes = device.recorder.of(StateChanged)
        return any(c.trigger.value == "refresh" for c in changes) and device.in_sync()

    assert wait_for(lambda: len(ignored()) >= len(hostile))
    assert wait_for(refetched)
    assert len(ignored()) == len(hostile)
    assert device.recorder.errors == []
    assert device.session.last_seen_version == 1

    device.bridge.report({"on": False})

    def converged() -> bool:
        document = service.document("lamp-1")
        return device.in_sync() and document is not None and document.reported == {"on": False}

    assert wait_for(converged)
    assert device.recorder.errors == []


def test_an_exception_in_on_event_goes_to_on_error_and_the_bridge_keeps_working(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    rig.service_bridge(service, service_errors)
    device = rig.device(config=fast_config(auto_report=True))
    delivered = device.recorder.events

    def fragile(event: object) -> None:
        delivered.append(event)  # type: ignore[arg-type]
        if isinstance(event, StateChanged):
            raise RuntimeError(f"the application failed on {event.current.value}")

    device.bridge.close()
    from shadowsync.mqtt import DeviceBridge

    device.bridge = DeviceBridge(
        device.client, device.session, on_event=fragile, on_error=device.recorder.errors.append
    ).start()
    assert wait_for(device.in_sync)
    device.bridge.report({"on": True})

    def converged() -> bool:
        document = service.document("lamp-1")
        return device.in_sync() and document is not None and document.reported == {"on": True}

    assert wait_for(converged)
    messages = [str(error) for error in device.recorder.errors]
    assert "the application failed on in_sync" in messages
    assert all(isinstance(error, RuntimeError) for error in device.recorder.errors)
    device.bridge.close()
