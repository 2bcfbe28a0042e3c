"""Lambda handler factories: the conflict resolver and the sync manager, wired to AWS clients."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync.aws._errors import HistoryConflictError
from shadowsync.aws._history import StoredAnswer
from shadowsync.aws._pending import settle, store_records, stored_decision
from shadowsync.aws._reviews import review_target
from shadowsync.aws._signals import publish_events, publish_metrics
from shadowsync.cloud import (
    DeltaEvent,
    HealthThresholds,
    OfflineSyncRequest,
    OperationError,
    SyncManager,
    SyncResponse,
    held_reviews,
    parse_request,
)
from shadowsync.cloud._requests import shadow_label
from shadowsync.errors import InvalidArgumentError, VersionConflictError

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync.audit import HistoryRecord
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
    """Reads history heads through the store, once per thing and invocation: the decision, the
    write and the retry check all work from the same head."""

    def __init__(self, store: DynamoDBHistoryStore) -> None:
        self.store = store
        self.reads: dict[str, tuple[HistoryHead, frozenset[str | None]]] = {}

    def __call__(self, thing_name: str, shadow_names: tuple[str | None, ...]) -> HistoryHead:
        cached = self.reads.get(thing_name)
        if cached is not None and cached[1].issuperset(shadow_names):
            return cached[0]
        head = self.store.read_head(thing_name, shadow_names)
        self.reads[thing_name] = (head, frozenset(shadow_names))
        return head

    def fresh(self, thing_name: str, shadow_names: tuple[str | None, ...]) -> HistoryHead:
        """The head read again (after this invocation or another one wrote)."""
        self.reads.pop(thing_name, None)
        return self(thing_name, shadow_names)


def _replayed(record: HistoryRecord) -> dict[str, Any]:
    """The answer to a retried delta event: the decision its stored record holds."""
    details = record.details or {}
    conflicts = details.get("conflicts") or []
    return {
        "statusCode": 200,
        "thingName": record.thing_name,
        "shadowName": shadow_label(record.shadow_name),
        "decision": record.decision,
        "reason": record.reason,
        "hasConflict": bool(conflicts),
        "resolution": record.decision if conflicts else "none",
        "conflicts": conflicts,
        "reviews": details.get("reviews") or [],
        "update": details.get("update"),
        "pending": details.get("pending") or [],
        "staleEvent": bool(details.get("staleEvent")),
        "version": record.version,
        "attempts": 0,
        "recordsStored": 0,
        "historyHead": record.checksum,
        "replayed": True,
        "eventsSent": 0,
        "eventsFailed": [],
        "metricsSent": 0,
    }


def _settle_all(
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    reader: _RecordingReader,
    thing: str,
    names: tuple[str | None, ...],
    now: int,
) -> bool:
    """`settle` each shadow in turn, on the head the one before left; True if any waited."""
    settled = False
    for name in names:
        if settle(shadows, history, reader(thing, names), name, now=now):
            settled = True
            reader.reads.clear()
    return settled


def _last_record(records: Sequence[HistoryRecord], shadow_name: str | None) -> str:
    return [r for r in records if r.shadow_name == shadow_name][-1].checksum


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


_RETRY_BASE_SECONDS = 0.01
_RETRY_CAP_SECONDS = 0.5


def _wait_before_retry(attempt: int) -> None:
    """Full jitter before deciding again after another writer extended the history first.

    Concurrent invocations on one thing (Lambda runs as many as events arrive) all read the
    same head; without a pause, the ones that lost would race again in step, and on a busy
    thing one of them could lose every round.
    """
    time.sleep(random.uniform(0, min(_RETRY_CAP_SECONDS, _RETRY_BASE_SECONDS * 2**attempt)))


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
        list_shadows=shadows.list_named_shadows,
        read_history=history.read,
        read_head=reader,
        policy_for=policy_for,
        rules_for=rules_for,
        thresholds=thresholds if thresholds is not None else HealthThresholds(),
        event_bus=event_bus,
        limits=limits,
        read_reviews=history.read_reviews,
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
    """A Lambda handler for delta events: read, decide, record, write with the version, emit.

    Each invocation reads the shadow's history head (`DynamoDBHistoryStore.read_head`) and the
    shadow, finishes an update an earlier invocation left waiting (`settle`), answers an event
    it already decided from its stored record (``"replayed": true``, nothing written), or calls
    `handle_delta_event`, stores the records with the update marked pending, sends the update
    (which carries the version it was decided on), confirms it, then publishes its events and
    metrics (when those clients are given). When the update fails with 409 because the shadow
    moved in between, the records are taken back and it decides again, up to ``max_attempts``
    decisions; after that the `VersionConflictError` propagates, so Lambda's own retry (or its
    dead-letter queue) takes over. A malformed event is answered with
    ``{"statusCode": 400, "error": ...}``.

    Create the clients once per container, at import time, and pass them here.
    """
    attempts_allowed = _check_attempts(max_attempts)
    reader, manager = _manager(shadows, history, policy_for, rules_for, None, event_bus, limits)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        reader.reads.clear()  # a warm container must not keep what it read for another event
        try:
            parsed = DeltaEvent.from_dict(event)
        except OperationError as error:
            return {"statusCode": error.status_code, **error.to_json()}
        thing, shadow = parsed.thing_name, parsed.shadow_name
        for attempt in range(1, attempts_allowed + 1):
            head = reader.fresh(thing, (shadow,))
            if settle(shadows, history, head, shadow, now=now()):
                head = reader.fresh(thing, (shadow,))
            stored = stored_decision(history, head, shadow, parsed.version)
            if stored is not None:
                return _replayed(stored)
            decision = manager.resolve(parsed, now=now())
            update = decision.update
            held = held_reviews(decision)
            try:
                records = store_records(
                    history,
                    head,
                    decision.records,
                    pending={shadow: update} if update is not None else {},
                    event=(shadow, parsed.version),
                    reviews=held,
                )
            except HistoryConflictError:
                # Nothing was written to the shadow, so deciding again is safe.
                if attempt == attempts_allowed:
                    raise
                _wait_before_retry(attempt)
                continue
            if update is not None:
                try:
                    shadows.update(thing, update, shadow)
                except VersionConflictError:
                    # The shadow moved in between: its records are taken back (or, when another
                    # writer already chained after them, followed by the way back) and the
                    # event is decided again.
                    if not history.take_back(head, records, held):
                        settle(shadows, history, reader.fresh(thing, (shadow,)), shadow, now=now())
                    if attempt == attempts_allowed:
                        raise
                    continue
                history.confirm(thing, shadow, decision.record.checksum)
            return {
                "statusCode": 200,
                **decision.to_json(),
                "attempts": attempt,
                "recordsStored": len(records),
                "historyHead": records[-1].checksum if records else None,
                "replayed": False,
                **_signals(events_client, cloudwatch_client, decision.events, decision.metrics),
            }
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    return handler


def _request_of(event: Any) -> Any:
    # Behind API Gateway (proxy integration) the request is the event's body.
    if isinstance(event, Mapping) and "operation" not in event and "body" in event:
        return event["body"] if event["body"] is not None else {}
    return event


def _keyed(request: Any) -> tuple[str, str] | None:
    """``(thing, request key)`` of an ``offline_sync`` request; None for any other request
    (or a malformed one, which the manager answers with 400)."""
    try:
        parsed = parse_request(request)
    except OperationError:
        return None
    if isinstance(parsed, OfflineSyncRequest):
        return parsed.thing_name, parsed.request_key
    return None


def _answered(
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    reader: _RecordingReader,
    keyed: tuple[str, str],
    now: int,
) -> dict[str, Any] | None:
    """The answer to a request already decided: its stored answer, once the updates it left
    pending (a failure after its records were stored) are settled; None when it has none.

    Settling an update the shadow moved past goes back on it and deletes the answer (it would
    say the change was applied): the request is then to be decided again.
    """
    thing, key = keyed
    stored = history.answer(thing, key)
    if stored is None:
        return None
    if _settle_all(shadows, history, reader, thing, stored.shadow_names, now):
        reader.reads.clear()
        stored = history.answer(thing, key)
        if stored is None:
            return None
    body = {**stored.body, "replayed": True}
    return SyncResponse(status_code=200, body=body).to_lambda()


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
    ``history``; what an ``offline_sync`` decides is then written here: its records first
    (each shadow's update marked pending, in transactions that fit), then its updates in order,
    each confirmed, then its events and metrics. A 409 on one of the updates settles every
    shadow still waiting and serves the request again on fresh reads (the updates already
    applied are then in the shadows it reads), up to ``max_attempts`` times. Malformed requests
    are answered with status 400.
    """
    attempts_allowed = _check_attempts(max_attempts)
    reader, manager = _manager(
        shadows, history, policy_for, rules_for, thresholds, event_bus, limits
    )

    def handler(event: Any, context: Any) -> dict[str, Any]:
        request = _request_of(event)
        target = review_target(request)
        keyed = _keyed(request)
        for attempt in range(1, attempts_allowed + 1):
            reader.reads.clear()
            if target is not None:
                # A review's update an earlier invocation left waiting is finished first, so
                # the review is judged on the shadow as it is and a retry replays it.
                _settle_all(shadows, history, reader, target[0], (target[1],), now())
            if keyed is not None:
                answered = _answered(shadows, history, reader, keyed, now())
                if answered is not None:
                    return answered
            response = manager.handle(request, now=now())
            if not response.updates and not response.records:
                return response.to_lambda()
            thing = response.records[0].thing_name
            names = tuple(dict.fromkeys(r.shadow_name for r in response.records))
            head = reader(thing, names)
            if _settle_all(shadows, history, reader, thing, names, now()):
                # Updates an earlier invocation left waiting are settled: decide again.
                reader.reads.clear()
                response = manager.handle(request, now=now())
                head = reader(thing, names)
            if keyed is not None:
                response = attrs.evolve(response, body={**response.body, "replayed": False})
            answer = (
                StoredAnswer(request_key=keyed[1], body=response.body, shadow_names=names)
                if keyed is not None
                else None
            )
            pending = {shadow: update for _, shadow, update in response.updates}
            try:
                store_records(
                    history,
                    head,
                    response.records,
                    pending=pending,
                    reviews=response.reviews,
                    resolved=response.resolved,
                    answer=answer,
                )
            except HistoryConflictError:
                if attempt == attempts_allowed:
                    raise
                _wait_before_retry(attempt)
                continue
            try:
                for _, shadow, update in response.updates:
                    shadows.update(thing, update, shadow)
                    history.confirm(thing, shadow, _last_record(response.records, shadow))
            except VersionConflictError:
                reader.reads.clear()
                _settle_all(shadows, history, reader, thing, names, now())
                if attempt == attempts_allowed:
                    raise
                continue
            _signals(events_client, cloudwatch_client, response.events, response.metrics)
            return response.to_lambda()
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    return handler
