"""StampedState: last-writer-wins over paths, tombstones, replay, JSON form and bad input."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync._conflict.clocks import HLCStamp
from shadowsync._conflict.stamped import (
    MAX_PATH_LENGTH,
    MAX_STATE_DEPTH,
    StampedEntry,
    StampedState,
    check_path,
)
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError
from tests.strategies.causality import Operation, leaf_values, model_apply, paths


def t(wall_ms: int, node: str = "n", counter: int = 0) -> HLCStamp:
    return HLCStamp(wall_ms=wall_ms, counter=counter, node=node)


EMPTY = StampedState.empty()


def test_empty_state_is_an_empty_object() -> None:
    assert EMPTY.value() == {}
    assert dict(EMPTY.entries) == {}
    assert EMPTY.latest is None
    assert EMPTY.to_json() == []


def test_set_and_read_back() -> None:
    state = EMPTY.set(("a",), 1, t(1)).set(("b", "c"), [1, 2], t(2))
    assert state.value() == {"a": 1, "b": {"c": [1, 2]}}
    assert state.stamp_of(("b", "c")) == t(2)
    assert state.stamp_of(("b",)) is None
    assert state.latest == t(2)


def test_a_later_write_wins_whatever_the_order_of_arrival() -> None:
    assert EMPTY.set(("a",), "new", t(2)).set(("a",), "old", t(1)).value() == {"a": "new"}
    assert EMPTY.set(("a",), "old", t(1)).set(("a",), "new", t(2)).value() == {"a": "new"}


def test_a_late_write_under_a_newer_delete_stays_deleted() -> None:
    state = EMPTY.delete(("a",), t(5)).set(("a", "b"), 1, t(3))
    assert state.value() == {}
    assert ("a", "b") not in state.entries


def test_node_breaks_ties_within_the_same_millisecond() -> None:
    one = EMPTY.set(("a",), "from-a", t(5, "a")).set(("a",), "from-b", t(5, "b"))
    other = EMPTY.set(("a",), "from-b", t(5, "b")).set(("a",), "from-a", t(5, "a"))
    assert one.value() == other.value() == {"a": "from-b"}


def test_a_reused_stamp_still_resolves_the_same_everywhere() -> None:
    stamp = t(5)
    left = EMPTY.set(("a",), "x", stamp).set(("a",), "y", stamp)
    right = EMPTY.set(("a",), "y", stamp).set(("a",), "x", stamp)
    assert left == right
    assert left.value() == {"a": "y"}  # "y" sorts after "x" as canonical JSON


def test_a_tombstone_beats_a_value_with_the_same_stamp() -> None:
    stamp = t(5)
    assert EMPTY.set(("a",), 1, stamp).delete(("a",), stamp).value() == {}
    assert EMPTY.delete(("a",), stamp).set(("a",), 1, stamp).value() == {}


def test_one_and_one_point_zero_are_different_writes() -> None:
    stamp = t(5)
    first = EMPTY.set(("a",), 1, stamp)
    second = EMPTY.set(("a",), 1.0, stamp)
    assert first != second
    joined = first.join(second)
    assert joined == second.join(first)
    assert type(joined.value()["a"]) is float  # "1.0" sorts after "1"


def test_true_and_one_are_different_values() -> None:
    assert StampedEntry(stamp=t(1), value=True) != StampedEntry(stamp=t(1), value=1)
    assert StampedEntry(stamp=t(1), value=[1]) == StampedEntry(stamp=t(1), value=[1])
    assert hash(StampedEntry(stamp=t(1), value={"a": 1})) == hash(
        StampedEntry(stamp=t(1), value={"a": 1})
    )


def test_set_makes_ancestors_objects_replacing_scalars_and_arrays() -> None:
    state = EMPTY.set(("a",), 5, t(1)).set(("b",), [1], t(2))
    state = state.set(("a", "x"), 1, t(3)).set(("b", "y", "z"), 2, t(4))
    assert state.value() == {"a": {"x": 1}, "b": {"y": {"z": 2}}}


def test_a_set_replaces_an_object_instead_of_merging() -> None:
    state = EMPTY.set(("a",), {"x": 1, "y": 2}, t(1)).set(("a",), {"z": 3}, t(2))
    assert state.value() == {"a": {"z": 3}}


def test_delete_removes_the_subtree_and_keeps_an_empty_parent() -> None:
    state = EMPTY.from_value({"a": {"b": {"c": 1}, "d": 2}}, t(1)).delete(("a", "b"), t(2))
    assert state.value() == {"a": {"d": 2}}
    assert state.delete(("a", "d"), t(3)).value() == {"a": {}}


def test_delete_makes_ancestors_objects_like_null_in_an_aws_update() -> None:
    assert EMPTY.delete(("a", "b"), t(1)).value() == {"a": {}}
    assert EMPTY.set(("a",), 5, t(1)).delete(("a", "b"), t(2)).value() == {"a": {}}


def test_an_older_delete_under_a_scalar_does_not_undo_the_scalar() -> None:
    state = EMPTY.delete(("a", "b"), t(1)).set(("a",), 5, t(2))
    assert state.value() == {"a": 5}


def test_write_then_delete_beneath_replays_like_a_sequence() -> None:
    # a=5, then a.b.c=1 (a becomes an object), then delete a.b: a stays an object.
    state = EMPTY.set(("a",), 5, t(1)).set(("a", "b", "c"), 1, t(2)).delete(("a", "b"), t(3))
    assert state.value() == {"a": {}}


def test_newer_ancestor_drops_the_entries_beneath_it() -> None:
    state = EMPTY.from_value({"a": {"b": 1, "c": {"d": 2}}, "e": 3}, t(1))
    assert sorted(state.entries) == [("a", "b"), ("a", "c", "d"), ("e",)]
    replaced = state.set(("a",), "flat", t(2))
    assert sorted(replaced.entries) == [("a",), ("e",)]
    assert replaced.value() == {"a": "flat", "e": 3}
    deleted = state.delete(("a",), t(2))
    assert sorted(deleted.entries) == [("a",), ("e",)]
    assert deleted.value() == {"e": 3}


def test_later_entries_beneath_an_older_ancestor_are_kept() -> None:
    state = EMPTY.set(("a",), {"x": 1}, t(1)).set(("a", "y"), 2, t(2))
    assert sorted(state.entries) == [("a",), ("a", "y")]
    assert state.value() == {"a": {"x": 1, "y": 2}}


def test_equal_stamp_ancestor_replays_first() -> None:
    stamp = t(1)
    state = EMPTY.set(("a", "b"), 1, stamp).set(("a",), {"c": 2}, stamp)
    assert state.value() == {"a": {"c": 2, "b": 1}}


def test_from_value_makes_one_entry_per_leaf() -> None:
    obj: dict[str, Any] = {"a": {"b": 1, "c": [{"x": 1}], "d": {}}, "e": "s", "f": 1.5}
    state = StampedState.from_value(obj, t(1))
    assert sorted(state.entries) == [("a", "b"), ("a", "c"), ("a", "d"), ("e",), ("f",)]
    assert state.value() == obj
    assert StampedState.from_value({}, t(1)) == EMPTY


def test_values_are_copied_in_and_out() -> None:
    source: dict[str, Any] = {"list": [1, 2]}
    state = EMPTY.set(("a",), source, t(1))
    source["list"].append(3)
    first: Any = state.value()
    assert first == {"a": {"list": [1, 2]}}
    first["a"]["list"].append(4)
    assert state.value() == {"a": {"list": [1, 2]}}


def test_enum_subclasses_become_plain_json() -> None:
    class Color(str, enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    state = EMPTY.set(("c",), Color.RED, t(1)).set(("l",), Level.HIGH, t(1))
    value = state.value()
    assert value == {"c": "red", "l": 3}
    assert type(value["c"]) is str
    assert type(value["l"]) is int
    assert check_path((Color.RED,)) == ("red",)


def test_set_and_delete_of_an_older_write_return_the_same_state() -> None:
    state = EMPTY.set(("a",), 1, t(5))
    assert state.set(("a",), 2, t(4)) is state
    assert state.delete(("a",), t(4)) is state
    assert state.set(("a",), 1, t(5)) is state


def test_join_with_empty_is_identity() -> None:
    state = EMPTY.set(("a",), 1, t(1))
    assert state.join(EMPTY) is state
    assert EMPTY.join(state) is state


def test_json_form() -> None:
    state = EMPTY.set(("a", "b"), {"x": [1]}, t(7, "dev")).delete(("c",), t(8, "cloud"))
    form = state.to_json()
    assert form == [
        [["a", "b"], "000000000000007-00000-dev", {"x": [1]}],
        [["c"], "000000000000008-00000-cloud"],
    ]
    assert StampedState.from_json(form) == state


def test_from_json_drops_dominated_entries() -> None:
    form = [[["a"], "000000000000009-00000-n"], [["a", "b"], "000000000000001-00000-n", 1]]
    assert StampedState.from_json(form).to_json() == [[["a"], "000000000000009-00000-n"]]


S = "000000000000001-00000-n"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({}, "a stamped state must be a JSON array, got dict"),
        ("[]", "a stamped state must be a JSON array, got str"),
        ([["a"]], "entry 0: expected [path, stamp] or [path, stamp, value]"),
        ([[["a"], S, 1, 2]], "entry 0: expected [path, stamp] or [path, stamp, value]"),
        ([5], "entry 0: expected [path, stamp]"),
        ([[[], S]], "entry 0: a path must have 1 to 32 keys, got 0"),
        ([["a", S]], "entry 0: a path must be a tuple of string keys, got str"),
        ([[["a", 1], S]], "entry 0: path keys must be strings, got 1"),
        ([[["\ud800"], S]], "entry 0: path key '\\ud800' holds a lone UTF-16 surrogate"),
        ([[["a"] * 33, S]], "entry 0: a path must have 1 to 32 keys, got 33"),
        ([[["a"], "bad"]], "entry 0: 'bad' is not an HLC stamp"),
        ([[["a"], 5]], "entry 0: an HLC stamp must be a string"),
        ([[["a"], S, None]], "entry 0: value at ('a',): null is not a stored value"),
        ([[["a"], S, [1, None]]], "null is not a stored value at [1]"),
        ([[["a"], S, {"k": {"x": None}}]], "null is not a stored value at k.x"),
        ([[["a"], S, {"k": math.inf}]], "inf is not a JSON number at k"),
        ([[["a"], S, "\udfff"]], "string '\\udfff' holds a lone UTF-16 surrogate"),
        ([[["a"], S, {1: 2}]], "object key 1 is not a string"),
        ([[["a"], S, {"\ud800": 2}]], "object key '\\ud800' holds a lone UTF-16 surrogate"),
        ([[["a"], S, {1, 2}]], "set is not a JSON type"),
        ([[["a"], S, 1], [["a"], S]], "entry 1: path ('a',) appears twice"),
        ([[["a"] * 31, S, [[1]]]], "path and value may span at most 32 levels"),
    ],
)
def test_from_json_refuses_malformed_input(obj: object, message: str) -> None:
    with pytest.raises(InvalidDocumentError) as info:
        StampedState.from_json(obj)
    assert message in str(info.value)


def test_paths_and_values_up_to_the_depth_limit_are_accepted() -> None:
    deep_path = ("k",) * MAX_PATH_LENGTH
    assert EMPTY.set(deep_path, 1, t(1)).value() is not None
    value: Any = 1
    for _ in range(MAX_STATE_DEPTH - 1):
        value = [value]
    assert EMPTY.set(("a",), value, t(1)).value()["a"] == value
    with pytest.raises(InvalidArgumentError, match="path and value may span at most 32"):
        EMPTY.set(("a",), [value], t(1))
    with pytest.raises(InvalidArgumentError, match="path and value may span at most 32"):
        EMPTY.set(deep_path, {}, t(1))


def test_adversarial_nesting_is_refused_without_recursion_error() -> None:
    deep_object: dict[str, Any] = {}
    cursor = deep_object
    deep_list: list[Any] = []
    cursor_list = deep_list
    for _ in range(50_000):
        cursor["k"] = {}
        cursor = cursor["k"]
        cursor_list.append([])
        cursor_list = cursor_list[0]
    with pytest.raises(InvalidArgumentError, match="nests too deeply"):
        StampedState.from_value(deep_object, t(1))
    with pytest.raises(InvalidArgumentError, match="nests too deeply"):
        EMPTY.set(("a",), deep_object, t(1))
    with pytest.raises(InvalidDocumentError, match="nests too deeply"):
        StampedState.from_json([[["a"], S, deep_list]])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a", "a path must be a tuple of string keys, got str"),
        ((), "a path must have 1 to 32 keys, got 0"),
        (("a", 1), "path keys must be strings, got 1"),
        (("a",) * 33, "a path must have 1 to 32 keys, got 33"),
        (None, "a path must be a tuple of string keys, got NoneType"),
    ],
)
def test_bad_paths_are_refused(path: Any, message: str) -> None:
    for call in (
        lambda: EMPTY.set(path, 1, t(1)),
        lambda: EMPTY.delete(path, t(1)),
        lambda: EMPTY.stamp_of(path),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert message in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "null is not a stored value; delete the path instead"),
        (math.nan, "nan is not a JSON number"),
        ([1, None], "null is not a stored value at [1]"),
        (object(), "object is not a JSON type"),
        (b"bytes", "bytes is not a JSON type"),
        (10**5000, "value cannot be written as JSON"),
    ],
    ids=["null", "nan", "null-in-array", "object", "bytes", "huge-int"],
)
def test_bad_values_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        EMPTY.set(("a", "b"), value, t(1))
    assert message in str(info.value)
    assert "value at ('a', 'b')" in str(info.value)


def test_bad_stamps_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="stamp must be an HLCStamp, got str"):
        EMPTY.set(("a",), 1, S)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="stamp must be an HLCStamp, got str"):
        EMPTY.delete(("a",), S)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="stamp must be an HLCStamp, got int"):
        StampedState.from_value({"a": 1}, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="stamp must be an HLCStamp, got NoneType"):
        StampedEntry(stamp=None)  # type: ignore[arg-type]


def test_bad_entries_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"a tombstone .* cannot carry a value"):
        StampedEntry(stamp=t(1), value=1, deleted=True)
    with pytest.raises(InvalidArgumentError, match="deleted must be a bool, got 1"):
        StampedEntry(stamp=t(1), value=1, deleted=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="must be a mapping of path to StampedEntry"):
        StampedState(entries=[])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="must be a StampedEntry, got int"):
        StampedState(entries={("a",): 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="can only join a StampedState, got dict"):
        EMPTY.join({})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="from_value needs a JSON object, got list"):
        StampedState.from_value([], t(1))  # type: ignore[arg-type]


class PairsMapping(Mapping[Any, StampedEntry]):
    """A mapping whose items may repeat a path spelled two ways (a tuple and a list)."""

    def __init__(self, pairs: list[tuple[Any, StampedEntry]]) -> None:
        self.pairs = pairs

    def __getitem__(self, key: Any) -> StampedEntry:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([key for key, _ in self.pairs])

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> Any:
        return list(self.pairs)


def test_a_path_given_twice_is_refused() -> None:
    entry = StampedEntry(stamp=t(1), value=1)
    entries = PairsMapping([(("a",), entry), (["a"], entry)])
    with pytest.raises(InvalidArgumentError, match=r"path \('a',\) appears twice"):
        StampedState(entries=entries)
    assert StampedState(entries=PairsMapping([(["a", "b"], entry)])).value() == {"a": {"b": 1}}


def test_constructor_prunes_dominated_entries() -> None:
    state = StampedState(
        entries={
            ("a",): StampedEntry(stamp=t(2), deleted=True),
            ("a", "b"): StampedEntry(stamp=t(1), value=1),
        }
    )
    assert list(state.entries) == [("a",)]
    with pytest.raises(TypeError):
        state.entries[("z",)] = StampedEntry(stamp=t(1), value=1)  # type: ignore[index]


def test_states_are_hashable_values() -> None:
    one = EMPTY.set(("a",), {"x": 1}, t(1))
    two = EMPTY.set(("a",), {"x": 1}, t(1))
    assert one == two
    assert len({one, two}) == 1
    assert one != EMPTY
    assert one != one.to_json()


@given(
    writes=st.lists(
        st.tuples(st.booleans(), paths, leaf_values),
        max_size=12,
    )
)
def test_a_single_writer_sees_aws_merge_semantics(writes: list[tuple[bool, Any, Any]]) -> None:
    # Each write, applied with an increasing stamp, does what the same write as an AWS update
    # (null at the path, then the value) does to the plain document.
    state = EMPTY
    document: dict[str, Any] = {}
    for tick, (deleted, path, value) in enumerate(writes):
        op = Operation(path=path, stamp=t(tick), deleted=deleted, value=None if deleted else value)
        state = op.apply_to(state)
        document = model_apply(document, op)
        assert state.value() == document
