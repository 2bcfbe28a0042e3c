"""Laws of `shadowsync._device.plan.needed`: what an update still has to send to the cloud."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowsync import JSONObject, JSONValue, json_equal
from shadowsync._conflict.merge import same
from shadowsync._device.plan import needed
from shadowsync._device.view import apply_patch
from shadowsync._json import copy_json, copy_object
from shadowsync._tree import MISSING, Path, leaf_paths, lookup
from tests.strategies import KEY_POOL, json_scalars

# A small pool of keys, so that the patch, the cloud and the target meet often.
_keys = st.sampled_from(KEY_POOL[:4])
_values = st.recursive(
    json_scalars(), lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=8
)
trees = st.dictionaries(_keys, _values, max_size=4)


def _put_at(patch: JSONObject, path: Path, value: JSONValue) -> None:
    node = patch
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if type(child) is not dict:
            return  # an ancestor is written whole already
        node = child
    node[path[-1]] = value


def needed_path_by_path(touched: JSONObject, theirs: JSONObject, target: JSONObject) -> JSONObject:
    """The specification, one touched path at a time (shortest first)."""
    patch: JSONObject = {}
    for path in sorted(leaf_paths(touched), key=len):
        for end in range(1, len(path)):
            here = lookup(theirs, path[:end])
            if type(here) is not dict:
                wanted = lookup(target, path[:end])
                if not same(here, wanted):
                    _put_at(patch, path[:end], None if wanted is MISSING else copy_json(wanted))
                break
        else:
            here, wanted = lookup(theirs, path), lookup(target, path)
            if not same(here, wanted):
                if wanted is MISSING:
                    _put_at(patch, path, None)
                elif type(here) is dict and type(wanted) is dict:
                    _put_at(patch, path, _object_change(here, wanted))
                else:
                    _put_at(patch, path, copy_json(wanted))
    return patch


def _object_change(theirs: JSONObject, target: JSONObject) -> JSONObject:
    patch: JSONObject = {key: None for key in theirs if key not in target}
    for key, value in target.items():
        if not same(theirs.get(key, MISSING), value):
            here = theirs.get(key, MISSING)
            if type(here) is dict and type(value) is dict:
                patch[key] = _object_change(here, value)
            else:
                patch[key] = copy_json(value)
    return patch


@given(trees, trees, trees)
def test_needed_is_the_path_by_path_specification(
    touched: JSONObject, theirs: JSONObject, target: JSONObject
) -> None:
    assert json_equal(needed(touched, theirs, target), needed_path_by_path(touched, theirs, target))


@given(trees, trees, trees)
def test_the_cloud_holds_the_target_at_every_touched_path_after_the_update(
    touched: JSONObject, theirs: JSONObject, target: JSONObject
) -> None:
    after = copy_object(theirs)
    apply_patch(after, needed(touched, theirs, target))
    for path in leaf_paths(touched):
        assert same(lookup(after, path), lookup(target, path)), path


@given(trees, trees)
def test_nothing_is_needed_where_the_cloud_holds_the_target(
    touched: JSONObject, target: JSONObject
) -> None:
    assert needed(touched, target, target) == {}
