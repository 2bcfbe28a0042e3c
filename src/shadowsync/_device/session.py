"""The device's sync engine for one shadow, as a sans-I/O state machine.

`ShadowSession` never opens a socket, reads a clock or draws a random number. Messages come
in as ``(topic, payload)``, connection changes and commands as method calls, and time as the
``now`` argument of every call; each call returns the `shadowsync.events` values to act on, in
order: `Subscribe` and `Publish` for the transport, the rest for the application.

The session is the event loop; its parts live beside it in this package:

- `shadowsync._device.state`: the states and the one table of transitions (as in h11), which
  the session moves through only by `transition`;
- `shadowsync._device.config`: `SessionConfig`, `Backoff` and `SessionHealth`;
- `shadowsync._device.view`: `CloudView`, what the device knows of the cloud (cached in the
  store);
- `shadowsync._device.plan`: the merges and the updates to send, as pure functions;
- `shadowsync._device.messages`: reading incoming topics and payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from shadowsync import topics
from shadowsync._conflict.clocks import HybridLogicalClock
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync._conflict.versioning import MessageClass, classify_message
from shadowsync._delta import compute_delta
from shadowsync._device.config import SessionConfig, SessionHealth
from shadowsync._device.messages import (
    Incoming,
    parse_delta,
    parse_documents,
    read_message,
    rejection,
    rejections,
)
from shadowsync._device.plan import (
    Planned,
    escalation_reviews,
    merge_desired,
    merge_patches,
    merge_reported,
    needed,
    plan_updates,
)
from shadowsync._device.queue import Intent, OfflineQueue
from shadowsync._device.state import (
    CONNECTED_STATES,
    TRANSITIONS,
    SessionState,
    SessionStateError,
    Trigger,
    transition,
)
from shadowsync._device.state import diagram as draw_diagram
from shadowsync._device.view import CloudView
from shadowsync._document import ShadowDocument
from shadowsync._json import (
    JSONObject,
    JSONValue,
    copy_object,
    describe,
    dumps_compact,
    encoded_size,
    json_equal,
    normalize_section,
)
from shadowsync._tree import leaves
from shadowsync._update import apply_update
from shadowsync._validators import check_now
from shadowsync.errors import (
    InvalidArgumentError,
    PayloadTooLargeError,
    ShadowRejectedError,
    ShadowSyncError,
    TopicError,
)
from shadowsync.events import (
    AcknowledgementQueued,
    ConflictResolved,
    DeltaReceived,
    Dropped,
    Event,
    IntentsConfirmed,
    IntentsQueued,
    MessageIgnored,
    Publish,
    RequestFailed,
    ReviewNeeded,
    ShadowDeleted,
    SnapshotReceived,
    StateChanged,
    Subscribe,
    SyncCompleted,
    UpdateAccepted,
    UpdateRejected,
)
from shadowsync.rules import ACK_KEY, Acknowledgement, RuleSet
from shadowsync.strategies import OwnerWins, Strategy

if TYPE_CHECKING:
    from shadowsync._conflict.merge import ReviewItem
    from shadowsync._tree import Path
    from shadowsync.stores import Store

__all__ = ["ShadowSession"]

_PERMANENT_CODES = frozenset({400, 413, 415})
_MAX_EARLY = 64


@attrs.frozen(kw_only=True)
class _Request:
    operation: Literal["get", "update", "delete"]
    token: str
    deadline: float
    planned: Planned | None = None
    body: dict[str, Any] | None = attrs.field(default=None, eq=False)


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
        if policy is None:
            policy = ResolutionPolicy(default=OwnerWins())
        elif not isinstance(policy, ResolutionPolicy):
            if not isinstance(policy, Strategy):
                raise InvalidArgumentError(
                    f"policy must be a ResolutionPolicy or a Strategy, got {describe(policy)}"
                )
            policy = ResolutionPolicy(default=policy)
        self.thing_name = thing_name
        self.shadow_name = shadow_name
        if queue is not None and not isinstance(queue, OfflineQueue):
            raise InvalidArgumentError(f"queue must be an OfflineQueue, got {describe(queue)}")
        self._queue = (
            queue
            if queue is not None
            else OfflineQueue(store, limits=config.queue_limits, shadow_limits=self._limits)
        )
        self._token = token
        self._random = random
        self._policy = policy
        self._rules = rules

        self._state = SessionState.OFFLINE
        self._in_flight: _Request | None = None
        self._plan: list[Planned] = []
        self._plan_version: int | None = None
        self._early: list[Incoming] = []
        self._retry_at: float | None = None
        self._failures = 0
        self._conflicts = 0
        self._last_sync_at: int | None = None
        self._delta_since: float | None = None
        self._desired_since: float | None = None
        self._refresh_wanted = False
        self._desired_patch: JSONObject = {}
        self._last_delta: tuple[int, JSONObject] | None = None
        self._last_reviews: tuple[ReviewItem, ...] = ()
        self._announced: list[Any] = []
        self._drops_seen = self._queue.drop_count
        self._startup: list[Event] = []

        # What the device knows of the cloud, and the last state both sides agreed on.
        self._view = CloudView(store, thing_name, shadow_name, limits=self._limits)
        reset = self._view.load()
        if reset is not None:
            self._startup.append(reset)

        node = config.node if config.node is not None else thing_name
        own = [i.stamp for i in self._pending() if i.stamp.node == node]
        self._hlc = HybridLogicalClock(node, last=max(own) if own else None)

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
        return copy_object(self._view.accepted_desired)

    def device_reported(self) -> JSONObject:
        """The reported state as the device sees it: the cloud's plus every queued intent."""
        return self._view.device_reported(self._pending())

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (a timeout or a retry), or ``None``."""
        times = [t for t in (self._retry_at,) if t is not None]
        if self._in_flight is not None:
            times.append(self._in_flight.deadline)
        return min(times) if times else None

    def health(self, now: float) -> SessionHealth:
        """The session's health at ``now``: a stuck sync shows as failures and growing ages."""
        now = check_now(now)
        pending = self._pending()
        oldest = min((i.created_at for i in pending), default=None)
        since = [t for t in (oldest, self._delta_since, self._desired_since) if t is not None]
        return SessionHealth(
            state=self._state,
            connected=self.connected_now,
            pending_intents=len(pending),
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

    def connected(self, now: float) -> list[Event]:
        """The transport connected (again): subscribe, fetch the snapshot, then reconcile.

        Called while already connected, it counts as a reconnect.
        """
        now = check_now(now)
        out = self._take_startup()
        if self._state is not SessionState.OFFLINE:
            out += self.disconnected(now)
        self._conflicts = 0
        self._fire(Trigger.CONNECTED, out)
        out.append(Subscribe(topics=self._subscriptions()))
        self._send_get(now, out)
        return out

    def disconnected(self, now: float) -> list[Event]:
        """The transport disconnected. In-flight requests are forgotten; the queue keeps all."""
        check_now(now)
        out = self._take_startup()
        if self._state is SessionState.OFFLINE:
            return out
        self._in_flight = None
        self._plan = []
        self._early = []
        self._retry_at = None
        self._view.doubt()
        self._fire(Trigger.DISCONNECTED, out)
        return out

    # -- commands --------------------------------------------------------------------------

    def report(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Report ``changes`` to the reported state (``None`` deletes a key).

        Each leaf becomes an intent, durable in the queue when this returns, and is published
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
        now = check_now(now)
        out = self._take_startup()
        if not isinstance(changes, Mapping):
            raise InvalidArgumentError(f"changes must be an object, got {describe(changes)}")
        if ACK_KEY in changes:
            raise InvalidArgumentError(f"{ACK_KEY!r} is written by the session (acknowledgements)")
        section = normalize_section(
            changes, section="reported", max_depth=self._limits.max_depth, nulls=True
        )
        size = encoded_size({"reported": section})
        if size > self._limits.max_document_bytes:
            raise PayloadTooLargeError(
                detail=f"the report alone is {size} bytes; the limit is "
                f"{self._limits.max_document_bytes}"
            )
        changed = leaves(section)
        if not changed:
            return out
        self._put([("report", path, value) for path, value in changed], now, out)
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    def desire(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Change the desired state (for a session used on the cloud side, or a local UI).

        Desired changes are kept in memory (not in the durable queue), merged together, and sent
        after the queued reports, with the same version check and retries.
        """
        now = check_now(now)
        out = self._take_startup()
        if not isinstance(changes, Mapping):
            raise InvalidArgumentError(f"changes must be an object, got {describe(changes)}")
        section = normalize_section(
            changes, section="desired", max_depth=self._limits.max_depth, nulls=True
        )
        if not section:
            return out
        merge_patches(self._desired_patch, section)
        if self._desired_since is None:
            self._desired_since = now
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    def get(self, now: float) -> list[Event]:
        """Fetch the snapshot again and reconcile (at once if idle, else after the update)."""
        now = check_now(now)
        out = self._take_startup()
        if self._state is SessionState.IN_SYNC:
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
        elif self._state is SessionState.UPDATING:
            self._refresh_wanted = True
        return out

    def delete(self, now: float) -> list[Event]:
        """Delete the shadow. Queued intents stay and are published afterwards (re-creating it).

        Raises `SessionStateError` when offline or while another request is in flight.
        """
        now = check_now(now)
        out = self._take_startup()
        if Trigger.DELETE not in TRANSITIONS[self._state]:
            raise SessionStateError(
                f"cannot delete the shadow while {self._state.value}; "
                "wait until the session is in sync"
            )
        self._retry_at = None
        self._fire(Trigger.DELETE, out)
        token = self._new_token()
        self._in_flight = _Request(
            operation="delete", token=token, deadline=now + self._config.request_timeout
        )
        out.append(self._publish("delete", {"clientToken": token}))
        return out

    def resume(self, now: float) -> list[Event]:
        """Resume syncing after manual review, or retry at once while backing off.

        Raises `SessionStateError` when offline; does nothing in the other states.
        """
        now = check_now(now)
        out = self._take_startup()
        if self._state is SessionState.OFFLINE:
            raise SessionStateError("cannot resume while offline; connect first")
        if Trigger.RESUME in TRANSITIONS[self._state]:
            self._conflicts = 0
            self._retry_at = None
            self._fire(Trigger.RESUME, out)
            self._send_get(now, out)
        return out

    def tick(self, now: float) -> list[Event]:
        """Let time pass: time out requests, retry after backoff, expire old intents."""
        now = check_now(now)
        out = self._take_startup()
        self._queue.expire(now=int(now))
        self._collect_drops(out)
        request = self._in_flight
        if request is not None and now >= request.deadline:
            self._in_flight = None
            out.append(
                RequestFailed(
                    operation=request.operation,
                    reason=f"no answer within {self._config.request_timeout:g} s",
                    client_token=request.token,
                )
            )
            if request.operation == "update":
                self._view.doubt()  # it may have been applied
            self._fail(now, out)
        if (
            self._state is SessionState.BACKOFF
            and self._retry_at is not None
            and now >= self._retry_at
        ):
            self._retry_at = None
            self._fire(Trigger.RETRY, out)
            self._send_get(now, out)
        return out

    # -- messages --------------------------------------------------------------------------

    def receive_message(
        self, topic: str, payload: bytes | bytearray | memoryview | str, now: float
    ) -> list[Event]:
        """Handle one message received on a subscribed topic.

        Bad input never raises: a message that is malformed, hostile, stale, for another shadow
        or an answer to a request no longer in flight becomes a `MessageIgnored` event.
        """
        now = check_now(now)
        out = self._take_startup()
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

    def _take_startup(self) -> list[Event]:
        out, self._startup = self._startup, []
        return out

    def _subscriptions(self) -> tuple[str, ...]:
        return tuple(topics.subscriptions(self.thing_name, self.shadow_name, limits=self._limits))

    def _publish(self, operation: topics.Operation, body: Mapping[str, Any]) -> Publish:
        topic = topics.build(
            self.thing_name, operation, shadow_name=self.shadow_name, limits=self._limits
        )
        return Publish(topic=topic, payload=dumps_compact(body).encode("utf-8"))

    def _new_token(self) -> str:
        token = self._token()
        if not isinstance(token, str) or not token:
            raise InvalidArgumentError(f"the token factory returned {describe(token)}")
        problem = self._limits.client_token_problem(token)
        if problem is not None:
            raise InvalidArgumentError(f"the token factory returned {describe(token)}: {problem}")
        return token

    def _send_get(self, now: float, out: list[Event]) -> None:
        token = self._new_token()
        self._in_flight = _Request(
            operation="get", token=token, deadline=now + self._config.request_timeout
        )
        self._early = []
        self._view.expect_snapshot()
        out.append(self._publish("get", {"clientToken": token}))

    def _fail(self, now: float, out: list[Event]) -> None:
        """A transient failure: back off, then refetch."""
        self._failures += 1
        self._plan = []
        delay = self._config.backoff.delay(self._failures - 1, self._random)
        self._retry_at = now + delay
        self._fire(Trigger.FAILED, out)

    def _matches(self, operation: str, body: Mapping[str, Any]) -> _Request | None:
        request = self._in_flight
        if request is None or request.operation != operation:
            return None
        return request if body.get("clientToken") == request.token else None

    # -- internals: the queue --------------------------------------------------------------

    def _pending(self) -> list[Intent]:
        """This shadow's queued intents in the order the queue composes them."""
        intents = self._queue.pending(self.thing_name, self.shadow_name)
        return sorted(intents, key=lambda intent: (intent.stamp, intent.seq))

    def _collect_drops(self, out: list[Event]) -> None:
        fresh = self._queue.drops(since=self._drops_seen)
        self._drops_seen = self._queue.drop_count
        mine = tuple(
            record
            for record in fresh
            if (record.intent.thing_name, record.intent.shadow_name)
            == (self.thing_name, self.shadow_name)
        )
        if mine:
            out.append(Dropped(records=mine))

    def _put(
        self,
        items: Iterable[tuple[Literal["report", "ack"], Path, JSONValue]],
        now: float,
        out: list[Event],
    ) -> list[Intent]:
        queued: list[Intent] = []
        for kind, path, value in items:
            intent = Intent(
                thing_name=self.thing_name,
                shadow_name=self.shadow_name,
                kind=kind,
                path=path,
                value=value,
                created_at=int(now),
                stamp=self._hlc.now(int(now * 1000)),
            )
            result = self._queue.put(intent, now=int(now))
            if result.seq is not None:
                queued.append(intent._queued(result.seq))
        if queued:
            out.append(IntentsQueued(intents=queued))
        self._collect_drops(out)  # refusals included: put records them as drops
        return queued

    # -- internals: snapshot, desired state, plan ------------------------------------------

    def _take_snapshot(self, document: ShadowDocument | None, now: float, out: list[Event]) -> None:
        out.append(SnapshotReceived(version=None if document is None else document.version))
        self._view.take_snapshot(document)
        self._refresh_wanted = False
        self._plan = []
        self._evaluate_desired(now, out, source="snapshot")
        early, self._early = self._early, []
        floor = None if document is None else document.version
        for message in early:
            self._notification(message, now, out, early_ok=False, floor=floor)
        self._view.persist()
        self._sync_step(now, out)

    def _evaluate_desired(
        self, now: float, out: list[Event], *, source: Literal["snapshot", "delta", "other"]
    ) -> None:
        """Judge the cloud's desired state with the rules; emit the delta; queue reports/acks."""
        view = self._view
        theirs = view.theirs_desired()
        version = view.desired_version()
        result = merge_desired(
            accepted=view.accepted_desired,
            metadata=view.accepted_metadata,
            theirs=theirs,
            version=version,
            policy=self._policy,
            rules=self._rules,
            now=now,
            thing_name=self.thing_name,
            shadow_name=self.shadow_name,
        )
        view.accept_desired(result.merged, theirs)
        outcome = result.rule_outcome
        rejected = () if outcome is None else outcome.acknowledgement.rejected
        if outcome is not None:
            wanted = [{"path": r.pointer, "rule": r.rule, "reason": r.reason} for r in rejected]
            if result.report and wanted != self._announced:
                out.append(
                    ConflictResolved(report=result.report, section="desired", version=version)
                )
            self._announced = wanted
            if self._config.acknowledge and wanted != self._current_rejections():
                ack = Acknowledgement(
                    desired_version=version,
                    timestamp=int(now),
                    applied=outcome.acknowledgement.applied,
                    rejected=rejected,
                )
                self._put([("ack", (ACK_KEY,), ack.to_dict())], now, out)
                out.append(AcknowledgementQueued(acknowledgement=ack))
        delta = compute_delta(view.accepted_desired, self.device_reported())
        if not delta:
            self._delta_since = None
            return
        auto = self._config.auto_report
        # Announce what the device has to apply when it changed; on every snapshot (a reconnect:
        # the application may have lost it); and when a delta comes again at a version already
        # announced (re-evaluated, never dropped as a duplicate).
        last = self._last_delta
        if (
            last is None
            or last[1] != delta
            or source == "snapshot"
            or (source == "delta" and version <= last[0])
        ):
            self._last_delta = (version, copy_object(delta))
            out.append(
                DeltaReceived(state=delta, version=version, rejected=rejected, auto_reported=auto)
            )
        if auto:
            self._put([("report", path, value) for path, value in leaves(delta)], now, out)
            self._delta_since = None
        elif self._delta_since is None:
            self._delta_since = now

    def _current_rejections(self) -> list[Any]:
        for intent in reversed(self._pending()):
            if intent.kind == "ack" and isinstance(intent.value, dict):
                return rejections(intent.value)
        return rejections(self._view.theirs_reported.get(ACK_KEY))

    def _sync_step(self, now: float, out: list[Event], *, again: bool = True) -> None:
        """Decide what to do next when no request is in flight: refetch, publish or rest."""
        if self._state not in (
            SessionState.FETCHING,
            SessionState.UPDATING,
            SessionState.IN_SYNC,
            SessionState.DELETING,
        ):
            return
        if self._in_flight is not None:
            return
        pending = bool(self._plan) or bool(self._desired_patch) or bool(self._pending())
        if self._refresh_wanted or (pending and not self._view.is_fresh()):
            # Never plan against a view that may be behind: what to send depends on it.
            self._refresh_wanted = False
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
            return
        if pending:
            if self._plan and self._plan_version != self._view.version:
                self._plan = []  # the cloud moved since the merge: merge again
            # Each round sends an update or settles one without sending, so this ends.
            for _ in range(10_000):
                if not self._plan:
                    self._plan = self._make_plan(now, out)
                if not self._plan:
                    break
                planned = self._plan.pop(0)
                if self._send_update(planned, now, out):
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
        if not (self._config.auto_report or self._config.acknowledge) or self._pending():
            return False
        self._evaluate_desired(now, out, source="other")
        return bool(self._pending())

    def _synced(self, now: float, out: list[Event]) -> None:
        if self._pending() or self._desired_patch:
            return
        self._view.rebase()
        self._failures = 0
        self._conflicts = 0
        self._last_sync_at = int(now)
        self._view.persist()
        out.append(SyncCompleted(version=self._view.version, at=int(now)))

    def _make_plan(self, now: float, out: list[Event]) -> list[Planned]:
        """Merge snapshot, base and queued intents; return the updates to send, in order."""
        batches = self._queue.replay(
            now=int(now),
            token=self._new_token,
            thing_name=self.thing_name,
            shadow_name=self.shadow_name,
        )
        self._collect_drops(out)
        cloud = self._view.document
        version = self._view.version
        target: JSONObject = {}
        if batches:
            result = merge_reported(
                base=self._view.base_reported,
                pending=self._pending(),
                cloud=cloud,
                policy=self._policy,
                thing_name=self.thing_name,
                shadow_name=self.shadow_name,
            )
            if result.report:
                out.append(
                    ConflictResolved(report=result.report, section="reported", version=version)
                )
            self._last_reviews = result.reviews
            if result.reviews:
                out.append(
                    ReviewNeeded(
                        items=result.reviews,
                        reason="the resolution policy holds these conflicts for review",
                    )
                )
            target = result.merged
        plan = plan_updates(
            batches=batches,
            target=target,
            desired_patch=self._desired_patch,
            create_first=cloud is None and self._config.compare_and_set,
            token=self._new_token,
        )
        self._plan_version = version
        return plan

    def _send_update(self, planned: Planned, now: float, out: list[Event]) -> bool:
        """Publish ``planned``; or settle it without sending when the cloud already holds it,
        or refuse it when the pre-flight check against the known document fails."""
        cloud = self._view.document
        state = planned.state
        if planned.kind == "reported":
            change = needed(planned.touched, self._view.theirs_reported, planned.target)
            if not change:
                seqs = self._queue.confirm(planned.token)
                if seqs:
                    out.append(
                        IntentsConfirmed(seqs=seqs, client_token=None, version=self._view.version)
                    )
                return False
            state = {"reported": change}
        body: dict[str, Any] = {"state": state, "clientToken": planned.token}
        if self._config.compare_and_set and cloud is not None:
            body["version"] = cloud.version
        try:
            apply_update(cloud, body, timestamp=int(now), limits=self._limits, previous_version=0)
        except ShadowRejectedError as exc:
            self._refuse(planned, exc.code, exc.message, now, out, local=True)
            return False
        self._in_flight = _Request(
            operation="update",
            token=planned.token,
            deadline=now + self._config.request_timeout,
            planned=planned,
            body=body,
        )
        out.append(self._publish("update", body))
        return True

    def _refuse(
        self,
        planned: Planned,
        code: int,
        message: str,
        now: float,
        out: list[Event],
        *,
        local: bool,
    ) -> None:
        out.append(
            UpdateRejected(
                code=code, message=message, client_token=planned.token, permanent=True, local=local
            )
        )
        if planned.kind == "reported":
            self._queue.fail(planned.token, reason=f"{code} {message}", now=int(now))
            self._collect_drops(out)
        elif planned.kind == "desired":
            self._desired_sent(planned)

    def _desired_sent(self, planned: Planned) -> None:
        """The desired patch of ``planned`` is settled: forget it unless it changed since."""
        if json_equal(self._desired_patch, planned.state["desired"]):
            self._desired_patch = {}
            self._desired_since = None

    # -- internals: message handlers -------------------------------------------------------

    def _on_get(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._matches("get", body)
        if request is None:
            out.append(MessageIgnored(topic=message.shown, reason="an answer to no GET in flight"))
            return
        if message.accepted:
            try:
                document = ShadowDocument.from_dict(body, limits=self._limits)
            except ShadowSyncError as exc:
                self._in_flight = None
                out.append(
                    RequestFailed(
                        operation="get",
                        reason=f"unreadable snapshot: {exc}",
                        client_token=request.token,
                    )
                )
                self._fail(now, out)
                return
            self._in_flight = None
            self._take_snapshot(document, now, out)
            return
        code, reason = rejection(body)
        self._in_flight = None
        if code == 404:
            self._take_snapshot(None, now, out)
            return
        out.append(
            RequestFailed(operation="get", reason=reason, code=code, client_token=request.token)
        )
        self._fail(now, out)

    def _on_update(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._matches("update", body)
        version = body.get("version")
        if request is None:
            if message.accepted and type(version) is int and version >= 0:
                # Another client's update: our view is behind until its documents arrive.
                self._view.see(version)
                self._view.persist()
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
            self._in_flight = None
            self._accepted(planned, request.body, version, body.get("timestamp"), now, out)
            return
        code, reason = rejection(body)
        self._in_flight = None
        if code == 409:
            self._view.doubt()
            self._conflicts += 1
            out.append(UpdateRejected(code=code, message=reason, client_token=planned.token))
            if self._conflicts > self._config.max_conflict_retries:
                self._escalate(out)
                return
            self._failures += 1
            self._plan = []
            delay = self._config.backoff.delay(self._conflicts - 1, self._random)
            self._retry_at = now + delay
            self._fire(Trigger.CONFLICT, out)
            return
        if code in _PERMANENT_CODES:
            self._refuse(planned, code, reason, now, out, local=False)
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
        self._plan_version = version
        out.append(UpdateAccepted(client_token=planned.token, version=version))
        if planned.kind == "reported":
            seqs = self._queue.confirm(planned.token)
            if seqs:
                out.append(IntentsConfirmed(seqs=seqs, client_token=planned.token, version=version))
        elif planned.kind == "desired":
            self._desired_sent(planned)
        self._view.persist()
        self._sync_step(now, out)

    def _escalate(self, out: list[Event]) -> None:
        items = escalation_reviews(
            self._last_reviews,
            self._pending(),
            self._view.theirs_reported,
            self._view.base_reported,
        )
        self._plan = []
        self._fire(Trigger.ESCALATE, out)
        out.append(
            ReviewNeeded(
                items=items,
                reason=(
                    f"{self._conflicts} version conflicts in a row (max_conflict_retries is "
                    f"{self._config.max_conflict_retries}); syncing is suspended until resume() "
                    "or a reconnect"
                ),
                escalated=True,
            )
        )

    def _on_delete(self, message: Incoming, now: float, out: list[Event]) -> None:
        body = message.body
        request = self._matches("delete", body)
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
        self._in_flight = None
        if not message.accepted:
            code, reason = rejection(body)
            if code != 404:
                out.append(
                    RequestFailed(
                        operation="delete", reason=reason, code=code, client_token=request.token
                    )
                )
                self._fail(now, out)
                return
        self._deleted(version, by_us=True, out=out)
        self._sync_step(now, out)

    def _deleted(self, version: int | None, *, by_us: bool, out: list[Event]) -> None:
        self._view.forget()
        self._last_delta = None
        self._delta_since = None
        self._view.persist()
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
        shown, view = message.shown, self._view
        try:
            if message.response == "delta":
                version, delta = parse_delta(message.body, self._limits)
                document = None
            else:
                document = parse_documents(message.body, self._limits)
                version, delta = document.version, None
        except ShadowSyncError as exc:
            out.append(MessageIgnored(topic=shown, reason=f"malformed {message.key}: {exc}"))
            return
        if floor is not None and version <= floor:
            out.append(MessageIgnored(topic=shown, reason=f"covered by snapshot {floor}"))
            return
        kind = classify_message(version, view.last_seen)
        if kind is MessageClass.STALE:
            reason = f"stale: version {version} < {view.last_seen} seen"
            out.append(MessageIgnored(topic=shown, reason=reason))
            return
        if document is not None:
            view.take_document(document)
        elif delta is not None:
            view.apply_delta(version, delta)
        if kind is MessageClass.GAP and document is None:
            self._refresh_wanted = True
        view.see(version)
        self._evaluate_desired(now, out, source="delta" if document is None else "other")
        view.persist()
        if early_ok and self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
