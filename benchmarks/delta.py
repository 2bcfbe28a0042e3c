"""Delta: ``shadowsync.compute_delta`` against moto, deepdiff and jsonpatch on the same inputs.

moto's shadow model computes the delta in ``FakeShadow.parse_payload(desired, reported)`` (a
classmethod that ``FakeShadow.to_dict()`` calls); that single call is what is timed for moto.
deepdiff and jsonpatch compute a general diff of reported -> desired rather than an AWS delta;
they are timed as ``DeepDiff(reported, desired)`` and ``jsonpatch.make_patch(reported, desired)``
and checked by deriving the AWS delta from the paths they report.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import jsonpatch
import jsonpointer
from deepdiff import DeepDiff
from moto.iotdata.models import FakeShadow

from benchmarks.documents import built_and_decoded, decoded_from_get_body, decoded_separately
from benchmarks.timing import Bench, Comparison, repeated
from shadowsync import JSONObject, JSONValue, compute_delta, json_equal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from benchmarks.documents import Case
    from benchmarks.timing import Check

_FAKE_SHADOW: Any = FakeShadow  # moto annotates desired/reported as str; they are dicts.

MOTO_DELTA = "moto FakeShadow.parse_payload(desired, reported)"
DEEPDIFF = "deepdiff.DeepDiff(reported, desired)"
JSONPATCH = "jsonpatch.make_patch(reported, desired)"


def moto_delta(desired: JSONObject, reported: JSONObject) -> Any:
    """moto's delta for a stored desired/reported pair (what ``FakeShadow.to_dict`` embeds)."""
    return _FAKE_SHADOW.parse_payload(desired, reported)


def normalise_moto_delta(delta: Any, desired: JSONValue, reported: JSONValue) -> Any:
    """moto's delta in shadowsync's form.

    Where a desired object differs from the reported object only by keys that are in reported
    alone, moto recurses and keeps an empty object; AWS (and shadowsync) leave the key out.
    Only those recursion leftovers are removed: an empty object that desired really holds and
    reported lacks stays. An empty delta becomes ``None``.
    """
    result = _prune(delta, desired, reported) if isinstance(delta, dict) else delta
    return result or None


def _prune(delta: dict[str, Any], desired: JSONValue, reported: JSONValue) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in delta.items():
        want = desired.get(key) if isinstance(desired, dict) else None
        have = reported.get(key) if isinstance(reported, dict) else None
        if isinstance(value, dict) and isinstance(want, dict) and isinstance(have, dict):
            sub = _prune(value, want, have)
            if sub:
                out[key] = sub
        else:
            out[key] = value
    return out


def delta_from_paths(
    paths: Iterable[Sequence[str | int]], desired: JSONObject
) -> JSONObject | None:
    """The AWS delta implied by the paths a general diff tool reports as changed.

    Each path is walked in ``desired``: it stops at the first array (AWS compares arrays whole)
    or scalar, and that desired value is in the delta. A path to a key desired does not have
    is a removal, which a delta never shows.
    """
    out: JSONObject = {}
    for path in paths:
        node: JSONValue = desired
        prefix: list[str] = []
        for part in path:
            if not isinstance(node, dict):
                break
            key = str(part)
            if key not in node:
                prefix = []
                break
            node = node[key]
            prefix.append(key)
        if prefix:
            _place(out, prefix, node)
    return out or None


def _place(out: JSONObject, path: list[str], value: JSONValue) -> None:
    node = out
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return  # an ancestor is already in the delta whole
        node = child
    node[path[-1]] = copy.deepcopy(value)


def jsonpatch_paths(patch: Any) -> list[list[str]]:
    """Every pointer a JSON Patch touches (``path``, and ``from`` for moves and copies)."""
    paths: list[list[str]] = []
    for operation in patch:
        for field in ("path", "from"):
            if field in operation:
                paths.append(list(jsonpointer.JsonPointer(operation[field]).parts))
    return paths


def deepdiff_paths(diff: Any) -> list[list[str | int]]:
    """Every path a DeepDiff result reports, whatever the kind of change."""
    return [
        list(level.path(output_format="list")) for levels in diff.tree.values() for level in levels
    ]


def _describe(label: str, ours: object, theirs: object) -> list[str]:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = sorted(set(ours) | set(theirs))
        differing = [key for key in keys if not json_equal(ours.get(key), theirs.get(key))]
        return [f"{label}: differs at top-level keys {differing[:5]}"]
    return [f"{label}: ours {str(ours)[:120]!r} vs {str(theirs)[:120]!r}"]


def _check_moto(case: Case) -> Check:
    # Every variant holds the same values as the case, so the case normalises moto's output.
    def check(ours: object, peer: object) -> list[str]:
        normalised = normalise_moto_delta(peer, case.desired, case.reported)
        if ours is None or normalised is None:
            return [] if ours is normalised else _describe("moto delta", ours, normalised)
        if not isinstance(ours, dict) or not json_equal(ours, normalised):
            return _describe("moto delta", ours, normalised)
        return []

    return check


def _check_derived(case: Case, label: str) -> Check:
    def check(ours: object, peer: object) -> list[str]:
        if label == DEEPDIFF:
            derived = delta_from_paths(deepdiff_paths(peer), case.desired)
            problems: list[str] = []
        else:
            derived = delta_from_paths(jsonpatch_paths(peer), case.desired)
            assert isinstance(peer, jsonpatch.JsonPatch), type(peer).__name__
            rebuilt = jsonpatch.apply_patch(case.reported, peer)
            problems = (
                [] if rebuilt == case.desired else [f"{label}: patch does not rebuild desired"]
            )
        if ours is None or derived is None:
            if ours is not derived:
                problems += _describe(f"{label} (derived delta)", ours, derived)
        elif not isinstance(ours, dict) or not json_equal(ours, derived):
            problems += _describe(f"{label} (derived delta)", ours, derived)
        return problems

    return check


def _compute_delta(pair: tuple[JSONObject, JSONObject]) -> object:
    return compute_delta(pair[0], pair[1])


def _moto(pair: tuple[JSONObject, JSONObject]) -> object:
    return _FAKE_SHADOW.parse_payload(pair[0], pair[1])


def _deepdiff(pair: tuple[JSONObject, JSONObject]) -> object:
    return DeepDiff(pair[1], pair[0])


def _jsonpatch(pair: tuple[JSONObject, JSONObject]) -> object:
    return jsonpatch.make_patch(pair[1], pair[0])


# How desired and reported were made, for the moto rows: the operation label and the function
# that builds the pair from a case. The target is held against the separately decoded pair.
VARIANTS: tuple[tuple[str, Callable[[Case], tuple[JSONObject, JSONObject]], str | None], ...] = (
    ("compute_delta (one GET body)", decoded_from_get_body, None),
    ("compute_delta (separate JSON texts)", decoded_separately, "delta"),
    ("compute_delta (desired built, reported decoded)", built_and_decoded, None),
)


def comparisons(case: Case) -> list[Comparison]:
    """The delta comparisons for one case; every callable gets ``(desired, reported)``.

    The first three rows use the case's own sections (built by Python code); the moto rows after
    them use the same values decoded from JSON in the ways `VARIANTS` lists.
    """
    inputs = repeated((case.desired, case.reported))
    ours = Bench("shadowsync.compute_delta(desired, reported)", _compute_delta, inputs)
    variants = []
    for operation, make, target in VARIANTS:
        pair = repeated(make(case))
        variants.append(
            Comparison(
                group="delta",
                operation=operation,
                ours=Bench(ours.name, _compute_delta, pair),
                peer=Bench(MOTO_DELTA, _moto, pair),
                peer_label="moto delta",
                check=_check_moto(case),
                target=target,
            )
        )
    return [
        Comparison(
            group="delta",
            operation="compute_delta",
            ours=ours,
            peer=Bench(MOTO_DELTA, _moto, inputs),
            peer_label="moto delta",
            check=_check_moto(case),
        ),
        Comparison(
            group="delta",
            operation="compute_delta",
            ours=ours,
            peer=Bench(DEEPDIFF, _deepdiff, inputs),
            peer_label="DeepDiff",
            check=_check_derived(case, DEEPDIFF),
        ),
        Comparison(
            group="delta",
            operation="compute_delta",
            ours=ours,
            peer=Bench(JSONPATCH, _jsonpatch, inputs),
            peer_label="jsonpatch.make_patch",
            check=_check_derived(case, JSONPATCH),
        ),
        *variants,
    ]
