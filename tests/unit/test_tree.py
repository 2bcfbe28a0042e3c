"""`shadowsync._tree`: paths into JSON trees, `MISSING`, and the walks every layer shares."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import pytest

import shadowsync.rules
import shadowsync.strategies
from shadowsync._tree import (
    MISSING,
    Missing,
    Path,
    Value,
    copy_value,
    leaf_paths,
    leaves,
    lookup,
    nest,
    nested,
    overlaps,
    place,
)

if TYPE_CHECKING:
    from shadowsync._json import JSONObject, JSONValue


def test_missing_is_one_object_for_every_module() -> None:
    assert shadowsync.rules.MISSING is shadowsync.strategies.MISSING
    assert shadowsync.strategies.MISSING is MISSING
    assert shadowsync.strategies.Missing is Missing
    assert repr(MISSING) == "MISSING"


def test_lookup_finds_a_value_and_not_a_copy() -> None:
    inner: JSONObject = {"mode": "cool"}
    tree: JSONObject = {"hvac": inner, "on": True}
    assert lookup(tree, ("hvac",)) is inner
    assert lookup(tree, ("hvac", "mode")) == "cool"
    assert lookup(tree, ("on",)) is True
    assert lookup(tree, ()) is tree


@pytest.mark.parametrize(
    "path",
    [("off",), ("hvac", "fan"), ("on", "x"), ("list", "0"), ("none", "x"), ("hvac", "mode", "x")],
)
def test_lookup_of_an_absent_path_is_missing(path: tuple[str, ...]) -> None:
    tree: JSONObject = {"hvac": {"mode": "cool"}, "on": True, "list": [1, 2], "none": None}
    assert lookup(tree, path) is MISSING


def test_lookup_descends_only_into_plain_dicts() -> None:
    proxy = types.MappingProxyType({"a": 1})
    assert lookup({"p": proxy}, ("p", "a")) is MISSING
    assert lookup(proxy, ("a",)) is MISSING


def test_a_stored_none_is_found_as_none() -> None:
    assert lookup({"a": None}, ("a",)) is None


def test_place_creates_objects_on_the_way_and_replaces_non_objects() -> None:
    tree: JSONObject = {"a": 1, "b": {"c": 2}}
    place(tree, ("a", "x", "y"), 3)
    place(tree, ("b", "d"), 4)
    assert tree == {"a": {"x": {"y": 3}}, "b": {"c": 2, "d": 4}}


def test_place_stores_the_value_itself() -> None:
    value: JSONValue = {"k": [1]}
    tree: JSONObject = {}
    place(tree, ("a",), value)
    assert tree["a"] is value


def test_nest_holds_the_value_itself_at_the_path() -> None:
    value: JSONValue = [1, 2]
    tree = nest(("a", "b"), value)
    assert tree == {"a": {"b": [1, 2]}}
    assert lookup(tree, ("a", "b")) is value
    assert nest(("a",), None) == {"a": None}


def test_nested_leaves_out_missing_values_and_lets_later_entries_win() -> None:
    entries: list[tuple[Path, Value]] = [
        (("a", "b"), 1),
        (("gone",), MISSING),
        (("a", "c"), 2),
        (("x",), 1),
        (("x", "y"), 2),
    ]
    assert nested(entries) == {"a": {"b": 1, "c": 2}, "x": {"y": 2}}
    assert nested([(("a",), {"b": 1}), (("a",), 5)]) == {"a": 5}
    assert nested([]) == {}


def test_leaves_in_key_order_with_empty_objects_and_arrays_as_leaves() -> None:
    tree: JSONObject = {"hvac": {"mode": "cool", "fan": {}}, "rgb": [1, {"r": 2}], "on": None}
    assert leaves(tree) == [
        (("hvac", "mode"), "cool"),
        (("hvac", "fan"), {}),
        (("rgb",), [1, {"r": 2}]),
        (("on",), None),
    ]
    assert leaf_paths(tree) == [("hvac", "mode"), ("hvac", "fan"), ("rgb",), ("on",)]
    assert leaves({}) == []


def test_leaves_under_a_prefix() -> None:
    assert leaves({"a": {"b": 1}}, ("top",)) == [(("top", "a", "b"), 1)]
    assert leaf_paths({"a": 1}, ("top",)) == [("top", "a")]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("a",), ("a",), True),
        (("a",), ("a", "b"), True),
        (("a", "b"), ("a",), True),
        (("a", "b"), ("a", "c"), False),
        (("a",), ("b",), False),
        (("ab",), ("a", "b"), False),
        ((), ("a",), True),
    ],
)
def test_overlaps(a: tuple[str, ...], b: tuple[str, ...], expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


def test_copy_value_shares_nothing_and_keeps_missing() -> None:
    value: JSONObject = {"a": [1, {"b": 2}]}
    copied = copy_value(value)
    assert copied == value
    assert copied is not value
    assert isinstance(copied, dict)
    assert copied["a"] is not value["a"]
    assert copy_value(MISSING) is MISSING
    assert copy_value(None) is None
    assert copy_value(copy_value(lookup(value, ("a",)))) == [1, {"b": 2}]
