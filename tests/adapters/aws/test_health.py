"""The recipe's scheduled health report covers every named shadow of each thing."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

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
