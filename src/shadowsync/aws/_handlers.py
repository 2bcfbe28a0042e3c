"""Lambda handler factories: the conflict resolver and the sync manager, wired to AWS clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync.audit import HistoryRecord
from shadowsync.aws._errors import HistoryConflictError
from shadowsync.aws._signals import publish_events, publish_metrics
from shadowsync.cloud import DeltaEvent, HealthThresholds, OperationError, SyncManager
from shadowsync.errors import InvalidArgumentError, VersionConflictError

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync.aws._history import DynamoDBHistoryStore
    from shadowsync.aws._iot import IotShadowClient
    from shadowsync.cloud import HistoryHead
    from shadowsync.rules import RuleSet
    from shadowsync.strategies import Strategy

__all__ = ["LambdaHandler", "conflict_resolver_handler", "sync_manager_handler"]

LambdaHandler = Callable[[Any, Any], dict[str, Any]]
"""A Lambda entry point: ``handler(event, context) -> JSON-able dict``."""


def _epoch_seconds() -> int:
    return int(time.time())


def _none(thing_name: str) -> None:
    return None


class _RecordingReader:
    """Reads history heads through the store and keeps what each read returned, so records
    decided on that head can be placed again after another writer extended the chain."""

    def __init__(self, store: DynamoDBHistoryStore) -> None:
        self.store = store
        self.reads: dict[str, HistoryHead] = {}

    def __call__(self, thing_name: str, shadow_names: tuple[str | None, ...]) -> HistoryHead:
        head = self.store.read_head(thing_name, shadow_names)
        self.reads[thing_name] = head
        return head


def _rechain(
    records: Sequence[HistoryRecord], decided_on: HistoryHead, now_stored: HistoryHead
) -> list[HistoryRecord]:
    """The same changes as ``records``, chained after what is stored now.

    Each record keeps its decision, reason, details and version; its patch is recomputed from
    the state the stored records leave to the state the record led to. Raises
    `HistoryConflictError` when that cannot keep the shadow's versions in order.
    """
    replay, stored = decided_on, now_stored
    out: list[HistoryRecord] = []
    try:
        for record in records:
            replay = replay.followed_by(record)
            key = (record.thing_name, record.shadow_name)
            mine = stored.records_for(*key)
            rebuilt = HistoryRecord.create(
                record.thing_name,
                record.shadow_name,
                previous=stored.head or None,
                previous_state=stored.last_state(*key),
                new_state=replay.last_state(*key),
                version=record.version,
                timestamp=max([record.timestamp, *(r.timestamp for r in mine)]),
                change_type=record.change_type,
                decision=record.decision,
                reason=record.reason,
                details=record.details,
            )
            stored = stored.followed_by(rebuilt)
            out.append(rebuilt)
    except InvalidArgumentError as exc:
        raise HistoryConflictError(
            f"the history moved on in a way these records cannot follow: {exc}"
        ) from None
    return out


def _store(
    store: DynamoDBHistoryStore, reader: _RecordingReader, records: Sequence[HistoryRecord]
) -> list[HistoryRecord]:
    """Append one thing's ``records`` in transactions that each fit (`batches`), in order;
    when another writer got in first, place the rest after its records."""
    if not records:
        return []
    thing = records[0].thing_name
    shadows = tuple(dict.fromkeys(r.shadow_name for r in records))
    decided = reader.reads.get(thing) or store.read_head(thing, shadows)
    placed: list[HistoryRecord] = []
    for batch in store.batches(records):
        try:
            store.append(batch)
            out = list(batch)
        except HistoryConflictError:
            out = _rechain(batch, decided, store.read_head(thing, shadows))
            store.append(out)
        for record in batch:
            decided = decided.followed_by(record)
        placed.extend(out)
    return placed


def _signals(
    events_client: Any, cloudwatch_client: Any, events: Sequence[Any], metrics: Sequence[Any]
) -> dict[str, Any]:
    summary: dict[str, Any] = {"eventsSent": 0, "eventsFailed": [], "metricsSent": 0}
    if events_client is not None and events:
        published = publish_events(events_client, events)
        summary["eventsSent"] = published.sent
        summary["eventsFailed"] = list(published.failed)
    if cloudwatch_client is not None and metrics:
        summary["metricsSent"] = publish_metrics(cloudwatch_client, metrics).sent
    return summary


def _check_attempts(max_attempts: object) -> int:
    if type(max_attempts) is not int or max_attempts < 1:
        raise InvalidArgumentError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    return max_attempts


def _manager(
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    policy_for: Callable[[str], ResolutionPolicy | Strategy | None],
    rules_for: Callable[[str], RuleSet | None],
    thresholds: HealthThresholds | None,
    event_bus: str | None,
    limits: ShadowLimits,
) -> tuple[_RecordingReader, SyncManager]:
    """A `SyncManager` on the handler's clients, and the reader that keeps what it read."""
    reader = _RecordingReader(history)
    manager = SyncManager(
        read_shadow=shadows.get,
        read_history=history.read,
        read_head=reader,
        policy_for=policy_for,
        rules_for=rules_for,
        thresholds=thresholds if thresholds is not None else HealthThresholds(),
        event_bus=event_bus,
        limits=limits,
    )
    return reader, manager


def conflict_resolver_handler(
    *,
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    events_client: Any = None,
    cloudwatch_client: Any = None,
    policy_for: Callable[[str], ResolutionPolicy | Strategy | None] = _none,
    rules_for: Callable[[str], RuleSet | None] = _none,
    event_bus: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
    now: Callable[[], int] = _epoch_seconds,
    max_attempts: int = 3,
) -> LambdaHandler:
    """A Lambda handler for delta events: read, decide, write with the version, record, emit.

    Each invocation reads the shadow and its thing's history, calls `handle_delta_event`,
    sends the decision's update (which carries the version it was decided on), stores its
    records, then publishes its events and metrics (when those clients are given). When the
    update fails with 409 because the shadow moved in between, it reads and decides again, up
    to ``max_attempts`` decisions; after that the `VersionConflictError` propagates, so
    Lambda's own retry (or its dead-letter queue) takes over. A malformed event is answered
    with ``{"statusCode": 400, "error": ...}``.

    Create the clients once per container, at import time, and pass them here.
    """
    attempts_allowed = _check_attempts(max_attempts)
    reader, manager = _manager(shadows, history, policy_for, rules_for, None, event_bus, limits)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        reader.reads.clear()  # a warm container must not keep every thing's history it read
        try:
            parsed = DeltaEvent.from_dict(event)
        except OperationError as error:
            return {"statusCode": error.status_code, **error.to_json()}
        for attempt in range(1, attempts_allowed + 1):
            decision = manager.resolve(parsed, now=now())
            if decision.update is not None:
                try:
                    shadows.update(parsed.thing_name, decision.update, parsed.shadow_name)
                except VersionConflictError:
                    if attempt == attempts_allowed:
                        raise
                    continue
            try:
                stored = _store(history, reader, decision.records)
            except HistoryConflictError:
                # Nothing was written to the shadow, so deciding again is safe.
                if decision.update is not None or attempt == attempts_allowed:
                    raise
                continue
            return {
                "statusCode": 200,
                **decision.to_json(),
                "attempts": attempt,
                "recordsStored": len(stored),
                "historyHead": stored[-1].checksum if stored else None,
                **_signals(events_client, cloudwatch_client, decision.events, decision.metrics),
            }
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    return handler


def _request_of(event: Any) -> Any:
    # Behind API Gateway (proxy integration) the request is the event's body.
    if isinstance(event, Mapping) and "operation" not in event and "body" in event:
        return event["body"] if event["body"] is not None else {}
    return event


def sync_manager_handler(
    *,
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    events_client: Any = None,
    cloudwatch_client: Any = None,
    policy_for: Callable[[str], ResolutionPolicy | Strategy | None] = _none,
    rules_for: Callable[[str], RuleSet | None] = _none,
    thresholds: HealthThresholds | None = None,
    event_bus: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
    now: Callable[[], int] = _epoch_seconds,
    max_attempts: int = 3,
) -> LambdaHandler:
    """A Lambda handler for the sync manager's operations; returns ``SyncResponse.to_lambda()``.

    The request is the event itself, or the event's ``body`` behind an API Gateway proxy
    integration. `SyncManager` reads shadows through ``shadows`` and history through
    ``history``; what an ``offline_sync`` decides is then written here: its updates in order,
    its records, its events and metrics. A 409 on one of the updates serves the request again
    on fresh reads (the updates already applied are then in the shadows it reads), up to
    ``max_attempts`` times. Malformed requests are answered with status 400.
    """
    attempts_allowed = _check_attempts(max_attempts)
    reader, manager = _manager(
        shadows, history, policy_for, rules_for, thresholds, event_bus, limits
    )

    def handler(event: Any, context: Any) -> dict[str, Any]:
        reader.reads.clear()  # a warm container must not keep every thing's history it read
        request = _request_of(event)
        for attempt in range(1, attempts_allowed + 1):
            response = manager.handle(request, now=now())
            try:
                for thing, shadow, update in response.updates:
                    shadows.update(thing, update, shadow)
            except VersionConflictError:
                if attempt == attempts_allowed:
                    raise
                continue
            by_thing: dict[str, list[HistoryRecord]] = {}
            for record in response.records:
                by_thing.setdefault(record.thing_name, []).append(record)
            for records in by_thing.values():
                _store(history, reader, records)
            _signals(events_client, cloudwatch_client, response.events, response.metrics)
            return response.to_lambda()
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    return handler
