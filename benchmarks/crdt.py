"""pycrdt helpers shared by the merge and join benchmarks.

A JSON object is held in a pycrdt document as nested ``pycrdt.Map`` objects, one per JSON
object. Arrays are not ``pycrdt.Array`` objects: they are stored as plain values (pycrdt's
``Any``), so an array is replaced whole, as an AWS shadow update replaces it. pycrdt keeps every
number as a float (``1`` reads back as ``1.0``); :func:`shadowsync.json_equal` compares numbers
by value, so the checks are not affected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pycrdt import Doc, Map

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from shadowsync import JSONObject, JSONValue

Path = tuple[str, ...]


def to_map(value: Mapping[str, Any]) -> Map[Any]:
    """A prelim ``Map`` holding ``value``: objects become nested maps, the rest plain values."""
    return Map(
        {key: to_map(item) if isinstance(item, dict) else item for key, item in value.items()}
    )


def set_path(root: Map[Any], path: Path, value: JSONValue) -> None:
    """Set ``path`` in ``root``; every map on the way must exist already."""
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def fresh_doc(client_id: int, base_update: bytes) -> Doc[Any]:
    """A new document with the given client id, holding the state of ``base_update``."""
    doc: Doc[Any] = Doc(client_id=client_id)
    doc.apply_update(base_update)
    return doc


def exchange(first: Doc[Any], second: Doc[Any]) -> None:
    """Each document sends the other what it lacks (by state vector); both apply it."""
    first_state, second_state = first.get_state(), second.get_state()
    to_second = first.get_update(second_state)
    to_first = second.get_update(first_state)
    second.apply_update(to_second)
    first.apply_update(to_first)


def leaves(value: JSONObject, prefix: Path = ()) -> Iterator[tuple[Path, JSONValue]]:
    """Every leaf of ``value`` with its path: scalars, arrays (whole) and empty objects."""
    for key, item in value.items():
        if isinstance(item, dict) and item:
            yield from leaves(item, (*prefix, key))
        else:
            yield (*prefix, key), item


def nest(flat: Mapping[Path, JSONValue]) -> JSONObject:
    """The JSON object holding each value of ``flat`` at its path."""
    out: JSONObject = {}
    for path, value in flat.items():
        node = out
        for key in path[:-1]:
            child = node.setdefault(key, {})
            assert isinstance(child, dict)
            node = child
        node[path[-1]] = value
    return out
