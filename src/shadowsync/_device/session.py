"""The device's sync engine for one shadow, as a sans-I/O state machine.

`ShadowSession` never opens a socket, reads a clock or draws a random number. Messages come
in as ``(topic, payload)``, connection changes and commands as method calls, and time as the
``now`` argument of every call; each call returns the `shadowsync.events` values to act on, in
order: `Subscribe` and `Publish` for the transport, the rest for the application.

The session is the event loop: it takes the inputs, drives the state machine, and decides
when a request goes out and what an answer means. Its parts live beside it in this package:

- `shadowsync._device.state`: the states and the one table of transitions (as in h11), which
  the session moves through only by `transition`;
- `shadowsync._device.config`: `SessionConfig`, `Backoff` and `SessionHealth`;
- `shadowsync._device.messages`: reading incoming messages and the application's changes;
- `shadowsync._device.requests`: the outgoing messages and the one request in flight;
- `shadowsync._device.view`: `CloudView`, what the device knows of the cloud (cached in the
  store) and the last state both sides agreed on;
- `shadowsync._device.desired`: judging the cloud's desired state with the rules, the
  acknowledgements and deltas it gives, and the desired changes made on the device;
- `shadowsync._device.outbox`: queuing the shadow's intents, and the plan of updates that
  carries them, made by the pure functions of `shadowsync._device.plan`.

A payload received goes: `read_message` (messages), the session's handler for its operation,
the view (what the cloud said), the desired tracker (what the device makes of it), then the
session's ``_sync_step``, which asks the outbox for the next update when nothing is in flight.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec

from shadowsync import topics
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync._device.config import SessionConfig, SessionHealth
from shadowsync._device.desired import DesiredTracker, Source
from shadowsync._device.messages import (
    Incoming,
    read_changes,
    read_message,
    read_notification,
    rejection,
)
from shadowsync._device.outbox import Outbox
from shadowsync._device.pacing import ReportPacer
from shadowsync._device.queue import OfflineQueue
from shadowsync._device.requests import Request, Requests
from shadowsync._device.state import (
    CONNECTED_STATES,
    TRANSITIONS,
    SessionState,
    SessionStateError,
    Trigger,
    transition,
)
from shadowsync._device.state import diagram as draw_diagram
from shadowsync._device.store import store_transaction
from shadowsync._device.view import CloudView
from shadowsync._document import ShadowDocument
from shadowsync._json import (
    JSONObject,
    copy_object,
    describe,
)
from shadowsync._tree import leaves
from shadowsync._validators import check_now
from shadowsync.errors import (
    InvalidArgumentError,
    ShadowSyncError,
    TopicError,
)
from shadowsync.events import (
    AcknowledgementQueued,
    Event,
    MessageIgnored,
    RequestFailed,
    ShadowDeleted,
    SnapshotReceived,
    StateChanged,
    SyncCompleted,
    UpdateAccepted,
    UpdateRejected,
)
from shadowsync.rules import ACK_KEY, Acknowledgement, RuleSet
from shadowsync.strategies import OwnerWins, Strategy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync._device.plan import (
        Planned,
    )
    from shadowsync.stores import Store

__all__ = ["ShadowSession"]

_PERMANENT_CODES = frozenset({400, 413, 415})
_MAX_EARLY = 64

_P = ParamSpec("_P")
_Method = Callable[Concatenate["ShadowSession", _P], list[Event]]


def _call(*, durable: bool) -> Callable[[_Method[_P]], _Method[_P]]:
    """A session call writes once: its changes to the queue and the cache are one store
    transaction, the cache entry written at its end (if the view changed).

    ``durable`` calls (what the application reports) are on the disk when they return; the
    others (what the cloud said, what time did) need not wait for it: a power cut that takes
    them is a power cut while the update was in flight. A call that raises writes nothing.
    """

    def decorate(method: _Method[_P]) -> _Method[_P]:
        @functools.wraps(method)
        def call(self: ShadowSession, /, *args: _P.args, **kwargs: _P.kwargs) -> list[Event]:
            with (
                self._queue.transaction(durable=durable),
                store_transaction(self._store, durable=durable),
            ):
                out = method(self, *args, **kwargs)
                rollbacks = getattr(self._store, "rollbacks", 0)
                if rollbacks != self._rollbacks_seen:
                    # A transaction rolled back since the cache entry was written (this
                    # session's or an enclosing one): the entry may be gone with it.
                    self._rollbacks_seen = rollbacks
                    self._view.forget_saved()
                self._view.persist()
            return out

        return call

    return decorate


class ShadowSession:
    """The device's sync engine for one shadow (classic or named), without any I/O.

    Feed it what happens: `connected` / `disconnected`, `receive_message` for every message
    on the subscribed topics, `tick` at `next_deadline` (or every second or so), and the
    application's commands `report`, `desire`, `get`, `delete` and `resume`. Each returns the
    `shadowsync.events` to act on: send `Subscribe` and `Publish` in order, hand the rest to the
    application.

    Reports are queued as intents in the durable `OfflineQueue` first, then published when the
    session is online, at most one update in flight. On every (re)connect the session
    subscribes, fetches the snapshot, merges snapshot, last synced base and queued intents
    three ways through the ``policy`` (per path), judges the desired state with the ``rules``,
    and publishes only what the cloud lacks, with the known ``version`` so that a concurrent
    change answers 409 and is merged again (up to ``max_conflict_retries``, then manual review).

    ``token`` makes client tokens (unique, at most 64 bytes) and ``random`` returns floats in
    [0, 1) for the backoff jitter; the session calls nothing else.

    ```pycon
    >>> from shadowsync.stores import MemoryStore
    >>> tokens = iter(f"t{n}" for n in range(100))
    >>> session = ShadowSession("lamp", store=MemoryStore(), token=lambda: next(tokens),
    ...                         random=lambda: 0.5)
    >>> [type(e).__name__ for e in session.connected(now=1700000000)]
    ['StateChanged', 'Subscribe', 'Publish']
    >>> session.state
    <SessionState.FETCHING: 'fetching'>

    ```
    """

    TRANSITIONS: ClassVar[Mapping[SessionState, Mapping[Trigger, SessionState]]] = TRANSITIONS
    """The state table: ``TRANSITIONS[state][trigger]`` is the next state."""

    def __init__(
        self,
        thing_name: str,
        shadow_name: str | None = None,
        *,
        store: Store,
        token: Callable[[], str],
        random: Callable[[], float],
        queue: OfflineQueue | None = None,
        policy: ResolutionPolicy | Strategy | None = None,
        rules: RuleSet | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        if config is None:
            config = SessionConfig()
        if not isinstance(config, SessionConfig):
            raise InvalidArgumentError(f"config must be a SessionConfig, got {describe(config)}")
        self._config = config
        self._limits = config.limits
        try:
            topics.prefix(thing_name, shadow_name, limits=self._limits)
        except TopicError as exc:
            raise InvalidArgumentError(str(exc)) from None
        if not callable(token) or not callable(random):
            raise InvalidArgumentError("token and random must be callables")
        if rules is not None and not isinstance(rules, RuleSet):
            raise InvalidArgumentError(f"rules must be a RuleSet or None, got {describe(rules)}")
        policy = _as_policy(policy)
        self.thing_name = thing_name
        self.shadow_name = shadow_name
        if queue is not None and not isinstance(queue, OfflineQueue):
            raise InvalidArgumentError(f"queue must be an OfflineQueue, got {describe(queue)}")
        self._queue = (
            queue
            if queue is not None
            else OfflineQueue(store, limits=config.queue_limits, shadow_limits=self._limits)
        )
        self._requests = Requests(
            thing_name=thing_name,
            shadow_name=shadow_name,
            limits=self._limits,
            token=token,
            timeout=config.request_timeout,
        )
        self._random = random
        self._store = store
        self._rollbacks_seen: object = getattr(store, "rollbacks", 0)

        self._state = SessionState.OFFLINE
        self._early: list[Incoming] = []
        self._retry_at: float | None = None
        self._failures = 0
        self._conflicts = 0
        self._last_sync_at: int | None = None
        self._refresh_wanted = False
        self._refresh_at: float | None = None
        self._pacer = ReportPacer(config.report_policy)
        self._hold_until: float | None = None
        self._startup: list[Event] = []

        # What the device knows of the cloud, and the last state both sides agreed on.
        self._view = CloudView(store, thing_name, shadow_name, limits=self._limits)
        reset = self._view.load()
        if reset is not None:
            self._startup.append(reset)
        self._desired = DesiredTracker(
            view=self._view,
            policy=policy,
            rules=rules,
            acknowledge=config.acknowledge,
            auto_report=config.auto_report,
            thing_name=thing_name,
            shadow_name=shadow_name,
            store=store,
        )
        self._outbox = Outbox(
            queue=self._queue,
            view=self._view,
            desired=self._desired,
            policy=policy,
            compare_and_set=config.compare_and_set,
            token=self._requests.new_token,
            thing_name=thing_name,
            shadow_name=shadow_name,
            node=config.node if config.node is not None else thing_name,
        )

    # -- introspection ---------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """The current state (see `TRANSITIONS`)."""
        return self._state

    @property
    def connected_now(self) -> bool:
        """Whether the transport is connected, as far as the session was told."""
        return self._state in CONNECTED_STATES

    @property
    def queue(self) -> OfflineQueue:
        """The offline queue the session writes intents to."""
        return self._queue

    @property
    def last_seen_version(self) -> int | None:
        """The highest shadow version seen (``None`` before any, and after a delete)."""
        return self._view.last_seen

    @property
    def cloud_document(self) -> ShadowDocument | None:
        """The last known cloud document (the local shadow cache), ``None`` if none exists."""
        return self._view.document

    @property
    def accepted_desired(self) -> JSONObject:
        """The desired state the device accepted (after the business rules); a copy."""
        return copy_object(self._view.agreed.accepted_desired)

    def device_reported(self) -> JSONObject:
        """The reported state as the device sees it: the cloud's plus every queued intent."""
        return self._view.device_reported(self._outbox.pending())

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (a timeout or a retry), or ``None``."""
        times = [t for t in (self._retry_at,) if t is not None]
        if self._requests.in_flight is not None:
            times.append(self._requests.in_flight.deadline)
        elif self._state is SessionState.IN_SYNC:
            times += [t for t in (self._refresh_at, self._hold_until) if t is not None]
        return min(times) if times else None

    def health(self, now: float) -> SessionHealth:
        """The session's health at ``now``: a stuck sync shows as failures and growing ages."""
        now = check_now(now)
        pending = self._outbox.pending()
        oldest = min((i.created_at for i in pending), default=None)
        since = [t for t in (oldest, self._desired.behind_since()) if t is not None]
        return SessionHealth(
            state=self._state,
            connected=self.connected_now,
            pending_intents=len(pending),
            held_back=self._pacer.held_back(i.seq for i in pending),
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
            last_sync_at=self._last_sync_at,
            consecutive_failures=self._failures,
            divergence_age=max(0.0, now - min(since)) if since else None,
            next_retry_at=self._retry_at,
            last_seen_version=self._view.last_seen,
        )

    @staticmethod
    def diagram() -> str:
        """The state diagram of `TRANSITIONS` in Mermaid syntax (as shown in the docs)."""
        return draw_diagram()

    # -- connection events -----------------------------------------------------------------

    @_call(durable=False)
    def connected(self, now: float) -> list[Event]:
        """The transport connected (again): subscribe, fetch the snapshot, then reconcile.

        Called while already connected, it counts as a reconnect.
        """
        now, out = self._begin(now)
        if self._state is not SessionState.OFFLINE:
            out += self.disconnected(now)
        self._conflicts = 0
        self._fire(Trigger.CONNECTED, out)
        out.append(self._requests.subscribe())
        self._send_get(now, out)
        return out

    @_call(durable=False)
    def disconnected(self, now: float) -> list[Event]:
        """The transport disconnected. In-flight requests are forgotten; the queue keeps all."""
        now, out = self._begin(now)
        if self._state is SessionState.OFFLINE:
            return out
        self._requests.done()
        self._outbox.forget_plan()
        self._early = []
        self._retry_at = None
        self._refresh_at = None
        self._hold_until = None
        self._view.doubt()
        self._fire(Trigger.DISCONNECTED, out)
        return out

    # -- commands --------------------------------------------------------------------------

    @_call(durable=True)
    def report(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Report ``changes`` to the reported state (``None`` deletes a key).

        The changes become intents (one per top-level key, or per leaf where that supersedes
        what is still queued), durable in the queue when this returns, and are published
        as soon as the session is online and idle. Raises the AWS rejection (400, 413) for
        changes the service could never accept, before anything is queued.

        ```pycon
        >>> from shadowsync.stores import MemoryStore
        >>> session = ShadowSession("lamp", store=MemoryStore(), token=lambda: "t",
        ...                         random=lambda: 0.0)
        >>> [type(e).__name__ for e in session.report({"on": True}, now=1700000000)]
        ['IntentsQueued']

        ```
        """
        now, out = self._begin(now)
        changed = read_changes(changes, section="reported", limits=self._limits)
        if not changed:
            return out
        # The state before the report, for the deadbands (only computed when there are some).
        before = self.device_reported() if self._pacer.has_deadband else {}
        queued = self._outbox.put_report(changed, now, out)
        self._pacer.hold_if_small(queued, before, now)
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    @_call(durable=True)
    def acknowledge(self, acknowledgement: Acknowledgement, now: float) -> list[Event]:
        """Report ``acknowledgement`` as ``reported["$ack"]``, queued like the session's own.

        For answers the application makes about the desired state, such as a reconciler
        rolling a target back (`shadowsync.reconcile`).
        """
        now, out = self._begin(now)
        if not isinstance(acknowledgement, Acknowledgement):
            raise InvalidArgumentError(
                f"acknowledgement must be an Acknowledgement, got {describe(acknowledgement)}"
            )
        self._outbox.put([("ack", (ACK_KEY,), acknowledgement.to_dict())], now, out)
        out.append(AcknowledgementQueued(acknowledgement=acknowledgement))
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    @_call(durable=True)
    def desire(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Change the desired state (for a session used on the cloud side, or a local UI).

        Desired changes are merged together and kept durably in the store (``put_state``, with
        the cloud's desired state they were made against), so they survive a crash or a reboot.
        They are sent after the queued reports, with the same version check and retries. Before
        that, they are merged three ways against the cloud's desired state through the
        session's ``policy``: with the default (`OwnerWins`: the cloud owns desired) a path the
        cloud changed since wins over the local change, announced by a `ConflictResolved`; a
        path the cloud did not change is sent.
        """
        now, out = self._begin(now)
        section = read_changes(changes, section="desired", limits=self._limits)
        if not section:
            return out
        self._desired.change(section, now)
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    @_call(durable=False)
    def get(self, now: float) -> list[Event]:
        """Fetch the snapshot again and reconcile (at once if idle, else after the update)."""
        now, out = self._begin(now)
        if self._state is SessionState.IN_SYNC:
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
        elif self._state is SessionState.UPDATING:
            self._refresh_wanted = True
        return out

    @_call(durable=False)
    def delete(self, now: float) -> list[Event]:
        """Delete the shadow. Queued intents stay and are published afterwards (re-creating it).

        Raises `SessionStateError` when offline or while another request is in flight.
        """
        now, out = self._begin(now)
        if Trigger.DELETE not in TRANSITIONS[self._state]:
            raise SessionStateError(
                f"cannot delete the shadow while {self._state.value}; "
                "wait until the session is in sync"
            )
        self._retry_at = None
        self._fire(Trigger.DELETE, out)
        out.append(self._requests.send("delete", now))
        return out

    @_call(durable=False)
    def resume(self, now: float) -> list[Event]:
        """Resume syncing after manual review, or retry at once while backing off.

        Raises `SessionStateError` when offline; does nothing in the other states.
        """
        now, out = self._begin(now)
        if self._state is SessionState.OFFLINE:
            raise SessionStateError("cannot resume while offline; connect first")
        if Trigger.RESUME in TRANSITIONS[self._state]:
            self._conflicts = 0
            self._retry_at = None
            self._fire(Trigger.RESUME, out)
            self._send_get(now, out)
        return out

    @_call(durable=False)
    def tick(self, now: float) -> list[Event]:
        """Let time pass: time out requests, retry after backoff, expire old intents."""
        now, out = self._begin(now)
        self._outbox.expire(now, out)
        request = self._requests.timed_out(now)
        if request is not None:
            if request.operation == "update":
                self._view.doubt()  # it may have been applied
            reason = f"no answer within {self._config.request_timeout:g} s"
            self._fail(now, out, request, reason)
        if (
            self._state is SessionState.BACKOFF
            and self._retry_at is not None
            and now >= self._retry_at
        ):
            self._retry_at = None
            self._fire(Trigger.RETRY, out)
            self._send_get(now, out)
        if (
            self._state is SessionState.IN_SYNC
            and self._hold_until is not None
            and now >= self._hold_until
            and self._requests.in_flight is None
        ):
            self._hold_until = None
            self._sync_step(now, out)
        if (
            self._state is SessionState.IN_SYNC
            and self._refresh_at is not None
            and now >= self._refresh_at
            and self._requests.in_flight is None
        ):
            # The periodic GET: a notification lost to a subscription that died silently is
            # found in the snapshot.
            self._refresh_at = None
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
        return out

    # -- messages --------------------------------------------------------------------------

    @_call(durable=False)
    def receive_message(
        self, topic: str, payload: bytes | bytearray | memoryview | str, now: float
    ) -> list[Event]:
        """Handle one message received on a subscribed topic.

        Bad input never raises: a message that is malformed, hostile, stale, for another shadow
        or an answer to a request no longer in flight becomes a `MessageIgnored` event.
        """
        now, out = self._begin(now)
        message = read_message(
            topic,
            payload,
            thing_name=self.thing_name,
            shadow_name=self.shadow_name,
            limits=self._limits,
            max_bytes=self._config.max_payload_bytes,
        )
        if isinstance(message, MessageIgnored):
            out.append(message)
        elif message.key in ("update/delta", "update/documents"):
            self._notification(message, now, out, early_ok=True)
        elif message.operation == "get":
            self._on_get(message, now, out)
        elif message.operation == "update":
            self._on_update(message, now, out)
        else:
            self._on_delete(message, now, out)
        return out

    # -- internals: state and requests -----------------------------------------------------

    def _fire(self, trigger: Trigger, out: list[Event]) -> None:
        target = transition(self._state, trigger)
        if target is not self._state:
            out.append(StateChanged(previous=self._state, current=target, trigger=trigger))
        self._state = target

    def _begin(self, now: object) -> tuple[float, list[Event]]:
        """Every call checks its time first; its events start with those of the start-up."""
        now = check_now(now)
        out, self._startup = self._startup, []
        return now, out

    def _send_get(self, now: float, out: list[Event]) -> None:
        out.append(self._requests.send("get", now))
        self._early = []
        self._view.expect_snapshot()

    def _fail(
        self,
        now: float,
        out: list[Event],
        request: Request | None = None,
        reason: str = "",
        *,
        code: int | None = None,
    ) -> None:
        """A transient failure (of ``request``, when given, for ``reason``): back off, then
        refetch."""
        if request is not None:
            out.append(
                RequestFailed(
                    operation=request.operation,
                    reason=reason,
                    code=code,
                    client_token=request.token,
                )
            )
        self._failures += 1
        self._outbox.forget_plan()
        delay = self._config.backoff.delay(self._failures - 1, self._random)
        self._retry_at = now + delay
        self._fire(Trigger.FAILED, out)

    # -- internals: snapshot, desired state, plan ------------------------------------------

    def _take_snapshot(self, document: ShadowDocument | None, now: float, out: list[Event]) -> None:
        out.append(SnapshotReceived(version=None if document is None else document.version))
        self._view.take_snapshot(document)
        self._refresh_wanted = False
        self._outbox.forget_plan()
        self._evaluate_desired(now, out, source="snapshot")
        early, self._early = self._early, []
        floor = None if document is None else document.version
        for message in early:
            self._notification(message, now, out, early_ok=False, floor=floor)
        self._sync_step(now, out)

    def _evaluate_desired(self, now: float, out: list[Event], *, source: Source) -> None:
        """Judge the cloud's desired state with the rules; emit the delta; queue reports/acks."""
        judgement = self._desired.judge(now, self._outbox.pending)
        out.extend(judgement.local)
        if judgement.conflicts is not None:
            out.append(judgement.conflicts)
        if judgement.ack is not None:
            self._outbox.put([("ack", (ACK_KEY,), judgement.ack.to_dict())], now, out)
            out.append(AcknowledgementQueued(acknowledgement=judgement.ack))
        delta, report = self._desired.announce(judgement, self.device_reported, now, source=source)
        if delta is not None:
            out.append(delta)
        if report:
            self._outbox.put([("report", path, value) for path, value in leaves(report)], now, out)

    def _sync_step(self, now: float, out: list[Event], *, again: bool = True) -> None:
        """Decide what to do next when no request is in flight: refetch, publish or rest."""
        if self._state not in (
            SessionState.FETCHING,
            SessionState.UPDATING,
            SessionState.IN_SYNC,
            SessionState.DELETING,
        ):
            return
        if self._requests.in_flight is not None:
            return
        pending = self._outbox.has_work()
        if self._refresh_wanted or (pending and not self._view.is_fresh()):
            # Never plan against a view that may be behind: what to send depends on it.
            self._refresh_wanted = False
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
            return
        self._hold_until = None
        queued = self._outbox.pending() if pending else []
        if queued:
            # The report policy: held changes wait for company, updates for their interval.
            wait = self._pacer.wait_until((i.seq for i in queued), now)
            if wait is not None:
                self._hold_until = wait
                if self._state is not SessionState.IN_SYNC:
                    self._fire(Trigger.SYNCED, out)
                return
        update = self._outbox.next_update(now, out) if pending else None
        if update is not None:
            out.append(self._requests.send_update(*update, now))
            self._pacer.sent(now)
            self._fire(Trigger.PUBLISH, out)
            return
        if self._state is SessionState.IN_SYNC and not pending:
            return
        if again and self._reevaluate(now, out):
            # Queue limits may have dropped an auto-report or an acknowledgement on the way:
            # what the desired state still asks for is queued again (once per settling).
            self._sync_step(now, out, again=False)
            return
        if self._state is not SessionState.IN_SYNC:
            self._fire(Trigger.SYNCED, out)
        self._synced(now, out)

    def _reevaluate(self, now: float, out: list[Event]) -> bool:
        """Evaluate the desired state again; whether that queued anything."""
        if not (self._config.auto_report or self._config.acknowledge) or self._outbox.pending():
            return False
        self._evaluate_desired(now, out, source="other")
        return bool(self._outbox.pending())

    def _synced(self, now: float, out: list[Event]) -> None:
        if self._outbox.pending() or self._desired.patch:
            return
        self._view.rebase()
        self._failures = 0
        self._conflicts = 0
        self._last_sync_at = int(now)
        if self._config.refresh_interval is not None:
            self._refresh_at = now + self._config.refresh_interval
        out.append(SyncCompleted(version=self._view.version, at=int(now)))

    # -- internals: message handlers -------------------------------------------------------

    def _on_get(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._requests.answered("get", body)
        if request is None:
            out.append(MessageIgnored(topic=message.shown, reason="an answer to no GET in flight"))
            return
        if message.accepted:
            try:
                document = ShadowDocument.from_dict(body, limits=self._limits)
            except ShadowSyncError as exc:
                self._requests.done()
                self._fail(now, out, request, f"unreadable snapshot: {exc}")
                return
            self._requests.done()
            self._take_snapshot(document, now, out)
            return
        code, reason = rejection(body)
        self._requests.done()
        if code == 404:
            self._take_snapshot(None, now, out)
            return
        self._fail(now, out, request, reason, code=code)

    def _on_update(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._requests.answered("update", body)
        version = body.get("version")
        if request is None:
            if message.accepted and type(version) is int and version >= 0:
                # Another client's update: our view is behind until its documents arrive.
                self._view.see(version)
            else:
                reason = "an answer to no update in flight"
                out.append(MessageIgnored(topic=message.shown, reason=reason))
            return
        planned = request.planned
        assert planned is not None
        assert request.body is not None
        if message.accepted:
            if type(version) is not int or version < 0:
                reason = "update/accepted without a version"
                out.append(MessageIgnored(topic=message.shown, reason=reason))
                return
            self._requests.done()
            self._accepted(planned, request.body, version, body.get("timestamp"), now, out)
            return
        code, reason = rejection(body)
        self._requests.done()
        if code == 409:
            self._view.doubt()
            self._conflicts += 1
            out.append(UpdateRejected(code=code, message=reason, client_token=planned.token))
            if self._conflicts > self._config.max_conflict_retries:
                self._escalate(out)
                return
            self._failures += 1
            self._outbox.forget_plan()
            delay = self._config.backoff.delay(self._conflicts - 1, self._random)
            self._retry_at = now + delay
            self._fire(Trigger.CONFLICT, out)
            return
        if code in _PERMANENT_CODES:
            self._outbox.refuse(planned, code, reason, now, out, local=False)
            self._sync_step(now, out)
            return
        out.append(UpdateRejected(code=code, message=reason, client_token=planned.token))
        self._fail(now, out)

    def _accepted(
        self,
        planned: Planned,
        request: dict[str, Any],
        version: int,
        stamp: object,
        now: float,
        out: list[Event],
    ) -> None:
        timestamp = stamp if type(stamp) is int and stamp >= 0 else int(now)
        self._view.take_update(
            request, version=version, timestamp=timestamp, create=planned.kind == "create"
        )
        out.append(UpdateAccepted(client_token=planned.token, version=version))
        self._outbox.accepted(planned, version, out)
        self._sync_step(now, out)

    def _escalate(self, out: list[Event]) -> None:
        review = self._outbox.escalation(
            conflicts=self._conflicts, max_conflict_retries=self._config.max_conflict_retries
        )
        self._outbox.forget_plan()
        self._fire(Trigger.ESCALATE, out)
        out.append(review)

    def _on_delete(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._requests.answered("delete", body)
        version = body.get("version")
        version = version if type(version) is int and version >= 0 else None
        if request is None:
            known = self._view.version
            if not message.accepted or version is None or known is None:
                reason = "an answer to no delete in flight"
                out.append(MessageIgnored(topic=message.shown, reason=reason))
                return
            if version < known:
                reason = f"stale delete of version {version}"
                out.append(MessageIgnored(topic=message.shown, reason=reason))
                return
            self._deleted(version, by_us=False, out=out)
            if self._state is SessionState.IN_SYNC:
                self._sync_step(now, out)
            return
        self._requests.done()
        if not message.accepted:
            code, reason = rejection(body)
            if code != 404:
                self._fail(now, out, request, reason, code=code)
                return
        self._deleted(version, by_us=True, out=out)
        self._sync_step(now, out)

    def _deleted(self, version: int | None, *, by_us: bool, out: list[Event]) -> None:
        self._view.forget()
        self._desired.forget()
        out.append(ShadowDeleted(version=version, by_us=by_us))

    def _notification(
        self,
        message: Incoming,
        now: float,
        out: list[Event],
        *,
        early_ok: bool,
        floor: int | None = None,
    ) -> None:
        """A delta or documents message: evaluate it unless it is older than what was seen.

        ``floor`` is the version of the snapshot that came after the message was held: what is
        at or below it is already in the snapshot.
        """
        if early_ok and self._state is SessionState.FETCHING:
            # The snapshot is on its way; messages newer than it are replayed after it.
            if len(self._early) >= _MAX_EARLY:
                self._early.pop(0)
                self._refresh_wanted = True
            self._early.append(message)
            return
        notification = read_notification(message, self._limits, known=self._view.document)
        if isinstance(notification, MessageIgnored):
            out.append(notification)
            return
        reason = self._view.ignores(notification.version, floor=floor)
        if reason is not None:
            out.append(MessageIgnored(topic=message.shown, reason=reason))
            return
        if self._view.take_notification(notification):
            self._refresh_wanted = True  # versions were missed: fetch the snapshot
        source: Source = "delta" if notification.document is None else "other"
        self._evaluate_desired(now, out, source=source)
        if early_ok and self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)


def _as_policy(policy: object) -> ResolutionPolicy:
    """The resolution policy for ``policy``: a strategy applies everywhere; the default is
    `OwnerWins` (the device owns its reported state)."""
    if policy is None:
        return ResolutionPolicy(default=OwnerWins())
    if isinstance(policy, ResolutionPolicy):
        return policy
    if not isinstance(policy, Strategy):
        raise InvalidArgumentError(
            f"policy must be a ResolutionPolicy or a Strategy, got {describe(policy)}"
        )
    return ResolutionPolicy(default=policy)
