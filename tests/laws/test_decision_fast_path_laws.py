"""Laws of the resolver's fast paths: each gives exactly what the plain path gives.

A delta-event decision on a checked shadow (`is_checked`: built by `ShadowDocument.from_dict`
or `apply_update`) skips checking and copying values again, takes its record's patch and
details as made, and computes the delta after its update from the shadow's known delta. The
same shadow built with the constructor is not checked, so its decision takes the plain path;
the two decisions are compared by ``repr``, which tells ``1`` from ``1.0`` and ``True``, a
tuple from a list, and keys in another order.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from shadowsync import ShadowDocument, apply_update, compute_delta, stamps_at
from shadowsync._delta import updated_delta
from shadowsync._document import is_checked
from shadowsync._tree import MISSING, lookup, nested
from shadowsync._tree import leaf_paths as tree_leaf_paths
from shadowsync.cloud import ShadowDecision, handle_delta_event
from shadowsync.cloud._decision import _nested_sides
from shadowsync.cloud._delta_event import _first_base, delta_entries
from shadowsync.errors import ShadowRejectedError
from tests.strategies import (
    ROOMY_LIMITS,
    leaf_paths,
    related_states,
    retyped,
    section_patches,
    shadow_documents,
    shadow_keys,
    shadow_states,
    shadow_values,
)
from tests.strategies.cloud import POLICIES, RULES, START, Resolution, histories, run_history

NOW = START + 1_000_000


def _unchecked(document: ShadowDocument) -> ShadowDocument:
    """The same shadow, built with the constructor (which checks nothing, so neither is it
    marked checked), sharing nothing with ``document``."""
    return ShadowDocument(
        desired=copy.deepcopy(document.desired),
        reported=copy.deepcopy(document.reported),
        desired_metadata=copy.deepcopy(document.desired_metadata),
        reported_metadata=copy.deepcopy(document.reported_metadata),
        version=document.version,
        timestamp=document.timestamp,
    )


def _snapshot(document: ShadowDocument) -> str:
    return repr(
        (
            document.desired,
            document.reported,
            document.desired_metadata,
            document.reported_metadata,
            document.delta,
        )
    )


def _scramble(value: Any) -> None:
    """Empty every container in ``value``, innermost first."""
    if isinstance(value, dict):
        for item in value.values():
            _scramble(item)
        value.clear()
    elif isinstance(value, list):
        for item in value:
            _scramble(item)
        value.clear()


def _decide(resolution: Resolution, document: ShadowDocument) -> ShadowDecision:
    """The resolution's decision again, on ``document`` (at a fixed time)."""
    return handle_delta_event(
        resolution.event,
        document,
        now=NOW,
        history=resolution.history,
        policy=POLICIES[resolution.step.policy],
        rules=RULES if resolution.step.rules else None,
    )


@given(histories())
def test_a_decision_on_a_checked_shadow_is_the_plain_paths_decision(history: Any) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        checked = resolution.before
        assert is_checked(checked)  # the service builds its documents with apply_update
        plain = _unchecked(checked)
        assert not is_checked(plain)
        decisions = [_decide(resolution, document) for document in (checked, plain)]
        # Everything: decision, update, records with their patches, details and checksums,
        # conflict report, reviews, acknowledgement, events and metrics.
        assert repr(decisions[0]) == repr(decisions[1])


@given(histories())
def test_a_decision_on_a_checked_shadow_shares_nothing_with_it(history: Any) -> None:
    run = run_history(history)
    for resolution in run.resolutions:
        shadow = resolution.before
        before = _snapshot(shadow)
        decision = _decide(resolution, shadow)
        update = repr(decision.update)
        for record in decision.records:
            _scramble(record.details)
            _scramble(record.patch)
        assert repr(decision.update) == update  # the record keeps its own copy
        _scramble(decision.update)
        for conflict in decision.report:
            for value in (conflict.base, conflict.ours, conflict.theirs, conflict.value):
                _scramble(value)
        for item in decision.reviews:
            for value in (item.base, item.current, item.proposed):
                _scramble(value)
        assert _snapshot(shadow) == before


@st.composite
def updated_documents(draw: st.DrawFn) -> tuple[ShadowDocument, ShadowDocument]:
    """A document and the one an update made of it. The update writes some of reported's
    members into desired (some retyped), some of desired's into reported, or swaps them (the
    two sections are related): values ``==`` but of another JSON type meet often (``1`` and
    ``1.0``, ``True`` and ``1``). It may write patches of its own too."""
    if draw(st.booleans()):
        desired, reported = draw(related_states())
        document = ShadowDocument(desired=desired, reported=reported)
    else:
        document = draw(shadow_documents())
        desired, reported = document.desired, document.reported
    # Each member written is taken from the other section, or the two are swapped: then
    # desired and reported hold values that are == but not the same JSON where they did not.
    patches: dict[str, dict[str, Any]] = {"desired": {}, "reported": {}}
    members = sorted({*desired, *reported})
    for key in draw(st.lists(st.sampled_from(members), unique=True)) if members else []:
        way = draw(st.sampled_from(("desired", "reported", "swap", "retyped", "flags")))
        if way == "flags":
            # Python's == takes True for 1: only the exact check tells these apart.
            flags = draw(st.lists(st.booleans(), min_size=1, max_size=3))
            patches["reported"][key] = draw(st.sampled_from((flags, {"on": flags})))
            patches["desired"][key] = retyped(patches["reported"][key])
            continue
        if way in ("desired", "swap") and key in reported:
            patches["desired"][key] = copy.deepcopy(reported[key])
        if way == "retyped" and key in reported:
            patches["desired"][key] = retyped(reported[key])
        if way in ("reported", "swap") and key in desired:
            patches["reported"][key] = copy.deepcopy(desired[key])
    request: dict[str, Any] = {}
    for section, patch in patches.items():
        if draw(st.booleans()):
            patch.update(draw(section_patches()))
        if patch:
            request[section] = patch
    try:
        after = apply_update(
            document, {"state": request}, timestamp=START, limits=ROOMY_LIMITS
        ).document
    except ShadowRejectedError:
        assume(False)
        raise
    return document, after


@given(updated_documents())
def test_the_delta_after_an_update_is_the_delta_computed_afresh(
    documents: tuple[ShadowDocument, ShadowDocument],
) -> None:
    before, after = documents
    fast = updated_delta(
        after.desired,
        after.reported,
        previous_desired=before.desired,
        previous_reported=before.reported,
        previous_delta=before.delta,
    )
    assert repr(fast) == repr(compute_delta(after.desired, after.reported))


def _reference_newest(node: Any) -> int | None:
    """The newest stamp in a metadata node, as `stamps_at` first found it (a plain walk)."""
    if isinstance(node, dict):
        if type(node.get("timestamp")) is int and len(node) == 1:
            return int(node["timestamp"])
        found = [t for t in map(_reference_newest, node.values()) if t is not None]
        return max(found) if found else None
    if isinstance(node, list):
        found = [t for t in map(_reference_newest, node) if t is not None]
        return max(found) if found else None
    return None


def _reference_stamps_at(metadata: Any, paths: list[tuple[str, ...]]) -> dict[Any, int]:
    out = {}
    for path in paths:
        node: Any = metadata
        for key in path:
            if isinstance(node, dict) and len(node) == 1 and type(node.get("timestamp")) is int:
                break
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        stamp = _reference_newest(node) if node is not None and path else None
        if stamp is not None:
            out[path] = stamp
    return out


@given(shadow_documents(), st.data())
def test_stamps_at_is_the_plain_walks(document: ShadowDocument, data: st.DataObject) -> None:
    for section in ("desired", "reported"):
        metadata = document.section_metadata(section)
        paths = list(leaf_paths(document.section(section)))
        # Ancestors, paths below a leaf and paths that are not there.
        paths += [path[:-1] for path in paths if len(path) > 1]
        paths += [(*path, "below") for path in paths[:3]] + [("absent",), ()]
        paths = data.draw(st.permutations(paths))
        assert repr(stamps_at(metadata, paths)) == repr(_reference_stamps_at(metadata, paths))


_side_values = st.one_of(st.just(MISSING), shadow_values(2))
_entries = st.lists(
    st.tuples(
        st.lists(shadow_keys(), min_size=1, max_size=3).map(tuple),
        _side_values,
        _side_values,
        _side_values,
    ),
    max_size=6,
)


def _containers(value: Any) -> list[int]:
    """The ids of every container in ``value``, itself included."""
    if isinstance(value, dict):
        return [id(value), *(i for item in value.values() for i in _containers(item))]
    if isinstance(value, list):
        return [id(value), *(i for item in value for i in _containers(item))]
    return []


@given(_entries, st.booleans())
def test_the_sides_nested_in_one_pass_are_each_sides_nested_objects(
    entries: list[Any], copy_sides: bool
) -> None:
    # A decision nests the three sides of its paths in one pass (copying the cloud's and the
    # device's values on a checked shadow): each is what `nested` makes of that side, by repr.
    sides = _nested_sides(entries, copy_sides=copy_sides)
    for index, side in enumerate(sides, start=1):
        assert repr(side) == repr(nested((entry[0], entry[index]) for entry in entries))


@given(_entries)
def test_the_copied_sides_share_nothing_with_the_values_placed(entries: list[Any]) -> None:
    _, ours, theirs = _nested_sides(entries, copy_sides=True)
    placed = {i for entry in entries for value in entry[2:] for i in _containers(value)}
    assert placed.isdisjoint(_containers(ours) + _containers(theirs))


def _metadata(value: Any, data: st.DataObject, *, root: bool = False) -> Any:
    """Metadata for ``value`` (a section when ``root``), as a shadow's or not: leaf stamps
    from a few seconds (so the two sections' stamps are often equal), and here and there an
    object's metadata collapsed to one stamp (a stamped ancestor of the paths below it), a
    member's dropped, or a leaf's given as an array of stamps."""
    way = data.draw(st.integers(0, 7))
    stamp = {"timestamp": data.draw(st.integers(0, 3))}
    if type(value) is dict and (root or way != 0):
        return {
            key: _metadata(item, data)
            for key, item in value.items()
            if way != 1 or data.draw(st.booleans())
        }
    if type(value) is list and way != 0:
        return [_metadata(item, data) for item in value]
    return [stamp, {"timestamp": 2}] if way == 2 else stamp


_small_values: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from((0, 1, 1.0, True, "x")) | st.lists(st.sampled_from((0, 1)), max_size=2),
    lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)
"""Values with few keys and leaves, so that two drawn sections overlap, deep down too."""

_small_sections: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from("abc"), _small_values, max_size=3
)


@st.composite
def _delta_documents(draw: st.DrawFn) -> ShadowDocument:
    """Documents whose sections differ in places (a delta), with `_metadata`."""
    if draw(st.booleans()):
        desired, reported = draw(related_states())
    else:
        desired, reported = draw(_small_sections), draw(_small_sections)
    data = draw(st.data())
    return ShadowDocument(
        desired=desired,
        reported=reported,
        desired_metadata=_metadata(desired, data, root=True),
        reported_metadata=_metadata(reported, data, root=True),
        version=3,
        timestamp=3,
    )


@given(_delta_documents(), st.data())
def test_the_delta_walk_is_the_delta_paths_lookups_stamps_and_nesting(
    document: ShadowDocument, data: st.DataObject
) -> None:
    # A delta event's decision walks the delta once for what `leaf_paths`, `lookup`,
    # `stamps_at`, `_first_base` and `_nested_sides` each gave it, on metadata that mirrors
    # the sections or not.
    agreed = data.draw(
        st.one_of(st.none(), st.just(document.reported), st.just(document.desired), shadow_states())
    )
    copy_sides = data.draw(st.booleans())
    walked = delta_entries(document, agreed, copy_sides=copy_sides)

    paths = tree_leaf_paths(document.delta or {})
    cloud = stamps_at(document.section_metadata("desired"), paths)
    device = stamps_at(document.section_metadata("reported"), paths)
    entries = []
    for path in paths:
        reported = lookup(document.reported, path)
        if agreed is None:
            base = _first_base(path, reported, cloud.get(path), device.get(path))
        else:
            base = lookup(agreed, path)
        entries.append((path, base, lookup(document.desired, path), reported))
    assert repr(walked.entries) == repr(entries)
    assert all(
        a is b
        for ours, theirs in zip(walked.entries, entries, strict=True)
        for a, b in zip(ours[1:], theirs[1:], strict=True)
    )
    assert repr(walked.cloud_stamps) == repr(cloud)
    assert repr(walked.device_stamps) == repr(device)
    assert repr(walked.sides) == repr(_nested_sides(entries, copy_sides=copy_sides))
    if copy_sides:
        placed = {i for entry in entries for value in entry[2:] for i in _containers(value)}
        assert placed.isdisjoint(_containers(walked.sides[1]) + _containers(walked.sides[2]))
