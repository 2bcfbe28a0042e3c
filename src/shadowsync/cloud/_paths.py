"""Leaf paths of shadow sections: enumerate, look up and place values by path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shadowsync._json import JSONObject, JSONValue, copy_json
from shadowsync.strategies import MISSING, Missing

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

Path = tuple[str, ...]
Value = JSONValue | Missing


def leaf_paths(section: Mapping[str, Any], prefix: Path = ()) -> list[Path]:
    """Every leaf path of a section: objects recurse, an empty object is a leaf."""
    out: list[Path] = []
    for key, value in section.items():
        path = (*prefix, key)
        if type(value) is dict and value:
            out.extend(leaf_paths(value, path))
        else:
            out.append(path)
    return out


def overlaps(a: Path, b: Path) -> bool:
    """Whether one path is the other or lies under it."""
    return a[: len(b)] == b or b[: len(a)] == a


def place(target: JSONObject, path: Path, value: JSONValue) -> None:
    """Set ``path`` of ``target`` to ``value``, creating (or replacing non-objects with) objects."""
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if type(child) is not dict:
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def nested(entries: Iterable[tuple[Path, Value]]) -> JSONObject:
    """An object holding each present value at its path (absent values are left out)."""
    out: JSONObject = {}
    for path, value in entries:
        if value is not MISSING:
            place(out, path, copy_json(value))
    return out
