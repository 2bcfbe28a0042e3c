"""`DeviceBridge`: a `ShadowSession`, or every shadow of a thing (`ThingSession`), on one paho
client, with a tick scheduler."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from shadowsync._device.session import ShadowSession
from shadowsync._device.thing import ThingSession
from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import Event, MessageIgnored, Publish, Subscribe, Unsubscribe
from shadowsync.mqtt._transport import (
    Bridge,
    TransportError,
    check_callback,
    publish,
    subscribe,
    unsubscribe,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from paho.mqtt.client import Client, MQTTMessage
    from paho.mqtt.reasoncodes import ReasonCode

    from shadowsync._device.config import SessionHealth
    from shadowsync._device.state import SessionState
    from shadowsync._device.thing import ThingHealth
    from shadowsync._json import JSONObject
    from shadowsync.rules import Acknowledgement

# Waits are cut into slices so that a clock that jumps (or an injected one) is noticed.
_MAX_WAIT = 1.0


class _Own:
    """The default of the commands' ``shadow``: the bridge's only shadow, or the classic one."""

    def __repr__(self) -> str:
        return "OWN"


_OWN = _Own()

# The commands that take the application's changes: durable when they return. The others only
# ask the cloud something, and what they write (if anything) need not wait for the disk.
_DURABLE = frozenset({"report", "acknowledge", "desire"})


class DeviceBridge(Bridge):
    """Runs one `ShadowSession`, or a `ThingSession` holding every shadow of a thing, over a
    paho-mqtt 2.x client.

    A device has one connection (AWS IoT allows one per thing): give it a `ThingSession` to
    serve the classic shadow and any named shadows on it. The commands then take
    ``shadow=`` (``None``, the default: the classic shadow), application events come wrapped in
    `FromShadow`, and `device_health` sums the shadows' health. A second bridge on the same
    client raises `InvalidArgumentError`.

    The client is yours: create it with ``CallbackAPIVersion.VERSION2``, set TLS and
    credentials, connect it and run its network loop (``loop_start``). The bridge owns four of
    its callbacks (``on_connect``, ``on_disconnect``, ``on_message``, ``on_subscribe``); for
    other topics use ``client.message_callback_add``.

    - A successful connect calls ``session.connected``, a disconnect ``session.disconnected``,
      every message ``session.receive_message``, all with ``clock()`` as the time.
    - `Subscribe` and `Publish` outputs go out in order at QoS 1. A publish that follows a
      subscribe is held until the broker's SUBACK, so the answer cannot race the subscription.
    - `report`, `desire`, `get`, `delete` and `resume` are safe to call from any thread. A
      command's requests are handed to the client before its store commit ends, so the disk
      and the round trip take their time together; `report` returns once the report is
      durable. They return the application events of the call; every application event
      (from any thread) also goes to ``on_event``, or, without one, waits in `take_events`
      (the latest ``max_kept_events`` of them: a device that never takes them does not grow
      without bound).
    - `start` runs a daemon thread that calls ``session.tick`` at ``session.next_deadline()``
      (timeouts, retries, backoff); with ``start(scheduler=False)`` call `poll` yourself.
    - Errors raised on the network or scheduler thread (a failing store, an ``on_event`` that
      raises, a refused subscription) go to ``on_error``, or are logged on the
      ``shadowsync.mqtt`` logger; the network loop keeps running.

    ```pycon
    >>> from paho.mqtt.client import Client
    >>> from paho.mqtt.enums import CallbackAPIVersion
    >>> from shadowsync import ShadowSession
    >>> from shadowsync.stores import MemoryStore
    >>> session = ShadowSession("lamp-1", store=MemoryStore(), token=lambda: "t1",
    ...                         random=lambda: 0.5)
    >>> client = Client(callback_api_version=CallbackAPIVersion.VERSION2)
    >>> with DeviceBridge(client, session) as bridge:  # then client.connect(...) and loop_start()
    ...     [type(event).__name__ for event in bridge.report({"on": True})]
    ['IntentsQueued']

    ```
    """

    def __init__(
        self,
        client: Client,
        session: ShadowSession | ThingSession,
        *,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[Event], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        max_kept_events: int = 10_000,
    ) -> None:
        super().__init__(client, on_error)
        if type(max_kept_events) is not int or max_kept_events < 1:
            raise InvalidArgumentError(
                f"max_kept_events must be an int >= 1, got {describe(max_kept_events)}"
            )
        if not isinstance(session, (ShadowSession, ThingSession)):
            raise InvalidArgumentError(
                f"session must be a ShadowSession or a ThingSession, got {describe(session)}"
            )
        if not callable(clock):
            raise InvalidArgumentError(f"clock must be callable, got {describe(clock)}")
        check_callback("on_event", on_event)
        self._session = session
        self._clock = clock
        self._on_event = on_event
        # Re-entrant: on_event may call the bridge's commands.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._events: deque[Event] = deque(maxlen=max_kept_events)
        self._awaiting_suback: set[int] = set()
        self._held: deque[Publish] = deque()
        self._online = False
        self._thread: threading.Thread | None = None
        # When the scheduler will wake by itself (None: only when woken).
        self._sleeping_until: float | None = None
        self._hold_client()

    # -- life cycle ------------------------------------------------------------------------

    def start(self, *, scheduler: bool = True) -> DeviceBridge:
        """Install the client callbacks and (with ``scheduler``) start the tick thread.

        If the client is connected already, the session is told so at once.
        """
        with self._lock:
            if not self._install():
                return self
            if scheduler:
                self._thread = threading.Thread(
                    target=self._run,
                    name=f"shadowsync-mqtt-{self._session.thing_name}",
                    daemon=True,
                )
                self._thread.start()
            if self._client.is_connected():
                self._connected()
        return self

    def close(self) -> None:
        """Stop the tick thread and remove the callbacks. The client stays yours to disconnect."""
        with self._lock:
            if not self._uninstall():
                return
            self._wake.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- commands --------------------------------------------------------------------------

    def report(
        self, changes: Mapping[str, Any], *, shadow: str | _Own | None = _OWN
    ) -> list[Event]:
        """Report ``changes`` (queued durably, sent when online); see `ShadowSession.report`."""
        return self._command("report", shadow, changes)

    def acknowledge(
        self, acknowledgement: Acknowledgement, *, shadow: str | _Own | None = _OWN
    ) -> list[Event]:
        """Report an acknowledgement in ``reported["$ack"]``; see `ShadowSession.acknowledge`."""
        return self._command("acknowledge", shadow, acknowledgement)

    @property
    def accepted_desired(self) -> JSONObject:
        """The desired state the session accepted (a copy); see `ShadowSession.accepted_desired`.

        With a `ThingSession`, the classic shadow's; see `accepted_desired_of`.
        """
        return self.accepted_desired_of(_OWN)

    def accepted_desired_of(self, shadow: str | _Own | None = _OWN) -> JSONObject:
        """The desired state the session of ``shadow`` accepted (a copy)."""
        with self._lock:
            return self._target(shadow).accepted_desired

    def desire(
        self, changes: Mapping[str, Any], *, shadow: str | _Own | None = _OWN
    ) -> list[Event]:
        """Change the desired state; see `ShadowSession.desire`."""
        return self._command("desire", shadow, changes)

    def get(self, *, shadow: str | _Own | None = _OWN) -> list[Event]:
        """Fetch the snapshot again and reconcile; see `ShadowSession.get`."""
        return self._command("get", shadow)

    def delete(self, *, shadow: str | _Own | None = _OWN) -> list[Event]:
        """Delete the shadow; see `ShadowSession.delete`."""
        return self._command("delete", shadow)

    def resume(self, *, shadow: str | _Own | None = _OWN) -> list[Event]:
        """Resume after manual review, or retry now while backing off."""
        return self._command("resume", shadow)

    def poll(self) -> list[Event]:
        """Call ``session.tick`` if its deadline is due; for users who run their own loop."""
        with self._lock:
            deadline = self._session.next_deadline()
            now = self._clock()
            if deadline is None or now < deadline:
                return []
            return self._execute(self._session.tick(now))

    def next_deadline(self) -> float | None:
        """When `poll` next has something to do (in ``clock`` time), or ``None``."""
        with self._lock:
            return self._session.next_deadline()

    @property
    def state(self) -> SessionState:
        """The session's state."""
        with self._lock:
            return self._session.state

    def health(self, *, shadow: str | _Own | None = _OWN) -> SessionHealth:
        """The health of the session (of ``shadow``, with a `ThingSession`) now."""
        with self._lock:
            return self._target(shadow).health(self._clock())

    def device_health(self) -> ThingHealth:
        """The health of every shadow of a `ThingSession` now, and their sum."""
        with self._lock:
            if not isinstance(self._session, ThingSession):
                raise InvalidArgumentError("device_health needs a ThingSession; use health()")
            return self._session.health(self._clock())

    def take_events(self) -> list[Event]:
        """The application events kept since the last call (only kept without ``on_event``).

        At most the latest ``max_kept_events`` are kept; older ones are discarded.
        """
        with self._lock:
            events = list(self._events)
            self._events.clear()
            return events

    def _target(self, shadow: str | _Own | None) -> ShadowSession:
        """The session of ``shadow``: a ThingSession's, or the bridge's only one."""
        session = self._session
        if isinstance(session, ThingSession):
            return session.session(None if isinstance(shadow, _Own) else shadow)
        if not isinstance(shadow, _Own) and shadow != session.shadow_name:
            raise InvalidArgumentError(
                f"this bridge serves shadow {session.shadow_name!r} only, not {shadow!r}"
            )
        return session

    def _command(self, name: str, shadow: str | _Own | None, *args: object) -> list[Event]:
        with self._lock:
            if self._closed:
                raise InvalidArgumentError("this bridge was closed; create a new one")
            session = self._session
            # The requests go out before the command's commit ends, so the disk and the
            # round trip take their time together; the command returns once the commit has
            # ended (what it reports is durable by then) and only then delivers its events.
            with session.queue.transaction(durable=name in _DURABLE):
                if isinstance(session, ThingSession):
                    method: Callable[..., list[Event]] = getattr(session, name)
                    chosen = None if isinstance(shadow, _Own) else shadow
                    outputs = method(*args, self._clock(), shadow=chosen)
                else:
                    outputs = getattr(self._target(shadow), name)(*args, self._clock())
                events = self._send(outputs)
            return self._deliver_all(events)

    # -- outputs ---------------------------------------------------------------------------

    def _execute(self, outputs: list[Event]) -> list[Event]:
        """Send the transport outputs in order, then deliver the application events."""
        return self._deliver_all(self._send(outputs))

    def _deliver_all(self, events: list[Event]) -> list[Event]:
        if self._thread is not None:
            # Wake the scheduler only when it must act sooner than it planned to: a deadline
            # that moved later wakes it early once, and it plans again.
            deadline = self._session.next_deadline()
            planned = self._sleeping_until
            if deadline is not None and (planned is None or deadline < planned):
                self._wake.notify_all()
        for event in events:
            self._deliver(event)
        return events

    def _send(self, outputs: list[Event]) -> list[Event]:
        """Send the transport outputs in order; the application events among them."""
        events: list[Event] = []
        for output in outputs:
            if isinstance(output, Subscribe):
                self._subscribe(output)
            elif isinstance(output, Unsubscribe):
                self._unsubscribe(output)
            elif isinstance(output, Publish):
                if self._awaiting_suback:
                    self._held.append(output)
                else:
                    self._publish(output)
            else:
                events.append(output)
        return events

    def _deliver(self, event: Event) -> None:
        if self._on_event is None:
            self._events.append(event)
            return
        try:
            self._on_event(event)
        except Exception as exc:
            self._errors.report(exc)

    def _subscribe(self, output: Subscribe) -> None:
        if not self._client.is_connected():
            return  # the session subscribes again on the next connect
        try:
            mid = subscribe(self._client, output.topics, "the shadow topics")
        except TransportError as exc:
            self._errors.report(exc)
            return
        self._awaiting_suback.add(mid)

    def _unsubscribe(self, output: Unsubscribe) -> None:
        if not self._client.is_connected():
            return  # the subscriptions went with the connection
        try:
            unsubscribe(self._client, output.topics)
        except TransportError as exc:
            self._errors.report(exc)

    def _publish(self, output: Publish) -> None:
        # Offline, the session will send again after the reconnect; paho would otherwise queue
        # the stale request and send it after the session's own, newer ones.
        if not self._client.is_connected():
            return
        publish(self._client, output.topic, output.payload, self._errors)

    # -- on the client's network thread (see Bridge) ---------------------------------------

    def _connected(self) -> None:
        with self._lock:
            if self._closed or self._online:
                return
            self._online = True
            self._awaiting_suback.clear()
            self._held.clear()
            self._execute(self._session.connected(self._clock()))

    def _disconnected(self) -> None:
        with self._lock:
            self._online = False
            self._awaiting_suback.clear()
            self._held.clear()
            if not self._closed:
                self._execute(self._session.disconnected(self._clock()))

    def _received(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            with self._lock:
                self._deliver(MessageIgnored(topic="<not UTF-8>", reason="the topic is not UTF-8"))
            return
        with self._lock:
            if not self._closed:
                self._execute(self._session.receive_message(topic, message.payload, self._clock()))

    def _subscribed(self, mid: int, reason_codes: list[ReasonCode]) -> None:
        with self._lock:
            if mid not in self._awaiting_suback:
                return
            self._awaiting_suback.discard(mid)
            # Refused, the answers will not arrive; the session's request timeout retries.
            self._errors.subscribed(reason_codes, "shadow")
            while self._held and not self._awaiting_suback:
                self._publish(self._held.popleft())

    # -- the scheduler ---------------------------------------------------------------------

    def _sleep(self, deadline: float | None, seconds: float | None = None) -> None:
        """Wait (the lock released) until ``deadline``, at most ``seconds``, or a wake-up."""
        self._sleeping_until = deadline
        try:
            self._wake.wait(seconds)
        finally:
            self._sleeping_until = None

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                try:
                    deadline = self._session.next_deadline()
                    if deadline is None:
                        self._sleep(None)
                        continue
                    now = self._clock()
                    if now < deadline:
                        self._sleep(deadline, min(deadline - now, _MAX_WAIT))
                        continue
                    self._sleeping_until = now  # awake: what it executes needs no wake-up
                    self._execute(self._session.tick(now))
                except Exception as exc:
                    self._errors.report(exc)
                    self._sleep(None, _MAX_WAIT)  # a persistent failure must not spin
