"""Laws of the shared tree walks in `shadowsync._tree`: looking up, placing, nesting, leaves."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import JSONObject, JSONValue, json_equal
from shadowsync._tree import (
    MISSING,
    Path,
    leaf_paths,
    leaves,
    lookup,
    nest,
    nested,
    overlaps,
    place,
)
from tests.strategies import KEY_POOL, json_values, shadow_keys

# Short paths over a small pool of keys, so that generated paths and trees meet often.
paths = st.lists(st.sampled_from(KEY_POOL[:4]), min_size=1, max_size=4).map(tuple)
trees = st.dictionaries(shadow_keys(), json_values(3), max_size=4)


@given(paths, json_values(3))
def test_lookup_finds_what_nest_put_at_a_path(path: Path, value: JSONValue) -> None:
    assert lookup(nest(path, value), path) is value


@given(trees)
def test_lookup_finds_every_leaf(tree: JSONObject) -> None:
    for path, value in leaves(tree):
        assert lookup(tree, path) is value


@given(trees)
def test_nested_leaves_rebuild_the_tree(tree: JSONObject) -> None:
    # Empty objects are leaves themselves, so they come back too; so does the key order.
    rebuilt = nested(leaves(tree))
    assert json_equal(rebuilt, tree)
    assert leaf_paths(rebuilt) == leaf_paths(tree)


@given(trees)
def test_leaf_paths_are_the_paths_of_leaves(tree: JSONObject) -> None:
    assert leaf_paths(tree) == [path for path, _ in leaves(tree)]


@given(trees)
def test_no_leaf_path_overlaps_another(tree: JSONObject) -> None:
    found = leaf_paths(tree)
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert not overlaps(a, b)


@given(trees, paths, json_values(2))
def test_place_sets_the_path_and_touches_nothing_it_does_not_overlap(
    tree: JSONObject, path: Path, value: JSONValue
) -> None:
    before = copy.deepcopy(tree)
    place(tree, path, value)
    assert lookup(tree, path) is value
    for other, kept in leaves(before):
        if not overlaps(other, path):
            found = lookup(tree, other)
            assert found is not MISSING
            assert json_equal(found, kept)


@given(paths, paths)
def test_overlaps_is_symmetric(a: Path, b: Path) -> None:
    assert overlaps(a, b) == overlaps(b, a)


@given(paths, paths)
def test_a_path_overlaps_every_path_below_it(a: Path, b: Path) -> None:
    assert overlaps(a, (*a, *b))
