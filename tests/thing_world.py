"""A `ThingSession` and the in-memory service on one simulated network, for the thing tests.

Messages go through a `FaultInjector` (a perfect network by default) in simulated time; the
device subscribes with exact topics or ``+`` wildcards, as a broker would match them. The store
outlives reboots.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from shadowsync import ThingSession, topics
from shadowsync._json import dumps_compact
from shadowsync.events import Event, Publish, Subscribe, Unsubscribe
from shadowsync.stores import MemoryStore
from shadowsync.testing import FaultInjector, InMemoryShadowService, ManualClock

THING = "thermostat-1"


def matches(pattern: str, topic: str) -> bool:
    """Whether the MQTT filter ``pattern`` (``+`` wildcards only) matches ``topic``."""
    want, have = pattern.split("/"), topic.split("/")
    return len(want) == len(have) and all(w in ("+", h) for w, h in zip(want, have, strict=True))


class ThingWorld:
    """A thing session and the service, joined by a network that may misbehave.

    ``setup(thing)`` adds the shadows (again after every reboot).
    """

    def __init__(
        self,
        setup: Any = None,
        *,
        faults: FaultInjector | None = None,
        max_subscriptions: int = 50,
        latency: float = 0.0,
    ) -> None:
        self.clock = ManualClock(1_700_000_000.0)
        self.service = InMemoryShadowService(clock=self.clock)
        self.store = MemoryStore()
        self.faults = faults
        self.latency = latency
        self.events: list[Event] = []
        self.filters: set[str] = set()
        self.online = False
        self.max_subscriptions = max_subscriptions
        self._setup = setup
        self._boots = 0
        self._epoch = 0
        self._order = itertools.count()
        self._transit: list[tuple[float, int, str, str, bytes, int]] = []
        self.thing = self._open()

    def _open(self) -> ThingSession:
        self._boots += 1
        boot, tokens = self._boots, itertools.count(1)
        thing = ThingSession(
            THING,
            store=self.store,
            token=lambda: f"d{boot}-{next(tokens)}",
            random=lambda: 0.5,
            max_subscriptions=self.max_subscriptions,
        )
        if self._setup is not None:
            self._setup(thing)
        return thing

    def reboot(self) -> None:
        self._cut()
        self.thing = self._open()

    # -- the network -----------------------------------------------------------------------

    def _cut(self) -> None:
        self.online = False
        self.filters.clear()
        self._epoch += 1

    def _send(self, direction: str, topic: str, payload: bytes) -> None:
        times = (
            self.faults.schedule(self.clock())
            if self.faults is not None
            else [self.clock() + self.latency]
        )
        for at in times:
            item = (at, next(self._order), direction, topic, payload, self._epoch)
            heapq.heappush(self._transit, item)

    def _send_down(self, topic: str, payload: bytes) -> None:
        if self.online and any(matches(f, topic) for f in self.filters):
            self._send("down", topic, payload)

    def run(self, outputs: list[Event]) -> list[Event]:
        """Send the outputs; keep and return the application events."""
        seen: list[Event] = []
        for output in outputs:
            if isinstance(output, Subscribe):
                if self.online:
                    self.filters.update(output.topics)
            elif isinstance(output, Unsubscribe):
                self.filters.difference_update(output.topics)
            elif isinstance(output, Publish):
                if self.online:
                    self._send("up", output.topic, output.payload)
            else:
                seen.append(output)
        self.events += seen
        self._flush()
        return seen

    def _deliver(self, direction: str, topic: str, payload: bytes, epoch: int) -> None:
        if direction == "up":
            for name, body in self.service.handle(topic, payload):
                self._send_down(name, body)
        elif epoch == self._epoch and self.online:
            self.run(self.thing.receive_message(topic, payload, self.clock()))

    def _flush(self) -> None:
        """Deliver what is due now (instantly on a perfect network without latency)."""
        while self._transit and self._transit[0][0] <= self.clock():
            _, _, direction, topic, payload, epoch = heapq.heappop(self._transit)
            self._deliver(direction, topic, payload, epoch)

    def advance(self, seconds: float) -> None:
        """Let time pass, delivering messages and ticking the thing at its deadlines."""
        end = self.clock() + seconds
        for _ in range(100_000):
            self._flush()
            times = [self._transit[0][0]] if self._transit else []
            deadline = self.thing.next_deadline()
            if deadline is not None:
                times.append(deadline)
            upcoming = min(times) if times else None
            if upcoming is None or upcoming > end:
                break
            self.clock.set(max(self.clock(), upcoming))
            self._flush()
            deadline = self.thing.next_deadline()
            if deadline is not None and deadline <= self.clock():
                self.run(self.thing.tick(self.clock()))
        self.clock.set(max(self.clock(), end))
        self._flush()

    def quiet(self) -> bool:
        live = [t for t in self._transit if t[2] == "up" or t[5] == self._epoch]
        return not live and self.thing.next_deadline() is None

    def run_until_quiet(self, max_seconds: float = 7200.0) -> bool:
        end = self.clock() + max_seconds
        while not self.quiet() and self.clock() < end:
            self.advance(min(60.0, end - self.clock()))
        return self.quiet()

    # -- the device and the cloud ----------------------------------------------------------

    def connect(self) -> list[Event]:
        self.online = True
        self._epoch += 1
        return self.run(self.thing.connected(self.clock()))

    def disconnect(self) -> list[Event]:
        self._cut()
        return self.run(self.thing.disconnected(self.clock()))

    def cloud(self, shadow: str | None, body: dict[str, Any]) -> None:
        """A cloud application updates ``shadow``; what the service publishes goes down."""
        topic = topics.build(THING, "update", shadow_name=shadow)
        for name, payload in self.service.handle(topic, dumps_compact(body).encode()):
            self._send_down(name, payload)
        self._flush()
