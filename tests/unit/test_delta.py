"""Golden tests for the AWS delta rules, delta publication, and delta as patches.

Source tags refer to section 0 of ``spec/aws-shadow-semantics.md``; ``inferred N`` to the
numbered choices made where the sources are silent.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync import (
    ShadowDocument,
    UpdateResult,
    apply_json_patch,
    apply_merge_patch,
    apply_update,
    compute_delta,
    json_equal,
    make_json_patch,
    make_merge_patch,
)
from shadowsync.errors import InvalidDocumentError, PatchError
from tests.strategies import strict_equal

if TYPE_CHECKING:
    from collections.abc import Mapping

T = 1_700_000_000


def ts(t: int) -> dict[str, int]:
    return {"timestamp": t}


def run(*payloads: Any) -> UpdateResult:
    document: ShadowDocument | None = None
    result: UpdateResult | None = None
    for index, payload in enumerate(payloads):
        result = apply_update(document, payload, timestamp=T + index)
        document = result.document
    assert result is not None
    return result


# --- compute_delta: the rules of section 3 ---


def test_doc_nested_delta_keeps_full_path_of_differing_leaf() -> None:
    desired = {"lights": {"color": {"r": 255, "g": 255, "b": 255}}}
    reported = {"lights": {"color": {"r": 255, "g": 0, "b": 255}}}
    assert compute_delta(desired, reported) == {"lights": {"color": {"g": 255}}}


def test_doc_delta_state_example() -> None:
    desired = {"color": "RED", "state": "STOP"}
    reported = {"color": "GREEN", "engine": "ON"}
    assert compute_delta(desired, reported) == {"color": "RED", "state": "STOP"}


def test_doc_mqtt_key_absent_from_reported_is_in_delta() -> None:
    assert compute_delta({"setpoint": 21, "fan": "auto"}, {"setpoint": 21}) == {"fan": "auto"}


def test_doc_mqtt_keys_only_in_reported_never_appear() -> None:
    desired = {"setpoint": 21}
    reported = {"setpoint": 19, "temperature": 18.5, "firmware": {"version": "1.4.2"}}
    assert compute_delta(desired, reported) == {"setpoint": 21}
    assert compute_delta({"firmware": {}}, {"firmware": {"version": "1.4.2"}}) is None


def test_mqtt_key_deleted_from_reported_but_still_desired_appears() -> None:
    result = run(
        {"state": {"desired": {"fan": "auto"}, "reported": {"fan": "auto"}}},
        {"state": {"reported": {"fan": None}}},
    )
    assert result.document.delta == {"fan": "auto"}
    assert result.delta is not None
    assert result.delta["state"] == {"fan": "auto"}


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        pytest.param(
            {"list": ["value_1"]},
            {"list": ["value_1", "value_2"]},
            {"list": ["value_1"]},
            id="moto-t-remove-from-list",
        ),
        pytest.param(
            {"list": ["value_1", "value_3"]},
            {"list": ["value_1", "value_2"]},
            {"list": ["value_1", "value_3"]},
            id="moto-t-remove-and-update-in-list",
        ),
        pytest.param(
            {"a": {"list": ["value_1", "value_2"]}},
            {"a": {"list": ["value_1"]}},
            {"a": {"list": ["value_1", "value_2"]}},
            id="moto-t-append-to-nested-list",
        ),
        pytest.param(
            {"a": [[1, 2], [3, 4]]},
            {"a": [[1, 2], [3]]},
            {"a": [[1, 2], [3, 4]]},
            id="moto-t-nested-lists",
        ),
        pytest.param(
            {"rgb": [255, 0, 128]},
            {"rgb": [128, 0, 255]},
            {"rgb": [255, 0, 128]},
            id="order",
        ),
        pytest.param(
            {"zones": [{"id": 1, "on": True}, {"id": 2, "on": False}]},
            {"zones": [{"id": 1, "on": True}, {"id": 2, "on": True}]},
            {"zones": [{"id": 1, "on": True}, {"id": 2, "on": False}]},
            id="objects-inside-arrays",
        ),
    ],
)
def test_doc_arrays_compared_whole_and_copied_whole(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compute_delta(desired, reported) == expected


def test_doc_equal_arrays_give_no_delta() -> None:
    assert compute_delta({"rgb": [255, 255, 0]}, {"rgb": [255, 255, 0]}) is None


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        ({"mode": {"fan": "auto"}}, {"mode": "off"}, {"mode": {"fan": "auto"}}),
        ({"mode": "off"}, {"mode": {"fan": "auto"}}, {"mode": "off"}),
        ({"rgb": [255, 0, 0]}, {"rgb": {"r": 255}}, {"rgb": [255, 0, 0]}),
        ({"rgb": {"r": 255, "g": 0}}, {"rgb": [255, 0]}, {"rgb": {"r": 255, "g": 0}}),
        ({"on": True}, {"on": "true"}, {"on": True}),
        ({"level": "3"}, {"level": 3}, {"level": "3"}),
        ({"d": {}}, {"d": 5}, {"d": {}}),
    ],
)
def test_inferred_type_change_puts_whole_desired_value_in_delta(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compute_delta(desired, reported) == expected


def test_moto_t_desired_empty_object_without_reported_counterpart_is_in_delta() -> None:
    assert compute_delta({"d": {}, "e": 1}, {"e": 1}) == {"d": {}}
    assert compute_delta({"d": {}}, None) == {"d": {}}


@pytest.mark.parametrize(
    ("desired", "reported"),
    [
        (None, None),
        (None, {"a": 1}),
        ({}, {"a": 1}),
        ({}, None),
        ({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 2]}, "extra": True}),
    ],
)
def test_moto_t_no_delta_when_desired_absent_empty_or_equal(
    desired: dict[str, Any] | None, reported: dict[str, Any] | None
) -> None:
    assert compute_delta(desired, reported) is None


def test_moto_t_no_delta_key_when_equal_and_desired_kept() -> None:
    result = run(
        {"state": {"desired": {"brightness": 80, "rgb": [255, 200, 150]}}},
        {"state": {"reported": {"brightness": 80, "rgb": [255, 200, 150], "uptime": 3600}}},
    )
    body = result.document.to_dict()
    assert body["state"] == {
        "desired": {"brightness": 80, "rgb": [255, 200, 150]},
        "reported": {"brightness": 80, "rgb": [255, 200, 150], "uptime": 3600},
    }
    assert result.delta is None
    assert result.document.delta_metadata is None


def test_mqtt_delta_is_computed_over_the_whole_stored_document() -> None:
    result = run(
        {"state": {"desired": {"setpoint": 21, "fan": "auto", "eco": True}}},
        {"state": {"reported": {"setpoint": 21, "fan": "low", "eco": True}}},
        # This update only mentions eco, but fan still differs and stays in the delta.
        {"state": {"reported": {"eco": False}}},
    )
    assert result.delta is not None
    assert result.delta["state"] == {"fan": "auto", "eco": True}


def test_compute_delta_does_not_mutate_its_inputs() -> None:
    desired = {"lights": {"color": {"r": 1, "g": 2}}, "list": [1, 2]}
    reported = {"lights": {"color": {"r": 1, "g": 3}}}
    before = copy.deepcopy((desired, reported))
    compute_delta(desired, reported)
    assert (desired, reported) == before


@pytest.mark.parametrize(
    ("desired", "reported"),
    [("x", None), ([1], {}), ([], {}), ({"a": 1}, "x"), ({"a": 1}, [1])],
)
def test_compute_delta_refuses_sections_that_are_not_objects(desired: Any, reported: Any) -> None:
    with pytest.raises(InvalidDocumentError):
        compute_delta(desired, reported)


# --- Number equality ---


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        ({"t": 1}, {"t": 1.0}, None),
        ({"t": 21.0}, {"t": 21}, None),
        ({"t": [1, 2.0]}, {"t": [1.0, 2]}, None),
        ({"t": {"x": 0}}, {"t": {"x": 0.0}}, None),
        ({"on": True}, {"on": 1}, {"on": True}),
        ({"on": 1}, {"on": True}, {"on": 1}),
        ({"off": False}, {"off": 0}, {"off": False}),
        ({"t": [True]}, {"t": [1]}, {"t": [True]}),
        ({"t": 21.5}, {"t": 21}, {"t": 21.5}),
    ],
)
def test_inferred_numbers_compare_by_value_booleans_are_not_numbers(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    assert compute_delta(desired, reported) == expected


def test_json_equal() -> None:
    assert json_equal({"a": [1, 2.0, {"b": None}]}, {"a": [1.0, 2, {"b": None}]})
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1, 2], [2, 1])
    assert not json_equal("1", 1)
    assert not json_equal(None, {})


# --- Publication on /update/delta ---


def test_doc_delta_metadata_equals_desired_metadata_of_delta_keys() -> None:
    result = run(
        {"state": {"desired": {"lights": {"color": {"r": 255, "g": 255, "b": 255}}}}},
        {"state": {"reported": {"lights": {"color": {"r": 255, "g": 0, "b": 255}}}}},
    )
    assert result.delta == {
        "state": {"lights": {"color": {"g": 255}}},
        "metadata": {"lights": {"color": {"g": ts(T)}}},
        "version": 2,
        "timestamp": T + 1,
    }
    assert result.document.delta_metadata == {"lights": {"color": {"g": ts(T)}}}


def test_mqtt_delta_published_when_request_makes_desired_differ() -> None:
    result = run(
        {"state": {"reported": {"mode": "heat"}}}, {"state": {"desired": {"mode": "cool"}}}
    )
    assert result.delta == {
        "state": {"mode": "cool"},
        "metadata": {"mode": ts(T + 1)},
        "version": 2,
        "timestamp": T + 1,
    }


def test_mqtt_no_delta_published_when_resulting_delta_is_empty() -> None:
    result = run(
        {"state": {"desired": {"mode": "cool"}}}, {"state": {"reported": {"mode": "cool"}}}
    )
    assert result.delta is None


def test_sdk_js_52_deleting_a_desired_key_raises_no_delta() -> None:
    result = run(
        {"state": {"desired": {"mode": "cool", "fan": "high"}, "reported": {"mode": "cool"}}},
        {"state": {"desired": {"fan": None}}},
    )
    assert result.document.desired == {"mode": "cool"}
    assert result.delta is None


def test_inferred_delta_republished_when_an_update_leaves_it_unchanged() -> None:
    first = run({"state": {"desired": {"fan": "auto"}, "reported": {"fan": "low"}}})
    assert first.delta is not None
    result = apply_update(
        first.document,
        {"state": {"reported": {"rssi": -67}}, "clientToken": "telemetry-5"},
        timestamp=T + 30,
    )
    assert result.delta == {
        "state": {"fan": "auto"},
        "metadata": {"fan": ts(T)},
        "version": 2,
        "timestamp": T + 30,
        "clientToken": "telemetry-5",
    }
    # Even a no-op update republishes an existing delta.
    noop = apply_update(result.document, {"state": {}}, timestamp=T + 31)
    assert noop.delta == {
        "state": {"fan": "auto"},
        "metadata": {"fan": ts(T)},
        "version": 3,
        "timestamp": T + 31,
    }


def test_delta_body_for_desired_empty_object_and_array() -> None:
    result = run({"state": {"desired": {"schedule": {}, "zones": [{"id": 1}]}}})
    assert result.delta == {
        "state": {"schedule": {}, "zones": [{"id": 1}]},
        "metadata": {"schedule": {}, "zones": [{"id": ts(T)}]},
        "version": 1,
        "timestamp": T,
    }


# --- Deltas as patches (RFC 7396 and RFC 6902) ---

BEFORE: dict[str, Any] = {
    "setpoint": 21,
    "firmware": {"version": "1.4.2", "channel": "stable"},
    "rgb": [255, 0, 0],
}
AFTER: dict[str, Any] = {
    "setpoint": 22,
    "firmware": {"version": "1.5.0"},
    "rgb": [255, 0, 0],
    "eco": True,
}


def test_make_merge_patch_and_apply_round_trip() -> None:
    patch = make_merge_patch(BEFORE, AFTER)
    assert patch == {
        "setpoint": 22,
        "firmware": {"version": "1.5.0", "channel": None},
        "eco": True,
    }
    before = copy.deepcopy(BEFORE)
    assert apply_merge_patch(BEFORE, patch) == AFTER
    assert before == BEFORE


def test_merge_patch_of_non_objects_replaces_whole() -> None:
    assert make_merge_patch([1, 2], [3]) == [3]
    assert make_merge_patch({"a": 1}, "x") == "x"
    assert make_merge_patch({"a": 1}, {"a": 1}) == {}
    assert apply_merge_patch({"a": 1}, [1]) == [1]
    assert apply_merge_patch("x", {"a": {"b": None, "c": 1}}) == {"a": {"c": 1}}


def test_merge_patch_replaces_scalar_with_whole_object() -> None:
    patch = make_merge_patch({"mode": "off"}, {"mode": {"fan": "auto"}})
    assert patch == {"mode": {"fan": "auto"}}
    assert apply_merge_patch({"mode": "off"}, patch) == {"mode": {"fan": "auto"}}


def test_make_json_patch_and_apply_round_trip() -> None:
    operations = make_json_patch(BEFORE, AFTER)
    # apply_json_patch takes list[Mapping], so the list of dicts needs a widening copy.
    widened: list[Mapping[str, Any]] = list(operations)
    assert apply_json_patch(BEFORE, widened) == AFTER
    assert BEFORE["firmware"] == {"version": "1.4.2", "channel": "stable"}
    assert make_json_patch({"a": 1, "b": [1, 2]}, {"a": 2, "b": [1, 2]}) == [
        {"op": "replace", "path": "/a", "value": 2}
    ]


@pytest.mark.parametrize(
    ("source", "target", "path"),
    [
        ({"a": -0.0}, {"a": 0.0}, "/a"),
        ({"a": {"b": 0.0}, "c": 1}, {"a": {"b": -0.0}, "c": 1}, "/a/b"),
        (-0.0, 0.0, ""),
    ],
)
def test_a_zero_changing_sign_is_a_change_in_the_json_patch(
    source: Any, target: Any, path: str
) -> None:
    # Equal numbers, but -0.0 is written "-0.0": a history record's patch must reproduce it.
    patch = make_json_patch(source, target)
    assert [(op["op"], op["path"], str(op["value"])) for op in patch] == [
        ("replace", path, str(lookup_zero(target, path)))
    ]
    assert make_json_patch(source, source) == []


def lookup_zero(value: Any, path: str) -> Any:
    for key in path.split("/")[1:]:
        value = value[key]
    return value


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/setpoint", "value": 99}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "frobnicate", "path": "/setpoint"}],
        [{"path": "/setpoint", "value": 1}],
    ],
)
def test_apply_json_patch_failure_is_patch_error(operations: list[Mapping[str, Any]]) -> None:
    with pytest.raises(PatchError):
        apply_json_patch(BEFORE, operations)


def test_apply_json_patch_refuses_non_list() -> None:
    with pytest.raises(PatchError, match="list"):
        apply_json_patch(BEFORE, {"op": "add"})  # type: ignore[arg-type]


def test_equal_containers_checked_together_still_tell_booleans_from_numbers() -> None:
    # Subtrees equal by Python's == are checked in one pass; a boolean facing a number anywhere
    # among them makes the exact comparison decide, subtree by subtree.
    desired = {"a": {"x": [True, 2]}, "b": {"y": 1, "z": [0]}, "c": {"k": "v"}}
    reported = {"a": {"x": [1, 2]}, "b": {"y": 1.0, "z": [0.0]}, "c": {"k": "v"}}
    assert compute_delta(desired, reported) == {"a": {"x": [True, 2]}}


def test_equal_containers_in_another_key_order_or_sharing_objects_have_no_delta() -> None:
    shared = {"mode": "eco"}
    desired = {"a": {"p": 1, "q": 2}, "b": [shared, shared]}
    reported = {"a": {"q": 2, "p": 1}, "b": [{"mode": "eco"}, {"mode": "eco"}]}
    assert compute_delta(desired, reported) is None


# --- Exact typing, whatever objects the two documents share ---


def decoded(value: Any) -> Any:
    """``value`` as a service holds it after decoding its JSON text: no object shared."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("desired", "reported", "expected"),
    [
        ({"a": {"b": [1, [True]]}}, {"a": {"b": [1, [1]]}}, {"a": {"b": [1, [True]]}}),
        ({"a": {"b": [1, [1]]}}, {"a": {"b": [1, [True]]}}, {"a": {"b": [1, [1]]}}),
        ({"a": {"b": [{"c": False}]}}, {"a": {"b": [{"c": 0}]}}, {"a": {"b": [{"c": False}]}}),
        ({"a": {"b": [{"c": 0.0}]}}, {"a": {"b": [{"c": False}]}}, {"a": {"b": [{"c": 0.0}]}}),
        (
            {"a": {"b": {"c": True}}, "d": [1]},
            {"a": {"b": {"c": 1.0}}, "d": [1.0]},
            {"a": {"b": {"c": True}}},
        ),
        ({"a": {"b": [{"c": 0}]}}, {"a": {"b": [{"c": 0.0}]}}, None),
        ({"a": {"b": {"c": [1.0, 2]}}}, {"a": {"b": {"c": [1, 2.0]}}}, None),
        ({"a": {"x": 1, "y": [True]}}, {"a": {"y": [True], "x": 1.0}}, None),
        ({"a": [True], "b": {"c": 1}}, {"a": [True], "b": {"c": True}}, {"b": {"c": 1}}),
    ],
)
def test_booleans_are_not_numbers_and_numbers_compare_by_value_deep_in_equal_containers(
    desired: dict[str, Any], reported: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    # Each pair is equal by Python's ==; only the exact check can tell true from 1 in it.
    assert desired == reported
    for pair in ((desired, reported), (decoded(desired), decoded(reported))):
        assert strict_equal(compute_delta(*pair), expected)


def test_documents_sharing_sub_objects_give_the_delta_of_their_decoded_equals() -> None:
    # Built by code: one object stands in several places, on one side only or on both.
    shared = {"on": True, "level": 1, "rgb": [255, 0, 0]}
    word = "eco"
    desired: dict[str, Any] = {
        "a": shared,
        "b": shared,
        "c": [shared, shared],
        "d": {"mode": word, "alt": word, "on": True},
        "e": {"x": [shared]},
    }
    reported: dict[str, Any] = {
        "a": {"on": True, "level": 1.0, "rgb": [255, 0, 0]},
        "b": {"on": 1, "level": 1, "rgb": [255, 0, 0]},
        "c": [shared, {"on": True, "level": 1, "rgb": [255, 0, 0]}],
        "d": {"mode": "eco", "alt": word, "on": True},
        "e": {"x": [{"on": True, "level": 1, "rgb": [255.0, 0, 0]}]},
    }
    expected: dict[str, Any] = {"b": {"on": True}}
    for pair in _provenances(desired, reported):
        assert strict_equal(compute_delta(*pair), expected)
    # A number facing the boolean of the shared object, in an array equal by Python's ==.
    reported["e"] = {"x": [{"on": 1, "level": 1, "rgb": [255, 0, 0]}]}
    expected["e"] = {"x": [shared]}
    for pair in _provenances(desired, reported):
        assert strict_equal(compute_delta(*pair), expected)


def _provenances(desired: Any, reported: Any) -> list[tuple[Any, Any]]:
    return [
        (desired, reported),
        (desired, decoded(reported)),
        (decoded(desired), reported),
        (decoded(desired), decoded(reported)),
    ]


def test_reported_given_as_a_mapping_is_read_without_changing_it() -> None:
    reported: defaultdict[str, int] = defaultdict(int, {"a": 1})
    assert compute_delta({"a": 1, "b": 0}, reported) == {"b": 0}
    assert dict(reported) == {"a": 1}
