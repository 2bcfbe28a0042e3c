"""Logical clocks: vector clocks and hybrid logical clocks (HLC).

A `VectorClock` says which writers' changes a state includes, so two states can be told
apart as before / after / equal / concurrent. A `HybridLogicalClock` hands out
`HLCStamp` values that are close to wall-clock milliseconds but strictly increasing per
node and consistent with happened-before, whatever the physical clock does.

Both are pure: physical time is an argument (``physical_ms``), never read from the system.

Where the vector clock rides in a shadow document
-------------------------------------------------

At ``reported["$sync"]["vc"]`` (`SYNC_KEY`, `VECTOR_CLOCK_KEY`), for three reasons:

* ``state`` is the only place a client can store anything. AWS generates ``metadata`` itself
  (an update request may carry only ``desired`` and ``reported``) and drops unknown top-level
  keys, so metadata cannot carry a clock.
* In ``desired`` the clock would differ from ``reported`` forever, so it would sit in the delta
  and wake every device with an ``/update/delta`` on each write. Keys that only ``reported``
  holds never enter the delta.
* AWS places no rule on key names, so ``$sync`` is a valid key. The ``$`` makes a clash with
  application fields unlikely.

It costs two nesting levels (``$sync`` is level 2, ``vc`` level 3; counters are leaves, so any
``max_depth`` of 3 or more fits) and bytes counted against the 8 KB limit: about 20 bytes plus,
per entry, the node id and the counter's digits plus 4. `MAX_VECTOR_CLOCK_ENTRIES` bounds
the entries. AWS deep-merges the update, so write a clock that dominates the stored one (merge
first): counters never drop, so the merged result is exactly the clock written.

```pycon
>>> clock = VectorClock().increment("device-1").increment("cloud")
>>> clock.to_reported()
{'$sync': {'vc': {'cloud': 1, 'device-1': 1}}}
>>> VectorClock.from_reported({"temp": 21, "$sync": {"vc": {"cloud": 1}}}).compare(clock)
<Ordering.BEFORE: 'before'>

```
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from shadowsync._json import describe
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidDocumentError,
    ShadowSyncError,
)

SYNC_KEY = "$sync"
"""The key under ``reported`` that holds shadowsync's own bookkeeping."""

VECTOR_CLOCK_KEY = "vc"
"""The key under ``reported[SYNC_KEY]`` that holds the vector clock's JSON form."""

MAX_NODE_ID_LENGTH = 128
"""Characters allowed in a node id (a thing name fits)."""

MAX_VECTOR_CLOCK_ENTRIES = 32
"""Nodes a vector clock may count (each entry costs bytes of the shadow's size limit)."""

MAX_VECTOR_COUNTER = 2**53 - 1
"""Largest vector clock counter: every JSON parser, including IEEE doubles, keeps it exact."""

HLC_WALL_DIGITS = 15
"""Digits of ``wall_ms`` in the string form of an `HLCStamp`."""

HLC_COUNTER_DIGITS = 5
"""Digits of ``counter`` in the string form of an `HLCStamp`."""

MAX_HLC_WALL_MS = 10**HLC_WALL_DIGITS - 1
"""Largest ``wall_ms`` of a stamp (the year 33658)."""

MAX_HLC_COUNTER = 0xFFFF
"""Largest ``counter`` of a stamp; a clock that would pass it moves ``wall_ms`` on by one."""

_FORBIDDEN_IN_NODE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_STAMP_TEXT = re.compile(
    rf"([0-9]{{{HLC_WALL_DIGITS}}})-([0-9]{{{HLC_COUNTER_DIGITS}}})-(.+)", re.DOTALL
)
_MAX_STAMP_TEXT = HLC_WALL_DIGITS + HLC_COUNTER_DIGITS + 2 + MAX_NODE_ID_LENGTH


class ClockSkewError(ShadowSyncError):
    """A remote stamp is further ahead of local physical time than the clock allows.

    Raised by `HybridLogicalClock.observe` instead of dragging the clock forward; the
    clock is left unchanged. ``offset_ms`` is how far ahead the remote stamp is.
    """

    def __init__(self, remote: HLCStamp, physical_ms: int, max_offset_ms: int) -> None:
        self.remote = remote
        self.physical_ms = physical_ms
        self.max_offset_ms = max_offset_ms
        self.offset_ms = remote.wall_ms - physical_ms
        super().__init__(
            f"stamp {remote} from node {remote.node!r} is {self.offset_ms} ms ahead of local "
            f"physical time {physical_ms}; at most {max_offset_ms} ms is allowed"
        )


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _json_object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidDocumentError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def check_node_id(node: object, error: type[ShadowSyncError] = InvalidArgumentError) -> str:
    """Return ``node`` if it is a valid node id, else raise ``error``.

    A node id is a string of 1 to `MAX_NODE_ID_LENGTH` characters without control
    characters or lone surrogates (so it is valid UTF-8 and prints on one line).

    ```pycon
    >>> check_node_id("thermostat-42")
    'thermostat-42'

    ```
    """
    if not isinstance(node, str):
        raise error(f"a node id must be a string, got {type(node).__name__}")
    if not 1 <= len(node) <= MAX_NODE_ID_LENGTH:
        raise error(
            f"a node id must be 1 to {MAX_NODE_ID_LENGTH} characters, "
            f"got {len(node)}: {_describe(node)}"
        )
    bad = _FORBIDDEN_IN_NODE.search(node)
    if bad is not None:
        raise error(
            f"node id {_describe(node)} contains {describe(bad.group())}; control characters and "
            "lone surrogates are not allowed"
        )
    return str.__str__(node)


class Ordering(enum.Enum):
    """How two clocks relate, read as "``a`` is ... ``b``" for ``a.compare(b)``."""

    BEFORE = "before"
    """``a`` happened before ``b``: ``b`` includes everything ``a`` does, and more."""
    AFTER = "after"
    """``a`` happened after ``b``: ``a`` includes everything ``b`` does, and more."""
    EQUAL = "equal"
    """Both include exactly the same events."""
    CONCURRENT = "concurrent"
    """Each includes an event the other lacks."""


def _counters(value: Mapping[str, int] | Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Validate constructor input; zero counters are dropped, the rest sorted by node id."""
    if isinstance(value, VectorClock):
        return value.entries
    given: object = value  # typed input may still be anything at run time
    if isinstance(given, (str, bytes)):
        raise InvalidArgumentError(
            f"vector clock entries must be a mapping or (node, counter) pairs, got "
            f"{type(value).__name__}"
        )
    try:
        pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    except TypeError:
        raise InvalidArgumentError(
            f"vector clock entries must be a mapping or (node, counter) pairs, got "
            f"{type(value).__name__}"
        ) from None
    seen: dict[str, int] = {}
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidArgumentError(
                f"vector clock entry must be a (node, counter) pair, got {_describe(pair)}"
            )
        node, counter = pair
        node = check_node_id(node)
        if type(counter) is not int or not 0 <= counter <= MAX_VECTOR_COUNTER:
            raise InvalidArgumentError(
                f"counter of node {describe(node)} must be an int from 0 to {MAX_VECTOR_COUNTER}, "
                f"got {_describe(counter)}"
            )
        if node in seen:
            raise InvalidArgumentError(f"node {describe(node)} appears twice in the vector clock")
        seen[node] = counter
    result = tuple(sorted((node, count) for node, count in seen.items() if count))
    if len(result) > MAX_VECTOR_CLOCK_ENTRIES:
        raise InvalidArgumentError(
            f"a vector clock holds at most {MAX_VECTOR_CLOCK_ENTRIES} nodes, got {len(result)}"
        )
    return result


@attrs.frozen(kw_only=True)
class VectorClock(Mapping[str, int]):
    """An immutable vector clock: node id -> number of that node's events seen.

    Nodes that are absent count 0, and zero counters are never stored, so equal clocks are
    equal values. It is a read-only `Mapping` over the non-zero
    counters, in node id order.

    ```pycon
    >>> a = VectorClock(entries={"device": 2})
    >>> b = a.increment("cloud")
    >>> a.compare(b), b.compare(a)
    (<Ordering.BEFORE: 'before'>, <Ordering.AFTER: 'after'>)
    >>> c = a.increment("device")
    >>> b.compare(c)
    <Ordering.CONCURRENT: 'concurrent'>
    >>> dict(b.merge(c))
    {'cloud': 1, 'device': 3}

    ```
    """

    entries: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=_counters)
    """The non-zero counters as ``(node, counter)`` pairs sorted by node id."""
    _lookup: dict[str, int] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.entries))

    def __getitem__(self, node: str) -> int:
        return self._lookup[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup)

    def __len__(self) -> int:
        return len(self._lookup)

    def __contains__(self, node: object) -> bool:
        return node in self._lookup

    def counter(self, node: str) -> int:
        """The counter of ``node``, 0 when the clock has none.

        ```pycon
        >>> VectorClock(entries={"a": 3}).counter("b")
        0

        ```
        """
        return self._lookup.get(node, 0)

    def increment(self, node: str) -> VectorClock:
        """A clock with ``node``'s counter one higher (a new event on ``node``).

        ```pycon
        >>> dict(VectorClock().increment("a").increment("a"))
        {'a': 2}

        ```
        """
        node = check_node_id(node)
        current = self._lookup.get(node, 0)
        if current >= MAX_VECTOR_COUNTER:
            raise InvalidArgumentError(
                f"counter of node {describe(node)} is at its maximum {MAX_VECTOR_COUNTER}"
            )
        counters = dict(self._lookup)
        counters[node] = current + 1
        return VectorClock(entries=counters)

    def merge(self, other: VectorClock) -> VectorClock:
        """The pointwise maximum: the clock of a state that includes both.

        ```pycon
        >>> dict(VectorClock(entries={"a": 2, "b": 1}).merge(VectorClock(entries={"b": 5})))
        {'a': 2, 'b': 5}

        ```
        """
        if not isinstance(other, VectorClock):
            raise InvalidArgumentError(f"can only merge a VectorClock, got {type(other).__name__}")
        counters = dict(self._lookup)
        for node, count in other.entries:
            if count > counters.get(node, 0):
                counters[node] = count
        return VectorClock(entries=counters)

    def compare(self, other: VectorClock) -> Ordering:
        """How this clock relates to ``other`` (see `Ordering`).

        ```pycon
        >>> VectorClock(entries={"a": 1}).compare(VectorClock(entries={"a": 1}))
        <Ordering.EQUAL: 'equal'>

        ```
        """
        if not isinstance(other, VectorClock):
            raise InvalidArgumentError(
                f"can only compare with a VectorClock, got {type(other).__name__}"
            )
        behind = ahead = False
        for node in self._lookup.keys() | other._lookup.keys():
            mine, theirs = self._lookup.get(node, 0), other._lookup.get(node, 0)
            if mine < theirs:
                behind = True
            elif mine > theirs:
                ahead = True
        if behind and ahead:
            return Ordering.CONCURRENT
        if behind:
            return Ordering.BEFORE
        if ahead:
            return Ordering.AFTER
        return Ordering.EQUAL

    def dominates(self, other: VectorClock) -> bool:
        """True when this clock includes every event ``other`` does (AFTER or EQUAL).

        ```pycon
        >>> VectorClock(entries={"a": 2}).dominates(VectorClock(entries={"a": 1}))
        True

        ```
        """
        return self.compare(other) in (Ordering.AFTER, Ordering.EQUAL)

    def to_json(self) -> dict[str, int]:
        """The compact JSON form: ``{node: counter}``, sorted, zeros left out.

        ```pycon
        >>> VectorClock(entries={"b": 1, "a": 0, "c": 4}).to_json()
        {'b': 1, 'c': 4}

        ```
        """
        return dict(self.entries)

    @classmethod
    def from_json(cls, obj: object) -> VectorClock:
        """Parse the JSON form, raising `InvalidDocumentError`.

        Node ids must be valid (see `check_node_id`), counters ints from 1 to
        `MAX_VECTOR_COUNTER`, at most `MAX_VECTOR_CLOCK_ENTRIES` of them.

        ```pycon
        >>> VectorClock.from_json({"a": 1}) == VectorClock(entries={"a": 1})
        True
        >>> VectorClock.from_json({"a": 0})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shadowsync.errors.InvalidDocumentError: vector clock counter of node 'a' must be ..., got 0

        ```
        """
        obj = _json_object(obj, "a vector clock")
        if len(obj) > MAX_VECTOR_CLOCK_ENTRIES:
            raise InvalidDocumentError(
                f"a vector clock holds at most {MAX_VECTOR_CLOCK_ENTRIES} nodes, got {len(obj)}"
            )
        counters: dict[str, int] = {}
        for node, counter in obj.items():
            node = check_node_id(node, InvalidDocumentError)
            if type(counter) is not int or not 1 <= counter <= MAX_VECTOR_COUNTER:
                raise InvalidDocumentError(
                    f"vector clock counter of node {describe(node)} must be an int from 1 to "
                    f"{MAX_VECTOR_COUNTER}, got {_describe(counter)}"
                )
            counters[node] = counter
        return cls(entries=counters)

    @classmethod
    def from_reported(cls, reported: Mapping[str, Any]) -> VectorClock:
        """Read the clock stored in a ``reported`` section (empty when there is none).

        ```pycon
        >>> dict(VectorClock.from_reported({"$sync": {"vc": {"cloud": 3}}}))
        {'cloud': 3}
        >>> len(VectorClock.from_reported({"temp": 21}))
        0

        ```
        """
        sync = _json_object(reported, "reported").get(SYNC_KEY)
        if sync is None:
            return cls()
        clock = _json_object(sync, f"reported.{SYNC_KEY}").get(VECTOR_CLOCK_KEY)
        if clock is None:
            return cls()
        try:
            return cls.from_json(clock)
        except InvalidDocumentError as exc:
            raise InvalidDocumentError(f"reported.{SYNC_KEY}.{VECTOR_CLOCK_KEY}: {exc}") from None

    def to_reported(self) -> dict[str, Any]:
        """The fragment to merge into an update's ``reported`` section to store this clock.

        ```pycon
        >>> VectorClock(entries={"d": 1}).to_reported()
        {'$sync': {'vc': {'d': 1}}}

        ```
        """
        return {SYNC_KEY: {VECTOR_CLOCK_KEY: self.to_json()}}


def _stamp_field(name: str, bound: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or not 0 <= value <= bound:
            raise InvalidArgumentError(
                f"{name} must be an int from 0 to {bound}, got {_describe(value)}"
            )

    return check


def _node_field(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    check_node_id(value)


@attrs.frozen(kw_only=True, order=False)
class HLCStamp:
    """A hybrid logical clock stamp, ordered as ``(wall_ms, counter, node)``.

    ``wall_ms`` tracks physical milliseconds, ``counter`` orders events within one
    millisecond, and ``node`` makes stamps from different nodes distinct. ``str(stamp)`` is the
    compact form ``<wall_ms>-<counter>-<node>`` with fixed-width, zero-padded numbers, so the
    strings sort exactly like the stamps.

    ```pycon
    >>> stamp = HLCStamp(wall_ms=1700000000000, counter=3, node="device-1")
    >>> str(stamp)
    '001700000000000-00003-device-1'
    >>> HLCStamp.parse(str(stamp)) == stamp
    True
    >>> stamp < HLCStamp(wall_ms=1700000000000, counter=3, node="device-2")
    True

    ```
    """

    wall_ms: int = attrs.field(validator=_stamp_field("wall_ms", MAX_HLC_WALL_MS))
    """Milliseconds, at least the physical time of the event (and usually equal to it)."""
    counter: int = attrs.field(validator=_stamp_field("counter", MAX_HLC_COUNTER))
    """Events seen within ``wall_ms`` before this one."""
    node: str = attrs.field(validator=_node_field)
    """The node that issued the stamp."""

    def __str__(self) -> str:
        return (
            f"{self.wall_ms:0{HLC_WALL_DIGITS}d}-{self.counter:0{HLC_COUNTER_DIGITS}d}-{self.node}"
        )

    # Stamps are compared constantly (sorting, joins); plain tuple comparison is much faster
    # than the generic comparison attrs would generate.
    def __lt__(self, other: HLCStamp) -> bool:
        if type(other) is not HLCStamp:
            return NotImplemented
        return (self.wall_ms, self.counter, self.node) < (other.wall_ms, other.counter, other.node)

    def __le__(self, other: HLCStamp) -> bool:
        if type(other) is not HLCStamp:
            return NotImplemented
        return (self.wall_ms, self.counter, self.node) <= (
            other.wall_ms,
            other.counter,
            other.node,
        )

    def __gt__(self, other: HLCStamp) -> bool:
        if type(other) is not HLCStamp:
            return NotImplemented
        return (self.wall_ms, self.counter, self.node) > (other.wall_ms, other.counter, other.node)

    def __ge__(self, other: HLCStamp) -> bool:
        if type(other) is not HLCStamp:
            return NotImplemented
        return (self.wall_ms, self.counter, self.node) >= (
            other.wall_ms,
            other.counter,
            other.node,
        )

    @classmethod
    def parse(cls, text: object) -> HLCStamp:
        """Parse the string form, raising `InvalidDocumentError`.

        Only the exact form ``str()`` produces is accepted (15 and 5 digits), so parsing and
        formatting are inverse.

        ```pycon
        >>> HLCStamp.parse("000000000000042-00000-cloud").wall_ms
        42
        >>> HLCStamp.parse("42-0-cloud")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shadowsync.errors.InvalidDocumentError: '42-0-cloud' is not an HLC stamp: expected <15-...

        ```
        """
        if not isinstance(text, str):
            raise InvalidDocumentError(f"an HLC stamp must be a string, got {type(text).__name__}")
        match = _STAMP_TEXT.fullmatch(text) if len(text) <= _MAX_STAMP_TEXT else None
        if match is None:
            raise InvalidDocumentError(
                f"{_describe(text)} is not an HLC stamp: expected <{HLC_WALL_DIGITS}-digit "
                f"wall_ms>-<{HLC_COUNTER_DIGITS}-digit counter>-<node>"
            )
        counter = int(match.group(2))
        if counter > MAX_HLC_COUNTER:
            raise InvalidDocumentError(
                f"{_describe(text)} is not an HLC stamp: counter {counter} is above "
                f"{MAX_HLC_COUNTER}"
            )
        node = check_node_id(match.group(3), InvalidDocumentError)
        return cls(wall_ms=int(match.group(1)), counter=counter, node=node)


def _check_physical(physical_ms: object) -> int:
    if type(physical_ms) is not int or not 0 <= physical_ms <= MAX_HLC_WALL_MS:
        raise InvalidArgumentError(
            f"physical_ms must be an int from 0 to {MAX_HLC_WALL_MS}, got {_describe(physical_ms)}"
        )
    return physical_ms


class HybridLogicalClock:
    """A hybrid logical clock for one node (Kulkarni et al., 2014).

    `now` stamps a local or send event, `observe` a receive event. Stamps are
    strictly increasing whatever ``physical_ms`` does, including when it jumps backwards; to
    keep that across restarts, persist `last` and pass it back as ``last=``. A receive
    stamp is greater than the stamp received, so stamps respect happened-before.

    With ``max_offset_ms``, `observe` refuses (with `ClockSkewError`) a remote
    stamp more than that far ahead of local physical time, instead of letting one bad clock
    drag every node's stamps into the future.

    ```pycon
    >>> clock = HybridLogicalClock("device-1")
    >>> str(clock.now(1000))
    '000000000001000-00000-device-1'
    >>> str(clock.now(900))  # the physical clock went back; stamps do not
    '000000000001000-00001-device-1'
    >>> remote = HLCStamp(wall_ms=5000, counter=7, node="cloud")
    >>> str(clock.observe(remote, 1001))
    '000000000005000-00008-device-1'

    ```
    """

    __slots__ = ("_last", "_max_offset_ms", "_node")

    def __init__(
        self, node: str, *, max_offset_ms: int | None = None, last: HLCStamp | None = None
    ) -> None:
        self._node = check_node_id(node)
        if max_offset_ms is not None and (type(max_offset_ms) is not int or max_offset_ms < 0):
            raise InvalidArgumentError(
                f"max_offset_ms must be a non-negative int or None, got {_describe(max_offset_ms)}"
            )
        if last is not None:
            if not isinstance(last, HLCStamp):
                raise InvalidArgumentError(
                    f"last must be an HLCStamp or None, got {type(last).__name__}"
                )
            if last.node != self._node:
                raise InvalidArgumentError(
                    f"last was issued by node {last.node!r}, "
                    f"not by this clock's node {describe(node)}"
                )
        self._max_offset_ms = max_offset_ms
        self._last = last

    def __repr__(self) -> str:
        return (
            f"HybridLogicalClock({self._node!r}, max_offset_ms={self._max_offset_ms!r}, "
            f"last={self._last!r})"
        )

    @property
    def node(self) -> str:
        """The node id this clock stamps with."""
        return self._node

    @property
    def max_offset_ms(self) -> int | None:
        """How far ahead of physical time a remote stamp may be, or ``None`` for no limit."""
        return self._max_offset_ms

    @property
    def last(self) -> HLCStamp | None:
        """The last stamp issued (persist it to stay monotonic across restarts)."""
        return self._last

    def now(self, physical_ms: int) -> HLCStamp:
        """Stamp a local or send event at physical time ``physical_ms``.

        ```pycon
        >>> clock = HybridLogicalClock("n", last=HLCStamp(wall_ms=50, counter=2, node="n"))
        >>> str(clock.now(10))
        '000000000000050-00003-n'

        ```
        """
        physical_ms = _check_physical(physical_ms)
        last = self._last
        if last is None or physical_ms > last.wall_ms:
            return self._issue(physical_ms, 0)
        return self._issue(last.wall_ms, last.counter + 1)

    def observe(self, remote: HLCStamp, physical_ms: int) -> HLCStamp:
        """Stamp the receipt of a message stamped ``remote`` at physical time ``physical_ms``.

        The result is greater than both `last` and ``remote``.

        ```pycon
        >>> clock = HybridLogicalClock("n", max_offset_ms=1000)
        >>> clock.observe(HLCStamp(wall_ms=9000, counter=0, node="m"), 1000)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shadowsync._conflict.clocks.ClockSkewError: stamp ... is 8000 ms ahead of ...; at most ...

        ```
        """
        if not isinstance(remote, HLCStamp):
            raise InvalidArgumentError(f"remote must be an HLCStamp, got {type(remote).__name__}")
        physical_ms = _check_physical(physical_ms)
        if self._max_offset_ms is not None and remote.wall_ms - physical_ms > self._max_offset_ms:
            raise ClockSkewError(remote, physical_ms, self._max_offset_ms)
        last = self._last
        wall = max(physical_ms, remote.wall_ms)
        if last is not None and last.wall_ms >= wall:
            wall = last.wall_ms
        if last is not None and wall == last.wall_ms and wall == remote.wall_ms:
            counter = max(last.counter, remote.counter) + 1
        elif last is not None and wall == last.wall_ms:
            counter = last.counter + 1
        elif wall == remote.wall_ms:
            counter = remote.counter + 1
        else:
            counter = 0
        return self._issue(wall, counter)

    def _issue(self, wall_ms: int, counter: int) -> HLCStamp:
        if counter > MAX_HLC_COUNTER:
            # Too many events in one millisecond: borrow the next millisecond, as the
            # counter would otherwise need an unbounded width.
            wall_ms, counter = wall_ms + 1, 0
        if wall_ms > MAX_HLC_WALL_MS:
            raise InvalidArgumentError(
                f"the clock of node {describe(self._node)} has reached the largest wall_ms "
                f"{MAX_HLC_WALL_MS}"
            )
        stamp = HLCStamp(wall_ms=wall_ms, counter=counter, node=self._node)
        self._last = stamp
        return stamp
