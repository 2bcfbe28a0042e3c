"""Hypothesis strategies for the three-way merge: related sections, edits, stamps and strategies.

Keys come from a small alphabet of real shadow field names so that the two edited sides meet the
base and each other often: most generated merges have fast-forwards, identical changes and true
conflicts in the same section.
"""

from __future__ import annotations

import copy
import functools
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from hypothesis import strategies as st

from shadowsync.strategies import (
    MISSING,
    FieldMerge,
    LastWriterWins,
    ManualReview,
    Missing,
    OwnerWins,
    Priority,
    Strategy,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync import JSONObject, JSONValue

Path: TypeAlias = tuple[str, ...]
Value: TypeAlias = "JSONValue | Missing"
Side: TypeAlias = Literal["ours", "theirs"]

KEYS = ("mode", "target_c", "fan", "speed", "firmware", "version", "lights", "rgb")
"""Field names of a thermostat, a firmware block and a light fixture."""

SOURCES = ("device", "cloud", "operator")
"""Writers of shadow state."""

SECTIONS: tuple[Literal["desired", "reported"], ...] = ("desired", "reported")

scalars: st.SearchStrategy[JSONValue] = st.one_of(
    st.sampled_from((0, 1, 1.0, True, False, "", "eco", "heat", "auto", 21, 21.5, "1.4.2")),
    st.integers(min_value=-40, max_value=40),
    st.text(alphabet="abcé", max_size=3),
)
"""Scalars where ``1`` meets ``1.0`` and ``True``, and strings meet each other."""

scalar_arrays: st.SearchStrategy[JSONValue] = st.lists(scalars, max_size=3)
"""Arrays of scalars (the arrays :class:`FieldMerge` merges element-wise)."""


@functools.cache
def values(levels: int) -> st.SearchStrategy[JSONValue]:
    """Shadow values with at most ``levels`` nested objects (arrays hold scalars or objects)."""
    if levels <= 0:
        return st.one_of(scalars, scalar_arrays)
    inner = values(levels - 1)
    return st.one_of(
        scalars,
        scalar_arrays,
        st.lists(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=2), max_size=2),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=2),
    )


@functools.cache
def sections(levels: int = 2) -> st.SearchStrategy[JSONObject]:
    """A stored ``desired``/``reported`` object, with nested objects and arrays drawn often so
    that both sides edit inside the same object."""
    members = st.one_of(
        values(levels),
        st.dictionaries(st.sampled_from(KEYS), values(levels - 1), min_size=1, max_size=3),
        scalar_arrays,
    )
    return st.dictionaries(st.sampled_from(KEYS), members, max_size=4)


_keys = st.sampled_from(KEYS)
_positions = st.integers(min_value=0, max_value=8)
_moves = st.sampled_from(("keep", "keep", "drop", "replace", "inside", "inside"))


@functools.cache
def _additions(levels: int) -> st.SearchStrategy[JSONObject]:
    return st.dictionaries(_keys, values(levels), max_size=2)


@st.composite
def _edited_array(draw: st.DrawFn, items: list[JSONValue]) -> list[JSONValue]:
    out = list(items)
    drop: bool = draw(st.booleans())
    if out and drop:
        out.pop(draw(_positions) % len(out))
    if draw(st.booleans()):
        out.insert(draw(_positions) % (len(out) + 1), draw(scalars))
    return out


@st.composite
def edited(draw: st.DrawFn, section: JSONObject, levels: int = 2) -> JSONObject:
    """An edited copy of ``section``: keys kept, dropped, replaced or changed inside, and added."""
    out: JSONObject = {}
    for key, value in section.items():
        move = draw(_moves)
        if move == "keep":
            out[key] = copy.deepcopy(value)
        elif move == "replace":
            out[key] = draw(values(levels))
        elif move == "inside" and isinstance(value, dict):
            out[key] = draw(edited(value, max(levels - 1, 0)))
        elif move == "inside" and isinstance(value, list):
            out[key] = draw(_edited_array(value))
        elif move == "inside":
            out[key] = draw(values(levels))
    for key, value in draw(_additions(levels)).items():
        out.setdefault(key, value)
    return out


@st.composite
def merge_triples(draw: st.DrawFn) -> tuple[JSONObject, JSONObject, JSONObject]:
    """``(base, ours, theirs)``: two independently edited copies of one base section.

    Sometimes ``theirs`` is an edit of ``ours`` instead, so identical changes on both sides are
    common too. The three never share a container.
    """
    base = draw(sections())
    ours = draw(edited(base))
    theirs = draw(edited(ours if draw(_positions) < 2 else base))
    return copy.deepcopy(base), copy.deepcopy(ours), copy.deepcopy(theirs)


_stamps = st.integers(min_value=0, max_value=12)


@st.composite
def top_level_stamps(
    draw: st.DrawFn, *sections_: Mapping[str, Any], distinct_from: Mapping[Path, int] | None = None
) -> dict[Path, int]:
    """A stamp for every top-level key of the given sections; never equal to ``distinct_from``'s
    stamp for the same key when that is given."""
    keys = sorted({key for section in sections_ for key in section})
    stamps: dict[Path, int] = {}
    for key in keys:
        avoid = None if distinct_from is None else distinct_from.get((key,))
        stamp = draw(_stamps)
        stamps[(key,)] = stamp + 13 if stamp == avoid else stamp
    return stamps


last_writer_wins: st.SearchStrategy[LastWriterWins] = st.builds(
    LastWriterWins, prefer=st.sampled_from((None, "ours", "theirs"))
)
"""Last-writer-wins, deterministic (``prefer=None``) or preferring one side without stamps."""

commutative_last_writer_wins: st.SearchStrategy[LastWriterWins] = st.just(LastWriterWins())

field_merge: st.SearchStrategy[FieldMerge] = st.builds(FieldMerge, fallback=last_writer_wins)

manual_review: st.SearchStrategy[ManualReview] = st.builds(
    ManualReview, keep=st.sampled_from(("ours", "theirs"))
)


distinct_priorities: st.SearchStrategy[dict[str, int]] = st.permutations(
    range(1, len(SOURCES) + 1)
).map(lambda ranks: dict(zip(SOURCES, ranks, strict=False)))
"""A different priority for every source."""

PATTERNS = ("firmware.**", "firmware.version", "lights.*", "*", "**", "mode", "fan.speed")
"""Path patterns for per-field overrides."""

_patterns = st.sampled_from(PATTERNS)
_some_patterns = st.lists(_patterns, unique=True, max_size=2)
_priorities = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 3), max_size=3)
_overrides = st.dictionaries(_patterns, _priorities, max_size=2)


@st.composite
def priority_strategies(draw: st.DrawFn, *, distinct: bool) -> Priority:
    """A :class:`Priority`, with per-field overrides.

    With ``distinct``, every source has a different priority everywhere (so the fallback is never
    used between two different sources); without, overrides may leave sources out or tie them.
    """
    if distinct:
        sources = draw(distinct_priorities)
        fields = {pattern: draw(distinct_priorities) for pattern in draw(_some_patterns)}
    else:
        sources = draw(_priorities)
        fields = draw(_overrides)
    return Priority(sources=sources, fields=fields, fallback=draw(last_writer_wins))


def commutative_strategies() -> st.SearchStrategy[Strategy]:
    """Built-in strategies that claim ``commutative``: every fallback on the way is too."""
    leaf = commutative_last_writer_wins
    priority = st.builds(
        Priority,
        sources=_priorities,
        fields=_overrides,
        fallback=st.one_of(leaf, st.builds(OwnerWins, fallback=leaf)),
    )
    return st.one_of(
        leaf,
        st.builds(OwnerWins, fallback=st.one_of(leaf, priority)),
        priority,
    )


def builtin_strategies() -> st.SearchStrategy[Strategy]:
    """Every built-in strategy, with a deterministic fallback where one applies."""
    return st.one_of(
        last_writer_wins,
        st.builds(OwnerWins, fallback=last_writer_wins),
        priority_strategies(distinct=False),
        field_merge,
        manual_review,
    )


def two_sources(pool: tuple[str, ...] = SOURCES) -> st.SearchStrategy[tuple[str, str]]:
    """``(ours_source, theirs_source)``, different from each other."""
    return st.permutations(pool).map(lambda order: (order[0], order[1]))


# --------------------------------------------------------------------------------------------
# Disjoint edits
# --------------------------------------------------------------------------------------------


def leaf_paths(section: Mapping[str, Any], prefix: Path = ()) -> list[Path]:
    """Every path to a non-object value or an empty object."""
    out: list[Path] = []
    for key, value in section.items():
        if isinstance(value, dict) and value:
            out.extend(leaf_paths(value, (*prefix, key)))
        else:
            out.append((*prefix, key))
    return out


def leaf_values(section: Mapping[str, Any]) -> dict[Path, Any]:
    """Every non-object value and empty object, by path."""
    return {path: at(section, path) for path in leaf_paths(section)}


def _related(a: Path, b: Path) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def with_edit(section: JSONObject, path: Path, value: Value) -> JSONObject:
    """A copy of ``section`` with ``path`` set to ``value`` (objects created or replacing
    non-objects on the way), or deleted when ``value`` is MISSING (a no-op when absent)."""
    out = copy.deepcopy(section)
    node = out
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if value is MISSING:
                return out
            child = {}
            node[key] = child
        node = child
    if value is MISSING:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)
    return out


def with_edits(section: JSONObject, edits: Mapping[Path, Value]) -> JSONObject:
    """``section`` with every edit applied in order."""
    for path, value in edits.items():
        section = with_edit(section, path, value)
    return section


Edits: TypeAlias = dict[Path, Value]

_fresh_paths: st.SearchStrategy[Path] = st.lists(_keys, min_size=1, max_size=3).map(tuple)
_edit_values: st.SearchStrategy[Value] = st.one_of(st.just(MISSING), values(1))


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[JSONObject, Edits, Edits]:
    """A base and two sets of edits (sets and deletions) whose paths are pairwise unrelated: no
    path equals another or lies under it, so the two sides never touch the same value."""
    base = draw(sections())
    existing = leaf_paths(base)
    candidate = st.one_of(st.sampled_from(existing), _fresh_paths) if existing else _fresh_paths
    paths: list[Path] = []
    for path in draw(st.lists(candidate, max_size=6)):
        if not any(_related(path, other) for other in paths):
            paths.append(path)
    ours: Edits = {}
    theirs: Edits = {}
    for path in paths:
        value: Value = draw(_edit_values)
        side = ours if draw(st.booleans()) else theirs
        side[path] = value
    return base, ours, theirs


# --------------------------------------------------------------------------------------------
# Oracles
# --------------------------------------------------------------------------------------------


def value_form(value: Any) -> Any:
    """A hashable form of a JSON value under JSON equality: numbers by value (``1`` equals
    ``1.0``), booleans apart from numbers, arrays in order, objects ignoring key order."""
    if isinstance(value, dict):
        return ("object", frozenset((key, value_form(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(value_form(item) for item in value))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        return ("number", Fraction(value))
    if value is MISSING:
        return ("missing", None)
    return (type(value).__name__, value)


def same_value(a: object, b: object) -> bool:
    """JSON equality by value; MISSING equals only itself."""
    return bool(value_form(a) == value_form(b))


def at(section: Mapping[str, Any], path: Path) -> Value:
    """The value at ``path`` (each step a key of an object), or MISSING."""
    node: Any = section
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node  # type: ignore[no-any-return]


def nested(levels: int, leaf: JSONValue) -> JSONValue:
    """``levels`` nested objects ``{"fan": {"fan": ... leaf}}``, built without recursion."""
    value: JSONValue = leaf
    for _ in range(levels):
        value = {"fan": value}
    return value
