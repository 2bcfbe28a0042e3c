"""The sync manager's request shapes: parsing, defaults, and 400-style errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowsync.cloud import (
    CLASSIC_SHADOW_NAME,
    EVENT_SOURCE,
    EVENT_TYPES,
    METRIC_NAMES,
    METRIC_NAMESPACE,
    OPERATIONS,
    CachedChange,
    ConflictSummaryRequest,
    DeltaEvent,
    HealthReportRequest,
    OfflineSyncRequest,
    OperationError,
    SyncCheckRequest,
    SyncManager,
    conflict_summary,
    health_report,
    offline_sync,
    parse_request,
    sync_check,
)
from shadowsync.errors import ShadowSyncError


def test_the_constants() -> None:
    assert CLASSIC_SHADOW_NAME == "$default"
    assert OPERATIONS == (
        "sync_check",
        "offline_sync",
        "conflict_summary",
        "health_report",
        "resolve_pending_conflicts",
    )
    assert EVENT_SOURCE == "iot.shadow.sync"
    assert METRIC_NAMESPACE == "IoT/ShadowSync"
    assert EVENT_TYPES == (
        "Conflict Resolved",
        "Manual Review Required",
        "Change Rejected",
        "Offline Sync Completed",
    )
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES) == 9


def test_sync_check_defaults_to_the_classic_shadow_and_a_day() -> None:
    assert parse_request({"thingName": "pump-7"}) == SyncCheckRequest(thing_name="pump-7")
    parsed = parse_request({"operation": "sync_check", "thingName": "pump-7"})
    assert parsed == SyncCheckRequest(thing_name="pump-7", shadow_names=(None,), recent_hours=24.0)


def test_sync_check_with_named_shadows_and_hours() -> None:
    parsed = parse_request(
        {
            "operation": "sync_check",
            "thingName": "pump-7",
            "shadowNames": ["configuration", "$default", "telemetry"],
            "recentHours": 2,
        }
    )
    assert parsed == SyncCheckRequest(
        thing_name="pump-7",
        shadow_names=("configuration", None, "telemetry"),
        recent_hours=2.0,
    )
    assert isinstance(parsed, SyncCheckRequest)
    assert type(parsed.recent_hours) is float


def test_offline_sync_parses_cached_changes() -> None:
    parsed = parse_request(
        {
            "operation": "offline_sync",
            "thingName": "sensor-001",
            "offlineDurationSeconds": 3600.0,
            "cachedChanges": [
                {"shadowName": "telemetry", "state": {"t": 28.5}, "timestamp": 1700000000},
                {"state": {"on": True}, "timestamp": 1700000001.0},
                {"shadowName": "telemetry", "state": {"t": None}, "timestamp": 1700000002},
            ],
        }
    )
    assert parsed == OfflineSyncRequest(
        thing_name="sensor-001",
        offline_duration_seconds=3600,
        cached_changes=(
            CachedChange(shadow_name="telemetry", state={"t": 28.5}, timestamp=1700000000),
            CachedChange(shadow_name=None, state={"on": True}, timestamp=1700000001),
            CachedChange(shadow_name="telemetry", state={"t": None}, timestamp=1700000002),
        ),
    )
    assert isinstance(parsed, OfflineSyncRequest)
    assert parsed.shadow_names == ("telemetry", None)
    assert type(parsed.offline_duration_seconds) is int


def test_conflict_summary_and_health_report_defaults() -> None:
    assert parse_request({"operation": "conflict_summary"}) == ConflictSummaryRequest(
        time_range_hours=24.0, thing_name=None
    )
    assert parse_request(
        {"operation": "conflict_summary", "timeRangeHours": 0.5, "thingName": "pump-7"}
    ) == ConflictSummaryRequest(time_range_hours=0.5, thing_name="pump-7")
    assert parse_request(
        {"operation": "health_report", "thingNames": ["a", "b"]}
    ) == HealthReportRequest(thing_names=("a", "b"), shadow_names=None)
    assert parse_request(
        {"operation": "health_report", "thingNames": [], "shadowNames": ["", "maintenance"]}
    ) == HealthReportRequest(thing_names=(), shadow_names=(None, "maintenance"))


@pytest.mark.parametrize(
    "request_body",
    [
        {"operation": "sync_check", "thingName": "pump-7", "shadowNames": ["a", "$default"]},
        {
            "operation": "offline_sync",
            "thingName": "t",
            "cachedChanges": [{"state": {"a": [1, 2.5]}, "timestamp": 3}],
        },
        {"operation": "conflict_summary", "timeRangeHours": 1.5},
        {"operation": "health_report", "thingNames": ["x", "y"]},
    ],
)
def test_text_and_bytes_parse_like_the_mapping(request_body: dict[str, Any]) -> None:
    text = json.dumps(request_body)
    parsed = parse_request(request_body)
    assert parse_request(text) == parsed
    assert parse_request(text.encode()) == parsed
    assert parse_request(bytearray(text.encode())) == parsed
    assert parse_request(memoryview(text.encode())) == parsed


@pytest.mark.parametrize(
    ("request_body", "error", "operation"),
    [
        (
            {"operation": 5},
            "unknown operation 5; expected one of sync_check, offline_sync, conflict_summary, "
            "health_report, resolve_pending_conflicts",
            None,
        ),
        (
            {"operation": "reboot"},
            "unknown operation 'reboot'; expected one of sync_check, offline_sync, "
            "conflict_summary, health_report, resolve_pending_conflicts",
            "reboot",
        ),
        (
            {"thingName": 5},
            "thingName must be a thing name (a string), got a number",
            "sync_check",
        ),
        ({"thingName": ""}, "thingName: '' must be 1 to 128 characters, has 0", "sync_check"),
        (
            {"thingName": "a b"},
            "thingName: 'a b' must match [a-zA-Z0-9:_-]+ (no '/', '+', '#' or spaces)",
            "sync_check",
        ),
        (
            {"thingName": "t", "shadowNames": "x"},
            "shadowNames must be a list of names, got a string",
            "sync_check",
        ),
        (
            {"thingName": "t", "shadowNames": ["$default", None]},
            "shadowNames names a shadow or thing twice",
            "sync_check",
        ),
        (
            {"thingName": "t", "shadowNames": [5]},
            "shadowNames[0] must be a shadow name (a string), got a number",
            "sync_check",
        ),
        (
            {"thingName": "t", "recentHours": True},
            "recentHours must be a positive number of hours, got True",
            "sync_check",
        ),
        (
            {"thingName": "t", "recentHours": 24 * 366 * 100 + 1},
            "recentHours is too large: 878401",
            "sync_check",
        ),
        (
            {"thingName": "t", "verbose": 1, "debug": 2},
            "unknown fields ['debug', 'verbose'] for sync_check; expected some of "
            "['operation', 'recentHours', 'shadowNames', 'thingName']",
            "sync_check",
        ),
        ({"operation": "offline_sync"}, "offline_sync needs a thingName", "offline_sync"),
        (
            {"operation": "offline_sync", "thingName": "t", "offlineDurationSeconds": 1.5},
            "offlineDurationSeconds must be a non-negative whole number, got 1.5",
            "offline_sync",
        ),
        (
            {"operation": "offline_sync", "thingName": "t", "offlineDurationSeconds": 2**63},
            "offlineDurationSeconds is too large: 9223372036854775808 is above 2**63 - 1",
            "offline_sync",
        ),
        (
            {"operation": "offline_sync", "thingName": "t", "cachedChanges": [5]},
            "cachedChanges[0] must be an object, got a number",
            "offline_sync",
        ),
        (
            {"operation": "offline_sync", "thingName": "t", "cachedChanges": [{"state": {}}]},
            "cachedChanges[0] needs a state and a timestamp",
            "offline_sync",
        ),
        (
            {
                "operation": "offline_sync",
                "thingName": "t",
                "cachedChanges": [{"state": [], "timestamp": 1}],
            },
            "cachedChanges[0].state is not a reported state: reported is not an object",
            "offline_sync",
        ),
        (
            {
                "operation": "offline_sync",
                "thingName": "t",
                "cachedChanges": [{"state": {}, "timestamp": 2**63}],
            },
            "cachedChanges[0].timestamp is too large: 9223372036854775808 is above 2**63 - 1",
            "offline_sync",
        ),
        (
            {"operation": "conflict_summary", "thingName": 5},
            "thingName must be a thing name (a string), got a number",
            "conflict_summary",
        ),
        (
            {"operation": "health_report", "thingNames": ["a", 5]},
            "thingNames[1] must be a thing name (a string), got a number",
            "health_report",
        ),
        (
            b"\x80",
            "the request is not valid JSON: payload is not UTF-8: invalid start byte",
            None,
        ),
        ("null", "the request must be a JSON object, got null", None),
        (["sync_check"], "the request must be a JSON object, got an array", None),
    ],
)
def test_malformed_requests_name_what_is_wrong(
    request_body: Any, error: str, operation: str | None
) -> None:
    with pytest.raises(OperationError) as caught:
        parse_request(request_body)
    assert caught.value.to_json() == {"error": error, "operation": operation}
    assert caught.value.to_response() == {
        "statusCode": 400,
        "body": json.dumps({"error": error, "operation": operation}),
    }
    assert isinstance(caught.value, ShadowSyncError)


def test_the_largest_count_is_accepted() -> None:
    parsed = parse_request(
        {"operation": "offline_sync", "thingName": "t", "offlineDurationSeconds": 2**63 - 1}
    )
    assert isinstance(parsed, OfflineSyncRequest)
    assert parsed.offline_duration_seconds == 2**63 - 1


def test_each_operation_refuses_another_operations_request() -> None:
    offline = {"operation": "offline_sync", "thingName": "t"}
    with pytest.raises(OperationError, match="expected a sync_check request, got offline_sync"):
        sync_check(offline, {}, now=0)
    with pytest.raises(OperationError, match="expected a health_report request, got sync_check"):
        health_report({"operation": "sync_check", "thingName": "t"}, {}, now=0)
    with pytest.raises(OperationError, match="expected a conflict_summary request, got offline"):
        conflict_summary(offline, (), now=0)
    with pytest.raises(OperationError, match=r"expected an? offline_sync request, got sync_check"):
        offline_sync({"operation": "sync_check", "thingName": "t"}, {}, now=0)


def test_each_operation_takes_its_request_without_the_operation_field() -> None:
    assert sync_check({"thingName": "t"}, {None: None}, now=0).thing_name == "t"
    assert offline_sync({"thingName": "t"}, {}, now=0).thing_name == "t"
    assert conflict_summary({}, (), now=3600).time_range_hours == 24.0
    assert health_report({"thingNames": ["t"]}, {}, now=0).devices[0].status == "offline"


# The recipe's other event shapes, sent to the wrong function -----------------------------


def test_the_recipes_other_event_shapes_get_a_400_that_names_them() -> None:
    stream = {
        "Records": [
            {"eventSource": "aws:dynamodb", "eventName": "INSERT", "dynamodb": {"Keys": {}}}
        ]
    }
    with pytest.raises(OperationError, match=r"Records \(from aws:dynamodb\).*/update/delta"):
        DeltaEvent.from_dict(stream)
    with pytest.raises(OperationError, match=r"operation 'sync_device_shadows'.*sync manager"):
        DeltaEvent.from_dict({"operation": "sync_device_shadows", "thingName": "pump-7"})
    with pytest.raises(OperationError, match="a stream or queue batch"):
        DeltaEvent.from_dict({"Records": "?"})
    manager = SyncManager(read_shadow=lambda thing, shadow: None)
    response = manager.handle(stream, now=1_700_000_000)
    assert response.status_code == 400
    assert "Records" in response.body["error"]
    assert "operation" in response.body["error"]
    response = manager.handle({"operation": "sync_device_shadows"}, now=1_700_000_000)
    assert response.status_code == 400
    assert "use offline_sync" in response.body["error"]


# Device settings from a dict or a JSON file ----------------------------------------------


def test_device_settings_from_a_dict_and_a_json_file(tmp_path: Any) -> None:
    from decimal import Decimal

    from shadowsync.cloud import DeviceSettings, plain_config
    from shadowsync.errors import InvalidArgumentError

    data = {
        "fleet": {"business_rules": {"rules": [{"type": "range", "path": "rate", "max": 300}]}},
        "things": {"pump-7": {"conflict_resolution": {"auto_resolve_threshold": Decimal("5")}}},
    }
    settings = DeviceSettings.from_dict(data)
    policy = settings.policy_for("pump-7")
    assert policy is not None
    assert policy.auto_resolve_threshold == 5
    assert settings.policy_for("fan-1") is None
    fleet_rules = settings.rules_for("fan-1")
    assert fleet_rules is not None
    assert [r.name for r in fleet_rules.rules] == ["range:rate"]
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(plain_config(data)), encoding="utf-8")
    assert DeviceSettings.from_json_file(path) == settings
    assert plain_config({"a": [Decimal("1.5"), Decimal("2")], "b": {Decimal("3")}}) == {
        "a": [1.5, 2],
        "b": [3],
    }
    with pytest.raises(InvalidArgumentError, match=r"config\.x is NaN"):
        plain_config({"x": Decimal("NaN")})
    with pytest.raises(InvalidArgumentError, match="unknown config types"):
        DeviceSettings.from_dict({"things": {"pump-7": {"sync_preferences": {}}}})
    with pytest.raises(InvalidArgumentError, match="unknown settings keys"):
        DeviceSettings.from_dict({"devices": {}})
    with pytest.raises(InvalidArgumentError, match="cannot read the settings file"):
        DeviceSettings.from_json_file(tmp_path / "missing.json")
