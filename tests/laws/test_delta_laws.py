"""Laws of the AWS delta: what desired holds that reported does not (yet)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import JSONObject, ShadowDocument, apply_merge_patch, apply_update, compute_delta
from tests.strategies import (
    ROOMY_LIMITS,
    Path,
    capped_examples,
    from_leaf_paths,
    leaf_paths,
    lookup,
    related_states,
    same_json,
    shadow_documents,
    shadow_states,
    strict_equal,
)

state_pairs = st.one_of(related_states(), st.tuples(shadow_states(), shadow_states()))


def expected_delta(desired: JSONObject, reported: JSONObject) -> JSONObject | None:
    """The delta by the AWS rules, over leaf paths: a desired leaf is in the delta when reported
    lacks its path, holds a non-object on the way to it, or holds a different JSON value there
    (arrays compared whole, ``1 == 1.0``, ``True != 1``). An empty desired object only needs an
    object in reported."""
    included: dict[Path, Any] = {}
    for path, want in leaf_paths(desired).items():
        found, have = lookup(reported, path)
        if not found:
            included[path] = want
        elif isinstance(want, dict):
            if not isinstance(have, dict):
                included[path] = want
        elif not same_json(want, have):
            included[path] = want
    return from_leaf_paths(included) or None


def _numbers_retyped(value: Any) -> Any:
    """``value`` with every int that a float represents exactly turned into that float."""
    if isinstance(value, dict):
        return {key: _numbers_retyped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_retyped(item) for item in value]
    if type(value) is int and float(value) == value:
        return float(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _has_boolean(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_boolean(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_boolean(item) for item in value)
    return type(value) is bool


def _booleans_as_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _booleans_as_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_booleans_as_numbers(item) for item in value]
    if type(value) is bool:
        return int(value)
    return value


@given(state_pairs)
def test_delta_is_every_desired_leaf_missing_or_different_in_reported_and_nothing_else(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    desired, reported = pair
    assert strict_equal(compute_delta(desired, reported), expected_delta(desired, reported))


@given(state_pairs)
def test_every_delta_leaf_is_a_desired_leaf_so_reported_only_keys_never_appear(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    desired, reported = pair
    delta = compute_delta(desired, reported) or {}
    desired_leaves = leaf_paths(desired)
    for path, value in leaf_paths(delta).items():
        assert path in desired_leaves
        assert strict_equal(value, desired_leaves[path])


@given(state_pairs)
def test_merging_the_delta_into_reported_leaves_no_delta(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    desired, reported = pair
    delta = compute_delta(desired, reported)
    merged = apply_merge_patch(reported, delta or {})
    assert isinstance(merged, dict)
    assert compute_delta(desired, merged) is None


@capped_examples(150)
@given(shadow_documents())
def test_reporting_the_delta_in_an_update_clears_the_delta(document: ShadowDocument) -> None:
    result = apply_update(
        document,
        {"state": {"reported": document.delta or {}}},
        timestamp=document.timestamp + 1,
        limits=ROOMY_LIMITS,
    )
    assert result.document.delta is None
    assert result.delta is None


@given(shadow_states())
def test_delta_of_a_state_against_itself_is_none(state: JSONObject) -> None:
    assert compute_delta(state, state) is None
    assert compute_delta(state, copy.deepcopy(state)) is None


@given(shadow_states())
def test_numbers_of_equal_value_but_other_type_give_no_delta(state: JSONObject) -> None:
    assert compute_delta(state, _numbers_retyped(state)) is None


@given(shadow_states())
def test_a_boolean_never_equals_the_number_it_would_be_in_python(state: JSONObject) -> None:
    delta_leaves = leaf_paths(compute_delta(state, _booleans_as_numbers(state)) or {})
    for path, value in leaf_paths(state).items():
        if _has_boolean(value):
            assert strict_equal(delta_leaves.get(path), value)
        else:
            assert path not in delta_leaves


@given(shadow_states())
def test_no_desired_state_means_no_delta(reported: JSONObject) -> None:
    assert compute_delta({}, reported) is None
    assert compute_delta(None, reported) is None


@given(state_pairs)
def test_delta_is_none_rather_than_an_empty_object(pair: tuple[JSONObject, JSONObject]) -> None:
    delta = compute_delta(*pair)
    assert delta is None or (isinstance(delta, dict) and delta)


@given(state_pairs)
def test_compute_delta_leaves_its_inputs_unchanged(pair: tuple[JSONObject, JSONObject]) -> None:
    desired, reported = pair
    before = copy.deepcopy(pair)
    compute_delta(desired, reported)
    assert strict_equal(desired, before[0])
    assert strict_equal(reported, before[1])


def _shared(value: Any, seen: dict[str, Any]) -> Any:
    """``value`` rebuilt so that every subtree whose JSON text equals one seen before *is* that
    one object (as in documents built by code from shared constants)."""
    if isinstance(value, dict):
        value = {key: _shared(item, seen) for key, item in value.items()}
    elif isinstance(value, list):
        value = [_shared(item, seen) for item in value]
    return seen.setdefault(json.dumps(value), value)


@given(state_pairs)
def test_how_the_documents_share_objects_does_not_change_the_delta(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    desired, reported = pair
    expected = compute_delta(desired, reported)
    seen: dict[str, Any] = {}
    shared = _shared(desired, seen), _shared(reported, seen)
    decoded = json.loads(json.dumps(desired)), json.loads(json.dumps(reported))
    for variant in (shared, decoded, (shared[0], decoded[1]), (decoded[0], shared[1])):
        assert strict_equal(compute_delta(*variant), expected)
