"""The device's offline queue: what it wants the cloud to know, kept until the cloud has it.

`OfflineQueue` keeps `shadowsync._device.intent.Intent` writes in a `shadowsync.stores.Store`
(durable when `put` returns), bounds them by count, bytes and age, and turns them into the
fewest update requests that carry everything when the device is back online (see
`shadowsync._device.replay`). The queue itself does no I/O: time, client tokens and the store
are given to it.

Semantics
---------

The reference for everything the queue does is: *apply every intent that was put, one update
each, in stamp order* (``(stamp, seq)``, so equal stamps keep the order of `put`).

**Coalescing.** When an intent is put, every pending intent of the same thing and shadow that
ranks before it and that it *covers* is dropped (reason ``"superseded"``); an intent that is
itself covered by a pending one ranked after it is not queued at all. Seen as the trees of the
updates they mean, a later write covers an earlier one when it overwrites everything the
earlier one did:

* wherever the earlier write has a scalar, an array or a delete, the later write has a scalar,
  an array or a delete at the same place or above it;
* wherever the earlier write merges an object (the objects on its path included), the later
  write merges an object at the same place too, or has a scalar, an array or a delete above it.

So ``temp = 21`` then ``temp = 22`` keeps only the second; ``sensors = null`` supersedes every
earlier write under ``sensors``; ``light = {"level": 1}`` is superseded by a later
``light.level = 2``. But ``sensors = {"a": 1}`` then ``sensors = {"b": 2}`` keeps both (the
second merges beside the first), and an earlier ``sensors = 5`` is not superseded by a later
``sensors.a = 1`` (the ``5`` turned ``sensors`` into a fresh object, which a bare merge into
whatever the cloud holds would not do). Dropping a covered write never changes the reference
result, whatever was written between the two.

**Replay.** `OfflineQueue.replay` composes the pending intents of each shadow in stamp order
into as few update requests as the limits allow; `shadowsync._device.replay` says how.

**Confirmation.** `OfflineQueue.confirm` takes the client token of an accepted update. Each
batch lists in `ReplayBatch.seqs` the intents whose paths overlap what it writes; an intent
carried by several batches (split across them, or reset then merged) is removed once all of
them are confirmed, so a lost update never loses part of an intent. A batch the cloud refuses
for good is given to `OfflineQueue.fail`, which drops its intents with reason ``"rejected"``.
Nothing is removed from the queue any other way without a `DropRecord` saying so.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._device.intent import Intent, stored_intent
from shadowsync._device.replay import (
    PlannedUpdate,
    ReplayBatch,
    Unfit,
    plan_updates,
    unfit_reason,
)
from shadowsync._device.store import Store, store_transaction
from shadowsync._json import JSONValue, copy_json, describe, format_path
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._validators import check_now, count, is_count, positive
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import EllipsisType

__all__ = [
    "DropReason",
    "DropRecord",
    "OfflineQueue",
    "OnFull",
    "PutResult",
    "QueueLimits",
    "QueueStats",
]

DropReason = Literal["expired", "queue_full", "superseded", "rejected"]
"""Why an intent left the queue without being confirmed by the cloud."""

OnFull = Literal["drop_oldest", "reject_new"]
"""What `OfflineQueue.put` does when the queue is full."""

_ANY_SHADOW: Any = ...

# The bounds are counts (intents, bytes, whole seconds): an int, and at least 1.
_AT_LEAST_ONE = [count, positive]


def _on_full(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("drop_oldest", "reject_new"):
        raise InvalidArgumentError(
            f"QueueLimits.on_full must be 'drop_oldest' or 'reject_new', got {describe(value)}"
        )


@attrs.frozen(kw_only=True)
class QueueLimits:
    """Bounds of the offline queue and what happens when it is full.

    ``max_bytes`` counts `Intent.size` of the pending intents. ``max_age_seconds`` is how long an
    intent is kept after its ``created_at`` (the seed's ``offline_buffer_duration``, a week);
    after that it expires. When a new intent would exceed ``max_intents`` or ``max_bytes``,
    ``on_full="drop_oldest"`` drops the oldest pending intents (by seq) to make room, and
    ``"reject_new"`` refuses the new one. Either way a `DropRecord` with reason
    ``"queue_full"`` says which.

    ```pycon
    >>> QueueLimits().max_age_seconds // 3600
    168
    >>> QueueLimits(max_intents=100, on_full="reject_new").on_full
    'reject_new'

    ```
    """

    max_intents: int = attrs.field(default=10_000, validator=_AT_LEAST_ONE)
    """Pending intents at most."""
    max_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_AT_LEAST_ONE)
    """Sum of `Intent.size` over pending intents at most."""
    max_age_seconds: int = attrs.field(default=7 * 24 * 3600, validator=_AT_LEAST_ONE)
    """Seconds an intent is kept after its ``created_at``."""
    on_full: OnFull = attrs.field(default="drop_oldest", validator=_on_full)
    """``"drop_oldest"`` or ``"reject_new"``."""
    max_drop_records: int = attrs.field(default=10_000, validator=_AT_LEAST_ONE)
    """Drop records kept in memory for `OfflineQueue.drops`; older ones are forgotten (the
    counters of `OfflineQueue.stats` keep counting every drop)."""


@attrs.frozen(kw_only=True)
class DropRecord:
    """An intent that left the queue without being confirmed by the cloud, and why.

    ``reason`` is ``"expired"`` (older than ``max_age_seconds``), ``"queue_full"`` (dropped or
    refused by the ``on_full`` policy), ``"superseded"`` (a newer write covers it, so the cloud
    ends up in the same state without it) or ``"rejected"`` (it can never fit in one update, or
    the cloud refused its batch for good, see `OfflineQueue.fail`). ``at`` is the ``now`` of
    the call that dropped it; ``detail`` explains it for people.
    """

    intent: Intent
    """The dropped intent (``seq`` is 0 when it was never queued)."""
    reason: DropReason
    """``"expired"``, ``"queue_full"``, ``"superseded"`` or ``"rejected"``."""
    at: int
    """Epoch seconds of the drop (the ``now`` of the call, rounded down)."""
    detail: str = ""
    """A human-readable explanation."""


@attrs.frozen(kw_only=True)
class PutResult:
    """The outcome of `OfflineQueue.put`.

    ``seq`` is the new intent's sequence number, or ``None`` when it was not queued (expired,
    refused by ``reject_new``, too large for any update, or covered by a newer pending write);
    ``dropped`` lists every intent the call dropped, the new one included when it was not queued.
    """

    seq: int | None
    """The new intent's seq, or ``None`` if it was not queued."""
    dropped: tuple[DropRecord, ...] = ()
    """Every intent this call dropped (expired, superseded, queue full, rejected)."""


@attrs.frozen(kw_only=True)
class QueueStats:
    """A snapshot of the queue: what is pending, and what happened since it was opened.

    The counters obey ``loaded + puts - dropped == count + confirmed`` where ``loaded`` is
    what the store held when the queue was opened and ``dropped`` the sum of the four drop
    counters.
    """

    count: int
    """Pending intents."""
    bytes: int
    """Sum of `Intent.size` over pending intents."""
    oldest_age: int | None
    """Seconds since the oldest pending intent's ``created_at`` (``None`` when empty)."""
    oldest_created_at: int | None
    """``created_at`` of the oldest pending intent (``None`` when empty)."""
    shadows: int
    """Distinct (thing, shadow) pairs with pending intents."""
    in_flight: int
    """Pending intents carried by a batch that is neither confirmed nor failed."""
    loaded: int
    """Intents the store held when the queue was opened."""
    puts: int
    """Calls to `OfflineQueue.put` since the queue was opened."""
    confirmed: int
    """Intents removed because the batches carrying them were accepted (since opened)."""
    expired: int
    """Intents dropped as expired since the queue was opened."""
    queue_full: int
    """Intents dropped or refused because the queue was full."""
    superseded: int
    """Intents dropped because a newer write covers them."""
    rejected: int
    """Intents dropped as too large for an update, or refused by the cloud."""


# --------------------------------------------------------------------------------------------
# Coalescing: which writes cover which
# --------------------------------------------------------------------------------------------


def _covers(newer: Intent, older: Intent) -> bool:
    """Whether ``newer`` (ranked after ``older``) overwrites everything ``older`` wrote."""
    new_path, old_path = newer.path, older.path
    common = min(len(new_path), len(old_path))
    if new_path[:common] != old_path[:common]:
        return False
    if len(new_path) <= len(old_path):
        node: JSONValue = newer.value
        for key in old_path[len(new_path) :]:
            if type(node) is not dict:
                return True
            if key not in node:
                return False
            node = node[key]
        return _covers_value(node, older.value)
    node = older.value
    for key in new_path[len(old_path) :]:
        # The older write must touch nothing beside the newer one's path, and must not reset a
        # path above it (a reset turns the newer merge into an exact value).
        if type(node) is not dict or len(node) != 1 or key not in node:
            return False
        node = node[key]
    return _covers_value(newer.value, node)


def _covers_value(newer: JSONValue, older: JSONValue) -> bool:
    if type(newer) is not dict:
        return True
    if type(older) is not dict:
        return False
    for key, item in older.items():
        if key not in newer or not _covers_value(newer[key], item):
            return False
    return True


class _PathIndex:
    """The seqs of one shadow's pending intents by path: finds the intents a path overlaps."""

    __slots__ = ("children", "seqs")

    def __init__(self) -> None:
        self.children: dict[str, _PathIndex] = {}
        self.seqs: set[int] = set()

    def add(self, path: tuple[str, ...], seq: int) -> None:
        node = self
        for key in path:
            child = node.children.get(key)
            if child is None:
                child = node.children[key] = _PathIndex()
            node = child
        node.seqs.add(seq)

    def discard(self, path: tuple[str, ...], seq: int) -> None:
        trail: list[tuple[_PathIndex, str]] = []
        node = self
        for key in path:
            child = node.children.get(key)
            if child is None:
                return
            trail.append((node, key))
            node = child
        node.seqs.discard(seq)
        for parent, key in reversed(trail):
            child = parent.children[key]
            if child.seqs or child.children:
                break
            del parent.children[key]

    def overlapping(self, path: tuple[str, ...]) -> list[int]:
        """Seqs of intents at ``path``, above it, or below it."""
        found: list[int] = []
        node = self
        for key in path:
            found.extend(node.seqs)
            child = node.children.get(key)
            if child is None:
                return found
            node = child
        stack = [node]
        while stack:
            node = stack.pop()
            found.extend(node.seqs)
            stack.extend(node.children.values())
        return found

    def empty(self) -> bool:
        return not self.seqs and not self.children


# --------------------------------------------------------------------------------------------
# The queue
# --------------------------------------------------------------------------------------------

_ShadowKey = tuple[str, str | None]


class _Group:
    """Batches of one replay that share intents: their intents go when all are settled."""

    __slots__ = ("seqs", "tokens")

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.seqs: set[int] = set()


@attrs.frozen
class _Outstanding:
    key: _ShadowKey
    seqs: tuple[int, ...]
    group: _Group


def _whole_seconds(now: object) -> int:
    """``now`` checked as `check_now` means it, rounded down to the whole second."""
    seconds = check_now(now)
    # An int is kept as it is: a float cannot hold every int above 2**53.
    return int(now) if isinstance(now, int) else math.floor(seconds)


def _matches(
    key: _ShadowKey, thing_name: str | None, shadow_name: str | EllipsisType | None
) -> bool:
    if thing_name is not None and key[0] != thing_name:
        return False
    return shadow_name is _ANY_SHADOW or key[1] == shadow_name


class OfflineQueue:
    """A durable, bounded, coalescing queue of intents, replayed as few updates as possible.

    The queue keeps its intents in ``store`` (see `shadowsync.stores`) and reloads them when it
    is opened again. It is not thread-safe: use it from one thread (the store is). See the
    module documentation for the exact coalescing rules, and `shadowsync._device.replay` for
    how a replay packs the pending intents into updates.

    Every ``now`` is epoch seconds, a finite number >= 0, as everywhere in shadowsync. The queue
    keeps whole seconds (``Intent.created_at``, `DropRecord.at`, expiry, the ages in
    `QueueStats`), so it rounds ``now`` down: ``now=1.5`` is second 1.

    ```pycon
    >>> from shadowsync import HLCStamp
    >>> from shadowsync.stores import MemoryStore
    >>> queue = OfflineQueue(MemoryStore())
    >>> def write(path, value, ms):
    ...     stamp = HLCStamp(wall_ms=ms, counter=0, node="lamp")
    ...     return queue.put(Intent(thing_name="lamp", shadow_name=None, kind="report",
    ...                             path=path, value=value, created_at=ms // 1000, stamp=stamp),
    ...                      now=ms // 1000)
    >>> write(("level",), 10, 1000).seq, write(("level",), 20, 2000).dropped[0].reason
    (1, 'superseded')
    >>> write(("color",), "red", 3000).seq
    3
    >>> [batch] = queue.replay(now=4, token=lambda: "t1")
    >>> batch.request
    {'state': {'reported': {'level': 20, 'color': 'red'}}, 'clientToken': 't1'}
    >>> queue.confirm("t1"), queue.pending()
    ((2, 3), ())

    ```
    """

    def __init__(
        self,
        store: Store,
        *,
        limits: QueueLimits = QueueLimits(),
        shadow_limits: ShadowLimits = DEFAULT_LIMITS,
    ) -> None:
        if not isinstance(store, Store):
            raise InvalidArgumentError(
                f"store must implement shadowsync.stores.Store, got {type(store).__name__}"
            )
        if not isinstance(limits, QueueLimits):
            raise InvalidArgumentError(f"limits must be QueueLimits, got {type(limits).__name__}")
        if not isinstance(shadow_limits, ShadowLimits):
            raise InvalidArgumentError(
                f"shadow_limits must be ShadowLimits, got {type(shadow_limits).__name__}"
            )
        self._store = store
        self._limits = limits
        self._shadow_limits = shadow_limits
        self._pending: dict[int, Intent] = {}
        self._index: dict[_ShadowKey, _PathIndex] = {}
        self._order: deque[int] = deque()
        self._by_age: list[tuple[int, int]] = []
        self._bytes = 0
        self._batches: dict[str, _Outstanding] = {}
        # The latest drop records; the first one is the ``_drops_start``-th drop since opening.
        self._drops: list[DropRecord] = []
        self._drops_start = 0
        self._counts: dict[str, int] = dict.fromkeys(
            ("puts", "confirmed", "expired", "queue_full", "superseded", "rejected"), 0
        )
        self._load()
        self._loaded = len(self._pending)

    def _load(self) -> None:
        self._pending.clear()
        self._index.clear()
        self._order.clear()
        self._by_age.clear()
        self._bytes = 0
        last = 0
        for intent in self._store.intents():
            if intent.seq <= last:
                raise InvalidArgumentError(
                    f"the store returned seq {intent.seq} after seq {last}: seqs must increase"
                )
            last = intent.seq
            self._remember(intent)

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Every `put` inside is stored together, in one store transaction (when the store
        offers ``transaction()``): after a crash, all of them are queued or none is. If the
        block raises, the queue reads back what the store kept.

        ``durable=False`` lets a store that can commit without waiting for the disk do so
        (see `shadowsync.stores.SQLiteStore.transaction`); only for changes that may be lost
        to a power cut, such as confirmations."""
        try:
            with store_transaction(self._store, durable=durable):
                yield
        except BaseException:
            self._load()
            raise

    # --- bookkeeping ---

    def _remember(self, intent: Intent) -> None:
        seq = intent.seq
        self._pending[seq] = intent
        key = (intent.thing_name, intent.shadow_name)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = _PathIndex()
        index.add(intent.path, seq)
        self._order.append(seq)
        heapq.heappush(self._by_age, (intent.created_at, seq))
        self._bytes += intent.size

    def _forget(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            intent = self._pending.pop(seq, None)
            if intent is None:
                continue
            key = (intent.thing_name, intent.shadow_name)
            index = self._index[key]
            index.discard(intent.path, seq)
            if index.empty():
                del self._index[key]
            self._bytes -= intent.size
        # The order and age structures drop removed seqs lazily; rebuild them when mostly stale.
        if len(self._order) > 2 * len(self._pending) + 64:
            self._order = deque(self._pending)
        if len(self._by_age) > 2 * len(self._pending) + 64:
            self._by_age = [(intent.created_at, seq) for seq, intent in self._pending.items()]
            heapq.heapify(self._by_age)

    def _drop(
        self, intents: Iterable[Intent], reason: DropReason, now: int, detail: str
    ) -> list[DropRecord]:
        records = [
            DropRecord(intent=intent, reason=reason, at=now, detail=detail) for intent in intents
        ]
        self._counts[reason] += len(records)
        drops = self._drops
        drops.extend(records)
        keep = self._limits.max_drop_records
        if len(drops) > 2 * keep:  # trim in halves: amortised O(1) per record
            cut = len(drops) - keep
            del drops[:cut]
            self._drops_start += cut
        return records

    def _remove(
        self, seqs: list[int], reason: DropReason, now: int, detail: str
    ) -> list[DropRecord]:
        """Remove pending intents from the store, then record them as dropped."""
        intents = [self._pending[seq] for seq in seqs if seq in self._pending]
        if not intents:
            return []
        self._store.remove([intent.seq for intent in intents])
        self._forget(intent.seq for intent in intents)
        return self._drop(intents, reason, now, detail)

    def _expiring(self, now: int) -> bool:
        """Whether an intent may have expired at ``now`` (the oldest one, or a removed one)."""
        heap = self._by_age
        return bool(heap) and heap[0][0] < now - self._limits.max_age_seconds

    def _expire(self, now: int) -> list[DropRecord]:
        oldest_allowed = now - self._limits.max_age_seconds
        heap = self._by_age
        popped: list[tuple[int, int]] = []
        while heap and heap[0][0] < oldest_allowed:
            popped.append(heapq.heappop(heap))
        expired = [seq for _, seq in popped if seq in self._pending]
        try:
            return self._remove(
                expired, "expired", now, f"older than {self._limits.max_age_seconds} seconds"
            )
        except BaseException:
            for entry in popped:
                heapq.heappush(heap, entry)
            raise

    # --- the API ---

    @property
    def limits(self) -> QueueLimits:
        """The queue's bounds and ``on_full`` policy."""
        return self._limits

    @property
    def shadow_limits(self) -> ShadowLimits:
        """The shadow limits every replayed update stays within."""
        return self._shadow_limits

    def put(self, intent: Intent, *, now: float) -> PutResult:
        """Queue ``intent``; when this returns with a ``seq``, the intent is in the store.

        Before queuing, expired intents are dropped. The new intent is not queued (``seq`` is
        ``None``) when it is already expired, can never fit in one update (``"rejected"``), is
        covered by a pending write with a later stamp (``"superseded"``), or the queue is full
        under ``on_full="reject_new"``. Otherwise the pending intents it covers are dropped as
        ``"superseded"`` and, under ``"drop_oldest"``, the oldest are dropped until it fits.
        The intent's own ``seq`` is ignored: the store assigns one.
        """
        if not isinstance(intent, Intent):
            raise InvalidArgumentError(f"put takes an Intent, got {type(intent).__name__}")
        second = _whole_seconds(now)
        self._counts["puts"] += 1
        records = self._expire(second) if self._expiring(second) else []
        if intent.seq:
            intent = attrs.evolve(intent, seq=0)
        limits = self._limits

        def refuse(reason: DropReason, detail: str) -> PutResult:
            records.extend(self._drop((intent,), reason, second, detail))
            return PutResult(seq=None, dropped=tuple(records))

        if second - intent.created_at > limits.max_age_seconds:
            return refuse("expired", f"older than {limits.max_age_seconds} seconds")
        problem = unfit_reason(intent, self._shadow_limits)
        if problem is not None:
            return refuse("rejected", f"it can never be sent: {problem}")
        superseded: list[Intent] = []
        index = self._index.get((intent.thing_name, intent.shadow_name))
        if index is not None:
            for seq in sorted(index.overlapping(intent.path)):
                other = self._pending[seq]
                if intent.stamp >= other.stamp:
                    if _covers(intent, other):
                        superseded.append(other)
                elif _covers(other, intent):
                    return refuse(
                        "superseded", f"pending seq {seq} is a newer write that covers it"
                    )
        removed = {other.seq for other in superseded}
        count = len(self._pending) - len(removed) + 1
        size = self._bytes - sum(other.size for other in superseded) + intent.size
        victims: list[Intent] = []
        if count > limits.max_intents or size > limits.max_bytes:
            if intent.size > limits.max_bytes:
                return refuse(
                    "queue_full",
                    f"it is {intent.size} bytes; the queue holds at most {limits.max_bytes}",
                )
            if limits.on_full == "reject_new":
                return refuse(
                    "queue_full",
                    f"the queue is full ({len(self._pending)} intents, {self._bytes} bytes)",
                )
            for seq in self._order:
                if seq not in self._pending or seq in removed:
                    continue
                victim = self._pending[seq]
                victims.append(victim)
                count -= 1
                size -= victim.size
                if count <= limits.max_intents and size <= limits.max_bytes:
                    break
        gone = sorted(removed | {victim.seq for victim in victims}) if removed or victims else []
        seq = self._store.append(intent, remove=gone)
        if gone:
            self._forget(gone)
        self._remember(stored_intent(intent, seq))
        while self._order and self._order[0] not in self._pending:
            self._order.popleft()
        if superseded:
            records.extend(self._drop(superseded, "superseded", second, f"covered by seq {seq}"))
        if victims:
            records.extend(
                self._drop(victims, "queue_full", second, f"dropped to make room for seq {seq}")
            )
        return PutResult(seq=seq, dropped=tuple(records))

    def covers_pending(self, intent: Intent) -> bool:
        """Whether `put` would supersede every pending intent of ``intent``'s shadow that it
        overlaps (true when it overlaps none): it ranks after each of them and covers it."""
        index = self._index.get((intent.thing_name, intent.shadow_name))
        if index is None:
            return True
        for seq in index.overlapping(intent.path):
            other = self._pending[seq]
            if intent.stamp < other.stamp or not _covers(intent, other):
                return False
        return True

    def expire(self, *, now: float) -> tuple[DropRecord, ...]:
        """Drop every pending intent older than ``max_age_seconds``; return their records."""
        return tuple(self._expire(_whole_seconds(now)))

    def pending(
        self, thing_name: str | None = None, shadow_name: str | EllipsisType | None = _ANY_SHADOW
    ) -> tuple[Intent, ...]:
        """Pending intents in seq order, optionally of one thing and one shadow.

        ``shadow_name`` left out means every shadow; ``None`` means the classic shadow.
        """
        return tuple(
            intent
            for intent in self._pending.values()
            if _matches((intent.thing_name, intent.shadow_name), thing_name, shadow_name)
        )

    def replay(
        self,
        *,
        now: float,
        token: Callable[[], str],
        thing_name: str | None = None,
        shadow_name: str | EllipsisType | None = _ANY_SHADOW,
    ) -> tuple[ReplayBatch, ...]:
        """The update requests that carry every pending intent, fewest first, in a fixed order.

        Expired intents are dropped first, and intents that can no longer fit in one update
        are dropped as ``"rejected"`` (see `drops`). Batches come grouped by thing and shadow
        (sorted), resets before writes. ``token`` is called once per batch and must return a
        client token that is not outstanding. Batches of an earlier replay of the same shadows
        are forgotten: their intents are pending again and carried by the new batches, so a
        late ``accepted`` for an old token changes nothing.

        ``thing_name`` and ``shadow_name`` restrict the replay to some shadows, as in
        `pending`.
        """
        second = _whole_seconds(now)
        if not callable(token):
            raise InvalidArgumentError("token must be a callable returning a client token")
        self._expire(second)
        limit = self._shadow_limits.max_document_bytes
        keys = sorted(
            (key for key in self._index if _matches(key, thing_name, shadow_name)),
            key=lambda key: (key[0], key[1] or ""),
        )
        planned: list[tuple[_ShadowKey, list[PlannedUpdate]]] = []
        for key in keys:
            unfit = [
                (seq, reason)
                for seq in sorted(self._index[key].overlapping(()))
                if (reason := unfit_reason(self._pending[seq], self._shadow_limits)) is not None
            ]
            for seq, reason in unfit:
                self._remove([seq], "rejected", second, f"it can never be sent: {reason}")
            while key in self._index:
                index = self._index[key]
                intents = [self._pending[seq] for seq in sorted(index.overlapping(()))]
                try:
                    updates = plan_updates(intents, limit, index.overlapping)
                except Unfit as unfit_path:
                    self._remove(
                        sorted(index.overlapping(unfit_path.path)),
                        "rejected",
                        second,
                        f"the change at {format_path(list(unfit_path.path)) or 'reported'} "
                        f"cannot fit in one update of {limit} bytes",
                    )
                    continue
                planned.append((key, updates))
                break
        tokens = self._draw_tokens(token, sum(len(updates) for _, updates in planned))
        for old, batch in list(self._batches.items()):
            if _matches(batch.key, thing_name, shadow_name):
                del self._batches[old]
        batches: list[ReplayBatch] = []
        drawn = iter(tokens)
        for key, updates in planned:
            names = [next(drawn) for _ in updates]
            groups = _group([update.seqs for update in updates])
            reset_tokens = tuple(
                name for name, update in zip(names, updates, strict=True) if not update.after_resets
            )
            for name, update, group in zip(names, updates, groups, strict=True):
                group.tokens.add(name)
                group.seqs.update(update.seqs)
                self._batches[name] = _Outstanding(key=key, seqs=update.seqs, group=group)
                batches.append(
                    ReplayBatch(
                        thing_name=key[0],
                        shadow_name=key[1],
                        client_token=name,
                        request={
                            "state": {"reported": copy_json(update.reported)},
                            "clientToken": name,
                        },
                        seqs=update.seqs,
                        depends_on=reset_tokens if update.after_resets else (),
                        size=update.size,
                    )
                )
        return tuple(batches)

    def _draw_tokens(self, token: Callable[[], str], count: int) -> list[str]:
        drawn: list[str] = []
        seen = set(self._batches)
        for _ in range(count):
            name = token()
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"token() must return a non-empty str, got {describe(name)}"
                )
            problem = self._shadow_limits.client_token_problem(name)
            if problem is not None:
                raise InvalidArgumentError(f"token() returned {describe(name)}: {problem}")
            if name in seen:
                raise InvalidArgumentError(
                    f"token() returned {describe(name)} twice; client tokens must be unique"
                )
            seen.add(name)
            drawn.append(name)
        return drawn

    def confirm(self, client_token: str) -> tuple[int, ...]:
        """The batch with this client token was accepted: remove the intents it completes.

        Returns the seqs removed. A batch that shares intents with other batches of the same
        replay (see `ReplayBatch.seqs`) removes them only when the last of those is settled, so
        the call may return ``()``. An unknown or forgotten token returns ``()``.
        """
        batch = self._batches.get(client_token)
        if batch is None:
            return ()
        group = batch.group
        if group.tokens - {client_token}:
            del self._batches[client_token]
            group.tokens.discard(client_token)
            return ()
        done = sorted(seq for seq in group.seqs if seq in self._pending)
        if done:
            self._store.remove(done)
            self._forget(done)
        del self._batches[client_token]
        group.tokens.discard(client_token)
        self._counts["confirmed"] += len(done)
        return tuple(done)

    def fail(self, client_token: str, *, reason: str, now: float) -> tuple[DropRecord, ...]:
        """The batch with this client token was refused for good: drop its intents.

        Its intents are dropped with reason ``"rejected"`` and ``reason`` as the detail (for
        example the AWS rejection text). Use it for a refusal that retrying cannot fix; after a
        409 or a lost connection, replay again instead. An unknown token returns ``()``.
        """
        second = _whole_seconds(now)
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        batch = self._batches.get(client_token)
        if batch is None:
            return ()
        records = self._remove(list(batch.seqs), "rejected", second, reason)
        del self._batches[client_token]
        group = batch.group
        group.tokens.discard(client_token)
        if not group.tokens:
            # The other batches of the group were accepted: what only they carried is done.
            done = sorted(seq for seq in group.seqs if seq in self._pending)
            if done:
                self._store.remove(done)
                self._forget(done)
                self._counts["confirmed"] += len(done)
        return tuple(records)

    @property
    def drop_count(self) -> int:
        """How many intents were dropped since the queue was opened (the next drop's number)."""
        return self._drops_start + len(self._drops)

    def drops(self, since: int = 0) -> tuple[DropRecord, ...]:
        """The latest drop records, oldest first: those numbered ``since`` or later.

        Drops are numbered from 0 in the order they happen since the queue was opened; read
        `drop_count` and pass it back later to get only what was dropped in between. At most
        the last ``QueueLimits.max_drop_records`` records are kept; older ones are not returned.

        ```pycon
        >>> from shadowsync import HLCStamp
        >>> from shadowsync.stores import MemoryStore
        >>> queue = OfflineQueue(MemoryStore())
        >>> def write(value, ms):
        ...     stamp = HLCStamp(wall_ms=ms, counter=0, node="pump")
        ...     return queue.put(Intent(thing_name="pump", shadow_name=None, kind="report",
        ...                             path=("level",), value=value, created_at=ms // 1000,
        ...                             stamp=stamp), now=ms // 1000)
        >>> first = write(1, 1000).seq
        >>> mark = queue.drop_count
        >>> [record.reason for record in write(2, 2000).dropped]
        ['superseded']
        >>> [record.intent.seq for record in queue.drops(since=mark)] == [first]
        True
        >>> queue.drop_count, queue.drops(since=queue.drop_count)
        (1, ())

        ```
        """
        if not is_count(since):
            raise InvalidArgumentError(f"since must be a non-negative int, got {describe(since)}")
        keep = self._limits.max_drop_records
        start = max(since, self.drop_count - keep) - self._drops_start
        return tuple(self._drops[max(start, 0) :])

    def stats(self, *, now: float) -> QueueStats:
        """Counts, bytes and the age of the oldest pending intent."""
        second = _whole_seconds(now)
        heap = self._by_age
        while heap and heap[0][1] not in self._pending:
            heapq.heappop(heap)
        oldest = heap[0][0] if heap else None
        in_flight = {
            seq for batch in self._batches.values() for seq in batch.seqs if seq in self._pending
        }
        counts = self._counts
        return QueueStats(
            count=len(self._pending),
            bytes=self._bytes,
            oldest_age=None if oldest is None else max(0, second - oldest),
            oldest_created_at=oldest,
            shadows=len(self._index),
            in_flight=len(in_flight),
            loaded=self._loaded,
            puts=counts["puts"],
            confirmed=counts["confirmed"],
            expired=counts["expired"],
            queue_full=counts["queue_full"],
            superseded=counts["superseded"],
            rejected=counts["rejected"],
        )


def _group(carried: list[tuple[int, ...]]) -> list[_Group]:
    """Join batches that carry a common intent (union-find), one `_Group` per component."""
    parent = list(range(len(carried)))

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    owner: dict[int, int] = {}
    for position, seqs in enumerate(carried):
        for seq in seqs:
            first = owner.setdefault(seq, position)
            parent[find(position)] = find(first)
    groups: dict[int, _Group] = {}
    return [groups.setdefault(find(position), _Group()) for position in range(len(carried))]
