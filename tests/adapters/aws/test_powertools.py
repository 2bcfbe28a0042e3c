"""shadowsync.aws.powertools: the typed delta event, EMF metrics and structured logs."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from shadowsync.aws.entry import dependencies_from_environ
from shadowsync.aws.powertools import (
    EmfMetrics,
    ShadowDeltaEvent,
    with_structured_logs,
)


def test_the_delta_event_reads_both_topic_forms() -> None:
    classic = ShadowDeltaEvent({"thingName": "pump-7", "version": 3, "state": {"a": 1}})
    assert (classic.thing_name, classic.shadow_name, classic.version) == ("pump-7", None, 3)
    assert (classic.timestamp, classic.metadata, classic.client_token) == (None, {}, None)
    named = ShadowDeltaEvent(
        {
            "thingName": "pump-7",
            "shadowName": "configuration",
            "version": 4,
            "timestamp": 1_700_000_000,
            "state": {"rate": 60},
            "metadata": {"rate": {"timestamp": 1_700_000_000}},
            "clientToken": "c-1",
        }
    )
    assert named.shadow_name == "configuration"
    assert named.metadata == {"rate": {"timestamp": 1_700_000_000}}
    assert (named.timestamp, named.client_token, named.state) == (
        1_700_000_000,
        "c-1",
        {"rate": 60},
    )


def test_emf_metrics_are_fleet_wide_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = EmfMetrics(Metrics(namespace="IoT/ShadowSync"))
    metrics.put_metric_data(
        Namespace="IoT/ShadowSync",
        MetricData=[
            {
                "MetricName": "ConflictDetected",
                "Value": 2,
                "Unit": "Count",
                "Dimensions": [{"Name": "ThingName", "Value": "pump-7"}],
            },
            {"MetricName": "OfflineDuration", "Value": 30, "Unit": "Seconds"},
        ],
    )
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "IoT/ShadowSync"
    assert directive["Dimensions"] == [[]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "ConflictDetected": "Count",
        "OfflineDuration": "Seconds",
    }
    assert (line["ConflictDetected"], line["OfflineDuration"]) == ([2.0], [30.0])
    assert "pump-7" not in json.dumps(line)


def _logger(name: str) -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    return Logger(service=f"test-{name}", stream=stream), stream


def test_each_invocation_is_logged_with_its_keys_then_forgets_them() -> None:
    logger, stream = _logger("keys")
    seen: list[Any] = []

    def handler(event: Any, context: Any) -> dict[str, Any]:
        logger.info("inside")
        seen.append(event)
        return {"statusCode": 200, "decision": "merge", "reason": "merged", "update": {}}

    logged = with_structured_logs(handler, logger)
    event = {"thingName": "pump-7", "shadowName": "configuration", "version": 4, "state": {}}
    assert logged(event, None)["decision"] == "merge"
    logged({"operation": "health_report", "thingNames": ["pump-7"]}, None)
    inside, served, inside_2, served_2 = [json.loads(x) for x in stream.getvalue().splitlines()]
    for line in (inside, served):
        assert (line["thingName"], line["shadowName"], line["version"]) == (
            "pump-7",
            "configuration",
            4,
        )
    assert (served["statusCode"], served["decision"], served["reason"]) == (200, "merge", "merged")
    assert "update" not in served
    assert inside_2["operation"] == "health_report"
    assert "thingName" not in inside_2
    assert "thingName" not in served_2


def test_a_failure_is_logged_with_its_keys_and_raised() -> None:
    logger, stream = _logger("failure")

    def handler(event: Any, context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with_structured_logs(handler, logger)({"thingName": "pump-7"}, None)
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["message"], line["thingName"]) == ("invocation failed", "pump-7")
    assert "boom" in line["exception"]


def test_the_powertools_flag_writes_metrics_as_emf() -> None:
    class Session:
        def client(self, service: str, endpoint_url: str | None = None) -> str:
            return service

    deps = dependencies_from_environ(
        {"SHADOW_HISTORY_TABLE": "history", "POWERTOOLS": "true"}, session=Session()
    )
    assert isinstance(deps.cloudwatch_client, EmfMetrics)
    assert deps.settings.powertools is True
