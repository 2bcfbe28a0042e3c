"""The device's offline queue: what it wants the cloud to know, kept until the cloud has it.

An `Intent` is one write to a device's ``reported`` state (or an acknowledgement under
``reported["$ack"]``): a path, a value (``None`` deletes), the time it was made and the HLC
stamp of the write. `OfflineQueue` keeps intents in a `shadowsync.stores.Store` (durable
when `put` returns), bounds them by count, bytes and age, and turns them into the fewest update
requests that carry everything when the device is back online. The queue itself does no I/O:
time, client tokens and the store are given to it.

Semantics
---------

An intent means exactly the update ``{"state": {"reported": {p1: {p2: ... value}}}}``, with the
AWS merge rules: an object value merges into what is there, anything else replaces it, ``null``
deletes. The reference for everything the queue does is: *apply every intent that was put, one
update each, in stamp order* (``(stamp, seq)``, so equal stamps keep the order of `put`).

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
into one change and renders it as update requests. Where every path of that change is merged
into, replaced or deleted, one update says it all. A path that was reset (set to a scalar or
deleted) and *then* merged into must end up holding exactly the merged object, which a single
AWS update cannot say: it takes a first update that deletes the path and a second one that
writes the object.
Such second updates list the client tokens of the first ones in `ReplayBatch.depends_on`:
publish them only after those were accepted. Each update stays within
``ShadowLimits.max_document_bytes`` (measured on its ``state`` node, the part AWS counts) and
``max_depth``; a change that would not fit is split by paths across several updates, packed
first-fit-decreasing. An intent that could never fit in one update is dropped with reason
``"rejected"``.

**Confirmation.** `OfflineQueue.confirm` takes the client token of an accepted update. Each
batch lists in `ReplayBatch.seqs` the intents whose paths overlap what it writes; an intent
carried by several batches (split across them, or reset then merged) is removed once all of
them are confirmed, so a lost update never loses part of an intent. A batch the cloud refuses
for good is given to `OfflineQueue.fail`, which drops its intents with reason ``"rejected"``.
Nothing is removed from the queue any other way without a `DropRecord` saying so.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

import attrs

from shadowsync._conflict.clocks import HLCStamp
from shadowsync._json import (
    JSONObject,
    JSONValue,
    copy_json,
    describe,
    encoded_size,
    format_path,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH, ShadowLimits
from shadowsync.errors import InvalidArgumentError, ShadowRejectedError

if TYPE_CHECKING:
    from types import EllipsisType

    from shadowsync.stores import Store

IntentKind = Literal["report", "ack"]
"""What an intent carries: a reported value, or an acknowledgement (``reported["$ack"]``)."""

DropReason = Literal["expired", "queue_full", "superseded", "rejected"]
"""Why an intent left the queue without being confirmed by the cloud."""

OnFull = Literal["drop_oldest", "reject_new"]
"""What `OfflineQueue.put` does when the queue is full."""

ACK_PATH: tuple[str, ...] = ("$ack",)
"""The path of every acknowledgement intent (``shadowsync.rules.ACK_KEY``)."""

# ``{"reported":`` + ``}`` around a reported patch: the bytes an update's state node adds.
_STATE_OVERHEAD = len('{"reported":}')
_EMPTY_STATE = len('{"reported":{}}')

_ANY_SHADOW: Any = ...


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _check_count(name: str, value: object, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(f"{name} must be an int >= {minimum}, got {describe(value)}")
    return value


def _to_path(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise InvalidArgumentError(
            f"Intent.path must be a tuple of object keys, got {type(value).__name__} "
            f"{describe(value)}"
        )
    if not value:
        raise InvalidArgumentError("Intent.path must have at least one key")
    if len(value) > MAX_CONFIGURABLE_DEPTH:
        raise InvalidArgumentError(
            f"Intent.path has {len(value)} keys; at most {MAX_CONFIGURABLE_DEPTH} can ever fit"
        )
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentError(
                f"Intent.path keys must be strings, got {type(key).__name__} {describe(key)}"
            )
    return tuple(str(key) for key in value)


def _thing_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    DEFAULT_LIMITS.check_thing_name(value)


def _shadow_name(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None:
        DEFAULT_LIMITS.check_shadow_name(value)


def _kind(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("report", "ack"):
        raise InvalidArgumentError(f"Intent.kind must be 'report' or 'ack', got {describe(value)}")


def _created_at(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    _check_count("Intent.created_at", value)


def _stamp(instance: object, attribute: attrs.Attribute[HLCStamp], value: object) -> None:
    if not isinstance(value, HLCStamp):
        raise InvalidArgumentError(f"Intent.stamp must be an HLCStamp, got {type(value).__name__}")


def _seq(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    _check_count("Intent.seq", value)


def _container_depth(value: JSONValue) -> int:
    """Nesting levels of ``value`` itself: 0 for a scalar, 1 for a flat object or array."""
    if type(value) is dict:
        return 1 + max((_container_depth(item) for item in value.values()), default=0)
    if type(value) is list:
        return 1 + max((_container_depth(item) for item in value), default=0)
    return 0


def _wrap(path: tuple[str, ...], value: JSONValue) -> JSONObject:
    """``{p1: {p2: ... value}}``, sharing ``value``."""
    for key in reversed(path[1:]):
        value = {key: value}
    return {path[0]: value}


@attrs.frozen(kw_only=True)
class Intent:
    """One thing the device wants the cloud to know: a write to its reported state.

    The intent means the update ``{"state": {"reported": {path[0]: {...: value}}}}``: an object
    value merges, anything else replaces, ``None`` deletes. ``kind="ack"`` carries an
    acknowledgement (`shadowsync.rules.Acknowledgement.to_dict`) at ``ACK_PATH``;
    ``kind="report"`` may write anywhere else. ``created_at`` (epoch seconds) is when the device
    made the change, for expiry; ``stamp`` orders writes (the newest stamp wins); ``seq`` is
    assigned by the store when the intent is queued.

    The value is validated and copied here: JSON only, no ``null`` inside arrays, at most
    32 levels deep counting the ``reported`` object as level 1 (whether it fits the configured
    limits is checked when it is queued). Names follow the AWS rules.

    ```pycon
    >>> from shadowsync import HLCStamp
    >>> intent = Intent(thing_name="lamp", shadow_name=None, kind="report",
    ...                 path=("light", "level"), value=80, created_at=1700000000,
    ...                 stamp=HLCStamp(wall_ms=1700000000000, counter=0, node="lamp"))
    >>> intent.reported_patch()
    {'light': {'level': 80}}
    >>> intent.size, intent.depth
    (22, 2)

    ```
    """

    thing_name: str = attrs.field(validator=_thing_name)
    """The thing whose shadow this writes."""
    shadow_name: str | None = attrs.field(validator=_shadow_name)
    """The named shadow, or ``None`` for the classic shadow."""
    kind: IntentKind = attrs.field(validator=_kind)
    """``"report"`` for a reported value, ``"ack"`` for an acknowledgement."""
    path: tuple[str, ...] = attrs.field(converter=_to_path)
    """Object keys below ``reported`` (at least one); ``ACK_PATH`` for an acknowledgement."""
    value: JSONValue = attrs.field()
    """The value to write at ``path``: merged if an object, replaced otherwise; ``None`` deletes."""
    created_at: int = attrs.field(validator=_created_at)
    """Epoch seconds when the device made the change (the queue expires intents by it)."""
    stamp: HLCStamp = attrs.field(validator=_stamp)
    """The HLC stamp of the write: among writes to the same place, the newest stamp wins."""
    seq: int = attrs.field(default=0, validator=_seq)
    """The store's sequence number: 0 until queued, then unique and increasing in put order."""
    size: int = attrs.field(init=False, eq=False, repr=False)
    """Bytes of the compact UTF-8 JSON of `reported_patch` (what the queue's byte bound counts)."""
    depth: int = attrs.field(init=False, eq=False, repr=False)
    """Nesting levels the intent needs, counting ``reported`` as level 1 (``max_depth`` rules)."""

    def __attrs_post_init__(self) -> None:
        if self.kind == "ack":
            if self.path != ACK_PATH:
                raise InvalidArgumentError(
                    f"an acknowledgement intent has path {ACK_PATH!r}, got {describe(self.path)}"
                )
            if self.value is not None and not isinstance(self.value, Mapping):
                raise InvalidArgumentError(
                    "an acknowledgement intent's value must be an object (Acknowledgement."
                    f"to_dict()) or None, got {type(self.value).__name__}"
                )
        elif self.path[0] == ACK_PATH[0]:
            raise InvalidArgumentError(
                f"reported[{ACK_PATH[0]!r}] holds acknowledgements: use kind='ack' to write it"
            )
        try:
            wrapped = normalize_section(
                _wrap(self.path, self.value),
                section="reported",
                max_depth=MAX_CONFIGURABLE_DEPTH,
                nulls=True,
            )
        except ShadowRejectedError as exc:
            raise InvalidArgumentError(
                f"Intent.value is not a valid reported value: {exc.message}"
                + (f" ({exc.detail})" if exc.detail else "")
            ) from None
        value: JSONValue = wrapped
        for key in self.path:
            value = cast("JSONObject", value)[key]
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "size", encoded_size(wrapped))
        object.__setattr__(self, "depth", len(self.path) + _container_depth(value))

    def reported_patch(self) -> JSONObject:
        """The ``reported`` fragment of the update this intent means, as a new object."""
        return _wrap(self.path, copy_json(self.value))

    def _queued(self, seq: int) -> Intent:
        """A private copy carrying ``seq``, sharing nothing mutable with this one.

        Built field by field: the fields were validated when this intent was made, and a
        durable put should not pay for validating them again.
        """
        queued = object.__new__(Intent)
        for name in _INTENT_FIELDS:
            object.__setattr__(queued, name, getattr(self, name))
        object.__setattr__(queued, "seq", seq)
        object.__setattr__(queued, "value", copy_json(self.value))
        return queued


_INTENT_FIELDS = tuple(field.name for field in attrs.fields(Intent))


def _positive(name: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        _check_count(f"QueueLimits.{name}", value, 1)

    return check


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

    max_intents: int = attrs.field(default=10_000, validator=_positive("max_intents"))
    """Pending intents at most."""
    max_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive("max_bytes"))
    """Sum of `Intent.size` over pending intents at most."""
    max_age_seconds: int = attrs.field(
        default=7 * 24 * 3600, validator=_positive("max_age_seconds")
    )
    """Seconds an intent is kept after its ``created_at``."""
    on_full: OnFull = attrs.field(default="drop_oldest", validator=_on_full)
    """``"drop_oldest"`` or ``"reject_new"``."""
    max_drop_records: int = attrs.field(default=10_000, validator=_positive("max_drop_records"))
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
    """Epoch seconds of the drop."""
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
class ReplayBatch:
    """One update request to publish on the shadow's ``/update`` topic.

    ``request`` is the complete request document, ``{"state": {"reported": {...}},
    "clientToken": client_token}``; ``size`` is the byte size of its ``state`` node (at most the
    limit's ``max_document_bytes``). ``seqs`` lists the intents the batch carries; give
    ``client_token`` to `OfflineQueue.confirm` when the update is accepted, or to
    `OfflineQueue.fail` when it is refused for good. Publish a batch only after every batch
    named in ``depends_on`` was accepted: those first delete a path this one writes afresh.
    """

    thing_name: str
    """The thing to update."""
    shadow_name: str | None
    """The named shadow, or ``None`` for the classic shadow."""
    client_token: str
    """The request's ``clientToken``, from the ``token`` callable given to `OfflineQueue.replay`."""
    request: dict[str, Any]
    """The update request document."""
    seqs: tuple[int, ...]
    """Seqs of the intents this batch carries, in increasing order."""
    depends_on: tuple[str, ...] = ()
    """Client tokens of batches that must be accepted before this one is published."""
    size: int = 0
    """Bytes of the compact UTF-8 JSON of ``request["state"]``."""


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
# Replay: composing a shadow's intents and packing the result into updates
# --------------------------------------------------------------------------------------------

_MERGE, _SET, _DELETE, _EXACT = range(4)


class _Node:
    """One path of the composed change.

    ``_MERGE``: merge the children into what is there (``value`` maps key to node).
    ``_SET``: replace with ``value`` (a scalar or an array). ``_DELETE``: delete.
    ``_EXACT``: the path must hold exactly the object ``value`` (it was reset, then merged into).
    """

    __slots__ = ("kind", "value")

    def __init__(self, kind: int, value: Any = None) -> None:
        self.kind = kind
        self.value = value


def _node(patch: JSONValue) -> _Node:
    if patch is None:
        return _Node(_DELETE)
    if type(patch) is dict:
        return _Node(_MERGE, {key: _node(item) for key, item in patch.items()})
    return _Node(_SET, patch)


def _compose(node: _Node | None, patch: JSONValue) -> _Node:
    """The node for applying ``node`` then ``patch`` (AWS merge semantics)."""
    if node is None or type(patch) is not dict:
        return _node(patch)
    if node.kind == _MERGE:
        children = node.value
        for key, item in patch.items():
            children[key] = _compose(children.get(key), item)
        return node
    if node.kind == _EXACT:
        _merge_exact(node.value, patch)
        return node
    exact: JSONObject = {}
    _merge_exact(exact, patch)
    return _Node(_EXACT, exact)


def _merge_exact(target: JSONObject, patch: JSONObject) -> None:
    """Merge ``patch`` into the known value ``target``, in place, as AWS does."""
    for key, item in patch.items():
        if item is None:
            target.pop(key, None)
        elif type(item) is dict:
            current = target.get(key)
            if type(current) is not dict:
                current = target[key] = {}
            _merge_exact(current, item)
        else:
            target[key] = item


def _render_reset(node: _Node) -> JSONValue:
    """The first update: everything, with each exact path deleted."""
    if node.kind == _MERGE:
        return {key: _render_reset(child) for key, child in node.value.items()}
    if node.kind == _SET:
        return cast("JSONValue", node.value)
    return None


_NOTHING: Any = object()


def _render_exact(node: _Node) -> Any:
    """The second update: the exact objects only, or ``_NOTHING`` when there are none."""
    if node.kind == _EXACT:
        return copy_json(node.value)
    if node.kind == _MERGE:
        out = {}
        for key, child in node.value.items():
            rendered = _render_exact(child)
            if rendered is not _NOTHING:
                out[key] = rendered
        return out if out else _NOTHING
    return _NOTHING


def _exact_paths(node: _Node, path: tuple[str, ...], out: set[tuple[str, ...]]) -> None:
    if node.kind == _EXACT:
        out.add(path)
    elif node.kind == _MERGE:
        for key, child in node.value.items():
            _exact_paths(child, (*path, key), out)


def _key_size(key: str) -> int:
    return encoded_size(key)


def _nest_size(path: tuple[str, ...], value_size: int) -> int:
    """Bytes of ``{"reported": {p1: {...: value}}}`` given the value's own size."""
    return _STATE_OVERHEAD + sum(_key_size(key) + 3 for key in path) + value_size


def _widest_leaf(path: tuple[str, ...], value: JSONValue) -> tuple[tuple[str, ...], int]:
    """The leaf of a write whose update alone is largest, and that update's size."""
    if type(value) is dict and value:
        return max(
            (_widest_leaf((*path, key), item) for key, item in value.items()),
            key=lambda pair: pair[1],
        )
    return path, _nest_size(path, encoded_size(value))


class _Unfit(Exception):
    """A leaf of the composed change that cannot fit in one update."""

    def __init__(self, path: tuple[str, ...]) -> None:
        super().__init__(path)
        self.path = path


_Piece = tuple[tuple[str, ...], JSONValue, int]


def _pieces(value: JSONObject, limit: int) -> list[_Piece]:
    """Cut a reported patch into pieces at paths, each small enough for one update.

    A piece that is too large is replaced by one piece per member, recursively; the paths of
    the pieces never contain one another.
    """
    out: list[_Piece] = []
    stack: list[tuple[tuple[str, ...], JSONValue]] = [((), value)]
    while stack:
        path, item = stack.pop()
        size = encoded_size(item)
        if _nest_size(path, size) <= limit:
            out.append((path, item, size))
        elif type(item) is dict and item:
            stack.extend(((*path, key), child) for key, child in reversed(item.items()))
        else:
            raise _Unfit(path)
    return out


class _Bin:
    __slots__ = ("phase", "size", "tree")

    def __init__(self, phase: int) -> None:
        self.phase = phase
        self.tree: JSONObject = {}
        self.size = _EMPTY_STATE


def _merge_cost(existing: JSONObject, patch: JSONObject) -> int | None:
    cost = 0
    nonempty = bool(existing)
    for key, item in patch.items():
        if key in existing:
            current = existing[key]
            if type(current) is not dict or type(item) is not dict:
                return None
            inner = _merge_cost(current, item)
            if inner is None:
                return None
            cost += inner
            continue
        cost += (1 if nonempty else 0) + _key_size(key) + 1 + encoded_size(item)
        nonempty = True
    return cost


def _insert_cost(
    tree: JSONObject, path: tuple[str, ...], value: JSONValue, size: int
) -> int | None:
    """Bytes a piece adds to a bin's patch, or ``None`` when it cannot share the bin."""
    if not path:
        return None if tree else size - 2
    node = tree
    for index, key in enumerate(path):
        if key not in node:
            rest = path[index + 1 :]
            return (
                (1 if node else 0)
                + _key_size(key)
                + 1
                + sum(_key_size(item) + 3 for item in rest)
                + size
            )
        current = node[key]
        if type(current) is not dict:
            return None
        if index == len(path) - 1:
            return _merge_cost(current, value) if type(value) is dict else None
        node = current
    return None  # pragma: no cover - the loop always returns


def _merge_into(existing: JSONObject, patch: JSONObject) -> None:
    for key, item in patch.items():
        current = existing.get(key)
        if type(current) is dict and type(item) is dict:
            _merge_into(current, item)
        else:
            existing[key] = item


def _insert(tree: JSONObject, path: tuple[str, ...], value: JSONValue) -> None:
    """Add a piece to a bin's patch (after `_insert_cost` said it can share the bin)."""
    if not path:
        _merge_into(tree, cast("JSONObject", value))
        return
    node = tree
    for index, key in enumerate(path[:-1]):
        current = node.get(key)
        if type(current) is not dict:
            node[key] = _wrap(path[index + 1 :], value)
            return
        node = current
    current = node.get(path[-1])
    if type(current) is dict and type(value) is dict:
        _merge_into(current, value)
    else:
        node[path[-1]] = value


_RESET, _WRITE = 0, 1


def _pack(pieces: list[_Piece], bins: list[_Bin], phases: tuple[int, ...], limit: int) -> None:
    """First-fit-decreasing: put each piece in the first bin of an allowed phase it fits in."""
    for path, value, size in sorted(pieces, key=lambda piece: -piece[2]):
        for candidate in bins:
            if candidate.phase not in phases:
                continue
            cost = _insert_cost(candidate.tree, path, value, size)
            if cost is not None and candidate.size + cost <= limit:
                _insert(candidate.tree, path, value)
                candidate.size += cost
                break
        else:
            fresh = _Bin(phases[0])
            cost = _insert_cost(fresh.tree, path, value, size)
            assert cost is not None
            _insert(fresh.tree, path, value)
            fresh.size += cost
            bins.append(fresh)


def _touch_points(tree: JSONObject, exact: set[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
    """The paths a bin writes: its leaves, cut at exact paths (an exact object is one write)."""
    stack: list[tuple[tuple[str, ...], JSONValue]] = [((key,), item) for key, item in tree.items()]
    while stack:
        path, item = stack.pop()
        if type(item) is dict and item and path not in exact:
            stack.extend(((*path, key), child) for key, child in item.items())
        else:
            yield path


def _plan(intents: list[Intent], limit: int) -> tuple[list[_Bin], set[tuple[str, ...]]]:
    """Compose one shadow's intents in stamp order and pack the change into update bins."""
    root = _Node(_MERGE, {})
    for intent in sorted(intents, key=lambda item: (item.stamp, item.seq)):
        _compose(root, _wrap(intent.path, intent.value))
    exact: set[tuple[str, ...]] = set()
    _exact_paths(root, (), exact)
    first = cast("JSONObject", _render_reset(root))
    bins: list[_Bin] = []
    if exact:
        second = _render_exact(root)
        _pack(_pieces(second, limit), bins, (_WRITE,), limit)
        resets: list[_Piece] = []
        anywhere: list[_Piece] = []
        for piece in _pieces(first, limit):
            path = piece[0]
            holds_reset = any(item[: len(path)] == path for item in exact)
            (resets if holds_reset else anywhere).append(piece)
        _pack(resets, bins, (_RESET,), limit)
        _pack(anywhere, bins, (_RESET, _WRITE), limit)
    else:
        _pack(_pieces(first, limit), bins, (_RESET,), limit)
    bins.sort(key=lambda item: item.phase)
    return bins, exact


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


def _check_now(now: object) -> int:
    return _check_count("now", now)


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
    module documentation for the exact coalescing and replay rules.

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
        from shadowsync.stores import Store

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
        last = 0
        for intent in store.intents():
            if intent.seq <= last:
                raise InvalidArgumentError(
                    f"the store returned seq {intent.seq} after seq {last}: seqs must increase"
                )
            last = intent.seq
            self._remember(intent)
        self._loaded = len(self._pending)

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

    def _unfit_reason(self, intent: Intent) -> str | None:
        limits = self._shadow_limits
        if intent.depth > limits.max_depth:
            return f"it needs {intent.depth} levels of nesting; the limit is {limits.max_depth}"
        if _STATE_OVERHEAD + intent.size <= limits.max_document_bytes:
            return None
        # Too large for one update; a replay can still split an object by its members, down
        # to single leaves, so it fits as long as every leaf fits.
        path, size = _widest_leaf(intent.path, intent.value)
        if size > limits.max_document_bytes:
            return (
                f"an update carrying {format_path(list(path))} alone would be {size} bytes; "
                f"the limit is {limits.max_document_bytes}"
            )
        return None

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

    def put(self, intent: Intent, *, now: int) -> PutResult:
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
        _check_now(now)
        self._counts["puts"] += 1
        records = self._expire(now)
        if intent.seq:
            intent = attrs.evolve(intent, seq=0)
        limits = self._limits

        def refuse(reason: DropReason, detail: str) -> PutResult:
            records.extend(self._drop((intent,), reason, now, detail))
            return PutResult(seq=None, dropped=tuple(records))

        if now - intent.created_at > limits.max_age_seconds:
            return refuse("expired", f"older than {limits.max_age_seconds} seconds")
        problem = self._unfit_reason(intent)
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
        gone = sorted(removed | {victim.seq for victim in victims})
        seq = self._store.append(intent, remove=gone)
        self._forget(gone)
        self._remember(intent._queued(seq))
        while self._order and self._order[0] not in self._pending:
            self._order.popleft()
        records.extend(self._drop(superseded, "superseded", now, f"covered by seq {seq}"))
        records.extend(
            self._drop(victims, "queue_full", now, f"dropped to make room for seq {seq}")
        )
        return PutResult(seq=seq, dropped=tuple(records))

    def expire(self, *, now: int) -> tuple[DropRecord, ...]:
        """Drop every pending intent older than ``max_age_seconds``; return their records."""
        return tuple(self._expire(_check_now(now)))

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
        now: int,
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
        _check_now(now)
        if not callable(token):
            raise InvalidArgumentError("token must be a callable returning a client token")
        self._expire(now)
        limit = self._shadow_limits.max_document_bytes
        keys = sorted(
            (key for key in self._index if _matches(key, thing_name, shadow_name)),
            key=lambda key: (key[0], key[1] or ""),
        )
        planned: list[tuple[_ShadowKey, list[_Bin], list[tuple[int, ...]]]] = []
        for key in keys:
            unfit = [
                (seq, reason)
                for seq in sorted(self._index[key].overlapping(()))
                if (reason := self._unfit_reason(self._pending[seq])) is not None
            ]
            for seq, reason in unfit:
                self._remove([seq], "rejected", now, f"it can never be sent: {reason}")
            while key in self._index:
                index = self._index[key]
                intents = [self._pending[seq] for seq in sorted(index.overlapping(()))]
                try:
                    bins, exact = _plan(intents, limit)
                except _Unfit as unfit_path:
                    self._remove(
                        sorted(index.overlapping(unfit_path.path)),
                        "rejected",
                        now,
                        f"the change at {format_path(list(unfit_path.path)) or 'reported'} "
                        f"cannot fit in one update of {limit} bytes",
                    )
                    continue
                carried = _carried(bins, exact, index, intents)
                planned.append((key, bins, carried))
                break
        tokens = self._draw_tokens(token, sum(len(bins) for _, bins, _ in planned))
        for old, batch in list(self._batches.items()):
            if _matches(batch.key, thing_name, shadow_name):
                del self._batches[old]
        batches: list[ReplayBatch] = []
        drawn = iter(tokens)
        for key, bins, carried in planned:
            names = [next(drawn) for _ in bins]
            groups = _group(carried)
            reset_tokens = tuple(
                name for name, item in zip(names, bins, strict=True) if item.phase == _RESET
            )
            for name, item, seqs, group in zip(names, bins, carried, groups, strict=True):
                group.tokens.add(name)
                group.seqs.update(seqs)
                self._batches[name] = _Outstanding(key=key, seqs=seqs, group=group)
                batches.append(
                    ReplayBatch(
                        thing_name=key[0],
                        shadow_name=key[1],
                        client_token=name,
                        request={
                            "state": {"reported": copy_json(item.tree)},
                            "clientToken": name,
                        },
                        seqs=seqs,
                        depends_on=reset_tokens if item.phase == _WRITE else (),
                        size=item.size,
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

    def fail(self, client_token: str, *, reason: str, now: int) -> tuple[DropRecord, ...]:
        """The batch with this client token was refused for good: drop its intents.

        Its intents are dropped with reason ``"rejected"`` and ``reason`` as the detail (for
        example the AWS rejection text). Use it for a refusal that retrying cannot fix; after a
        409 or a lost connection, replay again instead. An unknown token returns ``()``.
        """
        _check_now(now)
        if not isinstance(reason, str):
            raise InvalidArgumentError(f"reason must be a str, got {type(reason).__name__}")
        batch = self._batches.get(client_token)
        if batch is None:
            return ()
        records = self._remove(list(batch.seqs), "rejected", now, reason)
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
        _check_count("since", since, 0)
        keep = self._limits.max_drop_records
        start = max(since, self.drop_count - keep) - self._drops_start
        return tuple(self._drops[max(start, 0) :])

    def stats(self, *, now: int) -> QueueStats:
        """Counts, bytes and the age of the oldest pending intent."""
        _check_now(now)
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
            oldest_age=None if oldest is None else max(0, now - oldest),
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


def _carried(
    bins: list[_Bin], exact: set[tuple[str, ...]], index: _PathIndex, intents: list[Intent]
) -> list[tuple[int, ...]]:
    """For each bin, the seqs of the intents whose paths overlap a path the bin writes.

    Overlap is what matters: an intent at ``a`` and one at ``a.b`` interact when composed, so
    both must stay until every batch that writes under ``a`` is settled. Intents whose paths
    do not overlap commute, so they may leave the queue independently.
    """
    if len(bins) == 1:
        return [tuple(intent.seq for intent in intents)]
    carried = []
    for item in bins:
        seqs: set[int] = set()
        for point in _touch_points(item.tree, exact):
            seqs.update(index.overlapping(point))
        carried.append(tuple(sorted(seqs)))
    return carried


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
