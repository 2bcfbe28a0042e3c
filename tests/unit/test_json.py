"""The one walk over values from outside: what `plain_json` takes, copies, refuses, and where."""

from __future__ import annotations

import enum
import json
import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync._json import JSONProblem, Nulls, decode_payload, plain_json
from shadowsync.errors import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Callable


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


class Items(list[Any]):
    pass


def problem(value: object, **options: Any) -> JSONProblem:
    with pytest.raises(JSONProblem) as caught:
        plain_json(value, **{"max_depth": 8, **options})
    return caught.value


def test_the_copy_is_plain_and_shares_nothing() -> None:
    value: dict[str, Any] = {"a": [1, {"b": "x"}], "c": None}
    copied = plain_json(value, max_depth=8)
    assert copied == value
    value["a"][1]["b"] = "y"
    assert copied == {"a": [1, {"b": "x"}], "c": None}


def test_lenient_takes_other_containers_and_subclasses_as_their_plain_types() -> None:
    value = MappingProxyType({Name("red"): (Level.HIGH, Items([1.5]))})
    copied = plain_json(value, max_depth=8)
    assert copied == {"red": [3, [1.5]]}
    assert type(copied) is dict
    assert isinstance(copied, dict)
    assert [type(key) for key in copied] == [str]
    assert [type(item) for item in copied["red"]] == [int, list]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ((1, 2), "type"),
        (Items([1]), "type"),
        (MappingProxyType({"a": 1}), "type"),
        ({"a": Level.HIGH}, "type"),
        ({Name("red"): 1}, "key"),
    ],
)
def test_strict_takes_only_dicts_lists_and_the_exact_scalar_types(value: object, kind: str) -> None:
    assert problem(value, lenient=False).kind == kind


@pytest.mark.parametrize(
    ("value", "kind", "location", "reason"),
    [
        ({"a": [1, math.nan]}, "number", "v.a[1]", "nan is not a JSON number"),
        ({"a": math.inf}, "number", "v.a", "inf is not a JSON number"),
        ({"a": {"b": 10**5000}}, "digits", "v.a.b", "an integer has more digits"),
        ({"a": ["x\ud800"]}, "surrogate", "v.a[0]", "lone UTF-16 surrogate"),
        ({"\udfff": 1}, "surrogate", "v", "lone UTF-16 surrogate"),
        ({"a": {2: 3}}, "key", "v.a", "object key 2 is not a string"),
        ({"a": [{1, 2}]}, "type", "v.a[0]", "set is not a JSON type"),
        ({"a": b"bytes"}, "type", "v.a", "bytes is not a JSON type"),
    ],
)
def test_a_problem_says_what_and_where(
    value: object, kind: str, location: str, reason: str
) -> None:
    bad = problem(value)
    assert (bad.kind, bad.location("v")) == (kind, location)
    assert reason in bad.reason()


def test_each_caller_words_a_problem_its_own_way() -> None:
    bad = problem({"a": [1, {2: 3}]})
    assert bad.path == ("a", 1)
    assert bad.reason({"key": "has a key that is not a str: {value}"}) == (
        "has a key that is not a str: 2"
    )
    assert bad.reason({"number": "unused"}) == "object key 2 is not a string"


def test_lone_surrogates_are_kept_when_utf8_is_not_asked_for() -> None:
    assert plain_json({"\ud800": "x\udfff"}, max_depth=8, utf8=False) == {"\ud800": "x\udfff"}


@pytest.mark.parametrize(
    ("nulls", "value", "kind"),
    [
        ("anywhere", {"a": None, "b": [None, {"c": None}]}, None),
        ("members", {"a": None, "b": {"c": None}}, None),
        ("members", {"b": [None]}, "null_in_array"),
        ("members", {"b": [{"c": None}]}, "null_in_array"),
        ("nowhere", {"a": None}, "null"),
        ("nowhere", {"b": [None]}, "null_in_array"),
        ("nowhere", None, "null"),
    ],
)
def test_nulls_are_taken_where_the_caller_says(
    nulls: Nulls, value: object, kind: str | None
) -> None:
    if kind is None:
        assert plain_json(value, max_depth=8, nulls=nulls) == value
    else:
        assert problem(value, nulls=nulls).kind == kind


def test_the_value_itself_is_level_one_and_leaves_do_not_count() -> None:
    assert plain_json({"a": [1]}, max_depth=2) == {"a": [1]}
    bad = problem({"a": [[]]}, max_depth=2)
    assert (bad.kind, bad.level, bad.location("v")) == ("depth", 3, "v.a[0]")
    assert bad.reason() == "level 3 is too deep"


def test_deep_nesting_is_a_problem_not_a_recursion_error() -> None:
    deep: Any = 1
    for _ in range(10_000):
        deep = [deep]
    assert problem(deep, max_depth=64).level == 65


@pytest.mark.parametrize(
    "text",
    ["\ufeff{}", "NaN", "[Infinity]", '{"a": -Infinity}', "[1,", "", '{"a": 1} x', "1e400"],
)
def test_decode_payload_answers_as_json_loads_would(text: str) -> None:
    # The decoder is built once; what it accepts and how it words a refusal stay json.loads'.
    assert _outcome(lambda: decode_payload(text, max_depth=8)) == _outcome(
        lambda: json.loads(text, parse_constant=_refuse_constant)
    )


def _outcome(decode: Callable[[], Any]) -> tuple[str, Any]:
    """What decoding gave: the value, or the text of the refusal (its detail for ours)."""
    try:
        return ("value", decode())
    except InvalidRequestError as exc:
        return ("refused", exc.detail)
    except ValueError as exc:
        return ("refused", str(exc))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
