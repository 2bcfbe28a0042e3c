"""Patches between two shadow states: RFC 7396 JSON Merge Patch and RFC 6902 JSON Patch."""

from __future__ import annotations

import marshal
from collections.abc import Mapping, Sequence
from math import copysign
from typing import Any

import jsonpatch
import jsonpointer

from shadowsync._json import JSONValue, copy_json, json_equal, pickled_alike
from shadowsync.errors import PatchError

_PATCH_ERRORS = (
    jsonpatch.JsonPatchException,
    jsonpointer.JsonPointerException,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
)


def make_merge_patch(source: JSONValue, target: JSONValue) -> JSONValue:
    """The RFC 7396 merge patch that turns ``source`` into ``target``.

    Shadow updates are merge patches too (``null`` deletes, objects merge, the rest replaces),
    so the result restricted to ``desired``/``reported`` is a valid update state.
    Merge patches cannot carry ``null`` as a value; shadow states never hold one.

    ```pycon
    >>> make_merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 5}, "e": [1]})
    {'b': {'c': 5, 'd': None}, 'e': [1]}

    ```
    """
    try:
        if type(source) is not dict or type(target) is not dict:
            return copy_json(target)
        return _merge_patch(source, target)
    except RecursionError:
        raise PatchError("values nest too deeply to diff") from None


def _merge_patch(source: dict[str, JSONValue], target: dict[str, JSONValue]) -> JSONValue:
    patch: dict[str, JSONValue] = {}
    for key, value in target.items():
        if key not in source:
            patch[key] = copy_json(value)
            continue
        old = source[key]
        if type(old) is dict and type(value) is dict:
            sub = _merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif type(value) is dict:
            # A merge patch merges objects into objects; replacing a scalar needs the whole object.
            patch[key] = copy_json(value)
        elif not json_equal(old, value):
            patch[key] = copy_json(value)
    for key in source:
        if key not in target:
            patch[key] = None
    return patch


def apply_merge_patch(target: JSONValue, patch: JSONValue) -> JSONValue:
    """Apply an RFC 7396 merge patch, returning a new value (the inputs are not changed).

    ```pycon
    >>> apply_merge_patch({"a": 1, "b": 2}, {"b": None, "c": {"d": 4}})
    {'a': 1, 'c': {'d': 4}}

    ```
    """
    try:
        return _apply_merge(copy_json(target), patch)
    except RecursionError:
        raise PatchError("merge patch nests too deeply to apply") from None


def _apply_merge(target: JSONValue, patch: JSONValue) -> JSONValue:
    if not isinstance(patch, Mapping):
        return copy_json(patch)
    result: dict[str, JSONValue] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge(result.get(key), value)
    return result


def make_json_patch(source: JSONValue, target: JSONValue) -> list[dict[str, Any]]:
    """The RFC 6902 JSON Patch (a list of operations) that turns ``source`` into ``target``.

    Objects are compared key by key and equal members are skipped without being diffed; where
    two arrays differ, jsonpatch works out the element-level operations. The operations share
    nothing with ``source`` or ``target``.

    ```pycon
    >>> make_json_patch({"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 2]})
    [{'op': 'replace', 'path': '/a', 'value': 2}]

    ```
    """
    operations: list[dict[str, Any]] = []
    try:
        # Most members of two states are equal: the first walk sets equal containers aside
        # and checks them all at once with `pickled_alike` (`_identical`'s test, in one call).
        # Only when one turns out to differ in type or key order is the walk done again,
        # checking each on the spot; the operations are the same either way.
        ours: list[Any] = []
        theirs: list[Any] = []
        _diff(source, target, "", operations, ours, theirs)
        if ours and not pickled_alike(ours, theirs):
            operations = []
            _diff(source, target, "", operations, None, None)
    except RecursionError:
        raise PatchError("values nest too deeply to diff") from None
    except _PATCH_ERRORS as exc:
        raise PatchError(f"cannot diff these values: {exc}") from None
    return operations


def _identical(a: Any, b: Any) -> bool:
    """Equal with the same JSON types throughout (``1`` and ``1.0`` differ here, and so do
    ``-0.0`` and ``0.0``)."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b) or a != b:
        return False
    if kind is not dict and kind is not list:
        return kind is not float or bool(a) or _same_zero(a, b)
    try:
        return marshal.dumps(a, 2) == marshal.dumps(b, 2)
    except ValueError:  # too deep to marshal: let jsonpatch decide
        return not jsonpatch.make_patch(a, b).patch


def _same_zero(a: float, b: float) -> bool:
    """Whether two zeros have the same sign (``-0.0`` is written ``-0.0`` in JSON)."""
    return copysign(1.0, a) == copysign(1.0, b)


def _diff(
    source: Any,
    target: Any,
    path: str,
    out: list[dict[str, Any]],
    ours: list[Any] | None,
    theirs: list[Any] | None,
) -> None:
    """Append the operations from ``source`` to ``target`` at ``path`` to ``out``.

    With lists ``ours`` and ``theirs``, equal containers are set aside there unwalked (see
    `make_json_patch`); without them each is checked with `_identical` on the spot.
    """
    if source is target:
        return
    kind = type(source)
    if kind is type(target) and source == target:
        if kind is dict or kind is list:
            if ours is not None and theirs is not None:
                ours.append(source)
                theirs.append(target)
                return
            if _identical(source, target):
                return
        elif kind is not float or source or _same_zero(source, target):
            return
        # Else -0.0 and 0.0: equal numbers, but not the same JSON (a record keeps it).
    _differ(source, target, path, out, ours, theirs)


def _differ(
    source: Any,
    target: Any,
    path: str,
    out: list[dict[str, Any]],
    ours: list[Any] | None,
    theirs: list[Any] | None,
) -> None:
    """`_diff` of two values already known to differ (in value, type or exact form)."""
    if type(source) is dict and type(target) is dict:
        # Members are compared here, so that a scalar equal on both sides costs no call, and
        # a member found to differ is not compared again.
        for key, value in source.items():
            if key not in target:
                out.append({"op": "remove", "path": path + "/" + _escape(key)})
                continue
            other = target[key]
            if value is other:
                continue
            member = type(value)
            if member is type(other) and value == other:
                if member is dict or member is list:
                    if ours is not None and theirs is not None:
                        ours.append(value)  # as `_diff` itself would, without the call
                        theirs.append(other)
                        continue
                    if _identical(value, other):
                        continue
                elif member is not float or value or _same_zero(value, other):
                    continue  # the same scalar: identical
                # Else -0.0 and 0.0: equal numbers, but not the same JSON (a record keeps it).
            _differ(value, other, path + "/" + _escape(key), out, ours, theirs)
        for key, value in target.items():
            if key not in source:
                out.append(
                    {"op": "add", "path": path + "/" + _escape(key), "value": copy_json(value)}
                )
        return
    if type(source) is not list or type(target) is not list:
        out.append({"op": "replace", "path": path, "value": copy_json(target)})
        return
    for operation in jsonpatch.make_patch(source, target).patch:
        operation["path"] = path + operation["path"]
        if "from" in operation:
            operation["from"] = path + operation["from"]
        if "value" in operation:
            # jsonpatch does not promise a copy of the target's value: the patch shares nothing.
            operation["value"] = copy_json(operation["value"])
        out.append(operation)


def _escape(key: str) -> str:
    """``key`` as one RFC 6901 reference token."""
    if "~" not in key and "/" not in key:
        return key  # the usual key: nothing to escape
    return key.replace("~", "~0").replace("/", "~1")


def apply_json_patch(target: JSONValue, patch: Sequence[Mapping[str, Any]]) -> JSONValue:
    """Apply an RFC 6902 JSON Patch, returning a new value (``target`` is not changed).

    Raises `PatchError` when an operation is malformed or a ``test``
    fails.

    ```pycon
    >>> apply_json_patch({"a": 1}, [{"op": "add", "path": "/b", "value": [2]}])
    {'a': 1, 'b': [2]}

    ```
    """
    operations: object = patch
    if not isinstance(operations, Sequence) or isinstance(operations, (str, bytes)):
        raise PatchError(f"a JSON Patch is a list of operations, got {type(patch).__name__}")
    try:
        result: JSONValue = jsonpatch.apply_patch(
            copy_json(target), [dict(op) for op in patch], in_place=True
        )
    except RecursionError:
        raise PatchError("JSON Patch nests too deeply to apply") from None
    except _PATCH_ERRORS as exc:
        raise PatchError(f"cannot apply JSON Patch: {exc}") from None
    return result
