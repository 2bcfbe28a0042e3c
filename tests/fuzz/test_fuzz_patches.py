"""Fuzzing the four patch functions: only a ShadowSyncError (PatchError) may come out."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
from hypothesis import given

from shadowsync import (
    apply_json_patch,
    apply_merge_patch,
    errors,
    make_json_patch,
    make_merge_patch,
)
from tests.strategies import (
    capped_examples,
    hostile_json_patches,
    hostile_values,
    json_values,
    outcome,
    strict_equal,
)

DEEP = 100_000


def _check_patch_error(result: object) -> None:
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.PatchError), repr(result)


@given(hostile_values(), hostile_values())
def test_make_merge_patch_raises_only_patch_errors(source: Any, target: Any) -> None:
    _check_patch_error(outcome(lambda: make_merge_patch(source, target)))


@given(hostile_values(), hostile_values())
def test_apply_merge_patch_raises_only_patch_errors(target: Any, patch: Any) -> None:
    _check_patch_error(outcome(lambda: apply_merge_patch(target, patch)))


@capped_examples(150)
@given(hostile_values(), hostile_values())
def test_make_json_patch_raises_only_patch_errors(source: Any, target: Any) -> None:
    _check_patch_error(outcome(lambda: make_json_patch(source, target)))


@given(hostile_values(), hostile_json_patches())
def test_apply_json_patch_raises_only_patch_errors(target: Any, patch: Any) -> None:
    _check_patch_error(outcome(lambda: apply_json_patch(target, patch)))


@given(json_values(), hostile_json_patches())
def test_apply_json_patch_never_changes_its_target_even_when_it_fails(
    target: Any, patch: Any
) -> None:
    before = copy.deepcopy(target)
    outcome(lambda: apply_json_patch(target, patch))
    assert strict_equal(target, before)


# Explicit: deep and self-referencing values ---------------------------------------------------


def _deep_dict(levels: int, leaf: Any = 1) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(levels):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def _self_referencing() -> dict[str, Any]:
    loop: dict[str, Any] = {"on": True}
    loop["loop"] = loop
    return loop


CALLS = {
    "make_merge_patch": make_merge_patch,
    "apply_merge_patch": apply_merge_patch,
    "make_json_patch": make_json_patch,
}


@pytest.mark.parametrize("function", CALLS.values(), ids=CALLS.keys())
def test_patch_functions_on_dicts_nested_100000_deep_raise_only_patch_errors(
    function: Any,
) -> None:
    first, second = _deep_dict(DEEP), _deep_dict(DEEP, leaf=2)
    _check_patch_error(outcome(lambda: function(first, second)))
    _check_patch_error(outcome(lambda: function(first, first)))
    _check_patch_error(outcome(lambda: function({}, first)))


@pytest.mark.parametrize("function", CALLS.values(), ids=CALLS.keys())
def test_patch_functions_on_self_referencing_dicts_raise_only_patch_errors(
    function: Any,
) -> None:
    loop = _self_referencing()
    _check_patch_error(outcome(lambda: function(loop, loop)))
    _check_patch_error(outcome(lambda: function(loop, {"loop": {"loop": {}}})))


def test_apply_json_patch_on_a_dict_nested_100000_deep_raises_only_patch_errors() -> None:
    deep = _deep_dict(DEEP)
    operations: list[Any] = [
        [{"op": "add", "path": "/b", "value": 1}],
        [{"op": "replace", "path": "/a", "value": deep}],
        [{"op": "test", "path": "", "value": _deep_dict(DEEP)}],
        [{"op": "add", "path": "/a" * 1000, "value": 1}],
    ]
    for patch in operations:
        _check_patch_error(outcome(functools.partial(apply_json_patch, deep, patch)))
    _check_patch_error(outcome(lambda: apply_json_patch({}, operations[1])))


def test_apply_json_patch_on_a_self_referencing_dict_raises_only_patch_errors() -> None:
    loop = _self_referencing()
    _check_patch_error(outcome(lambda: apply_json_patch(loop, [])))
    patch = [{"op": "add", "path": "/x", "value": loop}]
    _check_patch_error(outcome(lambda: apply_json_patch({}, patch)))
