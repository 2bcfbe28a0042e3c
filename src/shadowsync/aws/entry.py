"""Lambda entry points configured from the environment: the ``Handler:`` strings of the stack.

``deploy/template.yaml`` names them ``shadowsync.aws.entry.conflict_resolver`` and
``shadowsync.aws.entry.sync_manager``. Each builds its clients and handler on its first
invocation and keeps them for the container's life; a missing or malformed variable fails that
invocation (and every later one) with a `ConfigurationError` naming the variable. Credentials
and the region come from the Lambda runtime through boto3, never from shadowsync.

Variables (see `LambdaSettings`):

- ``SHADOW_HISTORY_TABLE`` (required): the history table;
- ``DEVICE_CONFIG_TABLE``: the device-configuration table: each thing's policy and rules, and
  the fleet's default (item ``$fleet``), read through `DeviceConfigTable`;
- ``EVENT_BUS_NAME``: the EventBridge bus for decision events (unset: no events are sent);
- ``PUBLISH_METRICS``: ``true`` (default) or ``false``, CloudWatch metric data;
- ``POWERTOOLS``: ``true`` for Powertools' structured logs and metrics as EMF log lines
  instead of ``PutMetricData`` requests (`shadowsync.aws.powertools`, extra ``powertools``);
  ``false`` by default;
- ``IOT_DATA_ENDPOINT``: the IoT data endpoint URL (unset: boto3's default for the region);
- ``DEFAULT_CONFLICT_STRATEGY`` (default ``field_level_merge``) and ``AUTO_RESOLVE_THRESHOLD``
  (default unset: no escalation by count);
- ``HEALTH_EXPECTED_SHADOWS`` (comma-separated, ``$default`` for the classic shadow),
  ``HEALTH_OFFLINE_AFTER_SECONDS``, ``HEALTH_PENDING_AFTER_SECONDS``,
  ``HEALTH_CONFLICT_WINDOW_SECONDS``, ``HEALTH_CONFLICTS_FOR_CONFLICT``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import attrs
import boto3

from shadowsync import DEFAULT_LIMITS, ResolutionPolicy
from shadowsync.aws._config import DeviceConfigTable
from shadowsync.aws._handlers import (
    LambdaHandler,
    conflict_resolver_handler,
    sync_manager_handler,
)
from shadowsync.aws._history import DynamoDBHistoryStore
from shadowsync.aws._iot import IotShadowClient
from shadowsync.cloud import CLASSIC_SHADOW_NAME, HealthThresholds
from shadowsync.errors import InvalidArgumentError, ShadowSyncError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shadowsync.rules import RuleSet

__all__ = [
    "ConfigurationError",
    "FleetMetrics",
    "HandlerDependencies",
    "LambdaSettings",
    "conflict_resolver",
    "dependencies_from_environ",
    "sync_manager",
]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigurationError(InvalidArgumentError):
    """An environment variable of a Lambda entry point is missing or malformed.

    ``variable`` is its name, which the message also starts with.
    """

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _text(environ: Mapping[str, str], name: str) -> str | None:
    # An empty value is unset: CloudFormation cannot leave a variable out conditionally
    # without an !If per variable, so the template passes "" for "not configured".
    value = environ.get(name, "").strip()
    return value or None


def _required(environ: Mapping[str, str], name: str) -> str:
    value = _text(environ, name)
    if value is None:
        raise ConfigurationError(name, "is not set; the stack sets it on the function")
    return value


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    value = _text(environ, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(name, f"must be a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigurationError(name, f"must be at least 1, got {number}")
    return number


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _text(environ, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(name, f"must be true or false, got {value!r}")


def _thresholds(environ: Mapping[str, str]) -> HealthThresholds:
    defaults = HealthThresholds()
    shadows_text = _text(environ, "HEALTH_EXPECTED_SHADOWS")
    shadows: tuple[str | None, ...] = defaults.expected_shadows
    if shadows_text is not None:
        names = [name.strip() for name in shadows_text.split(",") if name.strip()]
        try:
            shadows = tuple(
                None if name == CLASSIC_SHADOW_NAME else DEFAULT_LIMITS.check_shadow_name(name)
                for name in names
            )
        except ShadowSyncError as exc:
            raise ConfigurationError("HEALTH_EXPECTED_SHADOWS", str(exc)) from None
    fields = {
        "offline_after_seconds": "HEALTH_OFFLINE_AFTER_SECONDS",
        "pending_after_seconds": "HEALTH_PENDING_AFTER_SECONDS",
        "conflict_window_seconds": "HEALTH_CONFLICT_WINDOW_SECONDS",
        "conflicts_for_conflict": "HEALTH_CONFLICTS_FOR_CONFLICT",
    }
    values: dict[str, int] = {}
    for field, name in fields.items():
        number = _integer(environ, name)
        if number is not None:
            values[field] = number
    try:
        return HealthThresholds(expected_shadows=shadows, **values)
    except ShadowSyncError as exc:
        raise ConfigurationError("HEALTH_EXPECTED_SHADOWS", str(exc)) from None


@attrs.frozen(kw_only=True)
class LambdaSettings:
    """What the entry points read from the environment, checked; see the module docstring."""

    history_table: str
    device_config_table: str | None = None
    event_bus: str | None = None
    publish_metrics: bool = True
    powertools: bool = False
    iot_data_endpoint: str | None = None
    policy: ResolutionPolicy = attrs.field(factory=ResolutionPolicy)
    thresholds: HealthThresholds = attrs.field(factory=HealthThresholds)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LambdaSettings:
        """Read and check every variable; raises `ConfigurationError` naming the first bad one."""
        history_table = _required(environ, "SHADOW_HISTORY_TABLE")
        strategy = _text(environ, "DEFAULT_CONFLICT_STRATEGY") or "field_level_merge"
        threshold = _integer(environ, "AUTO_RESOLVE_THRESHOLD")
        config: dict[str, Any] = {"strategy": strategy}
        if threshold is not None:
            config["auto_resolve_threshold"] = threshold
        try:
            policy = ResolutionPolicy.from_dict(config)
        except ShadowSyncError as exc:
            raise ConfigurationError("DEFAULT_CONFLICT_STRATEGY", str(exc)) from None
        return cls(
            history_table=history_table,
            device_config_table=_text(environ, "DEVICE_CONFIG_TABLE"),
            event_bus=_text(environ, "EVENT_BUS_NAME"),
            publish_metrics=_flag(environ, "PUBLISH_METRICS", True),
            powertools=_flag(environ, "POWERTOOLS", False),
            iot_data_endpoint=_text(environ, "IOT_DATA_ENDPOINT"),
            policy=policy,
            thresholds=_thresholds(environ),
        )


@attrs.frozen(kw_only=True)
class HandlerDependencies:
    """Everything a handler factory is given: the adapters, the clients and the settings.

    `dependencies_from_environ` builds it; this is the one place a new dependency (a device
    configuration reader, an idempotency store) is added and passed on to both handlers.
    """

    settings: LambdaSettings
    shadows: IotShadowClient
    history: DynamoDBHistoryStore
    events_client: Any
    cloudwatch_client: Any
    device_config: DeviceConfigTable | None = None
    """The device-configuration table, when ``DEVICE_CONFIG_TABLE`` names one."""

    def policy_for(self, thing_name: str) -> ResolutionPolicy:
        """The thing's policy from the device-configuration table (its own, else the item of
        ``$fleet``), else the stack's default strategy."""
        if self.device_config is not None:
            configured = self.device_config.policy_for(thing_name)
            if configured is not None:
                return configured
        return self.settings.policy

    def rules_for(self, thing_name: str) -> RuleSet | None:
        """The thing's business rules from the device-configuration table, else none."""
        if self.device_config is None:
            return None
        return self.device_config.rules_for(thing_name)

    def handler_arguments(self) -> dict[str, Any]:
        """The keyword arguments both handler factories take, from these dependencies."""
        return {
            "shadows": self.shadows,
            "history": self.history,
            "events_client": self.events_client,
            "cloudwatch_client": self.cloudwatch_client,
            "policy_for": self.policy_for,
            "rules_for": self.rules_for,
            "event_bus": self.settings.event_bus,
        }


@attrs.frozen
class FleetMetrics:
    """A CloudWatch client that publishes fleet-wide metrics: no per-thing dimensions.

    Each distinct dimension set is a billed custom metric, so the ``ThingName`` and
    ``ShadowName`` dimensions the cloud side attaches would cost one metric per thing and shadow
    and could not carry the stack's alarms; per-thing detail stays in the history table and
    the logs.
    """

    client: Any
    """A ``boto3.client("cloudwatch")``."""

    def put_metric_data(self, **request: Any) -> Any:
        """``PutMetricData`` with every datum's ``Dimensions`` removed."""
        data = [
            {key: value for key, value in datum.items() if key != "Dimensions"}
            for datum in request.get("MetricData", ())
        ]
        return self.client.put_metric_data(**{**request, "MetricData": data})


def dependencies_from_environ(
    environ: Mapping[str, str], *, session: Any = None
) -> HandlerDependencies:
    """Settings from ``environ`` and one client per service from ``session`` (a new
    ``boto3.session.Session()`` by default, which reads the Lambda runtime's credentials)."""
    settings = LambdaSettings.from_environ(environ)
    session = session if session is not None else boto3.session.Session()
    metrics: Any = None
    if settings.publish_metrics and settings.powertools:
        from shadowsync.aws.powertools import EmfMetrics

        metrics = EmfMetrics()
    elif settings.publish_metrics:
        metrics = FleetMetrics(session.client("cloudwatch"))
    dynamodb = session.client("dynamodb")
    return HandlerDependencies(
        settings=settings,
        shadows=IotShadowClient(
            client=session.client("iot-data", endpoint_url=settings.iot_data_endpoint)
        ),
        history=DynamoDBHistoryStore(client=dynamodb, table_name=settings.history_table),
        events_client=session.client("events") if settings.event_bus else None,
        cloudwatch_client=metrics,
        device_config=(
            DeviceConfigTable(client=dynamodb, table_name=settings.device_config_table)
            if settings.device_config_table
            else None
        ),
    )


def _resolver(deps: HandlerDependencies) -> LambdaHandler:
    return conflict_resolver_handler(**deps.handler_arguments())


def _manager(deps: HandlerDependencies) -> LambdaHandler:
    return sync_manager_handler(**deps.handler_arguments(), thresholds=deps.settings.thresholds)


class _EntryPoint:
    """A handler built from the environment on the first call, then kept for the container."""

    def __init__(self, build: Callable[[HandlerDependencies], LambdaHandler]) -> None:
        self._build = build
        self._handler: LambdaHandler | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        handler = self._handler
        if handler is None:
            with self._lock:
                if self._handler is None:
                    # Nothing is cached on failure: each invocation reports the bad variable.
                    self._handler = self._wrapped(dependencies_from_environ(os.environ))
                handler = self._handler
        return handler(event, context)

    def _wrapped(self, deps: HandlerDependencies) -> LambdaHandler:
        handler = self._build(deps)
        if not deps.settings.powertools:
            return handler
        from aws_lambda_powertools import Logger

        from shadowsync.aws.powertools import with_structured_logs

        return with_structured_logs(handler, Logger(service="shadowsync"))

    def reset(self) -> None:
        """Forget the built handler, so the next call reads the environment again."""
        with self._lock:
            self._handler = None


conflict_resolver = _EntryPoint(_resolver)
"""``Handler: shadowsync.aws.entry.conflict_resolver``: delta events from the IoT rules."""

sync_manager = _EntryPoint(_manager)
"""``Handler: shadowsync.aws.entry.sync_manager``: sync manager operations and the schedule."""
