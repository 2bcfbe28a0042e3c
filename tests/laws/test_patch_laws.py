"""Laws of the patches between states: RFC 6902 JSON Patch and RFC 7396 JSON Merge Patch."""

from __future__ import annotations

import copy
import marshal
from typing import Any

import jsonpatch
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
from shadowsync._json import pickled_alike
from tests.strategies import (
    ROOMY_LIMITS,
    json_values,
    related_states,
    related_values,
    section_patches,
    shadow_states,
    shadow_values,
    strict_equal,
    typed_form,
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


def _key_order_reversed(value: Any) -> Any:
    """An equal value whose objects list their keys the other way round."""
    if isinstance(value, dict):
        return {key: _key_order_reversed(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [_key_order_reversed(item) for item in value]
    return value


def _identical(a: Any, b: Any) -> bool:
    """Equal, with the same types, float signs and key order throughout."""
    return type(a) is type(b) and a == b and marshal.dumps(a, 2) == marshal.dumps(b, 2)


def _plain_json_patch(source: Any, target: Any, path: str = "") -> list[dict[str, Any]]:
    """The JSON Patch by the plain rule, each pair checked on the spot: identical values give
    nothing, objects are compared member by member, arrays are left to jsonpatch, anything else
    is replaced."""
    if _identical(source, target):
        return []
    if type(source) is dict and type(target) is dict:
        out: list[dict[str, Any]] = []
        for key, value in source.items():
            where = path + "/" + key.replace("~", "~0").replace("/", "~1")
            if key not in target:
                out.append({"op": "remove", "path": where})
            else:
                out.extend(_plain_json_patch(value, target[key], where))
        for key, value in target.items():
            if key not in source:
                where = path + "/" + key.replace("~", "~0").replace("/", "~1")
                out.append({"op": "add", "path": where, "value": value})
        return out
    if type(source) is list and type(target) is list:
        operations = jsonpatch.make_patch(source, target).patch
        for operation in operations:
            operation["path"] = path + operation["path"]
            if "from" in operation:
                operation["from"] = path + operation["from"]
        return operations
    return [{"op": "replace", "path": path, "value": target}]


def _retyped(value: Any) -> Any:
    """An equal value (by Python's ``==``) with other types: ``1`` <-> ``1.0``, ``0``/``1`` <->
    ``False``/``True``."""
    if isinstance(value, dict):
        return {key: _retyped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_retyped(item) for item in value]
    if type(value) is bool:
        return int(value)
    if type(value) is int:
        return bool(value) if value in (0, 1) else float(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return value


patch_inputs = st.one_of(
    json_pairs,
    json_pairs.map(lambda pair: (pair[0], _key_order_reversed(pair[1]))),
    json_values().map(lambda value: (value, _key_order_reversed(value))),
    # A member equal by ``==`` but not in type (set aside, then found out) beside one that
    # differs, so that the walk goes in.
    json_values().map(lambda value: ({"a": value, "b": 1}, {"a": _retyped(value), "b": 2})),
)
"""Pairs of JSON values, some with the keys of the second in another order or equal members
of other types."""


@given(patch_inputs)
def test_make_json_patch_is_the_patch_of_the_plain_rule(pair: tuple[JSONValue, JSONValue]) -> None:
    # make_json_patch sets equal members aside and checks them all at once; it must give the
    # same operations, in the same order, as checking each pair on the spot.
    assert typed_form(make_json_patch(*pair)) == typed_form(_plain_json_patch(*pair))


@given(patch_inputs)
def test_the_json_patch_shares_nothing_with_its_inputs(pair: tuple[JSONValue, JSONValue]) -> None:
    source, target = pair
    patch = make_json_patch(source, target)
    before = copy.deepcopy([source, target])
    _scribble(patch)
    assert strict_equal([source, target], before)


@given(st.lists(json_pairs, max_size=4))
def test_pickled_alike_holds_exactly_when_every_pair_is_identical(
    pairs: list[tuple[JSONValue, JSONValue]],
) -> None:
    ours, theirs = [a for a, _ in pairs], [b for _, b in pairs]
    assert pickled_alike(ours, theirs) == all(map(_identical, ours, theirs))
