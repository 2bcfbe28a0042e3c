"""End to end: a device agent supervising real processes, driven by a named shadow over mosquitto.

The cloud is the in-memory shadow service behind a `ServiceBridge`; the device is a
`DeviceBridge` session whose accepted desired state drives a `ShadowReconciler`, which runs each
component as a small HTTP server process on 127.0.0.1 (see ``tests/process_supervisor.py``).
The agent keeps its queue, its shadow cache and the reconciler's state in one SQLite file.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from shadowsync import Backoff
from shadowsync.reconcile import (
    Action,
    Component,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    ShadowReconciler,
)
from shadowsync.rules import Acknowledgement
from shadowsync.stores import SQLiteStore
from tests.process_supervisor import ProcessSupervisor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from shadowsync._json import JSONObject
    from shadowsync.events import Event
    from shadowsync.mqtt import DeviceBridge
    from shadowsync.testing import InMemoryShadowService
    from tests.adapters.mqtt.conftest import Device, Rig

THING, SHADOW = "gateway-7", "apps"
COMPONENTS = [
    Component(name="db", path=("apps", "db")),
    Component(name="web", path=("apps", "web"), depends_on=["db"], strategy="handover"),
]
CONFIG = ReconcileConfig(
    max_attempts=3, backoff=Backoff(initial=0.1, multiplier=2, maximum=0.5, jitter=0.5)
)
TIMEOUT = 30.0


class BridgeSession:
    """The `ReportingSession` face of a `DeviceBridge` (the bridge keeps its own clock)."""

    def __init__(self, bridge: DeviceBridge) -> None:
        self._bridge = bridge

    @property
    def accepted_desired(self) -> JSONObject:
        return self._bridge.accepted_desired

    def report(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        return self._bridge.report(changes)

    def acknowledge(self, acknowledgement: Acknowledgement, now: float) -> list[Event]:
        return self._bridge.acknowledge(acknowledgement)


class Agent:
    """The device agent: the session's events in, steps on processes out, in one loop."""

    def __init__(self, rig: Rig, workdir: Path, *, connect: bool = True) -> None:
        self.store = SQLiteStore(workdir / "device.db")
        self.device: Device = rig.device(THING, SHADOW, store=self.store, connect=connect)
        reconciler = Reconciler(
            COMPONENTS,
            random=random.random,
            config=CONFIG,
            state=ReconcilerState.load(self.store),
        )
        self.driver = ShadowReconciler(
            BridgeSession(self.device.bridge), reconciler, store=self.store, report_interval=0.2
        )
        self.supervisor = ProcessSupervisor(workdir, {c.name: c.path for c in COMPONENTS})
        self.seen = 0
        self.driver.observe(self.supervisor.observed(), time.time())

    def turn(self, *, stop_after: Callable[[Any], bool] | None = None) -> bool:
        """One round: take events, run what can run, observe. Whether ``stop_after`` fired."""
        events = self.device.recorder.events[self.seen :]
        self.seen += len(events)
        self.driver.handle(events, time.time())
        for step in self.driver.plan(time.time()):
            error = self.supervisor.run(step)
            observed = self.supervisor.observed()
            if error is None:
                self.driver.done(step, observed=observed, now=time.time())
                if step.action is Action.START:
                    # The new process answers (start waited for it): it may take over now.
                    self.driver.reconciler.signal(step.component, time.time())
            else:
                self.driver.failed(step, error=error, observed=observed, now=time.time())
            if stop_after is not None and stop_after(step):
                return True
        self.driver.observe(self.supervisor.observed(), time.time())
        self.driver.tick(time.time())
        return False

    def run_until(self, condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.turn()
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def power_off(self) -> None:
        """The device loses power: processes die, the connection drops, the store closes."""
        self.supervisor.power_off()
        self.device.bridge.close()
        self.device.client.disconnect()
        self.device.client.loop_stop()
        self.store.close()


def _reported(service: InMemoryShadowService) -> dict[str, Any]:
    document = service.document(THING, SHADOW)
    return {} if document is None else document.reported


def _converged_on(service: InMemoryShadowService, apps: dict[str, str]) -> Callable[[], bool]:
    def check() -> bool:
        reported = _reported(service)
        section = reported.get("$reconcile", {})
        return reported.get("apps") == apps and section.get("status") == "converged"

    return check


def test_start_change_with_handover_roll_back_and_resume_after_a_reboot(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException], tmp_path: Path
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    agent = Agent(rig, tmp_path)
    try:
        # Start: the database first, then the web service once the database answers.
        cloud.update(THING, {"state": {"desired": {"apps": {"db": "v1", "web": "v1"}}}}, SHADOW)
        assert agent.run_until(_converged_on(service, {"db": "v1", "web": "v1"}))
        assert [(n, a) for n, a, _ in agent.supervisor.log] == [
            ("db", "prepare"),
            ("db", "start"),
            ("web", "prepare"),
            ("web", "start"),
        ]
        [web_v1] = agent.supervisor.alive("web")
        assert agent.supervisor.answers(web_v1) == "v1"

        # A change with handover: the new process answers before the old one stops.
        cloud.update(THING, {"state": {"desired": {"apps": {"web": "v2"}}}}, SHADOW)
        assert agent.run_until(_converged_on(service, {"db": "v1", "web": "v2"}))
        [web_v2] = agent.supervisor.alive("web")
        assert web_v2.version == "v2"
        assert web_v1.stopped_at is not None
        assert web_v2.answered_at < web_v1.stopped_at
        assert agent.supervisor.answers(web_v1) is None

        # A target whose process cannot start: rolled back after 3 attempts, and $ack says why.
        cloud.update(THING, {"state": {"desired": {"apps": {"web": "broken-v3"}}}}, SHADOW)

        def rolled_back() -> bool:
            section = _reported(service).get("$reconcile", {})
            return section.get("status") == "rolled_back" and "$ack" in _reported(service)

        assert agent.run_until(rolled_back)
        ack = Acknowledgement.from_dict(_reported(service)["$ack"])
        [rejection] = ack.rejected
        assert rejection.pointer == "/apps/web"
        assert rejection.reason.startswith("failed 3 times: exited with status 1")
        assert "missing configuration, cannot start" in rejection.reason
        assert [a for n, a, v in agent.supervisor.log if v == "broken-v3"].count("start") == 3
        assert [i.version for i in agent.supervisor.alive("web")] == ["v2"]  # never stopped
        assert agent.run_until(lambda: _reported(service)["apps"] == {"db": "v1", "web": "v2"})

        # A reboot in the middle of an update: power is cut after the new database is prepared.
        cloud.update(THING, {"state": {"desired": {"apps": {"db": "v2", "web": "v4"}}}}, SHADOW)
        prepared = False
        end = time.monotonic() + TIMEOUT
        while not prepared and time.monotonic() < end:
            prepared = agent.turn(
                stop_after=lambda step: step.action is Action.PREPARE and step.value == "v2"
            )
        assert prepared
        agent.power_off()
        assert agent.supervisor.observed() == {}
    finally:
        agent.supervisor.power_off()

    # Power is back: before the connection is up, the saved target is resumed.
    rebooted = Agent(rig, tmp_path, connect=False)
    try:
        assert rebooted.driver.reconciler.target == {"apps": {"db": "v2", "web": "v4"}}
        assert rebooted.run_until(
            lambda: rebooted.supervisor.observed() == {"apps": {"db": "v2", "web": "v4"}}
        )
        rig.run(rebooted.device.client)
        assert rebooted.run_until(_converged_on(service, {"db": "v2", "web": "v4"}))
        assert service_errors == []
        assert rebooted.device.recorder.errors == []
    finally:
        rebooted.supervisor.power_off()
        rebooted.store.close()
