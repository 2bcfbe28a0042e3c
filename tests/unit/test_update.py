"""Golden tests for AWS update (merge) semantics and the messages an accepted update produces.

Source tags (DOC, FLOW, SIM, MOTO-T, ...) refer to section 0 of the reference semantics in
``spec/aws-shadow-semantics.md``; ``inferred N`` refers to the numbered choices made where the
sources are silent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shadowsync import (
    ABSENT,
    JSONObject,
    ShadowDocument,
    UpdateRequest,
    UpdateResult,
    apply_update,
)
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidRequestError,
    ShadowRejectedError,
    VersionConflictError,
)
from shadowsync.testing import InMemoryShadowService, ManualClock

T = 1_700_000_000
GOLDEN = Path(__file__).parent / "golden"


def ts(t: int) -> JSONObject:
    return {"timestamp": t}


def encoded(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def run(*payloads: Any, start: int = T, step: int = 1) -> UpdateResult:
    """Apply ``payloads`` in order to a new shadow, at ``start``, ``start + step``, ..."""
    document: ShadowDocument | None = None
    result: UpdateResult | None = None
    for index, payload in enumerate(payloads):
        result = apply_update(document, payload, timestamp=start + index * step)
        document = result.document
    assert result is not None
    return result


def rejection(document: ShadowDocument | None, payload: Any, at: int = T) -> dict[str, Any]:
    with pytest.raises(ShadowRejectedError) as info:
        apply_update(document, payload, timestamp=at)
    return info.value.to_rejected()


THERMOSTAT_REPORT = {
    "state": {
        "reported": {
            "temperature": 21.5,
            "humidity": 40,
            "mode": "heat",
            "online": True,
            "firmware": {"version": "1.4.2", "channel": "stable"},
            "schedule": [{"at": "07:00", "target": 21}, {"at": "22:00", "target": 17}],
        }
    }
}


# --- Golden scenarios: whole MQTT conversations from the AWS docs (tests/unit/golden/*.json) ---


def _scenario_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def test_golden_folder_holds_the_scenarios() -> None:
    assert [path.name for path in _scenario_files()] == [
        "flow_delete_data_and_shadow.json",
        "sim_smart_lamp_named_shadow.json",
    ]


@pytest.mark.parametrize("path", _scenario_files(), ids=lambda path: path.stem)
def test_golden_scenario(path: Path) -> None:
    scenario = json.loads(path.read_text("utf-8"))
    clock = ManualClock(0)
    service = InMemoryShadowService(clock=clock)
    for index, step in enumerate(scenario["steps"]):
        clock.set(step["at"])
        if "seed" in step:
            seed = step["seed"]
            service.seed(seed["thing"], seed["body"], shadow_name=seed.get("shadow"))
            continue
        payload = b"" if step["payload"] is None else json.dumps(step["payload"]).encode()
        published = [
            [topic, json.loads(body.decode("utf-8"))]
            for topic, body in service.handle(step["publish"], payload)
        ]
        assert published == step["expect"], f"step {index}: {step['note']}"


# --- 1. Document structure and message bodies ---


def test_moto_t_test_basic_new_shadow_starts_at_version_1() -> None:
    result = run(b'{"state": {"desired": {"led": "on"}}}')
    assert result.accepted == {
        "state": {"desired": {"led": "on"}},
        "metadata": {"desired": {"led": ts(T)}},
        "version": 1,
        "timestamp": T,
    }
    assert result.document.to_dict() == {
        "state": {"desired": {"led": "on"}, "delta": {"led": "on"}},
        "metadata": {"desired": {"led": ts(T)}},
        "version": 1,
        "timestamp": T,
    }


def test_moto_t_test_update_report_then_stale_version_conflicts() -> None:
    first = run(b'{"state": {"desired": {"led": "on"}}}')
    second = apply_update(
        first.document, b'{"state": {"reported": {"led": "on"}}}', timestamp=T + 1
    )
    assert second.accepted == {
        "state": {"reported": {"led": "on"}},
        "metadata": {"reported": {"led": ts(T + 1)}},
        "version": 2,
        "timestamp": T + 1,
    }
    # No delta key once reported matches; desired is kept (SIM, SDK #143).
    assert second.document.to_dict() == {
        "state": {"desired": {"led": "on"}, "reported": {"led": "on"}},
        "metadata": {"desired": {"led": ts(T)}, "reported": {"led": ts(T + 1)}},
        "version": 2,
        "timestamp": T + 1,
    }
    assert rejection(
        second.document, b'{"state": {"desired": {"led": "on"}}, "version": 1}', T + 2
    ) == {"code": 409, "message": "Version conflict", "timestamp": T + 2}


def test_doc_values_may_be_any_json_type() -> None:
    result = run(THERMOSTAT_REPORT)
    assert result.document.reported == THERMOSTAT_REPORT["state"]["reported"]
    assert result.accepted["metadata"] == {
        "reported": {
            "temperature": ts(T),
            "humidity": ts(T),
            "mode": ts(T),
            "online": ts(T),
            "firmware": {"version": ts(T), "channel": ts(T)},
            "schedule": [{"at": ts(T), "target": ts(T)}, {"at": ts(T), "target": ts(T)}],
        }
    }


def test_sim_metadata_of_an_array_is_per_element() -> None:
    result = run({"state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}}})
    assert result.document.reported_metadata == {
        "ID": ts(T),
        "ColorRGB": [ts(T), ts(T), ts(T)],
    }


def test_sim_per_leaf_timestamps_kept_for_untouched_leaves() -> None:
    later = T + 600
    first = run(THERMOSTAT_REPORT)
    second = apply_update(
        first.document,
        {"state": {"reported": {"temperature": 22.0, "firmware": {"version": "1.5.0"}}}},
        timestamp=later,
    )
    assert second.document.reported_metadata == {
        "temperature": ts(later),
        "humidity": ts(T),
        "mode": ts(T),
        "online": ts(T),
        "firmware": {"version": ts(later), "channel": ts(T)},
        "schedule": [{"at": ts(T), "target": ts(T)}, {"at": ts(T), "target": ts(T)}],
    }
    # Only the request's leaves are in the accepted metadata.
    assert second.accepted["metadata"] == {
        "reported": {"temperature": ts(later), "firmware": {"version": ts(later)}}
    }


def test_lights_welcome_timestamps_unchanged_by_later_updates() -> None:
    console_default = {
        "state": {"desired": {"welcome": "aws-iot"}, "reported": {"welcome": "aws-iot"}}
    }
    result = run(
        console_default,
        {"state": {"desired": {"color": {"r": 255, "g": 255, "b": 0}}}},
        {"state": {"reported": {"color": {"r": 255, "g": 255, "b": 0}}}},
        step=100,
    )
    assert result.document.desired_metadata == {
        "welcome": ts(T),
        "color": {"r": ts(T + 100), "g": ts(T + 100), "b": ts(T + 100)},
    }
    assert result.document.reported_metadata == {
        "welcome": ts(T),
        "color": {"r": ts(T + 200), "g": ts(T + 200), "b": ts(T + 200)},
    }
    assert result.document.version == 3


def test_sim_accepted_body_echoes_client_token() -> None:
    result = run(
        b'{"state":{"desired":{"ColorRGB":[255,255,0]}},'
        b'"clientToken":"21b21b21-bfd2-4279-8c65-e2f697ff4fab"}'
    )
    assert result.accepted == {
        "state": {"desired": {"ColorRGB": [255, 255, 0]}},
        "metadata": {"desired": {"ColorRGB": [ts(T), ts(T), ts(T)]}},
        "version": 1,
        "timestamp": T,
        "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab",
    }


def test_i9237_accepted_body_for_state_null() -> None:
    first = run(THERMOSTAT_REPORT)
    result = apply_update(first.document, b'{"state": null}', timestamp=T + 5)
    assert result.accepted == {
        "state": None,
        "metadata": {"timestamp": T + 5},
        "version": 2,
        "timestamp": T + 5,
    }


def test_moto_t_test_update_empty_state_versions_1_then_3() -> None:
    created = run(b'{"state": null}')
    assert created.document.to_dict() == {
        "state": {},
        "metadata": {},
        "version": 1,
        "timestamp": T,
    }
    result = run(
        b'{"state": null}',
        b'{"state": {"desired": {"setpoint": 21}}}',
        b'{"state": null}',
    )
    assert result.document.to_dict() == {
        "state": {},
        "metadata": {},
        "version": 3,
        "timestamp": T + 2,
    }


def test_doc_delta_body_has_no_desired_wrapper_and_echoes_token() -> None:
    first = run({"state": {"reported": {"color": "GREEN", "engine": "ON"}}})
    result = apply_update(
        first.document,
        {"state": {"desired": {"color": "RED", "state": "STOP"}}, "clientToken": "app-7"},
        timestamp=T + 9,
    )
    assert result.delta == {
        "state": {"color": "RED", "state": "STOP"},
        "metadata": {"color": ts(T + 9), "state": ts(T + 9)},
        "version": 2,
        "timestamp": T + 9,
        "clientToken": "app-7",
    }


def test_doc_documents_body_previous_and_current_without_delta() -> None:
    first = run({"state": {"desired": {"fan": "auto"}}})
    result = apply_update(
        first.document,
        {"state": {"reported": {"fan": "low"}}, "clientToken": "dev-1"},
        timestamp=T + 3,
    )
    assert result.documents == {
        "previous": {
            "state": {"desired": {"fan": "auto"}},
            "metadata": {"desired": {"fan": ts(T)}},
            "version": 1,
        },
        "current": {
            "state": {"desired": {"fan": "auto"}, "reported": {"fan": "low"}},
            "metadata": {"desired": {"fan": ts(T)}, "reported": {"fan": ts(T + 3)}},
            "version": 2,
        },
        "timestamp": T + 3,
        "clientToken": "dev-1",
    }


def test_client_token_is_not_stored_in_the_document() -> None:
    result = run({"state": {"desired": {"on": True}}, "clientToken": "tok-1"})
    assert "clientToken" not in result.document.to_dict()
    follow_up = apply_update(result.document, {"state": {"reported": {"on": False}}}, timestamp=T)
    assert "clientToken" not in follow_up.accepted
    assert follow_up.delta is not None
    assert "clientToken" not in follow_up.delta
    assert "clientToken" not in follow_up.documents


# --- 2. Update (merge) semantics ---


def test_i8408_request_may_carry_desired_and_reported() -> None:
    result = run({"state": {"desired": {"mode": "cool"}, "reported": {"mode": "heat"}}})
    assert result.document.desired == {"mode": "cool"}
    assert result.document.reported == {"mode": "heat"}
    assert result.accepted["state"] == {"desired": {"mode": "cool"}, "reported": {"mode": "heat"}}


def test_err_gg_pr_178_delta_inside_state_is_an_invalid_node() -> None:
    body = rejection(None, {"state": {"desired": {"a": 1}, "delta": {"a": 1}}})
    assert body == {
        "code": 400,
        "message": "State contains an invalid node: 'delta'",
        "timestamp": T,
    }


def test_doc_merge_keeps_unmentioned_siblings_moto_t_update_nested_dict() -> None:
    result = run(
        {"state": {"desired": {"lights": {"color": {"r": 255, "g": 0, "b": 255}, "on": True}}}},
        {"state": {"desired": {"lights": {"color": {"g": 255}}}}},
    )
    assert result.document.desired == {
        "lights": {"color": {"r": 255, "g": 255, "b": 255}, "on": True}
    }


def test_moto_t_test_update_desired_scalar_to_empty_object_and_object() -> None:
    result = run(
        {"state": {"desired": {"a": 1, "b": 2, "c": 3}}},
        {"state": {"desired": {"b": {}, "c": {"x": 1}, "d": {}}}},
    )
    assert result.document.desired == {"a": 1, "b": {}, "c": {"x": 1}, "d": {}}
    # With no reported section the delta equals desired, including the empty objects.
    assert result.document.delta == {"a": 1, "b": {}, "c": {"x": 1}, "d": {}}
    assert result.document.to_dict()["state"] == {
        "desired": {"a": 1, "b": {}, "c": {"x": 1}, "d": {}},
        "delta": {"a": 1, "b": {}, "c": {"x": 1}, "d": {}},
    }


def test_doc_arrays_are_replaced_whole() -> None:
    result = run(
        {"state": {"desired": {"colors": ["RED", "GREEN", "BLUE"]}}},
        {"state": {"desired": {"colors": ["RED"]}}},
    )
    assert result.document.desired == {"colors": ["RED"]}
    assert result.document.desired_metadata == {"colors": [ts(T + 1)]}


def test_flow_null_deletes_a_key_at_any_depth() -> None:
    result = run(
        THERMOSTAT_REPORT,
        {"state": {"reported": {"firmware": {"channel": None}, "online": None}}},
    )
    assert result.document.reported == {
        "temperature": 21.5,
        "humidity": 40,
        "mode": "heat",
        "firmware": {"version": "1.4.2"},
        "schedule": [{"at": "07:00", "target": 21}, {"at": "22:00", "target": 17}],
    }
    assert "online" not in result.document.reported_metadata
    assert result.document.reported_metadata["firmware"] == {"version": ts(T)}


def test_moto_t_missing_data_null_for_absent_key_is_a_no_op() -> None:
    first = run({"state": {"reported": {"a": {"b": "c"}}}})
    result = apply_update(
        first.document, {"state": {"reported": {"a": {"x": None}, "z": None}}}, timestamp=T + 1
    )
    assert result.document.reported == {"a": {"b": "c"}}
    assert result.document.reported_metadata == {"a": {"b": ts(T)}}
    assert result.document.version == 2
    # I-7695 item 3: null is never stored, even on a new shadow.
    fresh = run({"state": {"desired": {"ghost": None}}})
    assert fresh.document.to_dict() == {"state": {}, "metadata": {}, "version": 1, "timestamp": T}


def test_gg_pr_213_deleting_last_nested_key_leaves_empty_object() -> None:
    result = run(
        {"state": {"desired": {"a": {"x": 1}}}}, {"state": {"desired": {"a": {"x": None}}}}
    )
    assert result.document.desired == {"a": {}}
    assert result.document.desired_metadata == {"a": {}}
    assert result.document.to_dict()["state"] == {"desired": {"a": {}}, "delta": {"a": {}}}


def test_moto_t_test_delete_field_from_device_shadow_removes_section() -> None:
    result = run(
        {"state": {"desired": {"state1": 1, "state2": 2}}},
        {"state": {"desired": {"state1": None}}},
    )
    assert result.document.to_dict()["state"] == {
        "desired": {"state2": 2},
        "delta": {"state2": 2},
    }
    result = apply_update(result.document, {"state": {"desired": {"state2": None}}}, timestamp=T)
    assert result.document.to_dict() == {"state": {}, "metadata": {}, "version": 3, "timestamp": T}


def test_doc_section_null_removes_the_section() -> None:
    first = run({"state": {"desired": {"color": "blue"}, "reported": {"color": "green"}}})
    result = apply_update(
        first.document,
        b'{"state":{"reported":{"color":"red"},"desired":null}}',
        timestamp=T + 1,
    )
    assert result.document.to_dict() == {
        "state": {"reported": {"color": "red"}},
        "metadata": {"reported": {"color": ts(T + 1)}},
        "version": 2,
        "timestamp": T + 1,
    }
    assert result.delta is None


def test_flow_state_null_clears_both_sections_but_keeps_the_shadow() -> None:
    result = run(THERMOSTAT_REPORT, {"state": {"desired": {"mode": "cool"}}}, {"state": None})
    assert result.document.is_empty
    assert result.document.version == 3
    assert result.document.desired_metadata == {}
    assert result.document.reported_metadata == {}
    assert result.delta is None
    # The version keeps counting after the clear (FLOW note, GG-PR #193).
    after = apply_update(result.document, {"state": {"reported": {"mode": "cool"}}}, timestamp=T)
    assert after.document.version == 4


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"state": {}}, id="moto-t-no-data"),
        pytest.param({"state": {"desired": {}}}, id="moto-t-desired-empty"),
        pytest.param({"state": {"reported": {}}}, id="moto-t-reported-empty"),
    ],
)
def test_moto_t_gg_pr_193_empty_objects_change_nothing(payload: dict[str, Any]) -> None:
    first = run(THERMOSTAT_REPORT, {"state": {"desired": {"mode": "cool"}}})
    result = apply_update(first.document, payload, timestamp=T + 50)
    assert result.document.desired == first.document.desired
    assert result.document.reported == first.document.reported
    assert result.document.desired_metadata == first.document.desired_metadata
    assert result.document.reported_metadata == first.document.reported_metadata
    assert result.document.version == first.document.version + 1


@pytest.mark.parametrize(
    "payload", [{"state": {}}, {"state": {"desired": {}}}, {"state": {"reported": {}}}]
)
def test_moto_t_empty_update_creates_an_empty_shadow(payload: dict[str, Any]) -> None:
    result = run(payload)
    assert result.document.to_dict() == {"state": {}, "metadata": {}, "version": 1, "timestamp": T}
    assert result.previous is None


def test_moto_t_empty_object_as_a_value_is_stored_and_returned() -> None:
    result = run({"state": {"reported": {"alarms": {}, "zones": []}}})
    assert result.document.to_dict() == {
        "state": {"reported": {"alarms": {}, "zones": []}},
        "metadata": {"reported": {"alarms": {}, "zones": []}},
        "version": 1,
        "timestamp": T,
    }


def test_sdk_143_desired_is_not_cleared_when_reported_catches_up() -> None:
    result = run(
        {"state": {"desired": {"setpoint": 21, "fan": "auto"}}},
        {"state": {"reported": {"setpoint": 21, "fan": "auto"}}},
    )
    assert result.document.desired == {"setpoint": 21, "fan": "auto"}
    assert result.delta is None
    assert "delta" not in result.document.to_dict()["state"]


def test_sdk_143_reported_fields_missing_from_an_update_are_kept() -> None:
    result = run(THERMOSTAT_REPORT, {"state": {"reported": {"humidity": 42}}})
    expected = dict(THERMOSTAT_REPORT["state"]["reported"])
    expected["humidity"] = 42
    assert result.document.reported == expected


def test_flow_update_creates_the_shadow() -> None:
    result = run(THERMOSTAT_REPORT)
    assert result.previous is None
    assert result.document.version == 1
    assert result.request.desired is ABSENT


def test_doc_version_grows_by_one_per_accepted_update() -> None:
    payloads: list[dict[str, Any]] = [
        THERMOSTAT_REPORT,
        {"state": {"desired": {"mode": "cool"}}},
        {"state": {"reported": {"mode": "cool"}}},
        {"state": {"desired": None}},
    ]
    document: ShadowDocument | None = None
    versions = []
    for payload in payloads:
        result = apply_update(document, payload, timestamp=T)
        document = result.document
        versions.append((result.document.version, result.accepted["version"]))
    assert versions == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_rejected_update_changes_nothing() -> None:
    first = run(THERMOSTAT_REPORT, {"state": {"desired": {"mode": "cool"}}})
    before = first.document.to_dict()
    bad_payloads: list[Any] = [
        b'{"state": {"desired": {"mode": "off"}}, "version": 1}',
        b'{"state": {"desired": {"mode": [null]}}}',
        b"{not json",
        {"state": {"desired": {"blob": "x" * 9000}}},
    ]
    for payload in bad_payloads:
        with pytest.raises(ShadowRejectedError):
            apply_update(first.document, payload, timestamp=T + 99)
    assert first.document.to_dict() == before
    assert first.document.version == 2


def test_flow_optimistic_locking_version_10_becomes_11() -> None:
    stored = ShadowDocument(desired={"color": "RED"}, desired_metadata={"color": ts(T)}, version=10)
    result = apply_update(
        stored, {"state": {"desired": {"color": "BLUE"}}, "version": 10}, timestamp=T + 1
    )
    assert result.document.version == 11
    assert result.accepted["version"] == 11
    with pytest.raises(VersionConflictError) as info:
        apply_update(
            result.document,
            {"state": {"desired": {"color": "GREEN"}}, "version": 10, "clientToken": "app-42"},
            timestamp=T + 2,
        )
    # FLOW: {"code":409,"message":"Version conflict","clientToken":...}; timestamp is optional.
    assert info.value.to_rejected() == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": T + 2,
        "clientToken": "app-42",
    }
    assert info.value.code == 409


def test_doc_leaving_version_out_bypasses_the_check() -> None:
    stored = ShadowDocument(reported={"on": False}, reported_metadata={"on": ts(T)}, version=57)
    result = apply_update(stored, {"state": {"reported": {"on": True}}}, timestamp=T)
    assert result.document.version == 58


def test_previous_version_continues_a_deleted_sequence() -> None:
    result = apply_update(
        None, {"state": {"reported": {"on": True}}}, timestamp=T, previous_version=4
    )
    assert result.document.version == 5
    assert "previous" not in result.documents


def test_update_request_object_is_accepted_by_apply_update() -> None:
    request = UpdateRequest.parse(b'{"state": {"desired": {"on": true}}, "clientToken": "c"}')
    result = apply_update(None, request, timestamp=T)
    assert result.request is request
    assert result.accepted == {
        "state": {"desired": {"on": True}},
        "metadata": {"desired": {"on": ts(T)}},
        "version": 1,
        "timestamp": T,
        "clientToken": "c",
    }


def test_update_request_parse_fields() -> None:
    request = UpdateRequest.parse(
        '{"state": {"desired": {"on": true, "old": null}, "reported": null},'
        ' "version": 7, "clientToken": "abc"}'
    )
    assert request.desired == {"on": True, "old": None}
    assert request.reported is None
    assert request.clear is False
    assert request.version == 7
    assert request.client_token == "abc"
    assert request.state() == {"desired": {"on": True, "old": None}, "reported": None}
    assert request.to_dict() == {
        "state": {"desired": {"on": True, "old": None}, "reported": None},
        "version": 7,
        "clientToken": "abc",
    }


def test_update_request_absent_and_clear() -> None:
    request = UpdateRequest.parse({"state": {"reported": {"rssi": -61}}})
    assert request.desired is ABSENT
    assert request.state() == {"reported": {"rssi": -61}}
    assert request.to_dict() == {"state": {"reported": {"rssi": -61}}}
    cleared = UpdateRequest.parse(b'{"state": null, "clientToken": "wipe"}')
    assert cleared.clear is True
    assert cleared.state() is None
    assert cleared.to_dict() == {"state": None, "clientToken": "wipe"}
    assert repr(ABSENT) == "ABSENT"
    assert not ABSENT


def test_update_request_to_dict_round_trips() -> None:
    text = {
        "state": {"desired": {"fw": {"target": "2.0.1"}}, "reported": {"fw": None}},
        "version": 3,
        "clientToken": "ota-9",
    }
    assert UpdateRequest.parse(UpdateRequest.parse(text).to_dict()) == UpdateRequest.parse(text)


def test_apply_update_does_not_mutate_its_inputs() -> None:
    first = run(THERMOSTAT_REPORT)
    before = first.document.to_dict()
    payload: dict[str, Any] = {"state": {"reported": {"firmware": {"version": None}}}}
    snapshot = json.loads(json.dumps(payload))
    second = apply_update(first.document, payload, timestamp=T + 1)
    assert payload == snapshot
    assert first.document.to_dict() == before
    # The rendered bodies belong to the caller.
    second.accepted["state"] = "changed"
    assert second.document.reported["firmware"] == {"channel": "stable"}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": T, "previous_version": -1}, "previous_version"),
    ],
)
def test_apply_update_refuses_bad_arguments(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidArgumentError, match=fragment):
        apply_update(None, {"state": {}}, **kwargs)


def test_apply_update_refuses_a_document_of_the_wrong_type() -> None:
    with pytest.raises(InvalidArgumentError, match="ShadowDocument"):
        apply_update({"state": {}}, {"state": {}}, timestamp=T)  # type: ignore[arg-type]


# --- A device that reports everything, and who owns what ---


def test_a_whole_section_sent_again_stamps_every_leaf_sent_and_keeps_the_size_exact() -> None:
    first = run(
        {
            "state": {
                "reported": {"a": 1, "b": {"c": "x", "d": [1, 2], "e": [{"f": True}]}, "g": 0.5},
                "desired": {"a": 2},
            }
        }
    )
    again = {"a": 1, "b": {"c": "x", "d": [1, 2], "e": [{"f": True}]}, "g": 0.75}
    result = apply_update(first.document, {"state": {"reported": again}}, timestamp=T + 5)
    document = result.document
    assert document.reported == again
    assert document.reported_metadata == {
        "a": ts(T + 5),
        "b": {"c": ts(T + 5), "d": [ts(T + 5), ts(T + 5)], "e": [{"f": ts(T + 5)}]},
        "g": ts(T + 5),
    }
    assert document.desired_metadata == {"a": ts(T)}
    assert document.size == len(encoded({"desired": {"a": 2}, "reported": again}))


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (0.0, -0.0),
        (-0.0, 0.0),
        (2.5, 2.5),
        (1, 1.0),
        (1.0, 1),
        (True, 1),
        (1, True),
        ([1], [1.0]),
        ([1.0], [1]),
        ([True], [1]),
        ([0.0], [-0.0]),
        ([{"x": 1, "y": 2}], [{"y": 2, "x": 1}]),
        ({"x": 1}, {"x": 1.0}),
        ({"x": [True]}, {"x": [1]}),
        ({"x": {"y": 0.0}}, {"x": {"y": -0.0}}),
        ({"x": {"y": "z"}}, {"x": {"y": "z"}}),
        ("é", "é"),
        ([], []),
    ],
    ids=repr,
)
def test_a_value_sent_again_is_stored_as_sent_and_the_size_follows_its_encoding(
    before: Any, after: Any
) -> None:
    document = run({"state": {"reported": {"v": before, "w": {"x": [before]}}}}).document
    result = apply_update(
        document, {"state": {"reported": {"v": after, "w": {"x": [after]}}}}, timestamp=T + 1
    )
    reported = result.document.reported
    assert encoded(reported) == encoded({"v": after, "w": {"x": [after]}})
    assert result.document.size == len(encoded({"reported": reported}).encode())
    assert result.document.reported_metadata == {"v": stamped(after), "w": {"x": [stamped(after)]}}


def stamped(value: Any, at: int = T + 1) -> Any:
    if isinstance(value, dict):
        return {key: stamped(item, at) for key, item in value.items()}
    if isinstance(value, list):
        return [stamped(item, at) for item in value]
    return ts(at)


def test_a_null_sent_again_deletes_even_where_a_hand_built_document_holds_one() -> None:
    document = ShadowDocument(reported={"a": {"x": None, "y": 1}}, reported_metadata={})
    result = apply_update(
        document, {"state": {"reported": {"a": {"x": None, "y": 1}}}}, timestamp=T
    )
    assert result.document.reported == {"a": {"y": 1}}


def test_the_bodies_of_an_update_share_nothing_with_the_stored_document() -> None:
    result = run({"state": {"reported": {"a": [1, 2], "b": {"c": 1}, "d": 1}}})
    document = result.document
    accepted = result.accepted
    get_body = document.to_dict()
    for body in (accepted, get_body, result.documents["current"]):
        body["state"]["reported"]["a"].append(3)
        body["metadata"]["reported"]["d"]["timestamp"] = 0
        body["metadata"]["reported"]["a"][0]["timestamp"] = 0
        # Each leaf of a body has its own timestamp object.
        assert body["metadata"]["reported"]["b"] == {"c": ts(T)}
        assert body["metadata"]["reported"]["a"][1] == ts(T)
    assert document.reported == {"a": [1, 2], "b": {"c": 1}, "d": 1}
    assert document.reported_metadata == {"a": [ts(T), ts(T)], "b": {"c": ts(T)}, "d": ts(T)}
    assert result.request.reported == {"a": [1, 2], "b": {"c": 1}, "d": 1}


# --- Choices where the sources are silent ---


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b"1", b"null", b"true", b"[{}]"])
def test_inferred_non_object_payload_is_invalid_json(payload: bytes) -> None:
    assert rejection(None, payload) == {"code": 400, "message": "Invalid JSON", "timestamp": T}


def test_inferred_unknown_top_level_keys_are_ignored() -> None:
    result = run(
        b'{"state": {"reported": {"on": true}}, "foo": 1, "metadata": {"x": 1},'
        b' "timestamp": 5, "delta": {"y": 2}}'
    )
    assert result.accepted == {
        "state": {"reported": {"on": True}},
        "metadata": {"reported": {"on": ts(T)}},
        "version": 1,
        "timestamp": T,
    }
    assert result.document.reported == {"on": True}


def test_inferred_type_change_replaces_whole_value() -> None:
    result = run(
        {"state": {"desired": {"mode": {"fan": "auto", "swing": True}, "eco": "on"}}},
        {"state": {"desired": {"mode": "off", "eco": {"level": 2, "gone": None}}}},
    )
    assert result.document.desired == {"mode": "off", "eco": {"level": 2}}
    assert result.document.desired_metadata == {"mode": ts(T + 1), "eco": {"level": ts(T + 1)}}


def test_inferred_deleting_last_key_nested_keeps_empty_object_section_is_removed() -> None:
    result = run(
        {"state": {"reported": {"firmware": {"version": "1.0.0"}}}},
        {"state": {"reported": {"firmware": {"version": None}}}},
    )
    assert result.document.reported == {"firmware": {}}
    assert result.document.to_dict()["state"] == {"reported": {"firmware": {}}}
    result = apply_update(result.document, {"state": {"reported": {"firmware": None}}}, timestamp=T)
    assert result.document.to_dict()["state"] == {}
    assert result.document.to_dict()["metadata"] == {}


@pytest.mark.parametrize(
    "payload",
    [
        {"state": {}},
        {"state": {"desired": {}}},
        {"state": {"reported": {}}},
        {"state": {"desired": {"missing": None}}},
        {"state": {"reported": {"temperature": 21.5}}},
    ],
)
def test_inferred_every_accepted_update_is_version_plus_one(payload: dict[str, Any]) -> None:
    first = run(THERMOSTAT_REPORT, THERMOSTAT_REPORT, THERMOSTAT_REPORT)
    assert first.document.version == 3
    result = apply_update(first.document, payload, timestamp=T + 10)
    assert result.document.version == 4
    assert result.accepted["version"] == 4


@pytest.mark.parametrize("version", [0, 1, 2])
def test_inferred_version_for_a_missing_shadow_conflicts(version: int) -> None:
    payload = {"state": {"desired": {"on": True}}, "version": version, "clientToken": "c1"}
    assert rejection(None, payload) == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": T,
        "clientToken": "c1",
    }


def test_inferred_documents_has_no_previous_when_the_update_creates_the_shadow() -> None:
    result = run({"state": {"reported": {"temperature": 19.5}}, "clientToken": "boot"})
    assert result.documents == {
        "current": {
            "state": {"reported": {"temperature": 19.5}},
            "metadata": {"reported": {"temperature": ts(T)}},
            "version": 1,
        },
        "timestamp": T,
        "clientToken": "boot",
    }


def test_inferred_accepted_echo_of_nulls() -> None:
    first = run({"state": {"desired": {"mode": "cool"}, "reported": {"mode": "heat", "fan": "on"}}})
    field = apply_update(first.document, {"state": {"reported": {"fan": None}}}, timestamp=T + 1)
    assert field.accepted == {
        "state": {"reported": {"fan": None}},
        "metadata": {"reported": {"fan": ts(T + 1)}},
        "version": 2,
        "timestamp": T + 1,
    }
    section = apply_update(field.document, {"state": {"desired": None}}, timestamp=T + 2)
    assert section.accepted == {
        "state": {"desired": None},
        "metadata": {"desired": ts(T + 2)},
        "version": 3,
        "timestamp": T + 2,
    }
    cleared = apply_update(section.document, {"state": None}, timestamp=T + 3)
    assert cleared.accepted == {
        "state": None,
        "metadata": {"timestamp": T + 3},
        "version": 4,
        "timestamp": T + 3,
    }


def test_inferred_duplicate_keys_last_wins() -> None:
    result = run(b'{"state": {"desired": {"mode": "heat", "mode": "cool"}, "desired": {"fan": 1}}}')
    assert result.document.desired == {"fan": 1}
    result = run(b'{"state": {"reported": {"mode": "heat", "mode": "cool"}}}')
    assert result.document.reported == {"mode": "cool"}


def test_inferred_ints_up_to_4300_digits_are_kept_exactly() -> None:
    big = "9" * 4300
    result = run(b'{"state": {"reported": {"counter": ' + big.encode() + b"}}}")
    assert result.document.reported == {"counter": int(big)}
    assert rejection(None, b'{"state": {"reported": {"counter": 1' + big.encode() + b"}}}") == {
        "code": 400,
        "message": "Invalid JSON",
        "timestamp": T,
    }


def test_inferred_int_beyond_digit_limit_in_a_mapping_payload_is_invalid_json() -> None:
    # The same value given as a parsed mapping must be refused the same way, not crash.
    payload = {"state": {"reported": {"counter": 10**4300}}}
    assert rejection(None, payload) == {"code": 400, "message": "Invalid JSON", "timestamp": T}


def test_invalid_request_error_carries_detail_but_not_on_the_wire() -> None:
    with pytest.raises(InvalidRequestError) as info:
        apply_update(None, {"state": {"desired": {"zones": [1, None]}}}, timestamp=T)
    assert info.value.detail is not None
    assert "desired.zones[1]" in info.value.detail
    assert info.value.to_rejected() == {
        "code": 400,
        "message": "Array values must not be null",
        "timestamp": T,
    }
