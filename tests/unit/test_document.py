"""ShadowDocument: parsing and rendering GetThingShadow bodies, metadata, size, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowsync import JSONObject, ShadowDocument, ShadowLimits, apply_update
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError

T = 1_700_000_000


def ts(t: int) -> JSONObject:
    return {"timestamp": t}


# SIM: the GET body after the device has caught up with the app (version 5).
SIM_GET: dict[str, Any] = {
    "state": {
        "desired": {"ColorRGB": [255, 255, 0]},
        "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]},
    },
    "metadata": {
        "desired": {"ColorRGB": [ts(1591141596), ts(1591141596), ts(1591141596)]},
        "reported": {
            "ID": ts(1591140517),
            "ColorRGB": [ts(1591142747), ts(1591142747), ts(1591142747)],
        },
    },
    "version": 5,
    "timestamp": 1591143269,
}

THERMOSTAT: dict[str, Any] = {
    "state": {
        "desired": {"setpoint": 21, "mode": "heat"},
        "reported": {"setpoint": 19, "mode": "heat", "firmware": {"version": "1.4.2"}},
        "delta": {"setpoint": 21},
    },
    "metadata": {
        "desired": {"setpoint": ts(T + 10), "mode": ts(T)},
        "reported": {"setpoint": ts(T + 5), "mode": ts(T), "firmware": {"version": ts(T)}},
    },
    "version": 12,
    "timestamp": T + 10,
}


def test_sim_get_body_round_trips() -> None:
    document = ShadowDocument.from_dict(SIM_GET)
    assert document.version == 5
    assert document.timestamp == 1591143269
    assert document.delta is None
    assert document.to_dict() == SIM_GET


def test_from_dict_fields_and_delta() -> None:
    document = ShadowDocument.from_dict(THERMOSTAT)
    assert document.desired == {"setpoint": 21, "mode": "heat"}
    assert document.reported == {"setpoint": 19, "mode": "heat", "firmware": {"version": "1.4.2"}}
    assert document.desired_metadata == {"setpoint": ts(T + 10), "mode": ts(T)}
    assert document.delta == {"setpoint": 21}
    assert document.delta_metadata == {"setpoint": ts(T + 10)}
    assert document.section("desired") is document.desired
    assert document.section("reported") is document.reported
    assert document.section_metadata("desired") is document.desired_metadata
    assert document.section_metadata("reported") is document.reported_metadata


def test_from_dict_ignores_a_stale_delta_and_metadata_delta() -> None:
    body = json.loads(json.dumps(THERMOSTAT))
    body["state"]["delta"] = {"mode": "cool", "bogus": 1}
    body["metadata"]["delta"] = {"mode": ts(1)}
    document = ShadowDocument.from_dict(body)
    assert document.delta == {"setpoint": 21}
    assert document.to_dict() == THERMOSTAT


def test_inferred_get_leaves_out_metadata_delta() -> None:
    document = ShadowDocument.from_dict(THERMOSTAT)
    body = document.to_dict(timestamp=T + 99)
    assert body == {
        "state": {
            "desired": {"setpoint": 21, "mode": "heat"},
            "reported": {"setpoint": 19, "mode": "heat", "firmware": {"version": "1.4.2"}},
            "delta": {"setpoint": 21},
        },
        "metadata": {
            "desired": {"setpoint": ts(T + 10), "mode": ts(T)},
            "reported": {"setpoint": ts(T + 5), "mode": ts(T), "firmware": {"version": ts(T)}},
        },
        "version": 12,
        "timestamp": T + 99,
    }


def test_doc_empty_shadow_get_body() -> None:
    assert ShadowDocument(version=3, timestamp=T).to_dict() == {
        "state": {},
        "metadata": {},
        "version": 3,
        "timestamp": T,
    }
    assert ShadowDocument.from_dict({"state": {}, "metadata": {}, "version": 3}).is_empty


def test_doc_only_non_empty_sections_appear() -> None:
    document = ShadowDocument(reported={"temp": 55}, reported_metadata={"temp": ts(T)}, version=2)
    assert document.to_dict() == {
        "state": {"reported": {"temp": 55}},
        "metadata": {"reported": {"temp": ts(T)}},
        "version": 2,
        "timestamp": 0,
    }


def test_defaults() -> None:
    document = ShadowDocument()
    assert document.desired == {}
    assert document.reported == {}
    assert document.desired_metadata == {}
    assert document.reported_metadata == {}
    assert document.version == 1
    assert document.timestamp == 0
    assert document.is_empty
    assert document.delta is None
    assert document.delta_metadata is None


def test_to_json_is_compact_get_body() -> None:
    document = ShadowDocument(
        desired={"mode": "cool"}, desired_metadata={"mode": ts(T)}, version=2, timestamp=T
    )
    assert document.to_json() == (
        '{"state":{"desired":{"mode":"cool"},"delta":{"mode":"cool"}},'
        '"metadata":{"desired":{"mode":{"timestamp":1700000000}}},'
        '"version":2,"timestamp":1700000000}'
    )
    assert json.loads(document.to_json(timestamp=T + 1))["timestamp"] == T + 1


@pytest.mark.parametrize("encode", [True, False])
def test_from_json_bytes_and_text(encode: bool) -> None:
    text = json.dumps(SIM_GET)
    document = ShadowDocument.from_json(text.encode("utf-8") if encode else text)
    assert document.to_dict() == SIM_GET


def test_versioned_state_is_the_documents_form() -> None:
    document = ShadowDocument.from_dict(THERMOSTAT)
    assert document.versioned_state() == {
        "state": {
            "desired": {"setpoint": 21, "mode": "heat"},
            "reported": {"setpoint": 19, "mode": "heat", "firmware": {"version": "1.4.2"}},
        },
        "metadata": {
            "desired": {"setpoint": ts(T + 10), "mode": ts(T)},
            "reported": {"setpoint": ts(T + 5), "mode": ts(T), "firmware": {"version": ts(T)}},
        },
        "version": 12,
    }


def test_to_dict_returns_a_copy_the_caller_owns() -> None:
    document = ShadowDocument.from_dict(THERMOSTAT)
    body = document.to_dict()
    body["state"]["reported"]["firmware"]["version"] = "hacked"
    body["metadata"]["desired"].clear()
    assert document.reported["firmware"] == {"version": "1.4.2"}
    assert document.to_dict() == THERMOSTAT


def test_from_dict_tolerates_missing_metadata() -> None:
    document = ShadowDocument.from_dict({"state": {"reported": {"temp": 20}}, "version": 4})
    assert document.reported == {"temp": 20}
    assert document.reported_metadata == {}
    assert document.timestamp == 0


@pytest.mark.parametrize("state", [None, {}])
def test_from_dict_state_null_or_empty_is_an_empty_shadow(state: Any) -> None:
    document = ShadowDocument.from_dict({"state": state, "version": 9, "timestamp": T})
    assert document == ShadowDocument(version=9, timestamp=T)


def test_from_dict_ignores_a_top_level_client_token() -> None:
    body = dict(SIM_GET, clientToken="426bfd96-e720-46d3-95cd-014e3ef12bb6")
    assert ShadowDocument.from_dict(body).to_dict() == SIM_GET


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="body-array"),
        pytest.param({"state": "x"}, id="state-string"),
        pytest.param({"state": {"desired": {"a": 1}, "foo": {}}}, id="unknown-state-node"),
        pytest.param({"state": {"desired": "x"}}, id="desired-not-object"),
        pytest.param({"state": {"reported": [1]}}, id="reported-not-object"),
        pytest.param({"state": {"desired": {"a": None}}}, id="stored-null"),
        pytest.param({"state": {"desired": {"a": [1, None]}}}, id="null-in-array"),
        pytest.param({"state": {"desired": {"a": float("nan")}}}, id="nan"),
        pytest.param({"state": {"desired": {"a": float("inf")}}}, id="infinity"),
        pytest.param(
            {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}}}, id="deep"
        ),
        pytest.param({"state": {"desired": {"blob": "x" * 8200}}}, id="too-large"),
        pytest.param({"state": {}, "metadata": [1]}, id="metadata-not-object"),
        pytest.param(
            {"state": {"desired": {"a": 1}}, "metadata": {"desired": "x"}},
            id="section-metadata-not-object",
        ),
        pytest.param({"version": -1}, id="negative-version"),
        pytest.param({"version": True}, id="bool-version"),
        pytest.param({"version": "3"}, id="string-version"),
        pytest.param({"timestamp": 1.5}, id="float-timestamp"),
        pytest.param({"timestamp": -5}, id="negative-timestamp"),
        pytest.param({"state": {"desired": {"n": 10**4300}}}, id="int-beyond-digit-limit"),
    ],
)
def test_from_dict_refuses_what_aws_would_never_return(body: Any) -> None:
    with pytest.raises(InvalidDocumentError):
        ShadowDocument.from_dict(body)


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", '{"state": NaN}', b"[" * 100_000])
def test_from_json_refuses_bad_input_with_invalid_document_error(data: bytes | str) -> None:
    with pytest.raises(InvalidDocumentError):
        ShadowDocument.from_json(data)


def test_from_dict_respects_custom_limits() -> None:
    # desired is level 1, so {"a": {"b": {...}}} puts an object at level 3.
    body = {"state": {"desired": {"a": {"b": {"c": 1}}}}}
    with pytest.raises(InvalidDocumentError):
        ShadowDocument.from_dict(body, limits=ShadowLimits(max_depth=2))
    assert ShadowDocument.from_dict(body, limits=ShadowLimits(max_depth=3)).desired == {
        "a": {"b": {"c": 1}}
    }
    big = {"state": {"reported": {"blob": "x" * 20_000}}}
    assert ShadowDocument.from_dict(big, limits=ShadowLimits(max_document_bytes=30 * 1024))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"version": -1},
        {"version": True},
        {"version": 1.0},
        {"timestamp": -1},
        {"timestamp": "now"},
        {"desired": [1]},
        {"reported": None},
        {"desired_metadata": "x"},
    ],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        ShadowDocument(**kwargs)


def test_section_by_unknown_name_is_refused() -> None:
    document = ShadowDocument()
    with pytest.raises(InvalidArgumentError):
        document.section("delta")
    with pytest.raises(InvalidArgumentError):
        document.section_metadata("state")


def test_equality_is_by_value_and_documents_are_unhashable() -> None:
    a = ShadowDocument.from_dict(THERMOSTAT)
    b = ShadowDocument.from_dict(json.loads(json.dumps(THERMOSTAT)))
    assert a == b
    assert a != ShadowDocument.from_dict(dict(THERMOSTAT, version=13))
    changed = json.loads(json.dumps(THERMOSTAT))
    changed["metadata"]["desired"]["mode"] = ts(T + 1)
    assert a != ShadowDocument.from_dict(changed)
    assert a != "not a document"
    with pytest.raises(TypeError):
        hash(a)


def test_size_is_compact_utf8_of_desired_and_reported() -> None:
    assert ShadowDocument().size == len(b"{}")
    document = ShadowDocument(
        desired={"room": "Küche", "on": True},
        reported={"room": "Küche"},
        desired_metadata={"room": ts(T), "on": ts(T)},
        reported_metadata={"room": ts(T)},
    )
    expected = '{"desired":{"room":"Küche","on":true},"reported":{"room":"Küche"}}'
    assert document.size == len(expected.encode("utf-8"))
    only_reported = ShadowDocument(reported={"t": 1})
    assert only_reported.size == len(b'{"reported":{"t":1}}')


def test_inferred_metadata_of_empty_values_and_objects_inside_arrays() -> None:
    result = apply_update(
        None,
        {
            "state": {
                "desired": {
                    "schedule": {},
                    "zones": [],
                    "presets": [{"name": "eco", "temp": 18}, [1, {"x": True}]],
                }
            }
        },
        timestamp=T,
    )
    assert result.document.desired_metadata == {
        "schedule": {},
        "zones": [],
        "presets": [{"name": ts(T), "temp": ts(T)}, [ts(T), {"x": ts(T)}]],
    }
    assert result.accepted["metadata"] == {"desired": result.document.desired_metadata}
