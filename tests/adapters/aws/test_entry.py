"""The Lambda entry points' settings: every variable read, every bad one named."""

from __future__ import annotations

from typing import Any

import pytest

from shadowsync import ResolutionPolicy
from shadowsync.aws.entry import (
    ConfigurationError,
    FleetMetrics,
    LambdaSettings,
    dependencies_from_environ,
)
from shadowsync.errors import InvalidArgumentError

MINIMAL = {"SHADOW_HISTORY_TABLE": "history"}


def test_only_the_history_table_is_required() -> None:
    settings = LambdaSettings.from_environ(MINIMAL)
    assert settings.history_table == "history"
    assert (settings.event_bus, settings.device_config_table, settings.iot_data_endpoint) == (
        None,
        None,
        None,
    )
    assert settings.publish_metrics is True
    assert settings.policy == ResolutionPolicy.from_dict({"strategy": "field_level_merge"})
    assert settings.thresholds.expected_shadows == (None,)


def test_every_variable_is_read() -> None:
    settings = LambdaSettings.from_environ(
        {
            **MINIMAL,
            "DEVICE_CONFIG_TABLE": "config",
            "EVENT_BUS_NAME": "bus",
            "PUBLISH_METRICS": "false",
            "IOT_DATA_ENDPOINT": "https://abc-ats.iot.eu-west-1.amazonaws.com",
            "DEFAULT_CONFLICT_STRATEGY": "manual_review",
            "AUTO_RESOLVE_THRESHOLD": "7",
            "HEALTH_EXPECTED_SHADOWS": "$default, configuration",
            "HEALTH_OFFLINE_AFTER_SECONDS": "120",
            "HEALTH_PENDING_AFTER_SECONDS": "60",
            "HEALTH_CONFLICT_WINDOW_SECONDS": "3600",
            "HEALTH_CONFLICTS_FOR_CONFLICT": "2",
        }
    )
    assert (settings.device_config_table, settings.event_bus) == ("config", "bus")
    assert settings.publish_metrics is False
    assert settings.iot_data_endpoint == "https://abc-ats.iot.eu-west-1.amazonaws.com"
    assert settings.policy == ResolutionPolicy.from_dict(
        {"strategy": "manual_review", "auto_resolve_threshold": 7}
    )
    thresholds = settings.thresholds
    assert thresholds.expected_shadows == (None, "configuration")
    assert (
        thresholds.offline_after_seconds,
        thresholds.pending_after_seconds,
        thresholds.conflict_window_seconds,
        thresholds.conflicts_for_conflict,
    ) == (120, 60, 3600, 2)


def test_an_empty_value_is_unset() -> None:
    # The template passes "" for an optional parameter left empty.
    settings = LambdaSettings.from_environ(
        {**MINIMAL, "IOT_DATA_ENDPOINT": "", "EVENT_BUS_NAME": " "}
    )
    assert (settings.iot_data_endpoint, settings.event_bus) == (None, None)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SHADOW_HISTORY_TABLE", "", "is not set"),
        ("AUTO_RESOLVE_THRESHOLD", "five", "must be a whole number, got 'five'"),
        ("AUTO_RESOLVE_THRESHOLD", "0", "must be at least 1, got 0"),
        ("HEALTH_OFFLINE_AFTER_SECONDS", "1.5", "must be a whole number"),
        ("HEALTH_CONFLICTS_FOR_CONFLICT", "-1", "must be at least 1"),
        ("PUBLISH_METRICS", "maybe", "must be true or false, got 'maybe'"),
        ("DEFAULT_CONFLICT_STRATEGY", "coin_toss", "unknown strategy"),
        ("HEALTH_EXPECTED_SHADOWS", "a/b", ""),
    ],
)
def test_a_bad_variable_is_named(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        LambdaSettings.from_environ({**MINIMAL, variable: value})
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert problem in str(caught.value)
    assert isinstance(caught.value, InvalidArgumentError)


class _Session:
    """Hands out named stand-ins for clients and remembers what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        self.asked.append((service, endpoint_url))
        return f"{service}-client"


def test_dependencies_create_one_client_per_service_in_use() -> None:
    session = _Session()
    deps = dependencies_from_environ(
        {**MINIMAL, "EVENT_BUS_NAME": "bus", "IOT_DATA_ENDPOINT": "https://x"}, session=session
    )
    assert sorted(session.asked) == [
        ("cloudwatch", None),
        ("dynamodb", None),
        ("events", None),
        ("iot-data", "https://x"),
    ]
    assert deps.history.table_name == "history"
    assert deps.events_client == "events-client"
    assert deps.cloudwatch_client == FleetMetrics("cloudwatch-client")
    assert deps.policy_for("pump-7") == deps.settings.policy
    session.asked.clear()
    quiet = dependencies_from_environ({**MINIMAL, "PUBLISH_METRICS": "no"}, session=session)
    assert (quiet.events_client, quiet.cloudwatch_client) == (None, None)
    assert sorted(name for name, _ in session.asked) == ["dynamodb", "iot-data"]


class _CloudWatch:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def put_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {}


def test_fleet_metrics_drop_the_per_thing_dimensions() -> None:
    cloudwatch = _CloudWatch()
    datum = {
        "MetricName": "ConflictDetected",
        "Value": 1,
        "Dimensions": [{"Name": "ThingName", "Value": "pump-7"}],
    }
    FleetMetrics(cloudwatch).put_metric_data(Namespace="IoT/ShadowSync", MetricData=[datum])
    assert cloudwatch.requests == [
        {
            "Namespace": "IoT/ShadowSync",
            "MetricData": [{"MetricName": "ConflictDetected", "Value": 1}],
        }
    ]
    assert "Dimensions" in datum  # the caller's data is left as it was
