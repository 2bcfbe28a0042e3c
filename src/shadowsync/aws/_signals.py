"""Publishing a decision's EventBridge entries and CloudWatch metric data, in allowed batches."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from shadowsync._json import describe
from shadowsync.aws._errors import aws_call
from shadowsync.cloud import METRIC_NAMESPACE
from shadowsync.errors import InvalidArgumentError

__all__ = ["PublishResult", "publish_events", "publish_metrics"]

MAX_EVENTS_PER_CALL = 10
MAX_EVENTS_BYTES = 256 * 1024
MAX_METRICS_PER_CALL = 1000
# PutMetricData takes 1 MB per request; the margin covers the request's own encoding.
MAX_METRICS_BYTES = 900 * 1024


@attrs.frozen(kw_only=True)
class PublishResult:
    """What a publish call did: how many items were accepted, which were not, in how many calls.

    ``failed`` holds one mapping per refused EventBridge entry: ``entry`` (as given),
    ``errorCode`` and ``errorMessage`` (as EventBridge reported them). CloudWatch accepts or
    refuses a whole call, so for metrics it is always empty (a refusal raises).
    """

    sent: int
    failed: tuple[dict[str, Any], ...] = ()
    calls: int = 0

    @property
    def ok(self) -> bool:
        """True when every item was accepted."""
        return not self.failed


def _event_size(entry: Mapping[str, Any]) -> int:
    # EventBridge's documented way of sizing an entry: 14 bytes for Time, plus the UTF-8 bytes
    # of Source, DetailType, Detail and each resource.
    size = 14 if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value.encode("utf-8"))
    for resource in entry.get("Resources") or ():
        if isinstance(resource, str):
            size += len(resource.encode("utf-8"))
    return size


def _batches(
    items: list[Mapping[str, Any]], *, count: int, size_limit: int, size: Any
) -> Iterator[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    used = 0
    for item in items:
        item_size = size(item)
        if item_size > size_limit:
            raise InvalidArgumentError(
                f"an item is {item_size} bytes, over the {size_limit}-byte request limit: "
                f"{describe(item)}"
            )
        if batch and (len(batch) == count or used + item_size > size_limit):
            yield batch
            batch, used = [], 0
        batch.append(item)
        used += item_size
    if batch:
        yield batch


def _mappings(items: Iterable[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    if isinstance(items, (str, bytes, Mapping)):
        raise InvalidArgumentError(f"{name} must be a list of mappings, got {describe(items)}")
    listed = list(items)
    for index, item in enumerate(listed):
        if not isinstance(item, Mapping):
            raise InvalidArgumentError(f"{name}[{index}] must be a mapping, got {describe(item)}")
    return listed


def publish_events(client: Any, entries: Iterable[Mapping[str, Any]]) -> PublishResult:
    """``PutEvents`` the entries (a decision's ``.events``) through ``boto3.client("events")``.

    Entries go in batches of at most 10 and 256 KB, the API's limits. EventBridge may refuse
    single entries while accepting the rest: those come back in `PublishResult.failed` (retry
    them, or report them); a refused call raises the matching shadowsync error.
    """
    listed = _mappings(entries, "entries")
    sent = calls = 0
    failed: list[dict[str, Any]] = []
    for batch in _batches(
        listed, count=MAX_EVENTS_PER_CALL, size_limit=MAX_EVENTS_BYTES, size=_event_size
    ):
        with aws_call("PutEvents"):
            response = client.put_events(Entries=[dict(e) for e in batch])
        calls += 1
        results = response.get("Entries") or []
        for index, entry in enumerate(batch):
            result = results[index] if index < len(results) else {}
            if result.get("ErrorCode") or not result.get("EventId"):
                failed.append(
                    {
                        "entry": dict(entry),
                        "errorCode": result.get("ErrorCode", "Missing"),
                        "errorMessage": result.get("ErrorMessage", "no result for the entry"),
                    }
                )
            else:
                sent += 1
    return PublishResult(sent=sent, failed=tuple(failed), calls=calls)


def publish_metrics(
    client: Any, metric_data: Iterable[Mapping[str, Any]], *, namespace: str = METRIC_NAMESPACE
) -> PublishResult:
    """``PutMetricData`` a decision's ``.metrics`` through ``boto3.client("cloudwatch")``.

    Data go in batches of at most 1000 items and under the 1 MB request limit, in
    ``namespace`` (``IoT/ShadowSync`` by default). A refused call raises the matching
    shadowsync error.
    """
    listed = _mappings(metric_data, "metric_data")
    sent = calls = 0
    for batch in _batches(
        listed,
        count=MAX_METRICS_PER_CALL,
        size_limit=MAX_METRICS_BYTES,
        size=lambda datum: len(json.dumps(datum, default=str)),
    ):
        with aws_call("PutMetricData"):
            client.put_metric_data(Namespace=namespace, MetricData=[dict(d) for d in batch])
        calls += 1
        sent += len(batch)
    return PublishResult(sent=sent, calls=calls)
