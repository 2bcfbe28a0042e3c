"""Hypothesis strategies for clocks, versions and stamped states, and a reference model.

The reference model (:func:`model_value`) computes what a :class:`StampedState` should hold from
a plain log of operations, using RFC 7396 merge patches (the AWS update semantics) instead of
the state's own replay, so tests compare two independent implementations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs
from hypothesis import settings
from hypothesis import strategies as st

from shadowsync import apply_merge_patch
from shadowsync._conflict.clocks import MAX_HLC_COUNTER, HLCStamp, VectorClock
from shadowsync._conflict.stamped import StampedState
from shadowsync._json import JSONObject, JSONValue, canonical_json

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shadowsync._tree import Path

slow = settings(max_examples=min(settings().max_examples, 100))
"""For the slowest properties: at most 100 examples, fewer if the active profile says so."""

NODES = ("a", "b", "c", "device-1", "cloud")
"""A few node ids, so that generated clocks share nodes often."""

KEYS = ("a", "b", "c")
"""Object keys for paths: few, so paths collide and nest into each other."""

node_ids = st.sampled_from(NODES)


def _vector_clock(index: int) -> VectorClock:
    """Decode one number into counters 0..6 for each of :data:`NODES` (one draw per clock)."""
    counters: dict[str, int] = {}
    for node in NODES:
        index, counters[node] = divmod(index, 7)
    return VectorClock(entries=counters)


def vector_clocks() -> st.SearchStrategy[VectorClock]:
    """Vector clocks over :data:`NODES` with counters 0 to 6; shrinks toward the empty clock."""
    return st.integers(0, 7 ** len(NODES) - 1).map(_vector_clock)


wall_times = st.one_of(
    st.integers(0, 50),
    st.integers(1_700_000_000_000, 1_700_000_000_050),
    st.integers(0, 10**15 - 2),
)
"""Milliseconds: tiny, clustered around one instant (so walls tie), and anywhere."""

counters = st.one_of(st.integers(0, 3), st.integers(MAX_HLC_COUNTER - 2, MAX_HLC_COUNTER))
"""HLC counters: small, or at the edge where the clock must borrow a millisecond."""


@st.composite
def hlc_stamps(draw: st.DrawFn, nodes: st.SearchStrategy[str] = node_ids) -> HLCStamp:
    """Any valid stamp, biased to collide on wall_ms and to sit near the counter bound."""
    return HLCStamp(wall_ms=draw(wall_times), counter=draw(counters), node=draw(nodes))


PHYSICAL_TIMES = (0, 1, 2, 5, *(1_700_000_000_000 + offset for offset in (0, 1, 2, 5, 30, 60)))
physical_times = st.sampled_from(PHYSICAL_TIMES)
"""Physical clock readings: the same few instants over and over, in any order."""

REMOTE_STAMPS = tuple(
    HLCStamp(wall_ms=wall_ms, counter=counter, node=node)
    for wall_ms in (*PHYSICAL_TIMES, 1_700_000_000_100, 10**15 - 2)
    for counter in (0, 1, MAX_HLC_COUNTER - 1, MAX_HLC_COUNTER)
    for node in ("peer", "cloud")
)
"""Stamps a clock may receive: at, between and beyond the physical times, some at the counter
bound (where the clock must borrow a millisecond)."""


@attrs.frozen
class ClockEvent:
    """One step applied to a hybrid logical clock in the law tests."""

    kind: Literal["now", "observe", "restart"]
    physical_ms: int
    remote: HLCStamp | None = None


def _clock_event(index: int) -> ClockEvent:
    """Decode one number into a send, receive or restart event (one draw per event)."""
    index, kind = divmod(index, 3)
    index, physical = divmod(index, len(PHYSICAL_TIMES))
    if kind == 1:
        return ClockEvent("observe", PHYSICAL_TIMES[physical], REMOTE_STAMPS[index])
    return ClockEvent("now" if kind == 0 else "restart", PHYSICAL_TIMES[physical])


clock_events = st.integers(0, 3 * len(PHYSICAL_TIMES) * len(REMOTE_STAMPS) - 1).map(_clock_event)
"""Send, receive and restart events with physical times that jump back and forth."""

ALL_PATHS: tuple[Path, ...] = tuple(
    sorted(
        (
            (first, *rest)
            for first in KEYS
            for rest in [(), *((key,) for key in KEYS), *((k1, k2) for k1 in KEYS for k2 in KEYS)]
        ),
        key=len,
    )
)
"""Every path of one to three keys over :data:`KEYS`, shortest first."""

paths = st.sampled_from(ALL_PATHS)
"""Short paths over three keys, so that one is often a prefix of another."""

scalars = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, -2.25]),
    st.text(alphabet="xyz", max_size=2),
)
leaf_values: st.SearchStrategy[JSONValue] = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.just({}),
    st.dictionaries(st.sampled_from(KEYS), scalars, min_size=1, max_size=2),
)
"""Values a write may store: scalars (1 and 1.0 both occur), arrays, objects."""


@attrs.frozen(eq=False)
class Operation:
    """One write in a log: a set (``deleted=False``) or a delete, with its stamp."""

    path: Path
    stamp: HLCStamp
    deleted: bool
    value: Any = None

    def rank(self) -> tuple[HLCStamp, Path, bool, str]:
        """Total order of a log: by stamp, then path, then the same tie-break as entries."""
        return (self.stamp, self.path, self.deleted, canonical_json(self.value))

    def apply_to(self, state: StampedState) -> StampedState:
        """Apply this operation to a stamped state."""
        if self.deleted:
            return state.delete(self.path, self.stamp)
        return state.set(self.path, self.value, self.stamp)


def nest(path: Path, value: JSONValue) -> JSONObject:
    """The merge patch ``{"a": {"b": value}}`` for ``path == ("a", "b")``."""
    patch: JSONValue = value
    for key in reversed(path):
        patch = {key: patch}
    assert isinstance(patch, dict)
    return patch


def model_apply(document: JSONObject, op: Operation) -> JSONObject:
    """One operation as AWS update semantics: ``null`` at the path, then the value if any.

    Writing ``null`` first makes a set replace an object instead of merging into it.
    """
    result = apply_merge_patch(document, nest(op.path, None))
    if not op.deleted:
        result = apply_merge_patch(result, nest(op.path, op.value))
    assert isinstance(result, dict)
    return result


def model_value(log: Iterable[Operation]) -> JSONObject:
    """What a state holding exactly the writes in ``log`` must show: every write replayed."""
    document: JSONObject = {}
    for op in sorted(log, key=Operation.rank):
        document = model_apply(document, op)
    return document


SMALL_STAMPS = tuple(
    HLCStamp(wall_ms=wall_ms, counter=counter, node=node)
    for wall_ms in range(7)
    for counter in (0, 1)
    for node in ("a", "b")
)
small_stamps = st.sampled_from(SMALL_STAMPS)
"""Stamps from a tiny space, so that writes often share a stamp (a reused stamp)."""

VALUE_POOL: tuple[JSONValue, ...] = (
    1,
    1.0,
    True,
    False,
    0,
    "",
    "x",
    -0.5,
    [],
    [1, 2],
    [True],
    {},
    {"a": 1},
    {"b": [1.0]},
    {"a": {"c": "y"}},
)
"""Values for logs: ones that compare equal in Python but differ as JSON, arrays, objects."""


def _operation(index: int) -> Operation:
    """Decode one number into a (stamp, path, delete or value) operation: one draw per write."""
    index, choice = divmod(index, len(VALUE_POOL) + 1)
    index, path = divmod(index, len(ALL_PATHS))
    stamp = SMALL_STAMPS[index]
    if choice == 0:
        return Operation(path=ALL_PATHS[path], stamp=stamp, deleted=True)
    return Operation(path=ALL_PATHS[path], stamp=stamp, deleted=False, value=VALUE_POOL[choice - 1])


operations = st.integers(0, len(SMALL_STAMPS) * len(ALL_PATHS) * (len(VALUE_POOL) + 1) - 1).map(
    _operation
)
"""One set or delete on a short path, from small pools so that writes collide; shrinks toward
deleting ``("a",)`` at the smallest stamp."""

operation_logs = st.lists(operations, max_size=8)
"""Logs of writes; the same stamp may recur with different paths, values or kinds."""


def state_of(log: list[Operation]) -> StampedState:
    """Apply a log of operations, in the given order, to an empty state."""
    state = StampedState.empty()
    for op in log:
        state = op.apply_to(state)
    return state


stamped_states = operation_logs.map(state_of)
"""States reached by applying a log of writes in arbitrary order."""
