"""Join: ``StampedState.join`` of two replicas of 5,000 writes each, against pycrdt.

The keys are those of 20 shadows: paths ``(thing, group, leaf)`` and ``(thing, leaf)`` over 20
thing names, 20 groups and 30 leaf names, so no path is a prefix of another. Two replicas, nodes
``device`` and ``cloud``, each write 5,000 distinct paths; 1,000 of the paths are written by
both, so the join holds 9,000. Each node's writes carry increasing hybrid logical clock stamps
spread over one minute (a counter orders writes within the same millisecond), and the two
nodes' minutes coincide, so on a path both wrote either may be later. Values are scalars.

Each replica is built untimed as ``StampedState(entries={path: StampedEntry(stamp, value)})``,
the state that 5,000 ``set(path, value, stamp)`` calls on distinct paths produce (one ``set``
copies the whole state, so 5,000 of them in a row would dominate the run).

Timed for shadowsync: ``device.join(cloud)``, and, as a separate row, ``value()`` of the joined
state. For pycrdt: both documents start from one shared document holding an empty map per
thing and per group under the root map (created once, so neither side creates a map the other
also creates); each applies its 5,000 writes as map sets in one transaction. Timed:
``apply_update`` on the cloud document of the device document's update
(``get_update(cloud.get_state())``, computed once, untimed); a fresh cloud document is built for
every call, before the batch. The second row times ``to_py()`` of the root map of the merged
document. On a path both wrote, pycrdt keeps the write of the higher client id (cloud), while
the join keeps the later stamp.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

from benchmarks.crdt import fresh_doc, leaves, nest, set_path, to_map
from benchmarks.documents import _GROUPS, _LEAVES, _changed, _scalar
from benchmarks.timing import Bench, Comparison, repeated
from shadowsync import HLCStamp, StampedEntry, StampedState, json_equal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from benchmarks.timing import Check
    from shadowsync import JSONObject, JSONValue

Path = tuple[str, ...]

LABEL = "10,000 stamped changes"
"""The report section of the join rows."""

SEED = 104_729
THINGS = tuple(f"thermostat-{index:02d}" for index in range(20))
WRITES_PER_REPLICA = 5_000
SHARED_PATHS = 1_000
START_MS = 1_700_000_000_000
WINDOW_MS = 60_000
ROOT = "things"
BASE_CLIENT, DEVICE_CLIENT, CLOUD_CLIENT = 3, 1, 2

JOIN_TIMED = "shadowsync: device.join(cloud) (two StampedState replicas of 5,000 writes each)"
VALUE_TIMED = "shadowsync: joined.value()"
APPLY_TIMED = "pycrdt: cloud_doc.apply_update(device_doc.get_update(cloud_state))"
TO_PY_TIMED = "pycrdt: merged_doc root Map .to_py()"


@dataclass(frozen=True)
class Write:
    """One ``set``: a path, a value and its stamp."""

    path: Path
    value: JSONValue
    stamp: HLCStamp


@dataclass(frozen=True)
class JoinInput:
    """The writes of both replicas and the replicas built from them."""

    device_writes: tuple[Write, ...]
    cloud_writes: tuple[Write, ...]
    device: StampedState
    cloud: StampedState
    skeleton: JSONObject
    """Every thing and group as an empty object (the pycrdt documents' shared start)."""

    @property
    def shared(self) -> frozenset[Path]:
        return frozenset(w.path for w in self.device_writes) & frozenset(
            w.path for w in self.cloud_writes
        )


def _stamps(rng: random.Random, node: str, count: int) -> list[HLCStamp]:
    """``count`` increasing stamps of one node over the window (several per ms share it)."""
    walls = sorted(START_MS + rng.randrange(WINDOW_MS) for _ in range(count))
    stamps: list[HLCStamp] = []
    for index, wall in enumerate(walls):
        counter = stamps[-1].counter + 1 if index and walls[index - 1] == wall else 0
        stamps.append(HLCStamp(wall_ms=wall, counter=counter, node=node))
    return stamps


def _writes(
    rng: random.Random, paths: Sequence[Path], node: str, other: Sequence[Write] = ()
) -> tuple[Write, ...]:
    """One node's writes; on a path in ``other`` the value always differs from that write's."""
    taken = {write.path: write.value for write in other}
    writes: list[Write] = []
    for path, stamp in zip(paths, _stamps(rng, node, len(paths)), strict=True):
        value = _scalar(rng)
        if path in taken and json_equal(value, taken[path]):
            value = _changed(rng, value)
        writes.append(Write(path=path, value=value, stamp=stamp))
    return tuple(writes)


def _replica(writes: Sequence[Write]) -> StampedState:
    return StampedState(
        entries={w.path: StampedEntry(stamp=w.stamp, value=w.value) for w in writes}
    )


def make_input() -> JoinInput:
    """The join input; always the same."""
    assert not set(_GROUPS) & set(_LEAVES), "a group name is also a leaf name"
    rng = random.Random(SEED)
    every = [
        *((thing, leaf) for thing in THINGS for leaf in _LEAVES),
        *((thing, group, leaf) for thing in THINGS for group in _GROUPS for leaf in _LEAVES),
    ]
    chosen = rng.sample(every, 2 * WRITES_PER_REPLICA - SHARED_PATHS)
    device_paths = chosen[:WRITES_PER_REPLICA]
    cloud_paths = chosen[WRITES_PER_REPLICA - SHARED_PATHS :]
    # Both nodes write the shared paths at random moments of their minute.
    rng.shuffle(device_paths)
    rng.shuffle(cloud_paths)
    device_writes = _writes(rng, device_paths, "device")
    cloud_writes = _writes(rng, cloud_paths, "cloud", device_writes)
    return JoinInput(
        device_writes=device_writes,
        cloud_writes=cloud_writes,
        device=_replica(device_writes),
        cloud=_replica(cloud_writes),
        skeleton={thing: {group: {} for group in _GROUPS} for thing in THINGS},
    )


def expected_value(data: JoinInput) -> JSONObject:
    """Last writer wins, from the writes alone: per path the value of the greatest
    ``(wall_ms, counter, node)``."""
    best: dict[Path, tuple[tuple[int, int, str], JSONValue]] = {}
    for write in (*data.device_writes, *data.cloud_writes):
        key = (write.stamp.wall_ms, write.stamp.counter, write.stamp.node)
        if write.path not in best or key > best[write.path][0]:
            best[write.path] = (key, write.value)
    return nest({path: value for path, (_, value) in best.items()})


class _Pycrdt:
    """The device document, its update for the cloud, and fresh cloud documents."""

    def __init__(self, data: JoinInput) -> None:
        self.data = data
        base: Doc[Any] = Doc(client_id=BASE_CLIENT)
        base[ROOT] = to_map(data.skeleton)
        self.base_update = base.get_update()
        device = self.doc(DEVICE_CLIENT, data.device_writes)
        self.update = device.get_update(self.cloud().get_state())

    def doc(self, client_id: int, writes: Sequence[Write]) -> Doc[Any]:
        doc = fresh_doc(client_id, self.base_update)
        root = doc.get(ROOT, type=Map)
        with doc.transaction():
            for write in writes:
                set_path(root, write.path, write.value)
        return doc

    def cloud(self) -> Doc[Any]:
        return self.doc(CLOUD_CLIENT, self.data.cloud_writes)

    def prepare(self, count: int) -> Sequence[Doc[Any]]:
        return [self.cloud() for _ in range(count)]

    def apply(self, doc: Doc[Any]) -> Doc[Any]:
        doc.apply_update(self.update)
        return doc

    def merged_root(self) -> Map[Any]:
        root: Map[Any] = self.apply(self.cloud()).get(ROOT, type=Map)
        return root


def _join(pair: tuple[StampedState, StampedState]) -> object:
    return pair[0].join(pair[1])


def _value(state: StampedState) -> object:
    return state.value()


def _to_py(root: Map[Any]) -> object:
    return root.to_py()


def _paths(paths: Sequence[Path]) -> str:
    shown = sorted(paths)[:3]
    more = "" if len(paths) <= 3 else f" (+{len(paths) - 3} more)"
    return ", ".join(".".join(path) for path in shown) + more


def pycrdt_problems(data: JoinInput, value: object) -> list[str]:
    """The merged pycrdt value must hold every write; on a path both replicas wrote, one of the
    two values (pycrdt decides by client id). Empty maps of the shared start are ignored."""
    if not isinstance(value, dict):
        return [f"pycrdt: root is {type(value).__name__}"]
    flat = {path: item for path, item in leaves(value) if item != {}}
    device = {w.path: w.value for w in data.device_writes}
    cloud = {w.path: w.value for w in data.cloud_writes}
    wrong = [
        path
        for path in set(flat) | set(device) | set(cloud)
        if not any(
            path in side and json_equal(flat.get(path), side[path]) for side in (device, cloud)
        )
    ]
    return [f"pycrdt: {len(wrong)} paths differ, at {_paths(wrong)}"] if wrong else []


def _check_ours(expected: JSONObject, value: object, label: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{label}: returned {type(value).__name__}"]
    if json_equal(value, expected):
        return []
    flat, want = dict(leaves(value)), dict(leaves(expected))
    wrong = [p for p in set(flat) | set(want) if not json_equal(flat.get(p), want.get(p))]
    return [f"{label}: {len(wrong)} paths differ from last writer wins, at {_paths(wrong)}"]


def _check_join(data: JoinInput, expected: JSONObject) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        if not isinstance(ours, StampedState):
            return [f"join returned {type(ours).__name__}"]
        assert isinstance(peer, Doc), type(peer).__name__
        return [
            *_check_ours(expected, ours.value(), "join"),
            *pycrdt_problems(data, peer.get(ROOT, type=Map).to_py()),
        ]

    return check


def _check_value(data: JoinInput, expected: JSONObject) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        return [*_check_ours(expected, ours, "value()"), *pycrdt_problems(data, peer)]

    return check


def comparisons(data: JoinInput) -> list[Comparison]:
    """The join comparisons."""
    expected = expected_value(data)
    pycrdt = _Pycrdt(data)
    return [
        Comparison(
            group="join",
            operation="StampedState.join",
            ours=Bench(JOIN_TIMED, _join, repeated((data.device, data.cloud))),
            peer=Bench(APPLY_TIMED, pycrdt.apply, pycrdt.prepare),
            peer_label="pycrdt apply_update",
            check=_check_join(data, expected),
        ),
        Comparison(
            group="join",
            operation="value() after join",
            ours=Bench(VALUE_TIMED, _value, repeated(data.device.join(data.cloud))),
            peer=Bench(TO_PY_TIMED, _to_py, repeated(pycrdt.merged_root())),
            peer_label="pycrdt Map.to_py()",
            check=_check_value(data, expected),
        ),
    ]


def notes(data: JoinInput) -> list[str]:
    """What the replicas hold, and how pycrdt settled the paths both wrote."""
    expected = dict(leaves(expected_value(data)))
    value = _Pycrdt(data).merged_root().to_py()
    assert isinstance(value, dict)
    merged = dict(leaves(value))
    cloud = {w.path: w.value for w in data.cloud_writes}
    cloud_stamps = {w.path: w.stamp for w in data.cloud_writes}
    both = data.shared
    shared = sorted(both)
    device_later = sum(w.stamp > cloud_stamps[w.path] for w in data.device_writes if w.path in both)
    cloud_kept = sum(json_equal(merged[path], cloud[path]) for path in shared)
    agree = sum(json_equal(merged[path], expected[path]) for path in shared)
    return [
        f"two StampedState replicas (device, cloud) of {WRITES_PER_REPLICA:,} writes each on "
        f"2- and 3-level paths of {len(THINGS)} things, HLC stamps over {WINDOW_MS // 1000} s;",
        f"  {len(shared):,} paths written by both ({len(expected):,} after the join), the later "
        f"stamp is device's on {device_later:,};",
        f"  pycrdt (device client {DEVICE_CLIENT}, cloud {CLOUD_CLIENT}) kept cloud's write on "
        f"{cloud_kept:,} of them, the later-stamped write on {agree:,}",
    ]
