"""Powertools for AWS Lambda (Python) around the handlers: structured logs, EMF, a typed event.

- `ShadowDeltaEvent`: a shadow delta event as the stack's IoT rules deliver it (Powertools has
  data classes for IoT registry events only);
- `EmfMetrics`: a stand-in for the CloudWatch client that writes the metric data as Embedded
  Metric Format log lines, fleet-wide, so no ``PutMetricData`` request is made;
- `with_structured_logs`: a handler whose log lines carry the thing, the shadow and the version
  of the event it serves.

The entry points (`shadowsync.aws.entry`) use all three when ``POWERTOOLS=true``. Needs the
``powertools`` extra: ``pip install "shadowsync[powertools]"``; nothing else in shadowsync
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.data_classes.common import DictWrapper
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "shadowsync.aws.powertools needs Powertools for AWS Lambda; install it with: "
        'pip install "shadowsync[powertools]"'
    ) from exc

import attrs

from shadowsync.cloud import METRIC_NAMESPACE

if TYPE_CHECKING:
    from shadowsync.aws._handlers import LambdaHandler

__all__ = ["EmfMetrics", "ShadowDeltaEvent", "with_structured_logs"]


class ShadowDeltaEvent(DictWrapper):
    """A message of an ``update/delta`` topic with the names the IoT rule selected.

    ```pycon
    >>> event = ShadowDeltaEvent({"thingName": "pump-7", "shadowName": "configuration",
    ...                           "version": 4, "timestamp": 1700000000,
    ...                           "state": {"rate": 60}})
    >>> event.thing_name, event.shadow_name, event.version, event.state
    ('pump-7', 'configuration', 4, {'rate': 60})

    ```
    """

    @property
    def thing_name(self) -> str:
        """``topic(3)`` of the delta topic."""
        return str(self["thingName"])

    @property
    def shadow_name(self) -> str | None:
        """``topic(6)`` of a named shadow's delta topic; None for the classic shadow."""
        name = self.get("shadowName")
        return None if name is None else str(name)

    @property
    def version(self) -> int | None:
        """The shadow's version after the update that caused the delta."""
        version = self.get("version")
        return version if isinstance(version, int) else None

    @property
    def timestamp(self) -> int | None:
        """When AWS published the delta, in epoch seconds."""
        timestamp = self.get("timestamp")
        return timestamp if isinstance(timestamp, int) else None

    @property
    def state(self) -> dict[str, Any]:
        """The desired values the device has not reported yet."""
        state = self.get("state")
        return dict(state) if isinstance(state, Mapping) else {}

    @property
    def metadata(self) -> dict[str, Any]:
        """The desired values' per-leaf timestamps."""
        metadata = self.get("metadata")
        return dict(metadata) if isinstance(metadata, Mapping) else {}

    @property
    def client_token(self) -> str | None:
        """The client token of the update that caused the delta, when it had one."""
        token = self.get("clientToken")
        return None if token is None else str(token)


@attrs.frozen
class EmfMetrics:
    """A CloudWatch client stand-in: ``put_metric_data`` writes EMF lines to the log instead.

    CloudWatch extracts the metrics from the function's log, so the handler makes no
    ``PutMetricData`` request (and its role needs no ``cloudwatch:PutMetricData``). Every datum
    is written without dimensions: one fleet-wide metric per name, which the stack's alarms use.
    """

    metrics: Metrics = attrs.field(factory=lambda: Metrics(namespace=METRIC_NAMESPACE))
    """The Powertools metrics object the data are added to and flushed from."""

    def put_metric_data(self, **request: Any) -> dict[str, Any]:
        """Write ``MetricData`` (``MetricName``, ``Value``, ``Unit``) as one EMF line."""
        for datum in request.get("MetricData", ()):
            self.metrics.add_metric(
                name=datum["MetricName"], unit=datum.get("Unit", "Count"), value=datum["Value"]
            )
        self.metrics.flush_metrics()
        return {}


def _keys(event: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        return {}
    keys = {
        "thingName": event.get("thingName"),
        "shadowName": event.get("shadowName"),
        "version": event.get("version"),
        "operation": event.get("operation"),
    }
    return {key: value for key, value in keys.items() if value is not None}


def with_structured_logs(handler: LambdaHandler, logger: Logger) -> LambdaHandler:
    """``handler``, logging one JSON line per invocation keyed by thing, shadow and version.

    The keys (``thingName``, ``shadowName``, ``version``, and ``operation`` for the sync
    manager) are on every line logged during the invocation, then removed, so a warm container
    never carries one event's keys into the next. The outcome line holds the status code and,
    for a delta, the decision and its reason; a failure is logged with its traceback and raised.
    """

    def logged(event: Any, context: Any) -> dict[str, Any]:
        keys = _keys(event)
        logger.append_keys(**keys)
        try:
            try:
                result = handler(event, context)
            except Exception:
                logger.exception("invocation failed")
                raise
            outcome: dict[str, object] = {
                key: result[key] for key in ("statusCode", "decision", "reason") if key in result
            }
            logger.info("invocation served", extra=outcome)
            return result
        finally:
            logger.remove_keys(list(keys))

    return logged
