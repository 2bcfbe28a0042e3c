"""EventBridge entries and CloudWatch metric data, as plain data ready for the AWS clients.

An event entry is the mapping ``events.put_events(Entries=[...])`` takes; a metric datum is
one item of ``cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[...])``.
Times are epoch seconds, which both clients accept.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal, TypeAlias, get_args

from shadowsync._json import JSONObject, dumps_compact

EVENT_SOURCE = "iot.shadow.sync"
"""The ``Source`` of every event entry."""

METRIC_NAMESPACE = "IoT/ShadowSync"
"""The CloudWatch namespace of every metric datum."""

EventType: TypeAlias = Literal[
    "Conflict Resolved", "Manual Review Required", "Change Rejected", "Offline Sync Completed"
]
"""The ``DetailType`` of an event entry."""

EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
"""Every `EventType`."""

MetricName: TypeAlias = Literal[
    "ConflictDetected",
    "ConflictResolved",
    "ManualReviewRequired",
    "ChangeRejected",
    "SyncCompleted",
    "OfflineSync",
    "OfflineChanges",
    "OfflineDuration",
    "PendingDeltaKeys",
]
"""The metrics shadowsync emits (see the docs page on the cloud side for what each counts)."""

METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)
"""Every `MetricName`."""


def iso_time(timestamp: int | float) -> str:
    """Epoch seconds as an ISO 8601 UTC time, e.g. ``2023-11-14T22:13:20+00:00``."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()


def event_entry(
    detail_type: EventType, detail: JSONObject, *, timestamp: int, event_bus: str | None = None
) -> dict[str, Any]:
    """One EventBridge ``PutEvents`` entry; ``Detail`` is compact JSON text."""
    entry: dict[str, Any] = {
        "Source": EVENT_SOURCE,
        "DetailType": detail_type,
        "Detail": dumps_compact(detail),
        "Time": timestamp,
    }
    if event_bus is not None:
        entry["EventBusName"] = event_bus
    return entry


def metric_datum(
    name: MetricName,
    value: float,
    *,
    timestamp: int,
    thing_name: str | None = None,
    shadow_label: str | None = None,
    unit: Literal["Count", "Seconds"] = "Count",
) -> dict[str, Any]:
    """One CloudWatch ``MetricData`` item, with a ``ShadowName`` dimension when given.

    ``thing_name`` adds a ``ThingName`` dimension; the cloud side never passes it, because
    every dimension value is a custom metric of its own, billed (a million things, a million
    metrics): per-thing detail stays in the events and the history.
    """
    dimensions = []
    if thing_name is not None:
        dimensions.append({"Name": "ThingName", "Value": thing_name})
    if shadow_label is not None:
        dimensions.append({"Name": "ShadowName", "Value": shadow_label})
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": timestamp,
        "Value": value,
        "Unit": unit,
    }
