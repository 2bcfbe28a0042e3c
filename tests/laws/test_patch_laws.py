"""Laws of the patches between states: RFC 6902 JSON Patch and RFC 7396 JSON Merge Patch."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import (
    JSONObject,
    JSONValue,
    apply_json_patch,
    apply_merge_patch,
    apply_update,
    json_equal,
    make_json_patch,
    make_merge_patch,
)
from tests.strategies import (
    ROOMY_LIMITS,
    json_values,
    related_states,
    related_values,
    section_patches,
    shadow_states,
    shadow_values,
    strict_equal,
)

json_pairs = st.one_of(
    related_values(),
    related_states(),
    st.tuples(json_values(), json_values()),
)
"""Pairs of any JSON values, nulls included: related ones (shared structure) and unrelated."""

null_free_pairs = st.one_of(
    related_values(),
    related_states(),
    st.tuples(shadow_values(4), shadow_values(4)),
)
"""Pairs of JSON values without null (a merge patch cannot set a value to null)."""


@given(json_pairs)
def test_applying_the_json_patch_from_a_to_b_gives_b_by_json_value(
    pair: tuple[JSONValue, JSONValue],
) -> None:
    source, target = pair
    assert json_equal(apply_json_patch(source, make_json_patch(source, target)), target)


@given(json_pairs)
def test_applying_the_json_patch_from_a_to_b_gives_b_type_strictly(
    pair: tuple[JSONValue, JSONValue],
) -> None:
    source, target = pair
    assert strict_equal(apply_json_patch(source, make_json_patch(source, target)), target)


@given(null_free_pairs)
def test_applying_the_merge_patch_from_a_to_b_gives_b_by_json_value(
    pair: tuple[JSONValue, JSONValue],
) -> None:
    source, target = pair
    assert json_equal(apply_merge_patch(source, make_merge_patch(source, target)), target)


@given(json_pairs)
def test_make_json_patch_leaves_its_inputs_unchanged(pair: tuple[JSONValue, JSONValue]) -> None:
    before = copy.deepcopy(pair)
    make_json_patch(*pair)
    assert strict_equal(list(pair), list(before))


@given(json_pairs)
def test_apply_json_patch_leaves_the_target_and_the_patch_unchanged(
    pair: tuple[JSONValue, JSONValue],
) -> None:
    source, target = pair
    patch = make_json_patch(source, target)
    before = copy.deepcopy([source, target, patch])
    apply_json_patch(source, patch)
    assert strict_equal([source, target, patch], before)


@given(null_free_pairs)
def test_make_merge_patch_leaves_its_inputs_unchanged(pair: tuple[JSONValue, JSONValue]) -> None:
    before = copy.deepcopy(pair)
    make_merge_patch(*pair)
    assert strict_equal(list(pair), list(before))


@given(json_values(), st.one_of(section_patches(), json_values()))
def test_apply_merge_patch_leaves_the_target_and_the_patch_unchanged(
    target: JSONValue, patch: JSONValue
) -> None:
    before = copy.deepcopy([target, patch])
    apply_merge_patch(target, patch)
    assert strict_equal([target, patch], before)


@given(null_free_pairs)
def test_the_result_of_apply_merge_patch_shares_nothing_mutable_with_its_inputs(
    pair: tuple[JSONValue, JSONValue],
) -> None:
    source, target = pair
    patch = make_merge_patch(source, target)
    result = apply_merge_patch(source, patch)
    before = copy.deepcopy([source, patch])
    _scribble(result)
    assert strict_equal([source, patch], before)


def _scribble(value: Any) -> None:
    """Overwrite every container inside ``value`` in place."""
    if isinstance(value, dict):
        for key in list(value):
            _scribble(value[key])
            value[key] = "scribbled"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _scribble(item)
            value[index] = "scribbled"


@given(shadow_states())
def test_the_merge_patch_from_an_object_to_itself_is_empty(state: JSONObject) -> None:
    assert make_merge_patch(state, state) == {}
    assert make_merge_patch(state, copy.deepcopy(state)) == {}


@given(json_values())
def test_the_json_patch_from_a_value_to_itself_is_empty(value: JSONValue) -> None:
    assert make_json_patch(value, copy.deepcopy(value)) == []


@given(json_values(), st.one_of(section_patches(), json_values()))
def test_applying_a_merge_patch_twice_is_the_same_as_once(
    target: JSONValue, patch: JSONValue
) -> None:
    once = apply_merge_patch(target, patch)
    assert strict_equal(apply_merge_patch(once, patch), once)


@given(related_states())
def test_the_merge_patch_between_two_states_is_an_update_giving_the_second(
    pair: tuple[JSONObject, JSONObject],
) -> None:
    source, target = pair
    created = apply_update(None, {"state": {"desired": source}}, timestamp=1).document
    patch = make_merge_patch(source, target)
    updated = apply_update(
        created, {"state": {"desired": patch}}, timestamp=2, limits=ROOMY_LIMITS
    ).document
    assert json_equal(updated.desired, target)
