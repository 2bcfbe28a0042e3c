"""InMemoryShadowService and ManualClock: the data plane and the MQTT view of the service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowsync import JSONObject, ShadowDocument, ShadowLimits
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidNameError,
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowNotFoundError,
    ShadowRejectedError,
    VersionConflictError,
)
from shadowsync.testing import VERSION_RETENTION_SECONDS, InMemoryShadowService, ManualClock

T = 1_700_000_000
HOURS_48 = 48 * 3600
THING = "thermostat-42"
PREFIX = f"$aws/things/{THING}/shadow"


def ts(t: int) -> JSONObject:
    return {"timestamp": t}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T)


@pytest.fixture
def service(clock: ManualClock) -> InMemoryShadowService:
    return InMemoryShadowService(clock=clock)


def publish(service: InMemoryShadowService, topic: str, payload: Any = None) -> list[Any]:
    """Serve one publish; return ``[topic, decoded body]`` pairs."""
    raw = b"" if payload is None else json.dumps(payload).encode("utf-8")
    return [[name, json.loads(body)] for name, body in service.handle(topic, raw)]


# --- ManualClock ---


def test_manual_clock() -> None:
    clock = ManualClock(100)
    assert clock() == 100.0
    clock.advance(5)
    assert clock() == 105.0
    clock.advance(-10)
    assert clock() == 95.0
    clock.set(1_000)
    assert clock() == 1000.0
    assert ManualClock()() == 1_700_000_000.0


def test_service_now_is_whole_epoch_seconds(clock: ManualClock) -> None:
    clock.set(T + 0.9)
    service = InMemoryShadowService(clock=clock)
    assert service.now() == T
    assert service.update(THING, {"state": {}}).timestamp == T


def test_service_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        InMemoryShadowService(clock=42)  # type: ignore[arg-type]
    limits = ShadowLimits(max_document_bytes=16_384)
    assert InMemoryShadowService(limits=limits).limits is limits
    assert VERSION_RETENTION_SECONDS == HOURS_48


# --- Update, get, delete ---


def test_sdk_java_626_update_upserts_without_a_registry(service: InMemoryShadowService) -> None:
    result = service.update("never-registered", b'{"state": {"reported": {"online": true}}}')
    assert result.document.version == 1
    assert result.previous is None
    assert service.get("never-registered") == {
        "state": {"reported": {"online": True}},
        "metadata": {"reported": {"online": ts(T)}},
        "version": 1,
        "timestamp": T,
    }


def test_sim_devcomm_named_and_classic_shadows_are_separate(
    service: InMemoryShadowService,
) -> None:
    service.update(THING, {"state": {"reported": {"temperature": 20.5}}})
    service.update(THING, {"state": {"desired": {"version": "2.0.1"}}}, "firmware")
    service.update(THING, {"state": {"desired": {"version": "2.0.2"}}}, "firmware")
    assert service.get(THING)["state"] == {"reported": {"temperature": 20.5}}
    firmware = service.get(THING, "firmware")
    assert firmware["state"] == {
        "desired": {"version": "2.0.2"},
        "delta": {"version": "2.0.2"},
    }
    assert firmware["version"] == 2
    assert service.get(THING)["version"] == 1


def test_rest_get_returns_full_document_with_delta_at_the_time_of_the_request(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    service.update(THING, {"state": {"desired": {"setpoint": 21}, "reported": {"setpoint": 19}}})
    clock.advance(30)
    assert service.get(THING, client_token="ui-3") == {
        "state": {
            "desired": {"setpoint": 21},
            "reported": {"setpoint": 19},
            "delta": {"setpoint": 21},
        },
        "metadata": {"desired": {"setpoint": ts(T)}, "reported": {"setpoint": ts(T)}},
        "version": 1,
        "timestamp": T + 30,
        "clientToken": "ui-3",
    }


def test_get_returns_a_copy(service: InMemoryShadowService) -> None:
    service.update(THING, {"state": {"reported": {"firmware": {"version": "1.4.2"}}}})
    body = service.get(THING)
    body["state"]["reported"]["firmware"]["version"] = "0.0.0"
    assert service.get(THING)["state"]["reported"] == {"firmware": {"version": "1.4.2"}}


@pytest.mark.parametrize(
    ("shadow", "text"),
    [
        (None, f"No shadow exists with name: '{THING}'"),
        ("firmware", "No shadow exists with name: 'firmware'"),
    ],
)
def test_inferred_not_found_text_for_get_and_delete(
    service: InMemoryShadowService, shadow: str | None, text: str
) -> None:
    with pytest.raises(ShadowNotFoundError) as get_error:
        service.get(THING, shadow)
    assert get_error.value.to_rejected() == {"code": 404, "message": text}
    with pytest.raises(ShadowNotFoundError) as delete_error:
        service.delete(THING, shadow, client_token="del-1")
    assert delete_error.value.to_rejected() == {
        "code": 404,
        "message": text,
        "clientToken": "del-1",
    }


def test_sdk_js_4372_unknown_thing_and_missing_named_shadow(
    service: InMemoryShadowService,
) -> None:
    service.update(THING, {"state": {}})
    with pytest.raises(ShadowNotFoundError, match="No shadow exists with name: 'config'"):
        service.get(THING, "config")
    with pytest.raises(ShadowNotFoundError, match="No shadow exists with name: 'ghost-thing'"):
        service.get("ghost-thing")


def test_moto_t_test_basic_get_after_delete_is_404(service: InMemoryShadowService) -> None:
    service.update(THING, b'{"state": {"desired": {"led": "on"}}}')
    assert service.delete(THING) == {"version": 1, "timestamp": T}
    assert service.document(THING) is None
    with pytest.raises(ShadowNotFoundError):
        service.get(THING)
    with pytest.raises(ShadowNotFoundError):
        service.delete(THING)


def test_flow_delete_body_is_abbreviated_with_client_token(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    for setpoint in (18, 19, 20, 21):
        service.update(THING, {"state": {"desired": {"setpoint": setpoint}}}, "schedule")
    clock.advance(12)
    assert service.delete(THING, "schedule", client_token="d-4") == {
        "version": 4,
        "timestamp": T + 12,
        "clientToken": "d-4",
    }


def test_inferred_delete_keeps_version_for_48_hours_then_resets(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    for _ in range(4):
        service.update(THING, {"state": {"reported": {"online": True}}})
    assert service.delete(THING)["version"] == 4
    clock.advance(HOURS_48)  # exactly 48 h: still within the window
    recreated = service.update(THING, {"state": {"reported": {"online": True}}})
    assert recreated.document.version == 5
    assert recreated.previous is None
    assert "previous" not in recreated.documents
    assert service.delete(THING)["version"] == 5
    clock.advance(HOURS_48 + 1)  # more than 48 h: a new sequence
    fresh = service.update(THING, {"state": {"reported": {"online": True}}})
    assert fresh.document.version == 1


def test_custom_version_retention(clock: ManualClock) -> None:
    service = InMemoryShadowService(clock=clock, version_retention_seconds=60)
    service.update(THING, {"state": {}})
    service.update(THING, {"state": {}})
    service.delete(THING)
    clock.advance(61)
    assert service.update(THING, {"state": {}}).document.version == 1


def test_version_sequences_are_per_shadow(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    service.update(THING, {"state": {}})
    for _ in range(3):
        service.update(THING, {"state": {}}, "firmware")
    service.delete(THING, "firmware")
    assert service.update(THING, {"state": {}}).document.version == 2
    assert service.update(THING, {"state": {}}, "firmware").document.version == 4
    assert service.update("other-thing", {"state": {}}, "firmware").document.version == 1


def test_version_in_request_after_delete_conflicts(service: InMemoryShadowService) -> None:
    service.update(THING, {"state": {}})
    service.delete(THING)
    with pytest.raises(VersionConflictError):
        service.update(THING, {"state": {}, "version": 1})


def test_rejected_update_leaves_stored_document_unchanged(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    service.update(THING, {"state": {"reported": {"log": "x" * 8000}}})
    before = service.document(THING)
    clock.advance(5)
    failures: list[tuple[Any, type[ShadowRejectedError]]] = [
        ({"state": {"desired": {"note": "y" * 300}}}, PayloadTooLargeError),
        ({"state": {"desired": {"on": True}}, "version": 7}, VersionConflictError),
        ({"state": {"desired": {"a": [None]}}}, InvalidRequestError),
        (b"\xff", ShadowRejectedError),
    ]
    for payload, error in failures:
        with pytest.raises(error):
            service.update(THING, payload)
    assert service.document(THING) is before
    assert service.get(THING)["version"] == 1


def test_document_accessor(service: InMemoryShadowService) -> None:
    assert service.document(THING) is None
    result = service.update(THING, {"state": {"desired": {"on": True}}}, "lamp")
    assert service.document(THING, "lamp") is result.document
    assert service.document(THING) is None


# --- Seeding ---

SIM_V3 = {
    "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
    "metadata": {
        "reported": {
            "ID": ts(1591140517),
            "ColorRGB": [ts(1591140517), ts(1591140517), ts(1591140517)],
        }
    },
    "version": 3,
    "timestamp": 1591140517,
    "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6",
}


def test_seed_from_a_get_body_then_update_continues(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    document = service.seed("mySimulatedThing", SIM_V3, "simShadow1")
    assert document.version == 3
    clock.set(1591141596)
    result = service.update(
        "mySimulatedThing", {"state": {"desired": {"ColorRGB": [255, 255, 0]}}}, "simShadow1"
    )
    assert result.document.version == 4
    assert result.document.reported_metadata["ID"] == ts(1591140517)
    assert service.get("mySimulatedThing", "simShadow1")["state"]["delta"] == {
        "ColorRGB": [255, 255, 0]
    }


def test_seed_with_a_document_replaces_and_clears_deleted_history(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    for _ in range(6):
        service.update(THING, {"state": {}})
    service.delete(THING)
    seeded = ShadowDocument(reported={"on": True}, reported_metadata={"on": ts(T)}, version=2)
    assert service.seed(THING, seeded) is seeded
    assert service.get(THING)["version"] == 2
    replacement = ShadowDocument(version=9)
    service.seed(THING, replacement)
    assert service.document(THING) is replacement
    assert service.update(THING, {"state": {}}).document.version == 10


def test_seed_refuses_bad_bodies_and_names(service: InMemoryShadowService) -> None:
    with pytest.raises(InvalidDocumentError):
        service.seed(THING, {"state": {"desired": {"a": None}}})
    with pytest.raises(InvalidNameError):
        service.seed("bad/name", {"state": {}})
    assert service.document(THING) is None


# --- ListNamedShadowsForThing ---


def _names(count: int) -> list[str]:
    return [f"sensor-{index:03d}" for index in range(count)]


def test_inferred_list_named_shadows(service: InMemoryShadowService, clock: ManualClock) -> None:
    for name in ["zeta", "Alpha", "beta", "9lives", "$config", "alpha"]:
        service.update(THING, {"state": {}}, name)
    service.update(THING, {"state": {}})  # the classic shadow is never listed
    service.delete(THING, "beta")
    clock.advance(3)
    assert service.list_named_shadows(THING) == {
        "results": ["$config", "9lives", "Alpha", "alpha", "zeta"],
        "timestamp": T + 3,
    }
    assert service.list_named_shadows("unknown-thing") == {"results": [], "timestamp": T + 3}
    # SVC: a thing has no named shadows until they are created.
    service.update("classic-only", {"state": {"reported": {"on": True}}})
    assert service.list_named_shadows("classic-only") == {"results": [], "timestamp": T + 3}


@pytest.mark.parametrize("page_size", [1, 7, 50, 99, 100, None])
def test_api_pagination_round_trip(service: InMemoryShadowService, page_size: int | None) -> None:
    names = _names(250)
    for name in reversed(names):
        service.update(THING, {"state": {}}, name)
    expected_size = 100 if page_size is None else page_size
    collected: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = service.list_named_shadows(THING, next_token=token, page_size=page_size)
        pages += 1
        results = page["results"]
        assert isinstance(results, list)
        assert page["timestamp"] == T
        collected.extend(str(name) for name in results)
        if "nextToken" not in page:
            assert len(results) == 250 - expected_size * (pages - 1)
            break
        assert len(results) == expected_size
        assert isinstance(page["nextToken"], str)
        token = page["nextToken"]
    assert collected == names
    assert pages == -(-250 // expected_size)


def test_api_exact_page_boundary_has_no_next_token(service: InMemoryShadowService) -> None:
    for name in _names(100):
        service.update(THING, {"state": {}}, name)
    assert "nextToken" not in service.list_named_shadows(THING)
    first = service.list_named_shadows(THING, page_size=50)
    second = service.list_named_shadows(THING, page_size=50, next_token=str(first["nextToken"]))
    assert second == {"results": _names(100)[50:], "timestamp": T}


def test_pagination_skips_shadows_deleted_between_pages(service: InMemoryShadowService) -> None:
    for name in _names(10):
        service.update(THING, {"state": {}}, name)
    first = service.list_named_shadows(THING, page_size=4)
    assert first["results"] == _names(4)
    service.delete(THING, "sensor-005")
    service.delete(THING, "sensor-003")
    rest = service.list_named_shadows(THING, page_size=10, next_token=str(first["nextToken"]))
    assert rest["results"] == ["sensor-004", "sensor-006", "sensor-007", "sensor-008", "sensor-009"]


@pytest.mark.parametrize("page_size", [0, 101, -1, True, 1.5, "10"])
def test_api_invalid_page_size_is_400(service: InMemoryShadowService, page_size: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        service.list_named_shadows(THING, page_size=page_size)
    assert info.value.to_rejected() == {"code": 400, "message": "Invalid pageSize"}


@pytest.mark.parametrize("token", ["not-a-token", "zzzz", "@@@@", "%%%"])
def test_invalid_next_token_is_400(service: InMemoryShadowService, token: str) -> None:
    for name in _names(3):
        service.update(THING, {"state": {}}, name)
    with pytest.raises(InvalidRequestError) as info:
        service.list_named_shadows(THING, next_token=token)
    assert info.value.to_rejected() == {"code": 400, "message": "Invalid nextToken"}


def test_non_string_next_token_is_400(service: InMemoryShadowService) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid nextToken"):
        service.list_named_shadows(THING, next_token=5)  # type: ignore[arg-type]


# --- The MQTT view: handle() ---


def test_handle_update_publishes_accepted_delta_documents_in_order(
    service: InMemoryShadowService,
) -> None:
    service.update(THING, {"state": {"reported": {"mode": "heat", "setpoint": 19}}})
    out = publish(
        service,
        f"{PREFIX}/update",
        {"state": {"desired": {"setpoint": 21}}, "clientToken": "app-1"},
    )
    assert out == [
        [
            f"{PREFIX}/update/accepted",
            {
                "state": {"desired": {"setpoint": 21}},
                "metadata": {"desired": {"setpoint": ts(T)}},
                "version": 2,
                "timestamp": T,
                "clientToken": "app-1",
            },
        ],
        [
            f"{PREFIX}/update/delta",
            {
                "state": {"setpoint": 21},
                "metadata": {"setpoint": ts(T)},
                "version": 2,
                "timestamp": T,
                "clientToken": "app-1",
            },
        ],
        [
            f"{PREFIX}/update/documents",
            {
                "previous": {
                    "state": {"reported": {"mode": "heat", "setpoint": 19}},
                    "metadata": {"reported": {"mode": ts(T), "setpoint": ts(T)}},
                    "version": 1,
                },
                "current": {
                    "state": {
                        "desired": {"setpoint": 21},
                        "reported": {"mode": "heat", "setpoint": 19},
                    },
                    "metadata": {
                        "desired": {"setpoint": ts(T)},
                        "reported": {"mode": ts(T), "setpoint": ts(T)},
                    },
                    "version": 2,
                },
                "timestamp": T,
                "clientToken": "app-1",
            },
        ],
    ]


def test_handle_update_without_delta_and_on_a_named_shadow(
    service: InMemoryShadowService,
) -> None:
    topic = f"{PREFIX}/name/firmware/update"
    out = publish(service, topic, {"state": {"reported": {"version": "1.4.2"}}})
    assert [name for name, _ in out] == [
        f"{PREFIX}/name/firmware/update/accepted",
        f"{PREFIX}/name/firmware/update/documents",
    ]
    assert service.get(THING, "firmware")["state"] == {"reported": {"version": "1.4.2"}}
    assert service.document(THING) is None


def test_handle_payload_bytes_are_compact_utf8_json(service: InMemoryShadowService) -> None:
    service.handle(f"{PREFIX}/update", '{"state": {"reported": {"room": "Küche"}}}')
    [(topic, body)] = service.handle(f"{PREFIX}/get", b"")
    assert topic == f"{PREFIX}/get/accepted"
    assert (
        body
        == (
            '{"state":{"reported":{"room":"Küche"}},'
            '"metadata":{"reported":{"room":{"timestamp":1700000000}}},'
            '"version":1,"timestamp":1700000000}'
        ).encode()
    )
    [(_, deleted)] = service.handle(f"{PREFIX}/delete", b"")
    assert deleted == b'{"version":1,"timestamp":1700000000}'


def test_handle_rejected_update_with_client_token_changes_nothing(
    service: InMemoryShadowService,
) -> None:
    service.update(THING, {"state": {"desired": {"setpoint": 21}}})
    before = service.document(THING)
    out = publish(
        service,
        f"{PREFIX}/update",
        {"state": {"desired": {"setpoint": 22}}, "version": 5, "clientToken": "app-2"},
    )
    assert out == [
        [
            f"{PREFIX}/update/rejected",
            {"code": 409, "message": "Version conflict", "timestamp": T, "clientToken": "app-2"},
        ]
    ]
    assert service.document(THING) is before


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        (
            b"\xff",
            {
                "code": 415,
                "message": "Unsupported documented encoding; supported encoding is UTF-8",
                "timestamp": T,
            },
        ),
        (b"", {"code": 400, "message": "Invalid JSON", "timestamp": T}),
        (
            b'{"state": {"foo": 1}, "clientToken": "t"}',
            {
                "code": 400,
                "message": "State contains an invalid node: 'foo'",
                "timestamp": T,
                "clientToken": "t",
            },
        ),
    ],
)
def test_handle_update_rejections(
    service: InMemoryShadowService, payload: bytes, body: dict[str, Any]
) -> None:
    out = service.handle(f"{PREFIX}/update", payload)
    assert [(topic, json.loads(raw)) for topic, raw in out] == [(f"{PREFIX}/update/rejected", body)]
    assert service.document(THING) is None


def test_handle_lone_surrogate_in_a_deleted_key_is_rejected_not_a_crash(
    service: InMemoryShadowService,
) -> None:
    out = service.handle(f"{PREFIX}/update", b'{"state": {"desired": {"\\ud800": null}}}')
    assert [(topic, json.loads(raw)) for topic, raw in out] == [
        (f"{PREFIX}/update/rejected", {"code": 400, "message": "Invalid JSON", "timestamp": T})
    ]
    assert service.document(THING) is None


def test_handle_get_and_delete_accepted_and_rejected(
    service: InMemoryShadowService, clock: ManualClock
) -> None:
    assert publish(service, f"{PREFIX}/get", {"clientToken": "g-1"}) == [
        [
            f"{PREFIX}/get/rejected",
            {
                "code": 404,
                "message": f"No shadow exists with name: '{THING}'",
                "clientToken": "g-1",
            },
        ]
    ]
    assert publish(service, f"{PREFIX}/delete") == [
        [
            f"{PREFIX}/delete/rejected",
            {"code": 404, "message": f"No shadow exists with name: '{THING}'"},
        ]
    ]
    service.update(THING, {"state": {"desired": {"on": True}}})
    clock.advance(1)
    assert publish(service, f"{PREFIX}/get") == [
        [
            f"{PREFIX}/get/accepted",
            {
                "state": {"desired": {"on": True}, "delta": {"on": True}},
                "metadata": {"desired": {"on": ts(T)}},
                "version": 1,
                "timestamp": T + 1,
            },
        ]
    ]
    assert publish(service, f"{PREFIX}/delete", {"clientToken": "d-1", "ignored": [1]}) == [
        [f"{PREFIX}/delete/accepted", {"version": 1, "timestamp": T + 1, "clientToken": "d-1"}]
    ]
    assert service.document(THING) is None


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1]", b'{"clientToken": 5}', b'{"clientToken": "' + b"x" * 65 + b'"}'],
)
def test_handle_get_ignores_an_unusable_client_token(
    service: InMemoryShadowService, payload: bytes
) -> None:
    service.update(THING, {"state": {}})
    [(topic, body)] = service.handle(f"{PREFIX}/get", payload)
    assert topic == f"{PREFIX}/get/accepted"
    assert json.loads(body) == {"state": {}, "metadata": {}, "version": 1, "timestamp": T}


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param(f"{PREFIX}/update/accepted", id="update-accepted"),
        pytest.param(f"{PREFIX}/update/delta", id="update-delta"),
        pytest.param(f"{PREFIX}/update/documents", id="update-documents"),
        pytest.param(f"{PREFIX}/get/accepted", id="get-accepted"),
        pytest.param(f"{PREFIX}/delete/rejected", id="delete-rejected"),
        pytest.param(f"{PREFIX}/name/firmware/update/rejected", id="named-update-rejected"),
        pytest.param("devices/thermostat-42/telemetry", id="not-a-shadow-topic"),
        pytest.param(f"$aws/things/{THING}/jobs/get", id="jobs"),
        pytest.param("$aws/things/bad+name/shadow/update", id="invalid-thing-name"),
        pytest.param(f"{PREFIX}/#", id="wildcard"),
        pytest.param(f"$AWS/things/{THING}/shadow/update", id="wrong-case"),
    ],
)
def test_inferred_handle_ignores_non_request_topics(
    service: InMemoryShadowService, topic: str
) -> None:
    payload = json.dumps({"state": {"desired": {"on": True}}}).encode()
    assert service.handle(topic, payload) == []
    assert service.document(THING) is None
    assert service.document(THING, "firmware") is None
