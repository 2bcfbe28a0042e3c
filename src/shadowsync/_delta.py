"""The AWS delta rules: which desired values the device has not yet reported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowsync._json import JSONObject, JSONValue, json_equal, pickled_alike
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
    elif type(reported) is not dict:
        # The walk looks keys up with [] (a dict subclass's __missing__ would answer for them).
        reported = dict(reported)
    try:
        ours: list[Any] = []
        theirs: list[Any] = []
        delta = _delta_object(desired, reported, ours, theirs)
        if ours and not _same_json(ours, theirs):
            delta = _delta_object(desired, reported, None, None)
    except RecursionError:
        raise InvalidDocumentError("desired and reported nest too deeply to compare") from None
    return delta or None


def _delta_object(
    desired: Mapping[str, Any],
    reported: dict[str, Any],
    ours: list[Any] | None,
    theirs: list[Any] | None,
) -> JSONObject:
    """The delta of two objects, in one walk that compares by Python's ``==``.

    Python equality is necessary for JSON equality but not sufficient: ``True == 1``. So where
    ``==`` holds between two scalars, their exact types are compared too (an int facing a float
    is the one mix JSON calls equal). Two equal containers are not walked: with lists ``ours``
    and ``theirs``, they are set aside there, to be checked all at once by `_same_json`;
    without them (the exact pass), each pair is compared with `json_equal` on the spot.
    """
    out: JSONObject = {}
    for key, want in desired.items():
        try:
            have = reported[key]
        except KeyError:
            out[key] = want
            continue
        if want == have:
            kind = type(want)
            if kind is not type(have):
                if not (
                    (kind is int or kind is float) and (type(have) is int or type(have) is float)
                ):
                    out[key] = want  # true and 1 (or other types Python calls equal)
            elif (kind is dict or kind is list) and want is not have:
                if ours is not None and theirs is not None:
                    ours.append(want)
                    theirs.append(have)
                elif json_equal(want, have):
                    continue
                elif kind is dict:
                    sub = _delta_object(want, have, None, None)
                    if sub:
                        out[key] = sub
                else:
                    out[key] = want
        elif type(want) is dict and type(have) is dict:
            sub = _delta_object(want, have, ours, theirs)
            if sub:
                out[key] = sub
        else:
            # Python inequality implies JSON inequality (1 == 1.0 holds in both).
            out[key] = want
    return out


_ABSENT: Any = object()


def updated_delta(
    desired: dict[str, Any],
    reported: dict[str, Any],
    *,
    previous_desired: dict[str, Any],
    previous_reported: dict[str, Any],
    previous_delta: JSONObject | None,
) -> JSONObject | None:
    """``compute_delta(desired, reported)`` of a document updated from one whose delta is
    known, walking only what the update changed.

    The delta of a member depends on its desired and reported values alone, and an update
    shares every member it leaves alone with the previous document (`apply_update` does):
    where both values are the very objects they were, the member's delta is the previous
    one's. Members that changed are compared as `compute_delta` compares them (equal
    containers set aside and checked at the end; if that check fails, the whole delta is
    computed again), so the result is the same, key order included.

    ```pycon
    >>> before = {"a": {"x": 1, "y": 2}, "b": [1]}
    >>> after = {**before, "a": {"x": 1, "y": 3}}
    >>> updated_delta(after, {"a": {"x": 1, "y": 2}}, previous_desired=before,
    ...               previous_reported={"a": {"x": 1, "y": 2}}, previous_delta={"b": [1]})
    {'a': {'y': 3}, 'b': [1]}

    ```
    """
    ours: list[Any] = []
    theirs: list[Any] = []
    try:
        delta = _delta_since(
            desired,
            reported,
            previous_desired,
            previous_reported,
            previous_delta or {},
            ours,
            theirs,
        )
    except RecursionError:
        return compute_delta(desired, reported)  # which says so in its own words
    if ours and not _same_json(ours, theirs):
        return compute_delta(desired, reported)
    return delta or None


def _delta_since(
    desired: dict[str, Any],
    reported: dict[str, Any],
    old_desired: dict[str, Any],
    old_reported: dict[str, Any],
    old_delta: dict[str, Any],
    ours: list[Any],
    theirs: list[Any],
) -> JSONObject:
    out: JSONObject = {}
    for key, want in desired.items():
        have = reported.get(key, _ABSENT)
        was = old_desired.get(key, _ABSENT)
        had = old_reported.get(key, _ABSENT)
        if want is was and have is had:
            if key in old_delta:
                out[key] = old_delta[key]
            continue
        if type(want) is dict and type(have) is dict and type(was) is dict and type(had) is dict:
            # Both sides were objects and still are: the previous delta here is an object (or
            # absent, when they were equal), so only the changed members are walked.
            previous = old_delta.get(key)
            sub = _delta_since(
                want, have, was, had, previous if type(previous) is dict else {}, ours, theirs
            )
        else:
            # Compared as `compute_delta` compares a member (its delta is the member's, if any).
            one = _delta_object({key: want}, {} if have is _ABSENT else {key: have}, ours, theirs)
            if key in one:
                out[key] = one[key]
            continue
        if sub:
            out[key] = sub
    return out


def _same_json(ours: list[Any], theirs: list[Any]) -> bool:
    """Whether each pair of equal containers the walk set aside is equal as JSON too.

    `pickled_alike` settles it in C for the usual case: pickles of equal values differ where
    their types do (``True`` and ``1``, ``1`` and ``1.0``) or their key order does. Only when
    the pickles differ is each pair compared with `json_equal`, which tells the JSON-equal
    (``1`` and ``1.0``, keys in another order) from the JSON-different.
    """
    return pickled_alike(ours, theirs) or all(map(json_equal, ours, theirs))


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
