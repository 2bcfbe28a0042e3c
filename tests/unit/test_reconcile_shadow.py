"""A reconciler driven by a device session and the in-memory shadow service, in process."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from shadowsync import Backoff, ShadowDocument, ShadowSession
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import Event, Publish
from shadowsync.reconcile import (
    Component,
    ReconcileConfig,
    Reconciler,
    ReconcilerState,
    ShadowReconciler,
)
from shadowsync.rules import Acknowledgement
from shadowsync.stores import MemoryStore
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.reconcile_world import World

THING, SHADOW = "gateway-1", "apps"
COMPONENTS = [
    Component(name="db", path=("apps", "db")),
    Component(name="web", path=("apps", "web"), depends_on=["db"], strategy="handover"),
]
CONFIG = ReconcileConfig(
    max_attempts=2, backoff=Backoff(initial=0.5, multiplier=2, maximum=8, jitter=0)
)


class Device:
    """A session, a driver and a pretend device, joined to the service through `pump`."""

    def __init__(self, service: InMemoryShadowService, clock: ManualClock, store: MemoryStore):
        tokens = (f"t{n}" for n in itertools.count())
        self.service, self.clock, self.store = service, clock, store
        self.session = ShadowSession(
            THING, SHADOW, store=store, token=lambda: next(tokens), random=lambda: 0.0
        )
        reconciler = Reconciler(
            COMPONENTS, random=lambda: 0.0, config=CONFIG, state=ReconcilerState.load(store)
        )
        self.driver = ShadowReconciler(self.session, reconciler, store=store, report_interval=5)
        self.world = World({c.name: c.path for c in COMPONENTS})

    @property
    def now(self) -> float:
        return self.clock()

    def pump(self, events: list[Event]) -> None:
        """Send what the session publishes; feed answers back; show every event to the driver."""
        pending = list(events)
        while pending:
            event = pending.pop(0)
            if isinstance(event, Publish):
                for topic, payload in self.service.handle(event.topic, event.payload):
                    pending.extend(self.session.receive_message(topic, payload, self.now))
            pending.extend(self.driver.handle([event], self.now))

    def start(self) -> None:
        self.pump(self.driver.observe(self.world.observed(), self.now))
        self.pump(self.session.connected(self.now))

    def run(self, rounds: int = 100) -> None:
        """Run steps and follow deadlines until nothing is left."""
        for _ in range(rounds):
            steps = self.driver.plan(self.now)
            for step in steps:
                error = self.world.run(step)
                observed = self.world.observed()
                if error is None:
                    self.pump(self.driver.done(step, observed=observed, now=self.now))
                else:
                    self.pump(
                        self.driver.failed(step, error=error, observed=observed, now=self.now)
                    )
                if step.component == "web" and step.action.value == "start":
                    self.driver.reconciler.signal("web", self.now)
            if not steps:
                deadline = self.driver.next_deadline()
                if deadline is None:
                    return
                self.clock.advance(max(0.0, deadline - self.now))
                self.pump(self.driver.tick(self.now))
        raise AssertionError("did not come to rest")


def _document(service: InMemoryShadowService) -> ShadowDocument:
    document = service.document(THING, SHADOW)
    assert document is not None
    return document


def _reported(service: InMemoryShadowService) -> dict[str, Any]:
    return _document(service).reported


def _desire(service: InMemoryShadowService, desired: dict[str, Any]) -> None:
    service.update(THING, json.dumps({"state": {"desired": desired}}).encode(), shadow_name=SHADOW)


def test_the_desired_state_is_applied_and_what_was_observed_reported() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    _desire(service, {"apps": {"db": "pg16", "web": "w1"}, "logLevel": "debug"})
    device = Device(service, clock, MemoryStore())
    device.start()
    device.run()
    reported = _reported(service)
    assert reported["apps"] == {"db": "pg16", "web": "w1"}
    assert reported["$reconcile"]["status"] == "converged"
    assert reported["$reconcile"]["version"] == 1
    assert "logLevel" not in reported  # not a component's: left to the application
    assert [(n, a) for n, a, _ in device.world.log] == [
        ("db", "prepare"),
        ("db", "start"),
        ("web", "prepare"),
        ("web", "start"),
    ]


def test_a_target_that_keeps_failing_is_rolled_back_and_acknowledged() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    _desire(service, {"apps": {"db": "pg16", "web": "w1"}})
    device = Device(service, clock, MemoryStore())
    device.start()
    device.run()
    device.world.broken.add("w2")
    _desire(service, {"apps": {"web": "w2"}})
    device.pump(device.session.get(device.now))
    device.run()
    reported = _reported(service)
    ack = Acknowledgement.from_dict(reported["$ack"])
    assert ack.desired_version > 1
    assert [(r.pointer, r.reason) for r in ack.rejected] == [
        ("/apps/web", "failed 2 times: w2 exited with status 1")
    ]
    assert reported["apps"] == {"db": "pg16", "web": "w1"}
    section = reported["$reconcile"]
    assert (section["status"], section["version"]) == ("rolled_back", 1)
    assert section["rolledBackFrom"] == ack.desired_version
    # The old instance never stopped: the handover never got past a failed start.
    assert device.world.running["web"] == ["w1"]


def test_a_reboot_resumes_from_the_store() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    store = MemoryStore()
    _desire(service, {"apps": {"db": "pg16", "web": "w1"}})
    device = Device(service, clock, store)
    device.start()
    device.run()
    device.world.broken.add("w2")
    _desire(service, {"apps": {"web": "w2"}})
    device.pump(device.session.get(device.now))
    [step] = device.driver.plan(device.now)  # prepare w2
    device.pump(device.driver.done(step, observed=device.world.observed(), now=device.now))
    [step] = device.driver.plan(device.now)  # start w2: fails
    device.world.run(step)
    device.pump(
        device.driver.failed(
            step, error="w2 crashed", observed=device.world.observed(), now=device.now
        )
    )
    world = device.world
    rebooted = Device(service, clock, store)  # same store, new session, driver and reconciler
    rebooted.world = world
    assert rebooted.driver.reconciler.status().attempts == {"web": 1}
    world.broken.clear()
    rebooted.start()
    rebooted.run()
    reported = _reported(service)
    assert reported["apps"] == {"db": "pg16", "web": "w2"}
    assert reported["$reconcile"]["status"] == "converged"


def test_a_target_the_reconciler_refuses_is_reported_and_the_last_kept() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    _desire(service, {"apps": {"db": "pg16", "web": "w1"}})
    device = Device(service, clock, MemoryStore())
    device.driver = ShadowReconciler(
        device.session, device.driver.reconciler, scope=("apps",), report_interval=0
    )
    device.start()
    device.run()
    _desire(service, {"apps": {"cache": "redis"}})
    device.pump(device.session.get(device.now))
    device.run()
    reported = _reported(service)
    assert "no component owns /apps/cache" in reported["$reconcile"]["refused"]
    assert reported["apps"] == {"db": "pg16", "web": "w1"}


def test_reports_are_throttled_but_a_change_of_phase_goes_out_at_once() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    _desire(service, {"apps": {"db": "pg16", "web": "w1"}})
    device = Device(service, clock, MemoryStore())
    device.start()
    device.run()
    clock.advance(60)
    device.world.running["web"].clear()  # a crash: converged -> applying, reported at once
    device.pump(device.driver.observe(device.world.observed(), device.now))
    reported = _reported(service)
    assert (reported["apps"], reported["$reconcile"]["status"]) == ({"db": "pg16"}, "applying")
    device.world.running["db"].clear()  # same phase: held back for the interval
    device.pump(device.driver.observe(device.world.observed(), device.now))
    assert _reported(service)["apps"] == {"db": "pg16"}
    assert device.driver.next_deadline() == device.now + 5
    clock.advance(5)
    device.pump(device.driver.tick(device.now))
    assert not _reported(service).get("apps")


def test_bad_arguments_are_refused() -> None:
    session = ShadowSession(THING, store=MemoryStore(), token=str, random=float)
    reconciler = Reconciler(COMPONENTS, random=lambda: 0.0)
    with pytest.raises(InvalidArgumentError, match="reconciler"):
        ShadowReconciler(session, object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="scope"):
        ShadowReconciler(session, reconciler, scope=())
    with pytest.raises(InvalidArgumentError, match="store"):
        ShadowReconciler(session, reconciler, store=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="session"):
        ShadowReconciler(object(), reconciler)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="must be an Acknowledgement"):
        session.acknowledge({"desiredVersion": 1}, now=0)  # type: ignore[arg-type]


def test_the_session_queues_an_acknowledgement_offline_and_sends_it_on_connect() -> None:
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    device = Device(service, clock, MemoryStore())
    ack = Acknowledgement(desired_version=3, timestamp=1_700_000_000, pending=[("apps", "db")])
    events = device.session.acknowledge(ack, now=device.now)
    assert [type(e).__name__ for e in events] == ["IntentsQueued", "AcknowledgementQueued"]
    device.pump(device.session.connected(device.now))
    assert _reported(service)["$ack"] == ack.to_dict()
