"""The AWS delta rules: which desired values the device has not yet reported."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from shadowsync._json import JSONObject, JSONValue, json_equal
from shadowsync.errors import InvalidDocumentError


def compute_delta(
    desired: Mapping[str, Any] | None, reported: Mapping[str, Any] | None
) -> JSONObject | None:
    """Return the AWS delta of ``desired`` against ``reported``, or ``None`` when there is none.

    Every desired key that is absent from reported, or whose value differs, is in the delta;
    nested objects recurse and keep only the differing leaves with their full path; arrays and
    values of different JSON types are compared whole and the desired value is copied in.
    Keys only in reported never appear. Numbers compare by value (``1 == 1.0``), booleans are
    not numbers.

    ```pycon
    >>> compute_delta({"color": "red", "lights": {"r": 1, "g": 255}},
    ...               {"color": "red", "lights": {"r": 1, "g": 0}, "extra": True})
    {'lights': {'g': 255}}
    >>> compute_delta({"on": True}, {"on": True}) is None
    True

    ```

    The result shares nested values with ``desired``; copy it before mutating it.
    """
    if not desired:
        if desired is None or isinstance(desired, Mapping):
            return None
        raise InvalidDocumentError(f"desired must be an object, got {type(desired).__name__}")
    if not isinstance(desired, Mapping):
        raise InvalidDocumentError(f"desired must be an object, got {type(desired).__name__}")
    if reported is None:
        reported = {}
    elif not isinstance(reported, Mapping):
        raise InvalidDocumentError(f"reported must be an object, got {type(reported).__name__}")
    try:
        pending: list[Any] = []
        delta = _delta_object(desired, reported, pending)
        if pending and not _all_exact(pending):
            # Some subtree equal by Python's == holds a boolean where the other holds a number
            # (or 1 where the other holds 1.0): compare again, exactly, subtree by subtree.
            delta = _delta_object(desired, reported, None)
    except RecursionError:
        raise InvalidDocumentError("desired and reported nest too deeply to compare") from None
    return delta or None


def _all_exact(pending: list[Any]) -> bool:
    """Whether every pair of equal containers is identical JSON, in one C pass over all of them.

    Pickles of equal values differ where their types do (``True`` and ``1``, ``1`` and
    ``1.0``), where their key order does, or where one shares an object the other repeats; any
    difference sends the caller to the exact comparison, which tells JSON-equal from
    JSON-different.
    """
    try:
        return pickle.dumps(pending[0::2], 5) == pickle.dumps(pending[1::2], 5)
    except Exception:  # not picklable: let the exact comparison decide
        return False


_ABSENT = object()


def _delta_object(
    desired: Mapping[str, Any], reported: Mapping[str, Any], pending: list[Any] | None
) -> JSONObject:
    """The delta of two objects, by Python's ``==`` first.

    Python equality is necessary for JSON equality but not sufficient (``True == 1``,
    ``[True] == [1]``). With a ``pending`` list, equal containers (most of a document) go there
    to be checked all at once by `_all_exact`; without one, each is compared exactly here.
    """
    out: JSONObject = {}
    get = reported.get
    for key, want in desired.items():
        have = get(key, _ABSENT)
        if want == have:
            if want is have:
                continue
            kind = type(want)
            if kind is type(have):
                if kind is not dict and kind is not list:
                    continue
                if pending is not None:
                    pending.append(want)
                    pending.append(have)
                    continue
            if json_equal(want, have):
                continue
            if kind is dict and type(have) is dict:
                sub = _delta_object(want, have, None)
                if sub:
                    out[key] = sub
            else:
                out[key] = want
        elif type(want) is dict and type(have) is dict:
            sub = _delta_object(want, have, pending)
            if sub:
                out[key] = sub
        else:
            # Python inequality implies JSON inequality (1 == 1.0 holds in both).
            out[key] = want
    return out


def delta_metadata(delta: Mapping[str, Any], desired_metadata: Mapping[str, Any]) -> JSONObject:
    """Project desired metadata onto the shape of ``delta`` (AWS: delta metadata is desired's)."""
    out: JSONObject = {}
    for key, value in delta.items():
        meta: JSONValue = (
            desired_metadata.get(key) if isinstance(desired_metadata, Mapping) else None
        )
        if type(value) is dict and isinstance(meta, dict):
            out[key] = delta_metadata(value, meta)
        elif meta is not None:
            out[key] = meta
    return out
