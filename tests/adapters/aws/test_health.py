"""The recipe's scheduled health report covers every named shadow of each thing."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from shadowsync.aws import sync_manager_handler
from shadowsync.cloud import HealthThresholds

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws


def test_a_device_reporting_on_named_shadows_is_healthy(aws: Aws) -> None:
    # moto stamps metadata with its own clock: the report is made a minute after the writes.
    now = int(time.time()) + 60
    aws.create_thing("sensor-001")
    aws.create_thing("sensor-002")
    aws.create_thing("sensor-003")  # registered, no shadow yet
    for name in ("configuration", "telemetry", "maintenance"):
        state = {"desired": {"mode": "normal"}, "reported": {"mode": "normal"}}
        aws.shadows.update("sensor-001", {"state": state}, name)
    aws.shadows.update("sensor-002", {"state": {"reported": {"on": True}}})
    handler = sync_manager_handler(
        shadows=aws.shadows,
        history=aws.history,
        thresholds=HealthThresholds(offline_after_seconds=3600),
        now=lambda: now,
    )
    response = handler({"operation": "health_report", "thingNames": ["sensor-001"]}, None)
    [device] = json.loads(response["body"])["deviceHealth"]
    assert (device["status"], device["shadowCount"], device["issues"]) == ("healthy", 3, [])
    # A thing with only the classic shadow, and one with none, are judged as before.
    response = handler(
        {"operation": "health_report", "thingNames": ["sensor-002", "sensor-003"]}, None
    )
    devices = json.loads(response["body"])["deviceHealth"]
    assert [(d["thingName"], d["status"]) for d in devices] == [
        ("sensor-002", "healthy"),
        ("sensor-003", "offline"),
    ]
    assert devices[1]["issues"] == ["never reported", "shadow $default not found"]
    # Shadows named in the request restrict the report to them.
    response = handler(
        {"operation": "health_report", "thingNames": ["sensor-001"], "shadowNames": ["telemetry"]},
        None,
    )
    [device] = json.loads(response["body"])["deviceHealth"]
    assert device["shadowCount"] == 1


def test_pages_of_a_fleet_add_up(aws: Aws) -> None:
    from shadowsync.cloud import HealthReport
    from shadowsync.errors import InvalidArgumentError

    now = int(time.time()) + 60
    for index in range(5):
        aws.create_thing(f"pump-{index}")
        if index % 2 == 0:
            aws.shadows.update(f"pump-{index}", {"state": {"reported": {"on": True}}})
    handler = sync_manager_handler(shadows=aws.shadows, history=aws.history, now=lambda: now)
    pages = [["pump-0", "pump-1"], ["pump-2", "pump-3"], ["pump-4"]]
    bodies = [
        json.loads(handler({"operation": "health_report", "thingNames": page}, None)["body"])
        for page in pages
    ]
    whole = json.loads(
        handler({"operation": "health_report", "thingNames": [t for p in pages for t in p]}, None)[
            "body"
        ]
    )
    assert HealthReport.merge_totals(bodies) == whole["overallMetrics"]
    assert whole["overallMetrics"]["offlineDevices"] == 2
    with pytest.raises(InvalidArgumentError, match="page 1: healthyDevices"):
        HealthReport.merge_totals([bodies[0], {"totalDevices": 1}])
