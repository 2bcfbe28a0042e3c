"""Three-way merge: ``shadowsync.merge`` against ``compute_delta`` and a pycrdt exchange.

The base is a case's ``desired`` section. ``ours`` and ``theirs`` each change about 10% of its
leaves (arrays count as one leaf) with a seeded generator; about a fifth of each side's edits
are on leaves the other side also changed, to a different value (truly concurrent), the rest
on leaves only that side changed. Each side has an integer stamp for every leaf: the base's
leaves carry the base stamp, its own edits later ones (odd for one side, even for the other, so
no two are equal), and ``LastWriterWins`` keeps the later-stamped value of a concurrent leaf.

Timed for shadowsync: ``merge(base, ours, theirs, policy=LastWriterWins(), ours_stamps=...,
theirs_stamps=...)``. Timed against it:

- ``compute_delta(ours, theirs)`` on the same two documents: one walk of both, the least work
  that finds what differs between the two sides;
- pycrdt: two documents that hold the base as nested maps (arrays as plain values, not
  ``pycrdt.Array``), each with its side's edits applied as map sets in one transaction, exchange
  what the other lacks (``get_state``, ``get_update(state)`` of each, ``apply_update`` of the
  other's, both ways). Only the exchange is timed; the documents are built and edited afresh
  for every call, before the batch.

On a concurrent leaf pycrdt keeps the value of the document with the higher client id, while
shadowsync keeps the later stamp; the checks accept either value there from pycrdt.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from benchmarks.crdt import exchange, fresh_doc, leaves, set_path, to_map
from benchmarks.documents import _changed, _get, _leaf_paths, _set
from benchmarks.timing import Bench, Comparison, repeated
from shadowsync import ChangeClass, MergeResult, compute_delta, json_equal, merge
from shadowsync.strategies import LastWriterWins

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from benchmarks.documents import Case
    from benchmarks.timing import Check
    from shadowsync import JSONObject, JSONValue

Path = tuple[str, ...]

EDITED_FRACTION = 0.10
"""Share of the base's leaves each side changes."""

CONCURRENT_SHARE = 0.20
"""Share of each side's edits that are on leaves the other side changed too."""

BASE_STAMP = 1_700_000_000_000
"""The stamp of every leaf neither side changed."""

ROOT = "desired"
"""Name of the root map in the pycrdt documents."""

BASE_CLIENT, OURS_CLIENT, THEIRS_CLIENT = 3, 1, 2
"""pycrdt client ids: the document that wrote the base, ours, theirs."""

OPERATION = "merge (LastWriterWins)"
OURS_TIMED = (
    "shadowsync.merge(base, ours, theirs, policy=LastWriterWins(), ours_stamps=...,"
    " theirs_stamps=...)"
)
DELTA_TIMED = "shadowsync.compute_delta(ours, theirs) on the merge inputs"
PYCRDT_TIMED = (
    "pycrdt: get_state() of both docs, get_update(other's state) of each,"
    " apply_update(other's update) on each"
)


@dataclass(frozen=True)
class MergeInput:
    """A base, two edited copies, their stamps, and what the merge must produce."""

    base: JSONObject
    ours: JSONObject
    theirs: JSONObject
    ours_stamps: dict[Path, int]
    theirs_stamps: dict[Path, int]
    ours_edits: dict[Path, JSONValue]
    theirs_edits: dict[Path, JSONValue]
    concurrent: frozenset[Path]
    expected: JSONObject
    """The base with every edit of one side, and the later-stamped value of each concurrent
    leaf (computed here, not by shadowsync)."""
    leaves: int

    @property
    def edited(self) -> frozenset[Path]:
        return frozenset(self.ours_edits) | frozenset(self.theirs_edits)

    @property
    def ours_win(self) -> int:
        """Concurrent leaves whose later stamp is ours."""
        return sum(self.ours_stamps[path] > self.theirs_stamps[path] for path in self.concurrent)


def _different(rng: random.Random, value: JSONValue, *avoid: JSONValue) -> JSONValue | None:
    """A changed ``value`` (same JSON type) that equals none of ``avoid``, or ``None``."""
    for _ in range(50):
        candidate = _changed(rng, value)
        if not any(json_equal(candidate, other) for other in (value, *avoid)):
            return candidate
    return None


def make_input(case: Case) -> MergeInput:
    """The merge input derived from ``case.desired``; the same case gives the same input."""
    rng = random.Random(case.seed + 1_000_003)
    base = case.desired
    paths = [path for path in _leaf_paths(base) if not isinstance(_get(base, path), dict)]
    per_side = max(1, round(len(paths) * EDITED_FRACTION))
    wanted = max(1, round(per_side * CONCURRENT_SHARE))
    ours_edits: dict[Path, JSONValue] = {}
    theirs_edits: dict[Path, JSONValue] = {}
    # Concurrent leaves need three distinct values (base, ours, theirs): never booleans.
    for path in rng.sample(paths, len(paths)):
        if len(ours_edits) == wanted:
            break
        value = _get(base, path)
        if isinstance(value, bool):
            continue
        mine = _different(rng, value)
        other = None if mine is None else _different(rng, value, mine)
        if mine is not None and other is not None:
            ours_edits[path], theirs_edits[path] = mine, other
    concurrent = frozenset(ours_edits)
    free = [path for path in paths if path not in concurrent]
    alone = rng.sample(free, min(len(free), 2 * (per_side - len(concurrent))))
    for index, path in enumerate(alone):
        side = ours_edits if index % 2 == 0 else theirs_edits
        changed = _different(rng, _get(base, path))
        if changed is not None:
            side[path] = changed
    ours_stamps = _stamps(rng, base, ours_edits, parity=0)
    theirs_stamps = _stamps(rng, base, theirs_edits, parity=1)
    expected = copy.deepcopy(base)
    for path in (*ours_edits, *theirs_edits):
        if path not in concurrent:
            _set(expected, path, ours_edits.get(path, theirs_edits.get(path)))
        elif ours_stamps[path] > theirs_stamps[path]:
            _set(expected, path, ours_edits[path])
        else:
            _set(expected, path, theirs_edits[path])
    return MergeInput(
        base=base,
        ours=_edited(base, ours_edits),
        theirs=_edited(base, theirs_edits),
        ours_stamps=ours_stamps,
        theirs_stamps=theirs_stamps,
        ours_edits=ours_edits,
        theirs_edits=theirs_edits,
        concurrent=concurrent,
        expected=expected,
        leaves=len(paths),
    )


def _edited(base: JSONObject, edits: Mapping[Path, JSONValue]) -> JSONObject:
    out = copy.deepcopy(base)
    for path, value in edits.items():
        _set(out, path, copy.deepcopy(value))
    return out


def _stamps(
    rng: random.Random, base: JSONObject, edits: Mapping[Path, JSONValue], *, parity: int
) -> dict[Path, int]:
    stamps = dict.fromkeys(_leaf_paths(base), BASE_STAMP)
    for path in edits:
        stamps[path] = BASE_STAMP + 2 * rng.randint(1, 50_000) + parity
    return stamps


class _Pycrdt:
    """Fresh pycrdt document pairs: the base from one update, then each side's edits."""

    def __init__(self, data: MergeInput) -> None:
        self.data = data
        base: Doc[Any] = Doc(client_id=BASE_CLIENT)
        base[ROOT] = to_map(data.base)
        self.base_update = base.get_update()

    def side(self, client_id: int, edits: Mapping[Path, JSONValue]) -> Doc[Any]:
        doc = fresh_doc(client_id, self.base_update)
        root = doc.get(ROOT, type=Map)
        with doc.transaction():
            for path, value in edits.items():
                set_path(root, path, copy.deepcopy(value))
        return doc

    def prepare(self, count: int) -> Sequence[tuple[Doc[Any], Doc[Any]]]:
        return [
            (
                self.side(OURS_CLIENT, self.data.ours_edits),
                self.side(THEIRS_CLIENT, self.data.theirs_edits),
            )
            for _ in range(count)
        ]


def _exchange(pair: tuple[Doc[Any], Doc[Any]]) -> object:
    exchange(*pair)
    return pair


def value_of(doc: Doc[Any]) -> JSONObject:
    """The plain JSON value of a document's root map."""
    value: JSONObject = doc.get(ROOT, type=Map).to_py()
    return value


def _merge(data: MergeInput) -> object:
    return merge(
        data.base,
        data.ours,
        data.theirs,
        policy=LastWriterWins(),
        ours_stamps=data.ours_stamps,
        theirs_stamps=data.theirs_stamps,
    )


def _delta(data: MergeInput) -> object:
    return compute_delta(data.ours, data.theirs)


def _paths(paths: Sequence[Path] | frozenset[Path]) -> str:
    shown = sorted(paths)[:3]
    more = "" if len(paths) <= 3 else f" (+{len(paths) - 3} more)"
    return ", ".join(".".join(path) for path in shown) + more


def _missing_edits(label: str, value: JSONObject, data: MergeInput) -> list[str]:
    """Every non-concurrent edit of both sides must be in ``value``."""
    flat = dict(leaves(value))
    missing = [
        path
        for edits in (data.ours_edits, data.theirs_edits)
        for path, edit in edits.items()
        if path not in data.concurrent and not json_equal(flat.get(path), edit)
    ]
    return [f"{label}: non-concurrent edits missing at {_paths(missing)}"] if missing else []


def _check_ours(data: MergeInput, result: object) -> list[str]:
    if not isinstance(result, MergeResult):
        return [f"merge returned {type(result).__name__}"]
    problems = _missing_edits("merge", result.merged, data)
    if not json_equal(result.merged, data.expected):
        flat, want = dict(leaves(result.merged)), dict(leaves(data.expected))
        wrong = [p for p in set(flat) | set(want) if not json_equal(flat.get(p), want.get(p))]
        problems.append(f"merge: differs from the stamp winners at {_paths(wrong)}")
    # A change on one side only is recorded at the highest object the other side left alone,
    # so each recorded path must hold an edit, and each edit must be under a recorded path.
    changed = {change.path for change in result.changes}
    uncovered = [p for p in data.edited if not any(p[: len(c)] == c for c in changed)]
    empty = [c for c in changed if not any(p[: len(c)] == c for p in data.edited)]
    if uncovered or empty:
        problems.append(
            f"merge: changes not recorded at {_paths(uncovered)}; "
            f"recorded without an edit at {_paths(empty)}"
        )
    concurrent = {c.path for c in result.changes if c.change is ChangeClass.CONCURRENT}
    if concurrent != data.concurrent or len(result.report) != len(data.concurrent):
        problems.append(
            f"merge: {len(concurrent)} concurrent paths and {len(result.report)} conflicts, "
            f"expected {len(data.concurrent)}"
        )
    return problems


def _check_delta(data: MergeInput) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        problems = _check_ours(data, ours)
        if not isinstance(peer, dict):
            return [*problems, f"compute_delta returned {type(peer).__name__}"]
        found = frozenset(path for path, _ in leaves(peer))
        if found != data.edited:
            problems.append(f"compute_delta: paths differ at {_paths(found ^ data.edited)}")
        return problems

    return check


def pycrdt_problems(data: MergeInput, value: JSONObject) -> list[str]:
    """Disagreements of a merged pycrdt value with the merge's expected value.

    Outside the concurrent leaves it must equal the expected value; on a concurrent leaf it
    must hold one of the two sides' values (pycrdt decides by client id, not by stamp).
    """
    problems = _missing_edits("pycrdt", value, data)
    flat, want = dict(leaves(value)), dict(leaves(data.expected))
    wrong = [
        path
        for path in set(flat) | set(want)
        if not (
            json_equal(flat.get(path), data.ours_edits[path])
            or json_equal(flat.get(path), data.theirs_edits[path])
            if path in data.concurrent
            else json_equal(flat.get(path), want.get(path))
        )
    ]
    if wrong:
        problems.append(f"pycrdt: differs from the merge at {_paths(wrong)}")
    return problems


def _check_pycrdt(data: MergeInput) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        problems = _check_ours(data, ours)
        assert isinstance(peer, tuple), type(peer).__name__
        first, second = value_of(peer[0]), value_of(peer[1])
        if not json_equal(first, second):
            problems.append("pycrdt: the two documents did not converge")
        return problems + pycrdt_problems(data, first)

    return check


def comparisons(case: Case) -> list[Comparison]:
    """The merge comparisons for one case."""
    data = make_input(case)
    ours = Bench(OURS_TIMED, _merge, repeated(data))
    return [
        Comparison(
            group="merge",
            operation=OPERATION,
            ours=ours,
            peer=Bench(DELTA_TIMED, _delta, repeated(data)),
            peer_label="compute_delta",
            check=_check_delta(data),
        ),
        Comparison(
            group="merge",
            operation=OPERATION,
            ours=ours,
            peer=Bench(PYCRDT_TIMED, _exchange, _Pycrdt(data).prepare),
            peer_label="pycrdt exchange",
            check=_check_pycrdt(data),
        ),
    ]


def notes(case: Case) -> list[str]:
    """What the merge input holds, and how pycrdt settled the concurrent leaves."""
    data = make_input(case)
    first, second = _Pycrdt(data).prepare(1)[0]
    exchange(first, second)
    merged = dict(leaves(value_of(first)))
    theirs_kept = sum(json_equal(merged[p], data.theirs_edits[p]) for p in data.concurrent)
    agree = sum(json_equal(merged[p], _get(data.expected, p)) for p in sorted(data.concurrent))
    count = len(data.concurrent)
    return [
        f"merge: base = desired ({data.leaves} leaves); ours edits {len(data.ours_edits)}, "
        f"theirs {len(data.theirs_edits)}, {count} of them concurrent (later stamp: ours on "
        f"{data.ours_win}, theirs on {count - data.ours_win});",
        f"  pycrdt (ours client {OURS_CLIENT}, theirs {THEIRS_CLIENT}) kept theirs on "
        f"{theirs_kept} of {count}, the later-stamped value on {agree}",
    ]
