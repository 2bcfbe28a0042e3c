"""Events reach an SQS queue through an EventBridge rule; metrics reach CloudWatch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync.aws import publish_events, publish_metrics
from shadowsync.cloud import METRIC_NAMESPACE
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws

T0 = 1_700_000_000


def _entry(index: int, detail: str | None = None) -> dict[str, Any]:
    return {
        "Source": "iot.shadow.sync",
        "DetailType": "Conflict Resolved",
        "Detail": detail if detail is not None else json.dumps({"index": index}),
        "Time": T0,
    }


def test_events_go_in_batches_of_ten_and_arrive(aws: Aws) -> None:
    queue = aws.event_queue()
    result = publish_events(aws.events, [_entry(i) for i in range(23)])
    assert (result.sent, result.failed, result.calls, result.ok) == (23, (), 3, True)
    received = aws.received(queue, 23)
    assert sorted(body["detail"]["index"] for body in received) == list(range(23))
    assert {body["detail-type"] for body in received} == {"Conflict Resolved"}


def test_refused_entries_are_reported_with_their_error(aws: Aws) -> None:
    queue = aws.event_queue()
    result = publish_events(aws.events, [_entry(0), _entry(1, detail="not json")])
    assert result.sent == 1
    assert not result.ok
    assert [(f["entry"]["Detail"], f["errorCode"]) for f in result.failed] == [
        ("not json", "MalformedDetail")
    ]
    assert [body["detail"] for body in aws.received(queue, 1)] == [{"index": 0}]


def test_metrics_go_in_batches_and_are_listed(aws: Aws) -> None:
    data = [
        {
            "MetricName": "ConflictDetected",
            "Dimensions": [{"Name": "ThingName", "Value": f"pump-{i % 3}"}],
            "Timestamp": T0,
            "Value": 1,
            "Unit": "Count",
        }
        for i in range(1500)
    ]
    result = publish_metrics(aws.cloudwatch, data)
    assert (result.sent, result.calls) == (1500, 2)
    listed = aws.cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE)["Metrics"]
    assert sorted(m["Dimensions"][0]["Value"] for m in listed) == ["pump-0", "pump-1", "pump-2"]
    stats = aws.cloudwatch.get_metric_statistics(
        Namespace=METRIC_NAMESPACE,
        MetricName="ConflictDetected",
        Dimensions=[{"Name": "ThingName", "Value": "pump-0"}],
        StartTime=T0 - 60,
        EndTime=T0 + 60,
        Period=60,
        Statistics=["Sum"],
    )
    assert [point["Sum"] for point in stats["Datapoints"]] == [500.0]


def test_bad_input_is_refused_before_any_call(aws: Aws) -> None:
    with pytest.raises(InvalidArgumentError, match="mapping"):
        publish_events(aws.events, ["x"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="request limit"):
        publish_events(aws.events, [_entry(0, detail=json.dumps({"x": "y" * 300_000}))])
    assert publish_metrics(aws.cloudwatch, []).calls == 0
