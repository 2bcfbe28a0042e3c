"""The device's sync engine for one shadow, as a sans-I/O state machine.

`ShadowSession` never opens a socket, reads a clock or draws a random number. Messages come
in as ``(topic, payload)``, connection changes and commands as method calls, and time as the
``now`` argument of every call; each call returns the `shadowsync.events` values to act on, in
order: `Subscribe` and `Publish` for the transport, the rest for the application.

The states and every allowed transition are in one table, `TRANSITIONS` (as in h11): the
session changes state only through it, and `ShadowSession.diagram` draws it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from shadowsync import topics
from shadowsync._conflict.clocks import HybridLogicalClock
from shadowsync._conflict.merge import (
    ConflictReport,
    MergeResult,
    ReviewItem,
    merge,
    review_id,
    same,
    stamps_from_metadata,
)
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync._conflict.versioning import MessageClass, classify_message
from shadowsync._delta import compute_delta
from shadowsync._device.queue import Intent, OfflineQueue, QueueLimits
from shadowsync._document import ShadowDocument
from shadowsync._json import (
    JSONObject,
    JSONValue,
    copy_json,
    copy_object,
    decode_payload,
    describe,
    dumps_compact,
    encoded_size,
    json_equal,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._update import apply_update
from shadowsync.errors import (
    InvalidArgumentError,
    PayloadTooLargeError,
    ShadowRejectedError,
    ShadowSyncError,
    TopicError,
)
from shadowsync.events import (
    AcknowledgementQueued,
    CacheReset,
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
from shadowsync.strategies import MISSING, Missing, OwnerWins, Strategy

if TYPE_CHECKING:
    from shadowsync.stores import Store

Path = tuple[str, ...]


class SessionStateError(ShadowSyncError):
    """A command that the session cannot carry out in its current state (e.g. delete offline)."""


class SessionState(enum.Enum):
    """Where a `ShadowSession` is. Only `TRANSITIONS` moves it from one to another."""

    OFFLINE = "offline"
    """Not connected. Reports are queued durably; nothing is sent."""
    FETCHING = "fetching"
    """Connected; the snapshot (GET) is in flight. Notifications are held until it arrives."""
    UPDATING = "updating"
    """An update is in flight (never more than one per shadow)."""
    IN_SYNC = "in_sync"
    """Connected, nothing queued and nothing in flight: device and cloud agree."""
    BACKOFF = "backoff"
    """A request failed or met a version conflict; waiting for the retry time."""
    REVIEW = "review"
    """The version-conflict budget is spent: syncing is suspended until resume or reconnect."""
    DELETING = "deleting"
    """A delete of the shadow is in flight."""


class Trigger(enum.Enum):
    """What moves a session from one state to another."""

    CONNECTED = "connected"
    """The transport connected: subscribe and fetch the snapshot."""
    DISCONNECTED = "disconnected"
    """The transport disconnected: whatever was in flight is forgotten (the queue keeps it)."""
    PUBLISH = "publish"
    """There is an update to send: queued intents after a merge, the next batch, a local change."""
    SYNCED = "synced"
    """Nothing is left to send."""
    REFRESH = "refresh"
    """Fetch the snapshot again: asked for, messages were missed, or the view is uncertain."""
    CONFLICT = "conflict"
    """A 409 within the budget: back off, then refetch, merge again and retry."""
    ESCALATE = "escalate"
    """A 409 beyond ``max_conflict_retries``: hold for review."""
    FAILED = "failed"
    """A request timed out or failed transiently."""
    RETRY = "retry"
    """The backoff delay is over."""
    RESUME = "resume"
    """The application resumes syncing (after review), or asks to retry now."""
    DELETE = "delete"
    """The application deletes the shadow."""


_S = SessionState
_T = Trigger

TRANSITIONS: Mapping[SessionState, Mapping[Trigger, SessionState]] = {
    _S.OFFLINE: {_T.CONNECTED: _S.FETCHING, _T.DISCONNECTED: _S.OFFLINE},
    _S.FETCHING: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.SYNCED: _S.IN_SYNC,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.UPDATING: {
        _T.PUBLISH: _S.UPDATING,
        _T.SYNCED: _S.IN_SYNC,
        _T.REFRESH: _S.FETCHING,
        _T.CONFLICT: _S.BACKOFF,
        _T.ESCALATE: _S.REVIEW,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.IN_SYNC: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.DELETE: _S.DELETING,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.BACKOFF: {
        _T.RETRY: _S.FETCHING,
        _T.RESUME: _S.FETCHING,
        _T.DELETE: _S.DELETING,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.REVIEW: {_T.RESUME: _S.FETCHING, _T.DELETE: _S.DELETING, _T.DISCONNECTED: _S.OFFLINE},
    _S.DELETING: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.SYNCED: _S.IN_SYNC,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
}
"""Every allowed transition: ``TRANSITIONS[state][trigger]`` is the next state.

A trigger missing from a state's row cannot happen there; the session raises
`SessionStateError` rather than move outside the table.
"""

_CONNECTED_STATES = frozenset(state for state in SessionState if state is not _S.OFFLINE)
_PERMANENT_CODES = frozenset({400, 413, 415})
_MAX_EARLY = 64
_MAX_TOPIC_SHOWN = 256


# -- configuration -----------------------------------------------------------------------------


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidArgumentError(
            f"{attribute.name} must be a finite number >= 0, got {describe(value)}"
        )


def _positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_negative(instance, attribute, value)
    if value == 0:
        raise InvalidArgumentError(f"{attribute.name} must be positive, got {describe(value)}")


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_negative(instance, attribute, value)
    if value > 1:  # type: ignore[operator]
        raise InvalidArgumentError(f"{attribute.name} must be from 0 to 1, got {describe(value)}")


def _count(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 0:
        raise InvalidArgumentError(
            f"{attribute.name} must be a non-negative int, got {describe(value)}"
        )


def _flag(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise InvalidArgumentError(f"{attribute.name} must be a bool, got {describe(value)}")


def _random_value(random: Callable[[], float]) -> float:
    value = random()
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 <= value < 1  # also refuses NaN
    ):
        raise InvalidArgumentError(
            f"the random source must return a float in [0, 1), got {describe(value)}"
        )
    return float(value)


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with jitter: the delay before retry number ``attempt`` (from 0).

    The delay grows from ``initial`` by ``multiplier`` per attempt up to ``maximum``; then a
    random fraction of up to ``jitter`` of it is taken off, so devices that failed together
    do not retry together (``jitter=1`` is AWS's "full jitter"). The random number comes from
    the caller, as a float in [0, 1).

    ```pycon
    >>> backoff = Backoff(initial=1, multiplier=2, maximum=60, jitter=0.5)
    >>> [backoff.delay(attempt, lambda: 0.0) for attempt in range(8)]
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    >>> backoff.delay(3, lambda: 0.5)
    6.0

    ```
    """

    initial: float = attrs.field(default=1.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    maximum: float = attrs.field(default=300.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_fraction)

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise InvalidArgumentError(
                f"multiplier must be at least 1, got {describe(self.multiplier)}"
            )
        if self.maximum < self.initial:
            raise InvalidArgumentError("maximum must be at least initial")

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        if type(attempt) is not int or attempt < 0:
            raise InvalidArgumentError(f"attempt must be a non-negative int, got {attempt!r}")
        multiplier = float(self.multiplier)
        if multiplier > 1:
            # The maximum is reached after this many steps; more would overflow a float.
            attempt = min(attempt, math.ceil(math.log(self.maximum / self.initial, multiplier)))
        base = min(float(self.maximum), self.initial * multiplier**attempt)
        return float(base * (1.0 - self.jitter * _random_value(random)))


def _default_queue_limits() -> QueueLimits:
    return QueueLimits()


@attrs.frozen(kw_only=True)
class SessionConfig:
    """How a `ShadowSession` behaves.

    - ``request_timeout``: seconds to wait for the answer to a get, update or delete;
    - ``max_conflict_retries``: 409s in a row to refetch, merge and retry before escalating to
      manual review;
    - ``backoff``: the delays between retries;
    - ``auto_report``: report applied desired values automatically ("sync on delta");
    - ``acknowledge``: report rule rejections of desired values as ``reported["$ack"]``;
    - ``compare_and_set``: send the known ``version`` with every update, so a concurrent change
      is met with 409 and merged instead of overwritten;
    - ``limits``: the shadow limits (size, depth, names, client tokens);
    - ``queue_limits``: the offline queue's bounds, when the session builds the queue;
    - ``max_payload_bytes``: bigger incoming messages are ignored unread;
    - ``node``: the node id of the session's hybrid logical clock (default: the thing name).
    """

    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_conflict_retries: int = attrs.field(default=5, validator=_count)
    backoff: Backoff = attrs.field(factory=Backoff)
    auto_report: bool = attrs.field(default=False, validator=_flag)
    acknowledge: bool = attrs.field(default=True, validator=_flag)
    compare_and_set: bool = attrs.field(default=True, validator=_flag)
    limits: ShadowLimits = attrs.field(default=DEFAULT_LIMITS)
    queue_limits: QueueLimits = attrs.field(factory=_default_queue_limits)
    max_payload_bytes: int = attrs.field(default=256 * 1024, validator=_count)
    node: str | None = None

    @backoff.validator
    def _check_backoff(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Backoff):
            raise InvalidArgumentError(f"backoff must be a Backoff, got {describe(value)}")

    @limits.validator
    def _check_limits(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, ShadowLimits):
            raise InvalidArgumentError(f"limits must be ShadowLimits, got {describe(value)}")


# -- health ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SessionHealth:
    """How a session is doing, as data: what is pending, since when, and whether it is stuck.

    ``divergence_age`` is how long device and cloud have disagreed (the oldest unsent intent, a
    delta not yet applied, a desired change not yet sent); ``None`` when they agree.
    """

    state: SessionState
    connected: bool
    pending_intents: int
    oldest_pending_age: float | None
    last_sync_at: int | None
    consecutive_failures: int
    divergence_age: float | None
    next_retry_at: float | None
    last_seen_version: int | None

    @property
    def in_review(self) -> bool:
        """True while syncing is suspended for manual review."""
        return self.state is SessionState.REVIEW

    def to_json(self) -> dict[str, Any]:
        """A JSON form for metrics and health reports."""
        return {
            "state": self.state.value,
            "connected": self.connected,
            "pendingIntents": self.pending_intents,
            "oldestPendingAge": self.oldest_pending_age,
            "lastSyncAt": self.last_sync_at,
            "consecutiveFailures": self.consecutive_failures,
            "divergenceAge": self.divergence_age,
            "nextRetryAt": self.next_retry_at,
            "lastSeenVersion": self.last_seen_version,
            "inReview": self.in_review,
        }


# -- JSON trees --------------------------------------------------------------------------------


def _leaves(tree: Mapping[str, Any], prefix: Path = ()) -> list[tuple[Path, JSONValue]]:
    """Leaf paths of an update tree: non-empty objects recurse; anything else is a leaf."""
    out: list[tuple[Path, JSONValue]] = []
    for key, value in tree.items():
        path = (*prefix, key)
        if type(value) is dict and value:
            out.extend(_leaves(value, path))
        else:
            out.append((path, value))
    return out


def _deep_merge(target: JSONObject, patch: Mapping[str, Any]) -> None:
    """AWS update semantics, in place: objects merge, ``None`` deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif type(value) is dict and type(target.get(key)) is dict:
            child = target[key]
            assert isinstance(child, dict)
            _deep_merge(child, value)
        elif type(value) is dict:
            fresh: JSONObject = {}
            _deep_merge(fresh, value)
            target[key] = fresh
        else:
            target[key] = copy_json(value)


def _nest(path: Path, value: JSONValue) -> JSONObject:
    node: JSONValue = value
    for key in reversed(path[1:]):
        node = {key: node}
    return {path[0]: node}


def _apply_at(tree: JSONObject, path: Path, value: JSONValue) -> None:
    """Apply ``{path: value}`` to ``tree`` with AWS update semantics, in place."""
    _deep_merge(tree, _nest(path, value))


def _lookup(tree: Any, path: Path) -> JSONValue | Missing:
    node = tree
    for key in path:
        if type(node) is not dict or key not in node:
            return MISSING
        node = node[key]
    return node  # type: ignore[no-any-return]


_WRITTEN = "\x00shadowsync: written since the base\x00"
"""Stands in the merge base for a path the device wrote back to its base value.

A queued write is a change even when it restores the base value (a value the device reported,
then changed back), while a three-way merge only sees a change where a side differs from the
base. Without this, the cloud still holding the intermediate value would look like the only
change, and win.
"""


def _mark_written(base: JSONObject, ours: JSONObject, pending: Iterable[Intent]) -> JSONObject:
    marked = copy_object(base)
    for intent in pending:
        value = intent.value
        leaves = (
            [((*intent.path, *sub), leaf) for sub, leaf in _leaves(value)]
            if type(value) is dict and value
            else [(intent.path, value)]
        )
        for path, _ in leaves:
            if not same(_lookup(base, path), _lookup(ours, path)):
                continue
            node: Any = marked
            for key in path[:-1]:
                child = node.setdefault(key, {})
                if type(child) is not dict:
                    break
                node = child
            else:
                node[path[-1]] = _WRITTEN
    return marked


def _scrub(value: Any, path: Path, base: JSONObject) -> Any:
    """``value`` with every `_WRITTEN` marker replaced by the real base value there."""
    if value == _WRITTEN:
        return _lookup(base, path)
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            clean = _scrub(item, (*path, key), base)
            if clean is not MISSING:
                out[key] = clean
        return out
    return value


def _unmark(result: MergeResult, base: JSONObject) -> MergeResult:
    """The merge result as if the markers of `_mark_written` had never been there."""
    records = tuple(
        attrs.evolve(
            record,
            base=_scrub(record.base, record.path, base),
            value=_scrub(record.value, record.path, base),
        )
        for record in result.report
    )
    reviews = tuple(
        attrs.evolve(
            item,
            base=_scrub(item.base, item.path, base),
            current=_scrub(item.current, item.path, base),
        )
        for item in result.reviews
    )
    return attrs.evolve(
        result,
        merged=_scrub(result.merged, (), base),
        report=ConflictReport(records),
        reviews=reviews,
    )


class _NoChange(enum.Enum):
    NO_CHANGE = "no change"


_NO_CHANGE = _NoChange.NO_CHANGE


def _diff_value(theirs: JSONValue | Missing, target: JSONValue | Missing) -> Any:
    """The update value that turns ``theirs`` into ``target`` (``_NO_CHANGE`` if equal)."""
    if same(theirs, target):
        return _NO_CHANGE
    if target is MISSING:
        return None
    if type(target) is dict and type(theirs) is dict:
        patch: JSONObject = {key: None for key in theirs if key not in target}
        for key, value in target.items():
            change = _diff_value(theirs.get(key, MISSING), value)
            if change is not _NO_CHANGE:
                patch[key] = change
        return patch if patch else _NO_CHANGE
    return copy_json(target)


def _put_at(patch: JSONObject, path: Path, value: JSONValue) -> None:
    node = patch
    for key in path[:-1]:
        child = node.get(key, MISSING)
        if child is MISSING:
            child = node[key] = {}
        if type(child) is not dict:
            return  # an ancestor is written whole already
        node = child
    node[path[-1]] = value


def _needed(touched: Iterable[Path], theirs: JSONObject, target: JSONObject) -> JSONObject:
    """The update that makes the cloud hold ``target`` at every ``touched`` path.

    ``theirs`` is what the cloud holds. Where the cloud has no object to merge into above a
    path, the target value is written whole there; at the path itself only the difference is
    sent (keys to delete as ``null``), so a value the cloud already holds is not sent again.
    """
    patch: JSONObject = {}
    for path in sorted(touched, key=len):
        for end in range(1, len(path)):
            here = _lookup(theirs, path[:end])
            if type(here) is not dict:
                wanted = _lookup(target, path[:end])
                if not same(here, wanted):
                    _put_at(patch, path[:end], None if wanted is MISSING else copy_json(wanted))
                break
        else:
            change = _diff_value(_lookup(theirs, path), _lookup(target, path))
            if change is not _NO_CHANGE:
                _put_at(patch, path, change)
    return patch


# -- the session -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Planned:
    """One update of a plan: queued reports (``touched`` paths, to reach ``target``), the
    desired patch, or the empty update that creates the shadow."""

    kind: Literal["reported", "desired", "create"]
    token: str
    state: JSONObject = attrs.field(factory=dict, eq=False)
    seqs: tuple[int, ...] = ()
    touched: tuple[Path, ...] = ()
    target: JSONObject = attrs.field(factory=dict, eq=False)


@attrs.frozen(kw_only=True)
class _Request:
    operation: Literal["get", "update", "delete"]
    token: str
    deadline: float
    planned: _Planned | None = None
    body: dict[str, Any] | None = attrs.field(default=None, eq=False)


def _check_now(now: object) -> float:
    if (
        not isinstance(now, (int, float))
        or isinstance(now, bool)
        or not math.isfinite(now)
        or now < 0
    ):
        raise InvalidArgumentError(
            f"now must be epoch seconds (a number >= 0), got {describe(now)}"
        )
    return float(now)


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
        self._store = store
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
        self._plan: list[_Planned] = []
        self._plan_version: int | None = None
        self._early: list[tuple[str, str, dict[str, Any]]] = []
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
        self._cloud: ShadowDocument | None = None
        self._exact = False  # the view is the cloud's document at its version
        self._overlay: JSONObject = {}  # desired values of deltas newer than the view
        self._overlay_version: int | None = None
        self._seen_at_get: int | None = None
        self._last_seen: int | None = None
        self._accepted_desired: JSONObject = {}
        self._accepted_meta: JSONObject = {}
        self._base_reported: JSONObject = {}
        self._base_meta: JSONObject = {}
        self._load_cache()

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
        return self._state in _CONNECTED_STATES

    @property
    def queue(self) -> OfflineQueue:
        """The offline queue the session writes intents to."""
        return self._queue

    @property
    def last_seen_version(self) -> int | None:
        """The highest shadow version seen (``None`` before any, and after a delete)."""
        return self._last_seen

    @property
    def cloud_document(self) -> ShadowDocument | None:
        """The last known cloud document (the local shadow cache), ``None`` if none exists."""
        return self._cloud

    @property
    def accepted_desired(self) -> JSONObject:
        """The desired state the device accepted (after the business rules); a copy."""
        return copy_object(self._accepted_desired)

    def device_reported(self) -> JSONObject:
        """The reported state as the device sees it: the cloud's plus every queued intent."""
        reported = copy_object(self._cloud.reported) if self._cloud is not None else {}
        for intent in self._pending():
            _apply_at(reported, intent.path, intent.value)
        return reported

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (a timeout or a retry), or ``None``."""
        times = [t for t in (self._retry_at,) if t is not None]
        if self._in_flight is not None:
            times.append(self._in_flight.deadline)
        return min(times) if times else None

    def health(self, now: float) -> SessionHealth:
        """The session's health at ``now``: a stuck sync shows as failures and growing ages."""
        now = _check_now(now)
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
            last_seen_version=self._last_seen,
        )

    @staticmethod
    def diagram() -> str:
        """The state diagram of `TRANSITIONS` in Mermaid syntax (as shown in the docs)."""
        lines = ["stateDiagram-v2", f"    [*] --> {SessionState.OFFLINE.value}"]
        for state, row in TRANSITIONS.items():
            for trigger, target in row.items():
                lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
        return "\n".join(lines) + "\n"

    # -- connection events -----------------------------------------------------------------

    def connected(self, now: float) -> list[Event]:
        """The transport connected (again): subscribe, fetch the snapshot, then reconcile.

        Called while already connected, it counts as a reconnect.
        """
        now = _check_now(now)
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
        _check_now(now)
        out = self._take_startup()
        if self._state is SessionState.OFFLINE:
            return out
        self._in_flight = None
        self._plan = []
        self._early = []
        self._retry_at = None
        self._exact = False
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
        now = _check_now(now)
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
        leaves = _leaves(section)
        if not leaves:
            return out
        self._put([("report", path, value) for path, value in leaves], now, out)
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    def acknowledge(self, acknowledgement: Acknowledgement, now: float) -> list[Event]:
        """Report ``acknowledgement`` as ``reported["$ack"]``, queued like the session's own.

        For answers the application makes about the desired state, such as a reconciler
        rolling a target back (`shadowsync.reconcile`).
        """
        now = _check_now(now)
        out = self._take_startup()
        if not isinstance(acknowledgement, Acknowledgement):
            raise InvalidArgumentError(
                f"acknowledgement must be an Acknowledgement, got {describe(acknowledgement)}"
            )
        self._put([("ack", (ACK_KEY,), acknowledgement.to_dict())], now, out)
        out.append(AcknowledgementQueued(acknowledgement=acknowledgement))
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    def desire(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Change the desired state (for a session used on the cloud side, or a local UI).

        Desired changes are kept in memory (not in the durable queue), merged together, and sent
        after the queued reports, with the same version check and retries.
        """
        now = _check_now(now)
        out = self._take_startup()
        if not isinstance(changes, Mapping):
            raise InvalidArgumentError(f"changes must be an object, got {describe(changes)}")
        section = normalize_section(
            changes, section="desired", max_depth=self._limits.max_depth, nulls=True
        )
        if not section:
            return out
        _merge_patch(self._desired_patch, section)
        if self._desired_since is None:
            self._desired_since = now
        if self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)
        return out

    def get(self, now: float) -> list[Event]:
        """Fetch the snapshot again and reconcile (at once if idle, else after the update)."""
        now = _check_now(now)
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
        now = _check_now(now)
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
        now = _check_now(now)
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
        now = _check_now(now)
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
                self._exact = False  # it may have been applied
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
        now = _check_now(now)
        out = self._take_startup()
        shown = topic[:_MAX_TOPIC_SHOWN] if isinstance(topic, str) else describe(topic)
        try:
            parsed = topics.parse(topic, limits=self._limits)
        except TopicError as exc:
            out.append(MessageIgnored(topic=shown, reason=f"not a shadow topic: {exc}"))
            return out
        if (parsed.thing_name, parsed.shadow_name) != (self.thing_name, self.shadow_name):
            out.append(MessageIgnored(topic=shown, reason="for another shadow"))
            return out
        if parsed.response is None:
            out.append(MessageIgnored(topic=shown, reason="a request topic, not a response"))
            return out
        data: object = payload  # callers may pass anything; check before use
        if isinstance(data, memoryview):
            data = data.tobytes()
        if not isinstance(data, (bytes, bytearray, str)):
            out.append(MessageIgnored(topic=shown, reason="the payload is not bytes or text"))
            return out
        if len(data) > self._config.max_payload_bytes:
            out.append(
                MessageIgnored(topic=shown, reason=f"payload of {len(data)} bytes is too big")
            )
            return out
        try:
            body = decode_payload(data, max_depth=self._limits.max_depth)
        except ShadowRejectedError as exc:
            out.append(MessageIgnored(topic=shown, reason=f"malformed payload: {exc}"))
            return out
        if type(body) is not dict:
            out.append(MessageIgnored(topic=shown, reason="the payload is not a JSON object"))
            return out
        key = f"{parsed.operation}/{parsed.response}"
        if key in ("update/delta", "update/documents"):
            self._notification(key, shown, body, now, out, early_ok=True)
        elif parsed.operation == "get":
            self._on_get(parsed.response == "accepted", shown, body, now, out)
        elif parsed.operation == "update":
            self._on_update(parsed.response == "accepted", shown, body, now, out)
        else:
            self._on_delete(parsed.response == "accepted", shown, body, now, out)
        return out

    # -- internals: state and requests -----------------------------------------------------

    def _fire(self, trigger: Trigger, out: list[Event]) -> None:
        target = TRANSITIONS[self._state].get(trigger)
        if target is None:
            raise SessionStateError(
                f"no transition for {trigger.value} in state {self._state.value}"
            )
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
        self._seen_at_get = self._last_seen
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

    # -- internals: the cache --------------------------------------------------------------

    def _persist(self) -> None:
        self._store.put_cache(
            self.thing_name,
            self.shadow_name,
            document=None if self._cloud is None else self._cloud.to_dict(),
            base={
                "lastSeenVersion": self._last_seen,
                "acceptedDesired": copy_object(self._accepted_desired),
                "acceptedDesiredMetadata": copy_object(self._accepted_meta),
                "reported": copy_object(self._base_reported),
                "reportedMetadata": copy_object(self._base_meta),
            },
        )

    def _load_cache(self) -> None:
        entry = self._store.get_cache(self.thing_name, self.shadow_name)
        if entry is None:
            return
        try:
            document = entry.document
            cloud = (
                None
                if document is None
                else ShadowDocument.from_dict(document, limits=self._limits)
            )
            base = entry.base if entry.base is not None else {}
            if not isinstance(base, Mapping):
                raise InvalidArgumentError("the cached base is not an object")
            seen = base.get("lastSeenVersion")
            if seen is not None and (type(seen) is not int or seen < 0):
                raise InvalidArgumentError(f"lastSeenVersion is {describe(seen)}")
            sections = {
                name: normalize_section(base.get(name, {}), section=name, max_depth=64, nulls=False)
                for name in (
                    "acceptedDesired",
                    "acceptedDesiredMetadata",
                    "reported",
                    "reportedMetadata",
                )
            }
        except ShadowSyncError as exc:
            self._startup.append(CacheReset(reason=str(exc)))
            return
        self._cloud = cloud
        self._last_seen = seen if seen is not None else (None if cloud is None else cloud.version)
        self._accepted_desired = sections["acceptedDesired"]
        self._accepted_meta = sections["acceptedDesiredMetadata"]
        self._base_reported = sections["reported"]
        self._base_meta = sections["reportedMetadata"]

    def _see(self, version: int) -> None:
        if self._last_seen is None or version > self._last_seen:
            self._last_seen = version

    # -- internals: snapshot, desired state, plan ------------------------------------------

    def _take_snapshot(self, document: ShadowDocument | None, now: float, out: list[Event]) -> None:
        out.append(SnapshotReceived(version=None if document is None else document.version))
        self._cloud = document
        self._exact = True
        self._refresh_wanted = False
        self._plan = []
        self._overlay, self._overlay_version = {}, None  # newer deltas are replayed below
        if self._last_seen == self._seen_at_get:
            # Nothing newer arrived while the GET was out, so the snapshot is the latest word,
            # even below what was seen before: the shadow was deleted (and maybe re-created,
            # restarting its versions after 48 hours), or an earlier version was bogus.
            self._last_seen = None if document is None else document.version
        elif document is not None:
            self._see(document.version)  # newer messages arrived meanwhile: the view is behind
        self._evaluate_desired(now, out, source="snapshot")
        early, self._early = self._early, []
        floor = None if document is None else document.version
        for key, shown, body in early:
            self._notification(key, shown, body, now, out, early_ok=False, floor=floor)
        self._persist()
        self._sync_step(now, out)

    def _evaluate_desired(
        self, now: float, out: list[Event], *, source: Literal["snapshot", "delta", "other"]
    ) -> None:
        """Judge the cloud's desired state with the rules; emit the delta; queue reports/acks."""
        cloud = self._cloud
        theirs = self._theirs_desired()
        version = max(0 if cloud is None else cloud.version, self._overlay_version or 0)
        result = merge(
            self._accepted_desired,
            self._accepted_desired,
            theirs,
            policy=self._policy,
            section="desired",
            thing_name=self.thing_name,
            shadow_name=self.shadow_name,
            ours_source="device",
            theirs_source="cloud",
            rules=self._rules,
            timestamp=int(now),
            desired_version=version,
            metadata=self._accepted_meta,
        )
        self._accepted_desired = result.merged
        self._accepted_meta = _metadata_for(
            result.merged,
            theirs,
            {} if cloud is None else cloud.desired_metadata,
            self._accepted_meta,
        )
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
        delta = compute_delta(self._accepted_desired, self.device_reported())
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
            self._put([("report", path, value) for path, value in _leaves(delta)], now, out)
            self._delta_since = None
        elif self._delta_since is None:
            self._delta_since = now

    def _current_rejections(self) -> list[Any]:
        for intent in reversed(self._pending()):
            if intent.kind == "ack" and isinstance(intent.value, dict):
                return _rejections(intent.value)
        if self._cloud is not None:
            return _rejections(self._cloud.reported.get(ACK_KEY))
        return []

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
        if self._refresh_wanted or (pending and not self._is_fresh()):
            # Never plan against a view that may be behind: what to send depends on it.
            self._refresh_wanted = False
            self._fire(Trigger.REFRESH, out)
            self._send_get(now, out)
            return
        if pending:
            if self._plan and self._plan_version != self._cloud_version():
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

    def _cloud_version(self) -> int | None:
        return None if self._cloud is None else self._cloud.version

    def _synced(self, now: float, out: list[Event]) -> None:
        if self._pending() or self._desired_patch:
            return
        if self._cloud is not None and self._is_fresh():
            self._base_reported = copy_object(self._cloud.reported)
            self._base_meta = copy_object(self._cloud.reported_metadata)
        self._failures = 0
        self._conflicts = 0
        self._last_sync_at = int(now)
        self._persist()
        out.append(SyncCompleted(version=self._cloud_version(), at=int(now)))

    def _make_plan(self, now: float, out: list[Event]) -> list[_Planned]:
        """Merge snapshot, base and queued intents; return the updates to send, in order."""
        batches = self._queue.replay(
            now=int(now),
            token=self._new_token,
            thing_name=self.thing_name,
            shadow_name=self.shadow_name,
        )
        self._collect_drops(out)
        plan: list[_Planned] = []
        cloud = self._cloud
        version = self._cloud_version()
        if batches:
            pending = self._pending()
            ours = copy_object(self._base_reported)
            for intent in pending:
                _apply_at(ours, intent.path, intent.value)
            theirs = {} if cloud is None else cloud.reported
            result = merge(
                _mark_written(self._base_reported, ours, pending),
                ours,
                theirs,
                policy=self._policy,
                section="reported",
                thing_name=self.thing_name,
                shadow_name=self.shadow_name,
                ours_source="device",
                theirs_source="cloud",
                ours_stamps={intent.path: intent.created_at for intent in pending},
                theirs_stamps={}
                if cloud is None
                else stamps_from_metadata(cloud.reported_metadata),
            )
            result = _unmark(result, self._base_reported)
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
            for batch in batches:
                request = batch.request["state"]["reported"]
                plan.append(
                    _Planned(
                        kind="reported",
                        token=batch.client_token,
                        seqs=tuple(batch.seqs),
                        touched=tuple(path for path, _ in _leaves(request)),
                        target=result.merged,
                    )
                )
        if self._desired_patch:
            plan.append(
                _Planned(
                    kind="desired",
                    token=self._new_token(),
                    state={"desired": copy_object(self._desired_patch)},
                )
            )
        if plan and cloud is None and self._config.compare_and_set:
            # Create the shadow empty first, then write with a version: a duplicate of an
            # update without one could be applied again later and undo newer values, while a
            # duplicate of an empty update changes nothing.
            plan.insert(0, _Planned(kind="create", token=self._new_token()))
        self._plan_version = version
        return plan

    def _send_update(self, planned: _Planned, now: float, out: list[Event]) -> bool:
        """Publish ``planned``; or settle it without sending when the cloud already holds it,
        or refuse it when the pre-flight check against the known document fails."""
        state = planned.state
        if planned.kind == "reported":
            theirs = {} if self._cloud is None else self._cloud.reported
            needed = _needed(planned.touched, theirs, planned.target)
            if not needed:
                seqs = self._queue.confirm(planned.token)
                if seqs:
                    out.append(
                        IntentsConfirmed(
                            seqs=seqs, client_token=None, version=self._cloud_version()
                        )
                    )
                return False
            state = {"reported": needed}
        body: dict[str, Any] = {"state": state, "clientToken": planned.token}
        if self._config.compare_and_set and self._cloud is not None:
            body["version"] = self._cloud.version
        try:
            apply_update(
                self._cloud, body, timestamp=int(now), limits=self._limits, previous_version=0
            )
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
        planned: _Planned,
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
        elif planned.kind == "desired" and json_equal(
            self._desired_patch, planned.state["desired"]
        ):
            self._desired_patch = {}
            self._desired_since = None

    # -- internals: message handlers -------------------------------------------------------

    def _on_get(
        self, accepted: bool, shown: str, body: dict[str, Any], now: float, out: list[Event]
    ) -> None:
        request = self._matches("get", body)
        if request is None:
            out.append(MessageIgnored(topic=shown, reason="an answer to no GET in flight"))
            return
        if accepted:
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
        code, message = _rejection(body)
        self._in_flight = None
        if code == 404:
            self._take_snapshot(None, now, out)
            return
        out.append(
            RequestFailed(operation="get", reason=message, code=code, client_token=request.token)
        )
        self._fail(now, out)

    def _on_update(
        self, accepted: bool, shown: str, body: dict[str, Any], now: float, out: list[Event]
    ) -> None:
        request = self._matches("update", body)
        if request is None:
            version = body.get("version")
            if accepted and type(version) is int and version >= 0:
                # Another client's update: our view is behind until its documents arrive.
                self._see(version)
                self._persist()
            else:
                out.append(MessageIgnored(topic=shown, reason="an answer to no update in flight"))
            return
        planned = request.planned
        assert planned is not None
        assert request.body is not None
        if accepted:
            version = body.get("version")
            stamp = body.get("timestamp")
            if type(version) is not int or version < 0:
                out.append(MessageIgnored(topic=shown, reason="update/accepted without a version"))
                return
            self._in_flight = None
            self._accepted(planned, request.body, version, stamp, now, out)
            return
        code, message = _rejection(body)
        self._in_flight = None
        if code == 409:
            self._exact = False
            self._conflicts += 1
            out.append(UpdateRejected(code=code, message=message, client_token=planned.token))
            if self._conflicts > self._config.max_conflict_retries:
                self._escalate(now, out)
                return
            self._failures += 1
            self._plan = []
            delay = self._config.backoff.delay(self._conflicts - 1, self._random)
            self._retry_at = now + delay
            self._fire(Trigger.CONFLICT, out)
            return
        if code in _PERMANENT_CODES:
            self._refuse(planned, code, message, now, out, local=False)
            self._sync_step(now, out)
            return
        out.append(UpdateRejected(code=code, message=message, client_token=planned.token))
        self._fail(now, out)

    def _accepted(
        self,
        planned: _Planned,
        request: dict[str, Any],
        version: int,
        stamp: object,
        now: float,
        out: list[Event],
    ) -> None:
        timestamp = stamp if type(stamp) is int and stamp >= 0 else int(now)
        if self._cloud is not None and self._cloud.version >= version:
            pass  # its documents message came first and brought the view up to date
        elif planned.kind == "create":
            # Without a version the update may have met an existing shadow: fetch it.
            self._cloud = self._view_after(request, version, timestamp)
            self._exact = False
        else:
            view = self._view_after(request, version, timestamp)
            if view is not None and view.version == version:
                self._cloud = view
            else:
                self._exact = False
        self._see(version)
        self._plan_version = version
        out.append(UpdateAccepted(client_token=planned.token, version=version))
        if planned.kind == "reported":
            seqs = self._queue.confirm(planned.token)
            if seqs:
                out.append(IntentsConfirmed(seqs=seqs, client_token=planned.token, version=version))
        elif planned.kind == "desired" and json_equal(
            self._desired_patch, planned.state["desired"]
        ):
            self._desired_patch = {}
            self._desired_since = None
        self._persist()
        self._sync_step(now, out)

    def _view_after(
        self, request: dict[str, Any], version: int, timestamp: int
    ) -> ShadowDocument | None:
        """The cloud document after our accepted update, as the service computed it."""
        try:
            result = apply_update(
                self._cloud,
                request,
                timestamp=timestamp,
                limits=self._limits,
                previous_version=max(0, version - 1),
            )
        except ShadowRejectedError:
            return None
        return result.document

    def _escalate(self, now: float, out: list[Event]) -> None:
        cloud = self._cloud
        theirs = {} if cloud is None else cloud.reported
        items = list(self._last_reviews)
        seen = {item.id for item in items}
        for intent in self._pending():
            current = _lookup(theirs, intent.path)
            proposed: JSONValue | Missing = MISSING if intent.value is None else intent.value
            item = ReviewItem(
                id=review_id("reported", intent.path, current, proposed),
                path=intent.path,
                section="reported",
                current=copy_json(current) if current is not MISSING else MISSING,
                proposed=copy_json(proposed) if proposed is not MISSING else MISSING,
                base=_lookup(self._base_reported, intent.path),
                reason="the update kept meeting version conflicts",
            )
            if item.id not in seen:
                seen.add(item.id)
                items.append(item)
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

    def _on_delete(
        self, accepted: bool, shown: str, body: dict[str, Any], now: float, out: list[Event]
    ) -> None:
        request = self._matches("delete", body)
        version = body.get("version")
        version = version if type(version) is int and version >= 0 else None
        if request is None:
            if not accepted or version is None or self._cloud is None:
                out.append(MessageIgnored(topic=shown, reason="an answer to no delete in flight"))
                return
            if version < self._cloud.version:
                out.append(MessageIgnored(topic=shown, reason=f"stale delete of version {version}"))
                return
            self._deleted(version, by_us=False, out=out)
            if self._state is SessionState.IN_SYNC:
                self._sync_step(now, out)
            return
        self._in_flight = None
        if not accepted:
            code, message = _rejection(body)
            if code != 404:
                out.append(
                    RequestFailed(
                        operation="delete", reason=message, code=code, client_token=request.token
                    )
                )
                self._fail(now, out)
                return
        self._deleted(version, by_us=True, out=out)
        self._sync_step(now, out)

    def _deleted(self, version: int | None, *, by_us: bool, out: list[Event]) -> None:
        self._cloud = None
        self._exact = True
        self._overlay, self._overlay_version = {}, None
        self._last_seen = None
        self._accepted_desired = {}
        self._accepted_meta = {}
        self._base_reported = {}
        self._base_meta = {}
        self._last_delta = None
        self._delta_since = None
        self._persist()
        out.append(ShadowDeleted(version=version, by_us=by_us))

    def _notification(
        self,
        key: str,
        shown: str,
        body: dict[str, Any],
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
            self._early.append((key, shown, body))
            return
        try:
            if key == "update/delta":
                version, delta = _parse_delta(body, self._limits)
                document = None
            else:
                document = _parse_documents(body, self._limits)
                version, delta = document.version, None
        except ShadowSyncError as exc:
            out.append(MessageIgnored(topic=shown, reason=f"malformed {key}: {exc}"))
            return
        if floor is not None and version <= floor:
            out.append(MessageIgnored(topic=shown, reason=f"covered by snapshot {floor}"))
            return
        kind = classify_message(version, self._last_seen)
        if kind is MessageClass.STALE:
            out.append(
                MessageIgnored(
                    topic=shown, reason=f"stale: version {version} < {self._last_seen} seen"
                )
            )
            return
        if document is not None:
            if self._cloud is None or document.version >= self._cloud.version:
                self._cloud = document
                self._exact = True
        elif delta is not None:
            self._apply_delta(version, delta)
        if kind is MessageClass.GAP and document is None:
            self._refresh_wanted = True
        self._see(version)
        self._evaluate_desired(now, out, source="delta" if document is None else "other")
        self._persist()
        if early_ok and self._state is SessionState.IN_SYNC:
            self._sync_step(now, out)

    def _apply_delta(self, version: int, delta: JSONObject) -> None:
        """Remember a delta newer than the view: its desired values count until the view
        catches up (a delta says nothing of reported, so the view itself stays as it is)."""
        if self._cloud is not None and version <= self._cloud.version:
            return  # already in the view; it is evaluated again as it is
        if self._overlay_version is None or version > self._overlay_version:
            self._overlay_version = version
        _deep_merge(self._overlay, delta)

    def _theirs_desired(self) -> JSONObject:
        """The cloud's desired state as far as known: the view plus newer deltas."""
        cloud = self._cloud
        if self._overlay_version is not None and (
            cloud is not None and cloud.version >= self._overlay_version
        ):
            self._overlay, self._overlay_version = {}, None
        desired = {} if cloud is None else cloud.desired
        if self._overlay_version is None:
            return desired
        combined = copy_object(desired)
        _deep_merge(combined, self._overlay)
        return combined

    def _is_fresh(self) -> bool:
        """Whether the view is the cloud's document and nothing newer was seen since."""
        if not self._exact:
            return False
        if self._cloud is None:
            return self._last_seen is None
        return self._last_seen is None or self._cloud.version >= self._last_seen


# -- parsing -----------------------------------------------------------------------------------


def _rejection(body: Mapping[str, Any]) -> tuple[int, str]:
    code = body.get("code")
    message = body.get("message")
    return (
        code if type(code) is int and 0 <= code < 1000 else 500,
        message[:500] if isinstance(message, str) and message else "no message",
    )


def _rejections(ack: object) -> list[Any]:
    if isinstance(ack, dict):
        rejected = ack.get("rejected")
        if isinstance(rejected, list):
            return rejected
    return []


def _parse_delta(body: Mapping[str, Any], limits: ShadowLimits) -> tuple[int, JSONObject]:
    version = body.get("version")
    if type(version) is not int or version < 0:
        raise InvalidArgumentError(f"version is {describe(version)}")
    state = body.get("state")
    if type(state) is not dict:
        raise InvalidArgumentError("state is not an object")
    try:
        return version, normalize_section(
            state, section="delta", max_depth=limits.max_depth, nulls=False
        )
    except ShadowRejectedError as exc:
        raise InvalidArgumentError(f"{exc.message} ({exc.detail})") from None


def _parse_documents(body: Mapping[str, Any], limits: ShadowLimits) -> ShadowDocument:
    current = body.get("current")
    if type(current) is not dict:
        raise InvalidArgumentError("current is not an object")
    if type(current.get("version")) is not int:
        raise InvalidArgumentError("current.version is not an int")
    timestamp = body.get("timestamp")
    return ShadowDocument.from_dict(
        {
            "state": current.get("state"),
            "metadata": current.get("metadata"),
            "version": current["version"],
            "timestamp": timestamp if type(timestamp) is int and timestamp >= 0 else 0,
        },
        limits=limits,
    )


def _merge_patch(target: JSONObject, patch: Mapping[str, Any]) -> None:
    """Merge two update patches: later values win, ``None`` (delete) is kept as ``None``."""
    for key, value in patch.items():
        if type(value) is dict and type(target.get(key)) is dict:
            child = target[key]
            assert isinstance(child, dict)
            _merge_patch(child, value)
        else:
            target[key] = copy_json(value)


def _metadata_for(section: Any, cloud: Any, fresh: Any, old: Any) -> JSONObject:
    """Metadata of the accepted desired state: the cloud's where the cloud's value was taken,
    the previous metadata where a rule kept the old value."""
    out: JSONObject = {}
    for key, value in section.items():
        theirs = cloud.get(key, MISSING) if type(cloud) is dict else MISSING
        new_meta = fresh.get(key) if type(fresh) is dict else None
        old_meta = old.get(key) if type(old) is dict else None
        if type(value) is dict:
            out[key] = _metadata_for(value, theirs, new_meta, old_meta)
        elif new_meta is not None and same(value, theirs):
            out[key] = copy_json(new_meta)
        elif old_meta is not None:
            out[key] = copy_json(old_meta)
    return out


__all__ = [
    "TRANSITIONS",
    "Backoff",
    "SessionConfig",
    "SessionHealth",
    "SessionState",
    "SessionStateError",
    "ShadowSession",
    "Trigger",
]
