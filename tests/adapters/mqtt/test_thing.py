"""Every shadow of a thing on one paho client through one `DeviceBridge`, over a real mosquitto:
the classic shadow and three named shadows, each with its own policy and rules."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from shadowsync import SessionState, ThingSession
from shadowsync.events import DeltaReceived, Event, FromShadow
from shadowsync.mqtt import DeviceBridge
from shadowsync.rules import Range, RuleSet
from shadowsync.stores import SQLiteStore
from shadowsync.strategies import LastWriterWins
from tests.adapters.mqtt.conftest import fast_config, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from paho.mqtt.client import Client

    from shadowsync.stores import Store
    from shadowsync.testing import InMemoryShadowService
    from tests.adapters.mqtt.conftest import Rig

THING = "thermostat-1"
NAMED = ("configuration", "telemetry", "maintenance")
DEADLINE = 15.0


class Agent:
    """A device agent: one store, one `ThingSession`, one client, one bridge."""

    def __init__(self, rig: Rig, store: Store, shadows: tuple[str | None, ...]) -> None:
        tokens = itertools.count(1)
        self.thing = ThingSession(
            THING, store=store, token=lambda: f"d-{next(tokens)}", random=lambda: 0.5
        )
        for name in shadows:
            self.thing.add_shadow(name, config=fast_config(), **_policy(name))
        self.events: list[Event] = []
        self.errors: list[BaseException] = []
        self.client: Client = rig.client("device")
        self.subscribed: list[list[str]] = []
        subscribe = self.client.subscribe

        def counting(topic: Any, *args: Any, **kwargs: Any) -> Any:
            self.subscribed.append([name for name, _ in topic])
            return subscribe(topic, *args, **kwargs)

        self.client.subscribe = counting  # type: ignore[method-assign]
        self.bridge = DeviceBridge(
            self.client, self.thing, on_event=self.events.append, on_error=self.errors.append
        ).start()
        rig.run(self.client)

    def in_sync(self) -> bool:
        return self.bridge.state is SessionState.IN_SYNC

    def deltas(self, shadow: str | None) -> list[dict[str, Any]]:
        return [
            e.event.state
            for e in list(self.events)
            if isinstance(e, FromShadow)
            and e.shadow_name == shadow
            and isinstance(e.event, DeltaReceived)
        ]

    def close(self) -> None:
        self.bridge.close()
        self.client.disconnect()
        self.client.loop_stop()


def _policy(name: str | None) -> dict[str, Any]:
    """Each shadow its own policy and rules: the cloud owns configuration's desired state
    (with a range rule), the device's telemetry goes by last writer."""
    if name == "configuration":
        return {"rules": RuleSet(rules=[Range(path="target_c", minimum=5, maximum=30)])}
    if name == "telemetry":
        return {"policy": LastWriterWins()}
    return {}


def _reported(service: InMemoryShadowService, shadow: str | None) -> Any:
    document = service.document(THING, shadow)
    return None if document is None else document.reported


def test_four_shadows_on_one_connection_survive_offline_writes_a_broker_restart_and_a_reboot(
    own_rig: Rig,
    service: InMemoryShadowService,
    service_errors: list[BaseException],
    tmp_path: Path,
) -> None:
    rig = own_rig
    cloud = rig.service_bridge(service, service_errors)
    shadows: tuple[str | None, ...] = (None, *NAMED)
    path = tmp_path / "device.db"
    store = SQLiteStore(path)
    agent = Agent(rig, store, shadows)
    assert wait_for(agent.in_sync, DEADLINE)
    # One subscribe request, 32 topics spelled out, on the one connection.
    assert [len(topics) for topics in agent.subscribed] == [32]
    agent.bridge.report({"temp_c": 20.0}, shadow="telemetry")
    agent.bridge.report({"firmware": "1.0.0"})
    assert wait_for(lambda: _reported(service, "telemetry") == {"temp_c": 20.0}, DEADLINE)
    assert wait_for(lambda: _reported(service, None) == {"firmware": "1.0.0"}, DEADLINE)

    # The broker goes away; the cloud writes to every shadow while the device is offline.
    rig.broker.stop()
    assert wait_for(lambda: agent.bridge.state is SessionState.OFFLINE, DEADLINE)
    agent.bridge.report({"temp_c": 21.5}, shadow="telemetry")
    agent.bridge.report({"hours": 100}, shadow="maintenance")
    for shadow in shadows:
        service.update(THING, {"state": {"desired": {"written": shadow or "classic"}}}, shadow)
    rig.broker.start()
    assert cloud.wait_ready(DEADLINE)
    assert wait_for(
        lambda: agent.in_sync() and _reported(service, "maintenance") == {"hours": 100},
        DEADLINE,
    )
    for shadow in shadows:
        written = {"written": shadow or "classic"}
        assert wait_for(lambda: written in agent.deltas(shadow), DEADLINE)  # noqa: B023
    assert _reported(service, "telemetry") == {"temp_c": 21.5}

    # A reboot from the SQLite file: a report queued while offline is still sent.
    agent.close()
    store.close()
    service.update(THING, {"state": {"desired": {"target_c": 22}}}, "configuration")
    service.update(THING, {"state": {"desired": {"target_c": 99}}}, "configuration")  # refused
    store = SQLiteStore(path)
    offline = ThingSession(THING, store=store, token=lambda: "x", random=lambda: 0.5)
    offline.add_shadow("telemetry")
    offline.report({"temp_c": 23.0}, time.time(), shadow="telemetry")
    store.close()
    store = SQLiteStore(path)
    agent = Agent(rig, store, shadows)
    assert wait_for(
        lambda: agent.in_sync() and _reported(service, "telemetry") == {"temp_c": 23.0},
        DEADLINE,
    )
    # The device never saw 22; the snapshot's 99 breaks configuration's range rule.
    assert agent.bridge.accepted_desired_of("configuration") == {"written": "configuration"}
    health = agent.bridge.device_health()
    assert health.in_sync
    assert health.pending_intents == 0
    assert health.subscriptions == 32
    assert agent.errors == []
    assert service_errors == []
    agent.close()
    store.close()


def test_sixty_shadows_stay_within_fifty_subscriptions(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException], tmp_path: Path
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    shadows: tuple[str | None, ...] = (None, *(f"zone-{n}" for n in range(59)))
    store = SQLiteStore(tmp_path / "device.db")
    agent = Agent(rig, store, shadows)
    assert wait_for(agent.in_sync, 4 * DEADLINE)
    filters = [topic for request in agent.subscribed for topic in request]
    assert len(filters) == 16 <= 50
    assert agent.bridge.device_health().subscriptions == 16
    for n in (0, 31, 58):
        agent.bridge.report({"zone": n}, shadow=f"zone-{n}")
    assert wait_for(
        lambda: all(_reported(service, f"zone-{n}") == {"zone": n} for n in (0, 31, 58)),
        DEADLINE,
    )
    cloud.update(THING, {"state": {"desired": {"fan": "on"}}}, "zone-17")
    assert wait_for(lambda: {"fan": "on"} in agent.deltas("zone-17"), DEADLINE)
    # A shadow the device does not hold: its messages are ignored and surfaced as events.
    cloud.update(THING, {"state": {"desired": {"x": 1}}}, "not-mine")
    assert wait_for(
        lambda: any("not on this device" in getattr(e, "reason", "") for e in list(agent.events)),
        DEADLINE,
    )
    assert agent.errors == []
    agent.close()
    store.close()
