"""Paths into JSON trees, the `MISSING` sentinel, and the walks every layer shares.

A shadow section is a tree of JSON objects; a leaf is addressed by a `Path`, the tuple of keys
from the section down to it. These helpers are the one home for looking a path up, placing a
value at it, nesting a value under it and listing a tree's leaves: the merge, the rules, the
device session, the offline queue and the cloud side all use them.

```pycon
>>> from shadowsync._tree import MISSING, leaves, lookup, nest, place
>>> tree = {"hvac": {"mode": "cool", "fan": {}}}
>>> leaves(tree)
[(('hvac', 'mode'), 'cool'), (('hvac', 'fan'), {})]
>>> lookup(tree, ("hvac", "mode")), lookup(tree, ("hvac", "eco")) is MISSING
('cool', True)
>>> nest(("hvac", "mode"), "heat")
{'hvac': {'mode': 'heat'}}
>>> place(tree, ("hvac", "mode", "target"), 21); tree["hvac"]["mode"]
{'target': 21}

```
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, TypeAlias

from shadowsync._json import copy_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from shadowsync._json import JSONObject, JSONValue

__all__ = [
    "MISSING",
    "Missing",
    "Path",
    "Value",
    "copy_value",
    "holder",
    "leaf_paths",
    "leaves",
    "lookup",
    "nest",
    "nested",
    "overlaps",
    "place",
]

Path: TypeAlias = tuple[str, ...]
"""The keys from a section (or any JSON object) down to one of its values."""


class Missing(enum.Enum):
    """The type of `MISSING`."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing.MISSING
"""A value that is absent (never set, or deleted). One object, shared by every module."""

Value: TypeAlias = "JSONValue | Missing"
"""A JSON value, or `MISSING` where there is none."""


def copy_value(value: Value) -> Value:
    """A deep copy of ``value`` that shares nothing with it; `MISSING` is returned as is.

    For callers that keep what `lookup` found while the tree it came from may change (or the
    other way round): ``copy_value(lookup(tree, path))``.
    """
    return value if value is MISSING else copy_json(value)


def lookup(tree: object, path: Path) -> JSONValue | Missing:
    """The value at ``path`` of ``tree`` (not a copy), or `MISSING` where the path is absent.

    Only plain ``dict`` nodes are descended into: a scalar, an array or ``None`` on the way
    means the path is absent.
    """
    node: Any = tree
    for key in path:
        if type(node) is not dict or key not in node:
            return MISSING
        node = node[key]
    return node  # type: ignore[no-any-return]


def place(tree: JSONObject, path: Path, value: JSONValue) -> None:
    """Set ``path`` of ``tree`` to ``value`` in place, creating objects on the way.

    A non-object on the way is replaced by an object. ``value`` is stored as given (not
    copied). ``path`` must not be empty.
    """
    holder(tree, path)[path[-1]] = value


def holder(tree: JSONObject, path: Path) -> JSONObject:
    """The object of ``tree`` that holds the last key of ``path``, made on the way: a
    non-object on the way is replaced by an object. ``path`` must not be empty."""
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if type(child) is not dict:
            child = node[key] = {}
        node = child
    return node


def nest(path: Path, value: JSONValue) -> JSONObject:
    """A new object holding only ``value`` at ``path`` (``value`` itself, not a copy).

    ``path`` must not be empty.
    """
    node: JSONValue = value
    for key in reversed(path[1:]):
        node = {key: node}
    return {path[0]: node}


def nested(entries: Iterable[tuple[Path, JSONValue | Missing]]) -> JSONObject:
    """A new object holding each present value at its path; `MISSING` values are left out.

    Values are placed as given (not copied); a later entry under or at an earlier one's path
    replaces what is there.
    """
    out: JSONObject = {}
    for path, value in entries:
        if value is not MISSING:
            place(out, path, value)
    return out


def leaves(tree: Mapping[str, Any], prefix: Path = ()) -> list[tuple[Path, JSONValue]]:
    """Every leaf of ``tree`` with its path, in key order.

    Non-empty objects are descended into; anything else (a scalar, an array, ``None``, an
    empty object) is a leaf.
    """
    out: list[tuple[Path, JSONValue]] = []
    for key, value in tree.items():
        path = (*prefix, key)
        if type(value) is dict and value:
            out.extend(leaves(value, path))
        else:
            out.append((path, value))
    return out


def leaf_paths(tree: Mapping[str, Any], prefix: Path = ()) -> list[Path]:
    """The paths of `leaves`, without their values."""
    return [path for path, _ in leaves(tree, prefix)]


def overlaps(a: Path, b: Path) -> bool:
    """Whether one path is the other or lies under it."""
    return a[: len(b)] == b or b[: len(a)] == a
