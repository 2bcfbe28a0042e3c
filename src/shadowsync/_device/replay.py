"""Replay: the pending intents of a shadow composed and packed into the fewest update requests.

`shadowsync._device.queue.OfflineQueue.replay` composes the pending intents of each shadow in
stamp order into one change and renders it as update requests. Where every path of that change
is merged into, replaced or deleted, one update says it all. A path that was reset (set to a
scalar or deleted) and *then* merged into must end up holding exactly the merged object, which a
single AWS update cannot say: it takes a first update that deletes the path and a second one
that writes the object.
Such second updates list the client tokens of the first ones in `ReplayBatch.depends_on`:
publish them only after those were accepted. Each update stays within
``ShadowLimits.max_document_bytes`` (measured on its ``state`` node, the part AWS counts) and
``max_depth``; a change that would not fit is split by paths across several updates, packed
first-fit-decreasing. An intent that could never fit in one update is dropped with reason
``"rejected"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import attrs

from shadowsync._json import JSONObject, JSONValue, copy_json, encoded_size, format_path
from shadowsync._tree import Path, nest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from shadowsync._device.intent import Intent
    from shadowsync._limits import ShadowLimits

__all__ = ["PlannedUpdate", "ReplayBatch", "Unfit", "plan_updates", "unfit_reason"]

# ``{"reported":`` + ``}`` around a reported patch: the bytes an update's state node adds.
_STATE_OVERHEAD = len('{"reported":}')
_EMPTY_STATE = len('{"reported":{}}')


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
class PlannedUpdate:
    """One update of a replay, before it has a client token.

    ``reported`` shares values with the pending intents: copy it before handing it out.
    """

    reported: JSONObject
    """The ``reported`` patch of the update."""
    size: int
    """Bytes of the compact UTF-8 JSON of the update's ``state`` node."""
    after_resets: bool
    """Whether this update writes paths afresh, so it waits for the updates that delete them."""
    seqs: tuple[int, ...]
    """Seqs of the intents whose paths overlap what this update writes, in increasing order."""


def plan_updates(
    intents: list[Intent], limit: int, overlapping: Callable[[Path], Iterable[int]]
) -> list[PlannedUpdate]:
    """The updates that carry one shadow's pending ``intents`` (in seq order), resets first.

    ``limit`` is the most bytes an update's ``state`` node may have; ``overlapping(path)``
    gives the seqs of the pending intents at, above or below ``path``. Raises `Unfit` naming
    the path of a part of the change that cannot fit in one update.
    """
    bins, exact = _plan(intents, limit)
    carried = _carried(bins, exact, overlapping, intents)
    return [
        PlannedUpdate(
            reported=item.tree, size=item.size, after_resets=item.phase == _WRITE, seqs=seqs
        )
        for item, seqs in zip(bins, carried, strict=True)
    ]


def unfit_reason(intent: Intent, limits: ShadowLimits) -> str | None:
    """Why ``intent`` could never be sent within ``limits``, or ``None`` when it can be."""
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


_MERGE, _SET, _DELETE, _EXACT, _PATCH = range(5)


class _Node:
    """One path of the composed change.

    ``_MERGE``: merge the children into what is there (``value`` maps key to node).
    ``_SET``: replace with ``value`` (a scalar or an array). ``_DELETE``: delete.
    ``_EXACT``: the path must hold exactly the object ``value`` (it was reset, then merged into).
    ``_PATCH``: merge the update patch ``value`` (an object) as it is; nothing was composed into
    it yet, and it becomes a ``_MERGE`` node when something is (most intents meet no other).
    """

    __slots__ = ("kind", "value")

    def __init__(self, kind: int, value: Any = None) -> None:
        self.kind = kind
        self.value = value


def _node(patch: JSONValue) -> _Node:
    if patch is None:
        return _Node(_DELETE)
    if type(patch) is dict:
        return _Node(_PATCH, patch)
    return _Node(_SET, patch)


def _compose(node: _Node | None, patch: JSONValue) -> _Node:
    """The node for applying ``node`` then ``patch`` (AWS merge semantics)."""
    if node is None or type(patch) is not dict:
        return _node(patch)
    if node.kind == _PATCH:
        node = _Node(_MERGE, {key: _node(item) for key, item in node.value.items()})
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
    if node.kind == _PATCH:
        # The patch renders as itself; a copy, since packing merges pieces into what it holds.
        return copy_json(node.value)
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


class Unfit(Exception):
    """Raised by `plan_updates`: the part of the change at ``path`` cannot fit in one update."""

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
            raise Unfit(path)
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
            node[key] = nest(path[index + 1 :], value)
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
        _compose(root, nest(intent.path, intent.value))
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


def _carried(
    bins: list[_Bin],
    exact: set[tuple[str, ...]],
    overlapping: Callable[[Path], Iterable[int]],
    intents: list[Intent],
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
            seqs.update(overlapping(point))
        carried.append(tuple(sorted(seqs)))
    return carried
