"""A device session and an in-memory shadow service, joined by a network that misbehaves.

`LoopbackPair` runs a `ShadowSession` against `shadowsync.testing.InMemoryShadowService`
over MQTT-shaped messages, in simulated time (a `ManualClock`). Between them a `FaultInjector`
drops, duplicates, reorders and delays messages, from a seeded random source, so every run is
reproducible; the pair can also cut the connection for as long as you like and reboot the
device from its store. Use it to test an agent's behaviour under the network it will really
have:

```pycon
>>> pair = LoopbackPair("lamp", seed=7, faults=Faults(drop=0.2, duplicate=0.2, reorder=0.3))
>>> _ = pair.connect()
>>> _ = pair.report({"on": True})
>>> pair.cloud_update({"state": {"desired": {"level": 40}}})
>>> pair.run_until_quiet()
True
>>> pair.service.document("lamp").reported["on"]
True
>>> pair.differences()
[]

```
"""

from __future__ import annotations

import heapq
import itertools
import math
import random as random_module
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync import topics
from shadowsync._device.config import SessionConfig
from shadowsync._device.queue import OfflineQueue
from shadowsync._device.session import ShadowSession
from shadowsync._device.state import SessionState
from shadowsync._fakes.service import InMemoryShadowService, ManualClock
from shadowsync._json import describe, dumps_compact
from shadowsync._validators import fraction, seconds
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import Event, Publish, Subscribe
from shadowsync.stores import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync.rules import RuleSet
    from shadowsync.stores import Store
    from shadowsync.strategies import Strategy

__all__ = ["FaultInjector", "Faults", "LoopbackPair"]


@attrs.frozen(kw_only=True)
class Faults:
    """What the network does to each message, as probabilities and delays.

    ``drop``: the message is lost. ``duplicate``: it arrives twice (each copy with its own
    delay). ``reorder``: it is held back long enough for later messages to overtake it.
    ``delay``: it is held for up to ``max_delay`` seconds (longer than a request timeout, so
    its answer comes too late). Every message takes ``latency`` plus up to ``jitter``
    seconds. The defaults are a perfect network.
    """

    drop: float = attrs.field(default=0.0, validator=fraction)
    duplicate: float = attrs.field(default=0.0, validator=fraction)
    reorder: float = attrs.field(default=0.0, validator=fraction)
    delay: float = attrs.field(default=0.0, validator=fraction)
    latency: float = attrs.field(default=0.05, validator=seconds)
    jitter: float = attrs.field(default=0.0, validator=seconds)
    max_delay: float = attrs.field(default=60.0, validator=seconds)


class FaultInjector:
    """Decides, from a seeded random source, the fate of each message sent.

    `schedule` returns the times at which a message sent at ``now`` arrives: none if it is
    dropped, two if it is duplicated. The same seed and the same calls give the same fates.

    ```pycon
    >>> injector = FaultInjector(seed=1, faults=Faults(latency=0.1))
    >>> injector.schedule(100.0)
    [100.1]
    >>> injector.configure(drop=1.0)
    >>> injector.schedule(100.0)
    []

    ```
    """

    def __init__(self, seed: int = 0, faults: Faults | None = None) -> None:
        if type(seed) is not int:
            raise InvalidArgumentError(f"seed must be an int, got {describe(seed)}")
        if faults is not None and not isinstance(faults, Faults):
            raise InvalidArgumentError(f"faults must be Faults, got {describe(faults)}")
        self._rng = random_module.Random(seed)
        self._faults = faults if faults is not None else Faults()
        self.counts: dict[str, int] = dict.fromkeys(
            ("sent", "dropped", "duplicated", "reordered", "delayed"), 0
        )

    @property
    def faults(self) -> Faults:
        """The settings in force."""
        return self._faults

    def configure(self, **changes: float) -> None:
        """Change some settings, e.g. ``configure(drop=0.5)``."""
        self._faults = attrs.evolve(self._faults, **changes)

    def heal(self) -> None:
        """Make the network perfect again (the latency is kept)."""
        self._faults = Faults(latency=self._faults.latency)

    def schedule(self, now: float) -> list[float]:
        """Arrival times of a message sent at ``now`` (empty: dropped)."""
        faults = self._faults
        rng = self._rng
        self.counts["sent"] += 1
        if faults.drop and rng.random() < faults.drop:
            self.counts["dropped"] += 1
            return []
        copies = 1
        if faults.duplicate and rng.random() < faults.duplicate:
            self.counts["duplicated"] += 1
            copies = 2
        times = []
        for _ in range(copies):
            at = now + faults.latency + (rng.random() * faults.jitter if faults.jitter else 0.0)
            if faults.reorder and rng.random() < faults.reorder:
                self.counts["reordered"] += 1
                at += rng.random() * (10 * faults.latency + 1.0)
            if faults.delay and rng.random() < faults.delay:
                self.counts["delayed"] += 1
                at += rng.random() * faults.max_delay
            times.append(at)
        return times


@attrs.frozen(order=True)
class _Transit:
    at: float
    order: int
    direction: Literal["up", "down"] = attrs.field(order=False)
    topic: str = attrs.field(order=False)
    payload: bytes = attrs.field(order=False)
    epoch: int = attrs.field(order=False)


class LoopbackPair:
    """A `ShadowSession` and an `InMemoryShadowService` on one simulated, faulty network.

    Time is a `ManualClock` that only `advance` and `run_until_quiet` move; on the way they
    deliver messages as the `FaultInjector` schedules them and call the session's ``tick`` at
    its deadlines. The device's store outlives reboots (a `MemoryStore` unless
    ``store_factory`` opens a real one); everything the session returns is kept in `events`
    (application events) and sent on (messages).

    Commands act at the current time: `connect`, `disconnect`, `reboot`, `report`, `desire`,
    `get`, `delete`, `resume` for the device; `cloud_update` and `cloud_delete` for a
    cloud-side application writing to the shadow. `differences` lists what still keeps device
    and cloud apart (empty once they converged).
    """

    def __init__(
        self,
        thing_name: str = "device-1",
        shadow_name: str | None = None,
        *,
        seed: int = 0,
        faults: Faults | FaultInjector | None = None,
        start: float = 1_700_000_000.0,
        policy: ResolutionPolicy | Strategy | None = None,
        rules: RuleSet | None = None,
        config: SessionConfig | None = None,
        store_factory: Callable[[], Store] | None = None,
    ) -> None:
        self.thing_name = thing_name
        self.shadow_name = shadow_name
        self.config = config if config is not None else SessionConfig()

        self.clock = ManualClock(start)
        self.service = InMemoryShadowService(clock=self.clock, limits=self.config.limits)
        self.faults = faults if isinstance(faults, FaultInjector) else FaultInjector(seed, faults)
        self._jitter = random_module.Random(seed ^ 0x5EED)
        self._policy = policy
        self._rules = rules
        self._store_factory = store_factory
        self.store: Store = store_factory() if store_factory is not None else MemoryStore()
        self.events: list[Event] = []
        """Every application event the session returned (not `Publish` / `Subscribe`)."""
        self.boots = 0
        self.online = False
        self._epoch = 0
        self._subscribed: set[str] = set()
        self._transit: list[_Transit] = []
        self._order = itertools.count()
        self._cloud_tokens = itertools.count(1)
        self.session = self._boot()

    # -- the device ------------------------------------------------------------------------

    def _boot(self) -> ShadowSession:
        self.boots += 1
        counter = itertools.count(1)
        boot = self.boots

        def token() -> str:
            return f"d{boot}-{next(counter)}"

        queue = OfflineQueue(
            self.store, limits=self.config.queue_limits, shadow_limits=self.config.limits
        )
        return ShadowSession(
            self.thing_name,
            self.shadow_name,
            store=self.store,
            queue=queue,
            token=token,
            random=self._jitter.random,
            policy=self._policy,
            rules=self._rules,
            config=self.config,
        )

    @property
    def now(self) -> float:
        """The simulated time, epoch seconds."""
        return self.clock()

    @property
    def queue(self) -> OfflineQueue:
        """The device's offline queue."""
        return self.session.queue

    def connect(self) -> list[Event]:
        """Bring the link up: the session subscribes and reconciles."""
        if self.online:
            return []
        self.online = True
        self._epoch += 1
        return self._process(self.session.connected(self.now))

    def disconnect(self) -> list[Event]:
        """Cut the link: messages still on their way to the device are lost."""
        self._cut()
        return self._process(self.session.disconnected(self.now))

    def reboot(self) -> None:
        """Restart the device: a new session (and queue) opened from the same store."""
        self._cut()
        if self._store_factory is not None:
            self.store.close()
            self.store = self._store_factory()
        self.session = self._boot()

    def _cut(self) -> None:
        self.online = False
        self._epoch += 1
        self._subscribed.clear()

    def report(self, changes: Mapping[str, Any]) -> list[Event]:
        """The device reports ``changes``."""
        return self._process(self.session.report(changes, self.now))

    def desire(self, changes: Mapping[str, Any]) -> list[Event]:
        """The device (or a local UI) changes the desired state."""
        return self._process(self.session.desire(changes, self.now))

    def get(self) -> list[Event]:
        """The device asks for a fresh snapshot."""
        return self._process(self.session.get(self.now))

    def delete(self) -> list[Event]:
        """The device deletes its shadow."""
        return self._process(self.session.delete(self.now))

    def resume(self) -> list[Event]:
        """The device resumes after manual review."""
        return self._process(self.session.resume(self.now))

    # -- the cloud -------------------------------------------------------------------------

    def cloud_update(self, body: Mapping[str, Any]) -> None:
        """A cloud application publishes an update request (its messages reach the device)."""
        request = dict(body)
        request.setdefault("clientToken", f"cloud-{next(self._cloud_tokens)}")
        topic = topics.build(self.thing_name, "update", shadow_name=self.shadow_name)
        for name, payload in self.service.handle(topic, dumps_compact(request).encode()):
            self._send_down(name, payload)

    def cloud_delete(self) -> None:
        """A cloud application deletes the shadow."""
        topic = topics.build(self.thing_name, "delete", shadow_name=self.shadow_name)
        body = {"clientToken": f"cloud-{next(self._cloud_tokens)}"}
        for name, payload in self.service.handle(topic, dumps_compact(body).encode()):
            self._send_down(name, payload)

    # -- the network -----------------------------------------------------------------------

    @property
    def in_transit(self) -> int:
        """Messages on their way that can still arrive."""
        self._purge()
        return len(self._transit)

    def _purge(self) -> None:
        live = [t for t in self._transit if t.direction == "up" or t.epoch == self._epoch]
        if len(live) != len(self._transit):
            heapq.heapify(live)
            self._transit = live

    def _send_down(self, topic: str, payload: bytes) -> None:
        if self.online and topic in self._subscribed:
            self._send("down", topic, payload)

    def _send(self, direction: Literal["up", "down"], topic: str, payload: bytes) -> None:
        """Put a message on the network: it arrives when (and as often as) the faults say."""
        for at in self.faults.schedule(self.now):
            heapq.heappush(
                self._transit,
                _Transit(
                    at=at,
                    order=next(self._order),
                    direction=direction,
                    topic=topic,
                    payload=payload,
                    epoch=self._epoch,
                ),
            )

    def _process(self, outputs: list[Event]) -> list[Event]:
        for output in outputs:
            if isinstance(output, Subscribe):
                if self.online:
                    self._subscribed.update(output.topics)
            elif isinstance(output, Publish):
                if self.online:
                    self._send("up", output.topic, output.payload)
            else:
                self.events.append(output)
        return outputs

    def _deliver(self, transit: _Transit) -> None:
        if transit.direction == "up":
            for topic, payload in self.service.handle(transit.topic, transit.payload):
                self._send_down(topic, payload)
        elif transit.epoch == self._epoch and self.online:
            self._process(self.session.receive_message(transit.topic, transit.payload, self.now))

    def _next_time(self) -> float | None:
        self._purge()
        times = [self._transit[0].at] if self._transit else []
        deadline = self.session.next_deadline()
        if deadline is not None:
            times.append(deadline)
        return min(times) if times else None

    def _step(self) -> None:
        """Deliver what is due and tick the session if a deadline passed."""
        now = self.now
        while self._transit and self._transit[0].at <= now:
            self._deliver(heapq.heappop(self._transit))
        deadline = self.session.next_deadline()
        if deadline is not None and deadline <= now:
            self._process(self.session.tick(now))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass, delivering and ticking on the way."""
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
            raise InvalidArgumentError(f"seconds must be >= 0, got {describe(seconds)}")
        target = self.now + seconds
        for _ in range(1_000_000):
            self._step()
            upcoming = self._next_time()
            if upcoming is None or upcoming > target:
                break
            self.clock.set(max(self.now, upcoming))
        self.clock.set(max(self.now, target))
        self._step()
        self._process(self.session.tick(self.now))

    def quiet(self) -> bool:
        """Nothing on the way and nothing the session waits for."""
        return self.in_transit == 0 and self.session.next_deadline() is None

    def run_until_quiet(self, max_seconds: float = 7200.0) -> bool:
        """Run until `quiet` (True), or until ``max_seconds`` have passed (False)."""
        end = self.now + max_seconds
        for _ in range(100_000):
            if self.quiet():
                return True
            upcoming = self._next_time()
            if upcoming is None or upcoming > end:
                break
            self.advance(max(0.0, upcoming - self.now))
        if not self.quiet():
            self.advance(max(0.0, end - self.now))
        return self.quiet()

    def heal(self) -> list[Event]:
        """Make the network perfect and bring the link up."""
        self.faults.heal()
        return self.connect()

    # -- checks ----------------------------------------------------------------------------

    def differences(self) -> list[str]:
        """What keeps device and cloud apart; empty when they have converged.

        Converged means: the session is in sync with nothing queued, and its cached document
        (desired, reported, version) is the service's.
        """
        found = []
        session = self.session
        if session.state is not SessionState.IN_SYNC:
            found.append(f"the session is {session.state.value}, not in sync")
        pending = session.queue.pending(self.thing_name, self.shadow_name)
        if pending:
            found.append(f"{len(pending)} intents still queued")
        cloud = self.service.document(self.thing_name, self.shadow_name)
        cached = session.cloud_document
        if (cloud is None) != (cached is None):
            found.append(f"the service has {cloud!r}, the device's cache {cached!r}")
        elif cloud is not None and cached is not None:
            for name in ("version", "desired", "reported"):
                if getattr(cloud, name) != getattr(cached, name):
                    found.append(
                        f"{name}: the service has {getattr(cloud, name)!r}, "
                        f"the device's cache {getattr(cached, name)!r}"
                    )
        return found
