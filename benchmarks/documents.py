"""Deterministic, realistic shadow documents and update requests for the benchmarks.

Each case is generated from a fixed seed, so every run (and every machine) times the same
inputs. A document is a device configuration: top-level groups (``network``, ``hvac``, ...)
nesting objects up to level 5 (the section object is level 1), with strings, integers, floats,
booleans, arrays of scalars and arrays of small objects. ``reported`` mirrors ``desired`` with
about 10% of the leaves differing, a few desired leaves not reported yet, and a few keys that
only the device reports. The update request touches about 10% of the leaves of each section;
a second request carries the whole reported section (a device that reports everything).
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

from shadowsync import JSONObject, JSONValue, ShadowDocument, ShadowLimits, apply_update

LIMITS = ShadowLimits(max_document_bytes=30 * 1024)
"""Limits used by every case: the 30 KB local maximum, so the largest case fits."""

PREVIOUS_TIMESTAMP = 1_700_000_000
"""When the previous document was written (its metadata timestamps)."""

UPDATE_TIMESTAMP = 1_700_000_060
"""The ``timestamp`` passed to ``apply_update`` by the update benchmarks."""

DIFFERING_FRACTION = 0.10
"""Share of desired leaves whose reported value differs, and of leaves an update touches."""

_GROUPS = (
    "network",
    "wifi",
    "cellular",
    "power",
    "battery",
    "sensors",
    "thermostat",
    "lighting",
    "hvac",
    "security",
    "firmware",
    "schedule",
    "alarms",
    "display",
    "audio",
    "motor",
    "valves",
    "calibration",
    "logging",
    "zones",
)
_OBJECTS = (
    "primary",
    "secondary",
    "limits",
    "profile",
    "advanced",
    "options",
    "ports",
    "channels",
    "filters",
    "policy",
    "retry",
    "tls",
    "ota",
    "eco",
    "night",
)
_LEAVES = (
    "enabled",
    "mode",
    "level",
    "threshold",
    "interval_s",
    "target_temp",
    "brightness",
    "color",
    "ssid",
    "channel",
    "timeout_ms",
    "retries",
    "offset",
    "gain",
    "unit",
    "label",
    "priority",
    "max",
    "min",
    "setpoint",
    "speed",
    "state",
    "region",
    "tz",
    "hysteresis",
    "sample_rate",
    "endpoint",
    "tags",
    "weights",
    "hours",
)
_WORDS = (
    "auto",
    "eco",
    "heat",
    "cool",
    "on",
    "off",
    "celsius",
    "fahrenheit",
    "eu-west-1",
    "us-east-1",
    "Europe/Berlin",
    "America/Denver",
    "warm-white",
    "daylight",
    "sensor-0042",
    "gateway-17",
    "mqtts://iot.example.com:8883",
    "fw-2.14.3",
    "fw-2.15.0",
    "standby",
    "boost",
    "quiet",
    "kitchen",
    "garage",
)
_REPORTED_ONLY = ("rssi", "uptime_s", "last_error", "temperature_c", "free_heap", "boot_count")

_MAX_OBJECT_LEVEL = 5  # section object = 1, top-level group = 2


@dataclass(frozen=True)
class Case:
    """One benchmark input: a previous document and an update request against it."""

    label: str
    target_bytes: int
    seed: int
    desired: JSONObject
    reported: JSONObject
    previous: ShadowDocument
    request: JSONObject
    request_bytes: bytes
    whole_report_bytes: bytes
    size: int
    desired_leaves: int
    differing_leaves: int
    updated_leaves: int


def _scalar(rng: random.Random) -> JSONValue:
    kind = rng.random()
    if kind < 0.30:
        return rng.randint(0, 5000)
    if kind < 0.50:
        return round(rng.uniform(-50.0, 500.0), 2)
    if kind < 0.80:
        return rng.choice(_WORDS)
    return rng.random() < 0.5


def _leaf(rng: random.Random, level: int) -> JSONValue:
    kind = rng.random()
    if kind < 0.12:
        return [rng.randint(0, 255) for _ in range(rng.randint(2, 6))]
    if kind < 0.18:
        return [rng.choice(_WORDS) for _ in range(rng.randint(1, 4))]
    if kind < 0.22 and level <= 3:
        # Array of small objects: the array is level + 1, its objects level + 2 (at most 5).
        return [
            {"slot": index, "start": f"{rng.randint(0, 23):02d}:00", "setpoint": _scalar(rng)}
            for index in range(rng.randint(1, 3))
        ]
    return _scalar(rng)


def _keys(rng: random.Random, pool: tuple[str, ...], count: int) -> list[str]:
    return rng.sample(pool, min(count, len(pool)))


def _object(rng: random.Random, level: int, width: tuple[int, int]) -> JSONObject:
    out: JSONObject = {}
    count = rng.randint(*width)
    nest_chance = 0.0 if level >= _MAX_OBJECT_LEVEL else 0.45 - 0.08 * level
    objects = _keys(rng, _OBJECTS, count)
    for index, key in enumerate(_keys(rng, _LEAVES, count)):
        if rng.random() < nest_chance:
            out[objects[index % len(objects)]] = _object(rng, level + 1, width)
        else:
            out[key] = _leaf(rng, level)
    return out


def _changed(rng: random.Random, value: JSONValue) -> JSONValue:
    """A different value of the same JSON type (never a bool/number swap)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.randint(1, 40)
    if isinstance(value, float):
        return round(value + rng.uniform(0.5, 5.0), 2)
    if isinstance(value, str):
        return rng.choice([word for word in _WORDS if word != value])
    if isinstance(value, list):
        if value and not isinstance(value[0], dict):
            changed = list(value)
            changed[rng.randrange(len(changed))] = _changed(rng, changed[0])
            if changed != value:
                return changed
        return [*copy.deepcopy(value), copy.deepcopy(value[0])] if value else [1]
    if isinstance(value, dict):
        return {key: _changed(rng, item) for key, item in value.items()}
    return rng.randint(0, 9)


def _leaf_paths(value: JSONObject, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths to every leaf; arrays are leaves (AWS replaces and compares them whole)."""
    paths: list[tuple[str, ...]] = []
    for key, item in value.items():
        if isinstance(item, dict) and item:
            paths.extend(_leaf_paths(item, (*prefix, key)))
        else:
            paths.append((*prefix, key))
    return paths


def _get(value: JSONObject, path: tuple[str, ...]) -> JSONValue:
    node: Any = value
    for key in path:
        node = node[key]
    result: JSONValue = node
    return result


def _set(value: JSONObject, path: tuple[str, ...], item: JSONValue) -> None:
    node = value
    for key in path[:-1]:
        child = node.setdefault(key, {})
        assert isinstance(child, dict)
        node = child
    node[path[-1]] = item


def _delete(value: JSONObject, path: tuple[str, ...]) -> None:
    node: Any = value
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def _mirror(rng: random.Random, group: JSONObject) -> JSONObject:
    """The reported side of a desired group before any leaf differs: a copy, maybe plus a key
    that only the device reports."""
    reported = copy.deepcopy(group)
    if rng.random() < 0.35:
        objects = [(), *(path[:-1] for path in _leaf_paths(reported) if len(path) > 1)]
        where = rng.choice(objects)
        _set(reported, (*where, rng.choice(_REPORTED_ONLY)), _scalar(rng))
    return reported


def _diverge(rng: random.Random, desired: JSONObject, reported: JSONObject) -> int:
    """Make exactly 10% of the desired leaves differ in reported (one in eight not reported)."""
    paths = _leaf_paths(desired)
    chosen = rng.sample(paths, max(1, round(len(paths) * DIFFERING_FRACTION)))
    for index, path in enumerate(chosen):
        if index % 8 == 7:
            _delete(reported, path)
        else:
            _set(reported, path, _changed(rng, _get(desired, path)))
    return len(chosen)


def _size(desired: JSONObject, reported: JSONObject) -> int:
    return ShadowDocument(desired=desired, reported=reported).size


def _fill(
    rng: random.Random, target: int
) -> tuple[JSONObject, JSONObject, int]:  # desired, reported, differing leaves
    desired: JSONObject = {}
    reported: JSONObject = {}
    # Whole groups while they fit under the target less a margin for the differing values,
    # then small top-level leaves to land just under the target.
    budget = target - max(60, target // 25)
    serial = 0
    for _attempt in range(400):
        width = (3, 7) if budget - _size(desired, reported) > 1500 else (2, 4)
        group = _object(rng, 2, width)
        name = _GROUPS[serial % len(_GROUPS)]
        if serial >= len(_GROUPS):
            name = f"{name}_{serial // len(_GROUPS)}"
        candidate_desired = {**desired, name: group}
        candidate_reported = {**reported, name: _mirror(rng, group)}
        if _size(candidate_desired, candidate_reported) <= budget:
            desired, reported = candidate_desired, candidate_reported
            serial += 1
        if budget - _size(desired, reported) < 100:
            break
    differing = _diverge(rng, desired, reported)
    filler = 0
    while True:
        key = f"{rng.choice(_LEAVES)}_{filler}"
        value = _scalar(rng)
        mirrored_value = _changed(rng, value) if rng.random() < DIFFERING_FRACTION else value
        candidate_desired = {**desired, key: value}
        candidate_reported = {**reported, key: mirrored_value}
        if _size(candidate_desired, candidate_reported) > target:
            break
        desired, reported = candidate_desired, candidate_reported
        differing += mirrored_value != value
        filler += 1
    return desired, reported, differing


def _request(
    rng: random.Random, desired: JSONObject, reported: JSONObject
) -> tuple[JSONObject, int]:
    """An update touching ~10% of the leaves of each section, with one delete and one new key.

    Reported changes are mostly the device catching up with desired. The request never puts a
    ``null`` inside an object that does not exist yet and never sends a ``clientToken`` or a
    ``version``, so moto's echo and ours must agree exactly.
    """
    request_desired: JSONObject = {}
    request_reported: JSONObject = {}
    touched = 0
    desired_paths = _leaf_paths(desired)
    for path in rng.sample(desired_paths, max(1, round(len(desired_paths) * DIFFERING_FRACTION))):
        _set(request_desired, path, _changed(rng, _get(desired, path)))
        touched += 1
    deletable = [path for path in desired_paths if not _is_under(request_desired, path)]
    _set(request_desired, rng.choice(deletable), None)
    touched += 1
    reported_paths = _leaf_paths(reported)
    for path in rng.sample(reported_paths, max(1, round(len(reported_paths) * DIFFERING_FRACTION))):
        try:
            value = _get(desired, path)
        except (KeyError, TypeError):
            value = _changed(rng, _get(reported, path))
        if rng.random() < 0.3:
            value = _changed(rng, value)
        _set(request_reported, path, value)
        touched += 1
    groups = [key for key, value in reported.items() if isinstance(value, dict)]
    _set(request_reported, (rng.choice(groups) if groups else "status", "uptime_s"), 86_400)
    touched += 1
    return {"state": {"desired": request_desired, "reported": request_reported}}, touched


def _is_under(request: JSONObject, path: tuple[str, ...]) -> bool:
    node: Any = request
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _whole_report(reported: JSONObject, request: JSONObject) -> JSONObject:
    """The whole reported section after the request's reported changes: what a device that
    reports everything sends instead of the changes alone (about 90% of its leaves repeat the
    stored values)."""
    state = request["state"]
    assert isinstance(state, dict)
    changes = state["reported"]
    assert isinstance(changes, dict)
    whole = copy.deepcopy(reported)
    for path in _leaf_paths(changes):
        _set(whole, path, copy.deepcopy(_get(changes, path)))
    return {"state": {"reported": whole}}


def make_case(label: str, target_bytes: int, seed: int) -> Case:
    """Generate the case for one size; the same ``seed`` always gives the same documents."""
    rng = random.Random(seed)
    desired, reported, differing = _fill(rng, target_bytes)
    request, touched = _request(rng, desired, reported)
    created = apply_update(
        None,
        {"state": {"desired": desired, "reported": reported}},
        timestamp=PREVIOUS_TIMESTAMP,
        limits=LIMITS,
    )
    # A realistic version history; the number itself costs nothing.
    previous = ShadowDocument(
        desired=created.document.desired,
        reported=created.document.reported,
        desired_metadata=created.document.desired_metadata,
        reported_metadata=created.document.reported_metadata,
        version=42,
        timestamp=PREVIOUS_TIMESTAMP,
    )
    return Case(
        label=label,
        target_bytes=target_bytes,
        seed=seed,
        desired=previous.desired,
        reported=previous.reported,
        previous=previous,
        request=request,
        request_bytes=json.dumps(request, separators=(",", ":")).encode("utf-8"),
        whole_report_bytes=json.dumps(
            _whole_report(previous.reported, request), separators=(",", ":")
        ).encode("utf-8"),
        size=previous.size,
        desired_leaves=len(_leaf_paths(desired)),
        differing_leaves=differing,
        updated_leaves=touched,
    )


SIZES: tuple[tuple[str, int], ...] = (("1 KB", 1024), ("8 KB", 8000), ("30 KB", 30000))
"""Case labels and target sizes of desired + reported (``ShadowDocument.size``)."""


def make_cases() -> list[Case]:
    """All benchmark cases, smallest first."""
    return [make_case(label, target, seed=7919 + target) for label, target in SIZES]


def decoded_separately(case: Case) -> tuple[JSONObject, JSONObject]:
    """``desired`` and ``reported`` each decoded from a JSON text of its own, as a service holds
    them after the two requests that wrote them (no object shared between the two)."""
    desired: JSONObject = json.loads(json.dumps(case.desired))
    reported: JSONObject = json.loads(json.dumps(case.reported))
    return desired, reported


def decoded_from_get_body(case: Case) -> tuple[JSONObject, JSONObject]:
    """``desired`` and ``reported`` as a client holds them after decoding one GetThingShadow body
    (the decoder shares equal keys between the two)."""
    state = json.loads(case.previous.to_json())["state"]
    return state["desired"], state["reported"]


def built_and_decoded(case: Case) -> tuple[JSONObject, JSONObject]:
    """``desired`` as built by Python code (strings and keys taken from shared constants, so one
    object stands in many places) and ``reported`` decoded from the device's JSON text."""
    reported: JSONObject = json.loads(json.dumps(case.reported))
    return case.desired, reported


def depth(value: JSONValue) -> int:
    """Nesting levels as the limits count them: objects and arrays count, leaves do not."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0
