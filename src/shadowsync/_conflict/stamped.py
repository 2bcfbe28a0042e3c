"""A last-writer-wins map over JSON object paths, stamped with hybrid logical clock stamps.

`StampedState` is a state-based CRDT: replicas change their own copy with `set` and
`delete`, ship the whole state, and `join` what they receive. Replicas that have
received the same changes, in any order and through any chain of joins, hold equal states and
so the same `value`.

Model
-----

A state maps each path (a tuple of object keys) to one entry: a value or a tombstone, with the
`HLCStamp` of the write. Entries are ranked by ``(stamp, is_tombstone,
canonical JSON of the value)``: a later stamp wins, and the rare tie (the same stamp reused for
two writes) is still settled the same way everywhere.

`value` replays the entries in ``(stamp, path)`` order onto ``{}``. A write at a path
first makes every proper prefix an object (a missing or non-object ancestor becomes ``{}``),
then a value entry stores its value and a tombstone removes the key and its subtree. That is
what an AWS shadow update does with ``{"a": {"b": 1}}`` and ``{"a": {"b": null}}``: a
single writer using increasing stamps sees exactly the AWS merge semantics.

An entry is dropped when an entry at a proper prefix of its path has a greater stamp (it
replays later and overwrites the whole subtree), so deleting or replacing a subtree also
frees the entries beneath it. Tombstones are kept: they stop an older write that arrives late
from coming back.

Why join converges
------------------

Write ``S[p]`` for the entry at ``p`` and let ``J(A, B)[p] = max(A[p], B[p])`` by rank, over
the union of paths. The ranks are totally ordered, so ``max`` is commutative, associative and
idempotent, and so is ``J`` pointwise. Let ``P`` drop dominated entries, and ``anc_S(p)`` be
the greatest stamp at a proper prefix of ``p``. Then:

1. ``anc_{P(S)}(p) = anc_S(p)``: the entry holding the maximum is never dropped, since
   whatever dominated it would sit at a prefix of ``p`` with a greater stamp.
2. ``anc_{J(A,B)}(p) = max(anc_A(p), anc_B(p))``, because the maximum rank at a path has the
   maximum stamp there.
3. Hence ``P(J(P(A), P(B))) = P(J(A, B))``. Take a path ``p`` and ``m = J(A, B)[p]``, say
   from ``A``. By 1 and 2 both sides see the same greatest ancestor stamp ``a`` at ``p``. If
   ``m``'s stamp is below ``a``, ``m`` is dropped on the right, and on the left whatever sits
   at ``p`` has a stamp no greater than ``m``'s, so it is dropped too. Otherwise ``m`` was not
   dominated in ``A`` (``anc_A(p) <= a``), so it is in ``P(A)``, wins the maximum on the
   left, and survives on both sides.

`join` is ``P(J(A, B))`` on states already in ``P`` form, so by 3 it inherits
commutativity, associativity and idempotence from ``J``. `value` reads nothing but the
state. Dropping a dominated entry does not change it either: the later write at the prefix
makes the same ancestors objects and replaces or removes the whole subtree the dropped write
touched, and the writes replayed in between see the same structure outside that subtree. By
the same argument, replaying *every* write ever made, in rank order, gives the value of the
kept entries; the tests check exactly that against a plain log of operations.

Bounds: a path has 1 to `MAX_PATH_LENGTH` keys, and the path length plus the nesting of
its value is at most `MAX_STATE_DEPTH` levels, so nothing recurses deeply.

```pycon
>>> from shadowsync._conflict.clocks import HLCStamp
>>> t = lambda ms, node: HLCStamp(wall_ms=ms, counter=0, node=node)
>>> device = StampedState.empty().set(("temp",), 21, t(1000, "device"))
>>> cloud = StampedState.empty().set(("temp",), 19, t(1005, "cloud"))
>>> cloud = cloud.delete(("mode",), t(1006, "cloud"))
>>> device.join(cloud).value() == cloud.join(device).value() == {"temp": 19}
True

```
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.clocks import HLCStamp
from shadowsync._json import JSONObject, JSONValue, canonical_json, copy_json, describe, format_path
from shadowsync._limits import MAX_CONFIGURABLE_DEPTH
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowSyncError

if TYPE_CHECKING:
    from shadowsync._tree import Path

MAX_STATE_DEPTH = MAX_CONFIGURABLE_DEPTH
"""Nesting levels a stamped state may reach: the root object is level 1, arrays count, leaves do
not (the way AWS counts shadow depth)."""

MAX_PATH_LENGTH = MAX_STATE_DEPTH
"""Keys a path may have."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str, what: str, error: type[ShadowSyncError]) -> str:
    if _SURROGATE.search(value) is not None:
        raise error(f"{what} {value[:40]!r} holds a lone UTF-16 surrogate, which is not UTF-8")
    return value


def _copy_value(
    value: object, levels: int, error: type[ShadowSyncError], where: list[str | int]
) -> tuple[JSONValue, int]:
    """Validate and copy a JSON value; return it with its nesting (scalars 0).

    ``levels`` is how many container levels may still open; recursion stops there, so it is
    bounded by `MAX_STATE_DEPTH` whatever the input.
    """
    if isinstance(value, bool):
        return bool(value), 0
    if isinstance(value, int):
        return int(value), 0
    if isinstance(value, str):
        # str.__str__ gives the plain string even for str-based enums.
        return _text(str.__str__(value), "string", error), 0
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value), 0
        raise error(f"{describe(value)} is not a JSON number{_at(where)}")
    if value is None:
        raise error(f"null is not a stored value{_at(where)}; delete the path instead")
    if isinstance(value, (Mapping, list, tuple)):
        if levels <= 0:
            raise error(
                f"value nests too deeply{_at(where)}: path and value may span at most "
                f"{MAX_STATE_DEPTH} levels"
            )
        depth = 1
        if isinstance(value, Mapping):
            obj: JSONObject = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise error(f"object key {describe(key)} is not a string{_at(where)}")
                where.append(key)
                copied, inner = _copy_value(item, levels - 1, error, where)
                where.pop()
                obj[_text(str.__str__(key), "object key", error)] = copied
                depth = max(depth, inner + 1)
            return obj, depth
        items: list[JSONValue] = []
        for index, item in enumerate(value):
            where.append(index)
            copied, inner = _copy_value(item, levels - 1, error, where)
            where.pop()
            items.append(copied)
            depth = max(depth, inner + 1)
        return items, depth
    raise error(f"{type(value).__name__} is not a JSON type{_at(where)}")


def _at(where: list[str | int]) -> str:
    return f" at {format_path(where)}" if where else ""


def check_path(path: object, error: type[ShadowSyncError] = InvalidArgumentError) -> Path:
    """Return ``path`` as a tuple if it is a valid path, else raise ``error``.

    A path is a tuple (or list) of 1 to `MAX_PATH_LENGTH` string keys.

    ```pycon
    >>> check_path(["lights", "color"])
    ('lights', 'color')

    ```
    """
    if not isinstance(path, (tuple, list)):
        raise error(f"a path must be a tuple of string keys, got {type(path).__name__}")
    if not 1 <= len(path) <= MAX_PATH_LENGTH:
        raise error(f"a path must have 1 to {MAX_PATH_LENGTH} keys, got {len(path)}")
    for key in path:
        if not isinstance(key, str):
            raise error(f"path keys must be strings, got {describe(key)} in {_short(path)}")
        _text(key, "path key", error)
    return tuple(str.__str__(key) for key in path)


def _short(path: tuple[Any, ...] | list[Any]) -> str:
    text = repr(tuple(path))
    return text if len(text) <= 80 else f"{text[:77]}..."


@attrs.frozen(kw_only=True, eq=False)
class StampedEntry:
    """One write: a value, or a tombstone for a deletion, with its stamp.

    Entries compare equal when stamp, kind and value (as canonical JSON, so ``1`` and ``1.0``
    differ) are equal. ``value`` is shared, treat it as read-only.

    ```pycon
    >>> from shadowsync._conflict.clocks import HLCStamp
    >>> stamp = HLCStamp(wall_ms=5, counter=0, node="n")
    >>> StampedEntry(stamp=stamp, value={"on": True}).value
    {'on': True}
    >>> StampedEntry(stamp=stamp, deleted=True).deleted
    True

    ```
    """

    stamp: HLCStamp = attrs.field()
    """When the write happened."""
    value: JSONValue = attrs.field(default=None)
    """The value written; ``None`` for a tombstone."""
    deleted: bool = attrs.field(default=False)
    """Whether this entry is a tombstone."""
    _depth: int = attrs.field(init=False, repr=False)
    _rank: tuple[HLCStamp, bool, str] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.stamp, HLCStamp):
            raise InvalidArgumentError(
                f"stamp must be an HLCStamp, got {type(self.stamp).__name__}"
            )
        if type(self.deleted) is not bool:
            raise InvalidArgumentError(f"deleted must be a bool, got {describe(self.deleted)}")
        if self.deleted:
            if self.value is not None:
                raise InvalidArgumentError("a tombstone (deleted=True) cannot carry a value")
            depth, text = 0, ""
        else:
            # The shortest path has one key, so the value may open one level fewer.
            value, depth = _copy_value(self.value, MAX_STATE_DEPTH - 1, InvalidArgumentError, [])
            object.__setattr__(self, "value", value)
            try:
                text = canonical_json(value)
            except ValueError as exc:  # integers beyond the interpreter's digit limit
                raise InvalidArgumentError(f"value cannot be written as JSON: {exc}") from None
        object.__setattr__(self, "_depth", depth)
        object.__setattr__(self, "_rank", (self.stamp, self.deleted, text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StampedEntry):
            return NotImplemented
        return self._rank == other._rank

    def __hash__(self) -> int:
        return hash(self._rank)


def _canonical(entries: Mapping[Any, StampedEntry]) -> Mapping[Path, StampedEntry]:
    """Validate entries and drop those dominated by a later entry at a proper prefix."""
    if not isinstance(entries, Mapping):
        raise InvalidArgumentError(
            f"entries must be a mapping of path to StampedEntry, got {type(entries).__name__}"
        )
    checked: dict[Path, StampedEntry] = {}
    for raw_path, entry in entries.items():
        path = check_path(raw_path)
        if not isinstance(entry, StampedEntry):
            raise InvalidArgumentError(
                f"entry at {_short(path)} must be a StampedEntry, got {type(entry).__name__}"
            )
        if path in checked:
            raise InvalidArgumentError(f"path {_short(path)} appears twice")
        _check_span(path, entry, InvalidArgumentError)
        checked[path] = entry
    return _pruned(checked)


def _pruned(entries: dict[Path, StampedEntry]) -> Mapping[Path, StampedEntry]:
    """The entries not dominated by a later entry at a proper prefix, sorted by path."""
    kept: dict[Path, StampedEntry] = {}
    for path in sorted(entries):
        entry = entries[path]
        for end in range(1, len(path)):
            ancestor = entries.get(path[:end])
            if ancestor is not None and ancestor.stamp > entry.stamp:
                break
        else:
            kept[path] = entry
    return types.MappingProxyType(kept)


def _check_span(path: Path, entry: StampedEntry, error: type[ShadowSyncError]) -> None:
    if len(path) + entry._depth > MAX_STATE_DEPTH:
        raise error(
            f"value at {_short(path)} opens {entry._depth} nesting level(s) below a "
            f"{len(path)}-key path; path and value may span at most {MAX_STATE_DEPTH} levels"
        )


@attrs.frozen(kw_only=True, eq=False)
class StampedState:
    """A last-writer-wins map over JSON object paths, with tombstones; a join-semilattice.

    Build one with `empty` or `from_value`, change it with `set` and
    `delete` (each returns a new state), combine replicas with `join`, and read
    the plain JSON object with `value`. See the module documentation for the model and
    why joins converge.

    ```pycon
    >>> from shadowsync._conflict.clocks import HLCStamp
    >>> s1, s2, s3 = (HLCStamp(wall_ms=ms, counter=0, node="n") for ms in (1, 2, 3))
    >>> state = StampedState.from_value({"lights": {"on": True, "rgb": [1, 2, 3]}}, s1)
    >>> state = state.set(("lights", "on"), False, s2).delete(("lights", "rgb"), s3)
    >>> state.value()
    {'lights': {'on': False}}
    >>> state.stamp_of(("lights", "rgb")) == s3
    True

    ```
    """

    entries: Mapping[Path, StampedEntry] = attrs.field(
        factory=dict, converter=_canonical, repr=lambda entries: repr(dict(entries))
    )
    """The entries by path (read-only); dominated ones dropped."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StampedState):
            return NotImplemented
        return dict(self.entries) == dict(other.entries)

    def __hash__(self) -> int:
        return hash(frozenset(self.entries.items()))

    @classmethod
    def empty(cls) -> StampedState:
        """The state with no entries; its value is ``{}``."""
        return cls()

    @classmethod
    def from_value(cls, obj: Mapping[str, Any], stamp: HLCStamp) -> StampedState:
        """A state holding ``obj``, one entry per leaf, all stamped ``stamp``.

        Leaves are scalars, arrays and empty objects; arrays are never split.

        ```pycon
        >>> from shadowsync._conflict.clocks import HLCStamp
        >>> state = StampedState.from_value({"a": {"b": 1, "c": []}, "d": {}},
        ...                                 HLCStamp(wall_ms=1, counter=0, node="n"))
        >>> sorted(state.entries)
        [('a', 'b'), ('a', 'c'), ('d',)]

        ```
        """
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError(f"from_value needs a JSON object, got {type(obj).__name__}")
        if not isinstance(stamp, HLCStamp):
            raise InvalidArgumentError(f"stamp must be an HLCStamp, got {type(stamp).__name__}")
        entries: dict[Path, StampedEntry] = {}
        pending: list[tuple[Path, Mapping[Any, Any]]] = [((), obj)]
        while pending:
            prefix, node = pending.pop()
            for key, item in node.items():
                path = check_path((*prefix, key))
                if isinstance(item, Mapping) and item:
                    if len(path) >= MAX_PATH_LENGTH:
                        raise InvalidArgumentError(
                            f"value nests too deeply at {format_path(list(path))}: "
                            f"at most {MAX_STATE_DEPTH} levels"
                        )
                    pending.append((path, item))
                else:
                    entries[path] = _entry(path, item, stamp)
        return cls(entries=entries)

    def set(self, path: Path, value: JSONValue, stamp: HLCStamp) -> StampedState:
        """Write ``value`` at ``path``, unless the state holds a later write there.

        ``value`` replaces whatever is at ``path`` (objects are not merged); missing or
        non-object ancestors become objects. ``null`` is not a value: use `delete`.

        ```pycon
        >>> from shadowsync._conflict.clocks import HLCStamp
        >>> old, new = (HLCStamp(wall_ms=ms, counter=0, node="n") for ms in (1, 2))
        >>> StampedState.empty().set(("a",), 1, new).set(("a",), 2, old).value()
        {'a': 1}

        ```
        """
        path = check_path(path)
        return self._with(path, _entry(path, value, stamp))

    def delete(self, path: Path, stamp: HLCStamp) -> StampedState:
        """Delete ``path`` and its subtree, unless the state holds a later write there.

        Like ``null`` in an AWS update, missing or non-object ancestors become objects.

        ```pycon
        >>> from shadowsync._conflict.clocks import HLCStamp
        >>> s1, s2 = (HLCStamp(wall_ms=ms, counter=0, node="n") for ms in (1, 2))
        >>> StampedState.empty().set(("a",), 5, s1).delete(("a", "b"), s2).value()
        {'a': {}}

        ```
        """
        path = check_path(path)
        if not isinstance(stamp, HLCStamp):
            raise InvalidArgumentError(f"stamp must be an HLCStamp, got {type(stamp).__name__}")
        return self._with(path, StampedEntry(stamp=stamp, deleted=True))

    def _with(self, path: Path, entry: StampedEntry) -> StampedState:
        entries = self.entries
        mine = entries.get(path)
        if mine is not None and mine._rank >= entry._rank:
            return self
        for end in range(1, len(path)):
            ancestor = entries.get(path[:end])
            if ancestor is not None and ancestor.stamp > entry.stamp:
                return self  # hidden by a later write above it, as pruning would decide
        # Only this path's own subtree can become dominated: prune it, keep the rest as is.
        depth = len(path)
        merged = {
            p: e
            for p, e in entries.items()
            if not (len(p) > depth and p[:depth] == path and e.stamp < entry.stamp)
        }
        merged[path] = entry
        state = object.__new__(StampedState)
        object.__setattr__(state, "entries", types.MappingProxyType(merged))
        return state

    def join(self, other: StampedState) -> StampedState:
        """The least state that includes both: per path, the entry ranked higher.

        ```pycon
        >>> from shadowsync._conflict.clocks import HLCStamp
        >>> a = StampedState.empty().set(("x",), 1, HLCStamp(wall_ms=1, counter=0, node="a"))
        >>> b = StampedState.empty().set(("y",), 2, HLCStamp(wall_ms=1, counter=0, node="b"))
        >>> a.join(b).value()
        {'x': 1, 'y': 2}

        ```
        """
        if not isinstance(other, StampedState):
            raise InvalidArgumentError(f"can only join a StampedState, got {type(other).__name__}")
        if not other.entries:
            return self
        if not self.entries:
            return other
        merged = dict(self.entries)
        for path, entry in other.entries.items():
            mine = merged.get(path)
            if mine is None or entry._rank > mine._rank:
                merged[path] = entry
        return _trusted(merged)

    def value(self) -> JSONObject:
        """The plain JSON object: the entries replayed in ``(stamp, path)`` order onto ``{}``.

        The result is a fresh copy the caller owns.
        """
        root: JSONObject = {}
        for path, entry in sorted(self.entries.items(), key=_replay_order):
            node = root
            for key in path[:-1]:
                child = node.get(key)
                if type(child) is not dict:
                    child = {}
                    node[key] = child
                node = child
            if entry.deleted:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = copy_json(entry.value)
        return root

    def stamp_of(self, path: Path) -> HLCStamp | None:
        """The stamp of the entry at exactly ``path``, or ``None`` if there is none."""
        entry = self.entries.get(check_path(path))
        return None if entry is None else entry.stamp

    @property
    def latest(self) -> HLCStamp | None:
        """The greatest stamp in the state (feed it to `HybridLogicalClock.observe`)."""
        return max((entry.stamp for entry in self.entries.values()), default=None)

    def to_json(self) -> list[JSONValue]:
        """The compact JSON form: ``[path, stamp]`` for tombstones, ``[path, stamp, value]``.

        Entries are sorted by path; stamps are in `HLCStamp` string form.

        ```pycon
        >>> from shadowsync._conflict.clocks import HLCStamp
        >>> stamp = HLCStamp(wall_ms=7, counter=0, node="n")
        >>> StampedState.empty().set(("a", "b"), 1, stamp).delete(("c",), stamp).to_json()
        [[['a', 'b'], '000000000000007-00000-n', 1], [['c'], '000000000000007-00000-n']]

        ```
        """
        out: list[JSONValue] = []
        for path, entry in sorted(self.entries.items()):
            item: list[JSONValue] = [list(path), str(entry.stamp)]
            if not entry.deleted:
                item.append(copy_json(entry.value))
            out.append(item)
        return out

    @classmethod
    def from_json(cls, obj: object) -> StampedState:
        """Parse the JSON form, raising `InvalidDocumentError`.

        ```pycon
        >>> StampedState.from_json([[["a"], "000000000000007-00000-n", "on"]]).value()
        {'a': 'on'}
        >>> StampedState.from_json([[[], "000000000000007-00000-n"]])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shadowsync.errors.InvalidDocumentError: stamped state entry 0: a path must have 1 to 32...

        ```
        """
        if not isinstance(obj, (list, tuple)):
            raise InvalidDocumentError(
                f"a stamped state must be a JSON array, got {type(obj).__name__}"
            )
        entries: dict[Path, StampedEntry] = {}
        for index, item in enumerate(obj):
            try:
                path, entry = _parse_entry(item)
            except ShadowSyncError as exc:
                raise InvalidDocumentError(f"stamped state entry {index}: {exc}") from None
            if path in entries:
                raise InvalidDocumentError(
                    f"stamped state entry {index}: path {_short(path)} appears twice"
                )
            entries[path] = entry
        return cls(entries=entries)


def _trusted(entries: dict[Path, StampedEntry]) -> StampedState:
    """A state from entries taken from valid states (skips validation, still prunes)."""
    state = object.__new__(StampedState)
    object.__setattr__(state, "entries", _pruned(entries))
    return state


def _replay_order(item: tuple[Path, StampedEntry]) -> tuple[int, int, str, Path]:
    # Plain tuples sort in C; comparing HLCStamp objects would call Python per comparison.
    stamp = item[1].stamp
    return stamp.wall_ms, stamp.counter, stamp.node, item[0]


def _entry(path: Path, value: object, stamp: object) -> StampedEntry:
    if not isinstance(stamp, HLCStamp):
        raise InvalidArgumentError(f"stamp must be an HLCStamp, got {type(stamp).__name__}")
    try:
        entry = StampedEntry(stamp=stamp, value=value)  # type: ignore[arg-type]
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"value at {_short(path)}: {exc}") from None
    _check_span(path, entry, InvalidArgumentError)
    return entry


def _parse_entry(item: object) -> tuple[Path, StampedEntry]:
    if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
        raise InvalidDocumentError(
            f"expected [path, stamp] or [path, stamp, value], got {_describe(item)}"
        )
    path = check_path(item[0], InvalidDocumentError)
    stamp = HLCStamp.parse(item[1])
    if len(item) == 2:
        return path, StampedEntry(stamp=stamp, deleted=True)
    entry = _entry(path, item[2], stamp)
    return path, entry


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
