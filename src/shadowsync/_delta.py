"""The AWS delta rules: which desired values the device has not yet reported."""

from __future__ import annotations

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
        delta = _delta_object(desired, reported)
    except RecursionError:
        raise InvalidDocumentError("desired and reported nest too deeply to compare") from None
    return delta or None


def _delta_object(desired: Mapping[str, Any], reported: Mapping[str, Any]) -> JSONObject:
    out: JSONObject = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
            continue
        have = reported[key]
        kind = type(want)
        if kind is dict:
            if type(have) is dict:
                sub = _delta_object(want, have)
                if sub:
                    out[key] = sub
            else:
                out[key] = want
        elif want != have:
            # Python inequality implies JSON inequality (1 == 1.0 holds in both).
            out[key] = want
        elif (kind is not type(have) or kind is list) and not json_equal(want, have):
            # Python equality does not imply JSON equality: True == 1, [True] == [1].
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
