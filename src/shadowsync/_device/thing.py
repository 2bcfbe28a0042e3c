"""`ThingSession`: every shadow of one thing (classic and named) on one connection.

A real device has one MQTT connection: AWS IoT policies usually allow one client ID per thing,
and a connection holds at most 50 subscriptions. A `ThingSession` holds one `ShadowSession`
per shadow, all on one store and one offline queue, and multiplexes them onto one connection:

- it subscribes for all of them, spelled out while they fit within ``max_subscriptions`` and
  with ``$aws/things/{thing}/shadow/name/+/...`` wildcards for the named shadows beyond (the
  classic shadow's eight topics plus eight wildcards: sixteen filters for any number of
  shadows);
- it routes each message to the session of its shadow; a message for a shadow it does not hold
  (a wildcard brings them) is ignored and surfaced as a `MessageIgnored` event;
- each session keeps its own policy, rules, requests, retries and backoff, so a version-conflict
  storm or a backoff on one shadow never holds back another's reports;
- the application events of each shadow come wrapped in `FromShadow`, naming the shadow.

Like `ShadowSession`, it is sans-I/O: messages in, outputs (`Subscribe`, `Unsubscribe`,
`Publish`) and events out. `shadowsync.mqtt.DeviceBridge` runs it on one paho client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from shadowsync import topics
from shadowsync._device.queue import OfflineQueue, QueueLimits
from shadowsync._device.session import ShadowSession
from shadowsync._device.state import SessionState
from shadowsync._json import describe
from shadowsync._validators import check_now
from shadowsync.errors import InvalidArgumentError, TopicError
from shadowsync.events import (
    Event,
    FromShadow,
    MessageIgnored,
    Publish,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._device.config import SessionConfig, SessionHealth
    from shadowsync._device.store import Store
    from shadowsync.rules import Acknowledgement, RuleSet
    from shadowsync.strategies import Strategy

__all__ = ["AWS_MAX_SUBSCRIPTIONS", "ThingHealth", "ThingSession"]

AWS_MAX_SUBSCRIPTIONS = 50
"""Subscriptions AWS IoT allows on one connection."""

_PER_SHADOW = len(topics.subscriptions("t"))  # eight response topics per shadow


def _wildcards(thing_name: str) -> tuple[str, ...]:
    """The response topics of every named shadow of ``thing_name``, as ``name/+`` filters."""
    classic = topics.subscriptions(thing_name)
    root = topics.prefix(thing_name)
    return tuple(f"{root}/name/+{topic[len(root) :]}" for topic in classic)


@attrs.frozen(kw_only=True)
class ThingHealth:
    """The health of every shadow of a thing (``shadows``), and their sum.

    ``pending_intents``, ``held_back`` and ``consecutive_failures`` are summed;
    ``oldest_pending_age`` and ``divergence_age`` are the largest of the shadows'; ``in_sync``
    is true when every shadow is in sync; ``subscriptions`` is how many filters the connection
    holds.
    """

    shadows: dict[str | None, SessionHealth]
    connected: bool
    pending_intents: int
    held_back: int
    consecutive_failures: int
    oldest_pending_age: float | None
    divergence_age: float | None
    in_sync: bool
    in_review: tuple[str | None, ...]
    subscriptions: int

    def to_json(self) -> dict[str, Any]:
        """A JSON form for metrics; the classic shadow is keyed ``""``."""
        return {
            "connected": self.connected,
            "pendingIntents": self.pending_intents,
            "heldBack": self.held_back,
            "consecutiveFailures": self.consecutive_failures,
            "oldestPendingAge": self.oldest_pending_age,
            "divergenceAge": self.divergence_age,
            "inSync": self.in_sync,
            "inReview": ["" if name is None else name for name in self.in_review],
            "subscriptions": self.subscriptions,
            "shadows": {
                "" if name is None else name: health.to_json()
                for name, health in self.shadows.items()
            },
        }


def _largest(values: Iterator[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


class ThingSession:
    """Every shadow of one thing on one connection (see the module's description).

    ``store``, ``token`` and ``random`` are shared by every shadow's `ShadowSession`, and so is
    one `OfflineQueue` (bounded by ``queue_limits``). Add shadows with `add_shadow` (each with
    its own policy, rules and config), before or while connected; remove them with
    `remove_shadow`.

    ```pycon
    >>> from shadowsync.stores import MemoryStore
    >>> thing = ThingSession("thermostat-1", store=MemoryStore(), token=lambda: "t1",
    ...                      random=lambda: 0.5)
    >>> _ = thing.add_shadow(None)
    >>> _ = thing.add_shadow("configuration")
    >>> [type(output).__name__ for output in thing.connected(1700000000.0)][:3]
    ['Subscribe', 'FromShadow', 'Publish']
    >>> len(thing.subscriptions)
    16

    ```
    """

    def __init__(
        self,
        thing_name: str,
        *,
        store: Store,
        token: Callable[[], str],
        random: Callable[[], float],
        queue_limits: QueueLimits | None = None,
        max_subscriptions: int = AWS_MAX_SUBSCRIPTIONS,
    ) -> None:
        try:
            topics.prefix(thing_name)
        except TopicError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if type(max_subscriptions) is not int or max_subscriptions < 2 * _PER_SHADOW:
            raise InvalidArgumentError(
                f"max_subscriptions must be an int >= {2 * _PER_SHADOW} (the classic shadow's "
                f"topics and the named shadows' wildcards), got {describe(max_subscriptions)}"
            )
        if not callable(token) or not callable(random):
            raise InvalidArgumentError("token and random must be callables")
        self.thing_name = thing_name
        self._store = store
        self._token = token
        self._random = random
        self._max_subscriptions = max_subscriptions
        self._queue = OfflineQueue(
            store, limits=queue_limits if queue_limits is not None else QueueLimits()
        )
        self._sessions: dict[str | None, ShadowSession] = {}
        self._online = False
        # The filters the connection holds (empty while offline), in subscription order.
        self._subscribed: list[str] = []

    # -- the shadows -----------------------------------------------------------------------

    @property
    def shadow_names(self) -> tuple[str | None, ...]:
        """The shadows held, in the order they were added (``None``: the classic shadow)."""
        return tuple(self._sessions)

    @property
    def queue(self) -> OfflineQueue:
        """The offline queue every shadow writes its intents to."""
        return self._queue

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topic filters the connection holds now (none while offline)."""
        return tuple(self._subscribed)

    def session(self, shadow_name: str | None = None) -> ShadowSession:
        """The session of ``shadow_name`` (``None``: the classic shadow)."""
        try:
            return self._sessions[shadow_name]
        except KeyError:
            shown = "the classic shadow" if shadow_name is None else f"shadow {shadow_name!r}"
            raise InvalidArgumentError(
                f"{shown} is not on thing {self.thing_name!r}; add it with add_shadow"
            ) from None

    def add_shadow(
        self,
        shadow_name: str | None,
        now: float | None = None,
        *,
        policy: ResolutionPolicy | Strategy | None = None,
        rules: RuleSet | None = None,
        config: SessionConfig | None = None,
    ) -> list[Event]:
        """Hold the shadow ``shadow_name`` (``None``: the classic shadow) from now on.

        While connected (``now`` is then required), the shadow is subscribed and reconciled at
        once; the outputs and events of that are returned.
        """
        if shadow_name in self._sessions:
            raise InvalidArgumentError(f"shadow {shadow_name!r} is held already")
        session = ShadowSession(
            self.thing_name,
            shadow_name,
            store=self._store,
            token=self._token,
            random=self._random,
            queue=self._queue,
            policy=policy,
            rules=rules,
            config=config,
        )
        self._sessions[shadow_name] = session
        if not self._online:
            return []
        if now is None:
            raise InvalidArgumentError("add_shadow while connected needs now")
        now = check_now(now)
        out = self._resubscribe()
        out += self._wrap(shadow_name, session.connected(now))
        return out

    def remove_shadow(self, shadow_name: str | None, now: float | None = None) -> list[Event]:
        """Stop holding ``shadow_name``: its queued intents and cache stay in the store, for
        when it is added again. While connected, its subscriptions are dropped."""
        session = self.session(shadow_name)
        out: list[Event] = []
        if self._online:
            if now is None:
                raise InvalidArgumentError("remove_shadow while connected needs now")
            out += self._wrap(shadow_name, session.disconnected(check_now(now)))
        del self._sessions[shadow_name]
        if self._online:
            mine = set(topics.subscriptions(self.thing_name, shadow_name))
            gone = [topic for topic in self._subscribed if topic in mine]
            if gone:
                self._subscribed = [topic for topic in self._subscribed if topic not in mine]
                out.insert(0, Unsubscribe(topics=tuple(gone)))
        return out

    # -- the connection --------------------------------------------------------------------

    def _wanted(self) -> list[str]:
        """The filters for the shadows held: spelled out while they fit, else wildcards for
        the named shadows beyond the classic one."""
        explicit = [
            topic
            for name in self._sessions
            for topic in topics.subscriptions(self.thing_name, name)
        ]
        if len(explicit) <= self._max_subscriptions:
            return explicit
        classic = topics.subscriptions(self.thing_name) if None in self._sessions else []
        return [*classic, *_wildcards(self.thing_name)]

    def _resubscribe(self) -> list[Event]:
        """Subscribe what is wanted and not held; drop what is held and no longer needed."""
        wanted = self._wanted()
        have = set(self._subscribed)
        new = [topic for topic in wanted if topic not in have]
        stale = [topic for topic in self._subscribed if topic not in set(wanted)]
        out: list[Event] = []
        if new:
            out.append(Subscribe(topics=tuple(new)))
        if stale:
            out.append(Unsubscribe(topics=tuple(stale)))
        self._subscribed = wanted
        return out

    def connected(self, now: float) -> list[Event]:
        """The transport connected (again): one subscription for every shadow, then each
        shadow fetches its snapshot and reconciles."""
        now = check_now(now)
        self._online = True
        self._subscribed = []
        out = self._resubscribe()
        for name, session in self._sessions.items():
            out += self._wrap(name, session.connected(now))
        return out

    def disconnected(self, now: float) -> list[Event]:
        """The transport disconnected: every shadow is told."""
        now = check_now(now)
        self._online = False
        self._subscribed = []
        out: list[Event] = []
        for name, session in self._sessions.items():
            out += self._wrap(name, session.disconnected(now))
        return out

    def receive_message(
        self, topic: str, payload: bytes | bytearray | memoryview | str, now: float
    ) -> list[Event]:
        """Route a message to the session of its shadow; anything else is `MessageIgnored`."""
        now = check_now(now)
        try:
            parsed = topics.parse(topic)
        except TopicError as exc:
            return [MessageIgnored(topic=_shown(topic), reason=str(exc))]
        if parsed.thing_name != self.thing_name:
            return [
                MessageIgnored(topic=_shown(topic), reason=f"not for thing {self.thing_name!r}")
            ]
        session = self._sessions.get(parsed.shadow_name)
        if session is None:
            shown = (
                "the classic shadow"
                if parsed.shadow_name is None
                else (f"shadow {parsed.shadow_name!r}")
            )
            return [MessageIgnored(topic=_shown(topic), reason=f"{shown} is not on this device")]
        return self._wrap(parsed.shadow_name, session.receive_message(topic, payload, now))

    def tick(self, now: float) -> list[Event]:
        """Let time pass for every shadow whose deadline is due."""
        now = check_now(now)
        out: list[Event] = []
        for name, session in list(self._sessions.items()):
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                out += self._wrap(name, session.tick(now))
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline of the shadows, or ``None``."""
        return _smallest(session.next_deadline() for session in self._sessions.values())

    # -- commands (each for one shadow, ``None``: the classic one) --------------------------

    def report(
        self, changes: Mapping[str, Any], now: float, *, shadow: str | None = None
    ) -> list[Event]:
        """Report ``changes`` to ``shadow``; see `ShadowSession.report`."""
        return self._wrap(shadow, self.session(shadow).report(changes, now))

    def desire(
        self, changes: Mapping[str, Any], now: float, *, shadow: str | None = None
    ) -> list[Event]:
        """Change the desired state of ``shadow``; see `ShadowSession.desire`."""
        return self._wrap(shadow, self.session(shadow).desire(changes, now))

    def acknowledge(
        self, acknowledgement: Acknowledgement, now: float, *, shadow: str | None = None
    ) -> list[Event]:
        """Queue an acknowledgement on ``shadow``; see `ShadowSession.acknowledge`."""
        return self._wrap(shadow, self.session(shadow).acknowledge(acknowledgement, now))

    def get(self, now: float, *, shadow: str | None = None) -> list[Event]:
        """Fetch the snapshot of ``shadow`` again; see `ShadowSession.get`."""
        return self._wrap(shadow, self.session(shadow).get(now))

    def delete(self, now: float, *, shadow: str | None = None) -> list[Event]:
        """Delete ``shadow``; see `ShadowSession.delete`."""
        return self._wrap(shadow, self.session(shadow).delete(now))

    def resume(self, now: float, *, shadow: str | None = None) -> list[Event]:
        """Resume ``shadow`` after manual review; see `ShadowSession.resume`."""
        return self._wrap(shadow, self.session(shadow).resume(now))

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """``in_sync`` when every shadow is; otherwise the state of the first that is not."""
        for session in self._sessions.values():
            if session.state is not SessionState.IN_SYNC:
                return session.state
        return SessionState.IN_SYNC if self._online else SessionState.OFFLINE

    def health(self, now: float) -> ThingHealth:
        """The health of every shadow at ``now``, and their sum."""
        now = check_now(now)
        shadows = {name: session.health(now) for name, session in self._sessions.items()}
        values = list(shadows.values())
        return ThingHealth(
            shadows=shadows,
            connected=self._online,
            pending_intents=sum(h.pending_intents for h in values),
            held_back=sum(h.held_back for h in values),
            consecutive_failures=sum(h.consecutive_failures for h in values),
            oldest_pending_age=_largest(h.oldest_pending_age for h in values),
            divergence_age=_largest(h.divergence_age for h in values),
            in_sync=all(h.state is SessionState.IN_SYNC for h in values),
            in_review=tuple(name for name, h in shadows.items() if h.in_review),
            subscriptions=len(self._subscribed),
        )

    # -- internals -------------------------------------------------------------------------

    def _wrap(self, shadow_name: str | None, outputs: list[Event]) -> list[Event]:
        """A session's outputs for the device: its own subscriptions are the device's to make
        (all at once, within the budget); its application events name the shadow."""
        out: list[Event] = []
        for output in outputs:
            if isinstance(output, Subscribe):
                continue
            if isinstance(output, Publish):
                out.append(output)
            else:
                out.append(FromShadow(shadow_name=shadow_name, event=output))
        return out


def _smallest(values: Iterator[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _shown(topic: object) -> str:
    return topic[:200] if isinstance(topic, str) and topic else "<not a topic>"
