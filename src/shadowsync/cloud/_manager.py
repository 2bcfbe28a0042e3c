"""`SyncManager`: the sync manager Lambda's request routing, over injected readers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync.cloud._delta_event import DeltaEvent, handle_delta_event
from shadowsync.cloud._health import HealthReport, HealthThresholds, health_report
from shadowsync.cloud._offline import offline_sync
from shadowsync.cloud._requests import (
    ConflictSummaryRequest,
    HealthReportRequest,
    OfflineSyncRequest,
    OperationError,
    ResolvePendingConflictsRequest,
    SyncCheckRequest,
    SyncRequest,
    parse_request,
    shadow_label,
)
from shadowsync.cloud._reviews import (
    HeldReview,
    ReviewNotFoundError,
    ReviewQuery,
    ReviewReader,
    held_reviews,
    resolve_review,
)
from shadowsync.cloud._summary import conflict_summary
from shadowsync.cloud._sync_check import sync_check
from shadowsync.errors import ShadowSyncError

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._document import ShadowDocument
    from shadowsync._json import JSONObject
    from shadowsync.audit import HistoryRecord
    from shadowsync.cloud._decision import ShadowDecision
    from shadowsync.cloud._head import HistoryHead
    from shadowsync.cloud._health import DeviceHealth
    from shadowsync.cloud._history import History
    from shadowsync.rules import RuleSet
    from shadowsync.strategies import Strategy

ShadowReader = Callable[[str, "str | None"], "ShadowDocument | Mapping[str, Any] | None"]
"""Reads a shadow: ``(thing_name, shadow_name or None) -> document, GET body or None``."""

HistoryReader = Callable[["str | None"], "History"]
"""Reads history records: of one thing, or of the whole fleet when called with None."""

HeadReader = Callable[[str, "tuple[str | None, ...]"], "HistoryHead"]
"""Reads what decisions need of a thing's history: ``(thing_name, shadow names) -> head``."""


class _Deciding(TypedDict):
    """What `handle_delta_event` and `offline_sync` decide a thing's shadows with."""

    history: History | HistoryHead
    policy: ResolutionPolicy | Strategy | None
    rules: RuleSet | None
    event_bus: str | None
    limits: ShadowLimits


def _no_history(thing_name: str | None) -> History:
    return ()


def _no_config(thing_name: str) -> None:
    return None


@attrs.frozen(kw_only=True)
class SyncResponse:
    """What the sync manager answers, and what it asks its adapter to write and emit."""

    status_code: int
    body: dict[str, Any]
    updates: tuple[tuple[str, str | None, JSONObject], ...] = ()
    """``(thing_name, shadow_name, update request)`` to send, in order."""
    records: tuple[HistoryRecord, ...] = ()
    """History records to store once their updates succeeded."""
    events: tuple[dict[str, Any], ...] = ()
    metrics: tuple[dict[str, Any], ...] = ()
    reviews: tuple[HeldReview, ...] = ()
    """Reviews the decisions hold, to store with ``records`` (in the same transaction)."""
    resolved: tuple[HeldReview, ...] = ()
    """Reviews settled (approved or rejected), to mark so with ``records``."""

    def to_lambda(self) -> dict[str, Any]:
        """The Lambda response: ``{"statusCode": ..., "body": <JSON text>}``."""
        return {"statusCode": self.status_code, "body": json.dumps(self.body)}


@attrs.frozen(kw_only=True)
class SyncManager:
    """Serves the five sync manager operations and resolves delta events.

    The manager reads through the callables it is given (an adapter passes functions that call
    the IoT data plane and DynamoDB; a test passes an `InMemoryShadowService`'s reads) and
    never writes: each answer lists the updates, records, events and metrics to write.

    ```pycon
    >>> from shadowsync.testing import InMemoryShadowService, ManualClock
    >>> service = InMemoryShadowService(clock=ManualClock(1700000000))
    >>> _ = service.update("pump-7", {"state": {"reported": {"rate": 30}}},
    ...                    shadow_name="configuration")
    >>> def read(thing, shadow):
    ...     try:
    ...         return service.get(thing, shadow_name=shadow)
    ...     except ShadowSyncError:
    ...         return None
    >>> manager = SyncManager(read_shadow=read)
    >>> response = manager.handle({"operation": "sync_check", "thingName": "pump-7",
    ...                            "shadowNames": ["configuration"]}, now=1700000060)
    >>> response.status_code, response.body["syncResults"][0]["syncStatus"]["inSync"]
    (200, True)
    >>> manager.handle({"operation": "reboot"}, now=1700000060).status_code
    400

    ```
    """

    read_shadow: ShadowReader
    read_history: HistoryReader = _no_history
    read_head: HeadReader | None = None
    """Reads the history's head for decisions (None: decisions read the whole history)."""
    policy_for: Callable[[str], ResolutionPolicy | Strategy | None] = _no_config
    """The conflict policy of a thing (None: the default, last writer wins)."""
    rules_for: Callable[[str], RuleSet | None] = _no_config
    """The business rules of a thing (None: no rules)."""
    thresholds: HealthThresholds = attrs.field(factory=HealthThresholds)
    list_shadows: Callable[[str], Sequence[str]] | None = None
    """Lists a thing's named shadows: with it, a health report whose request names no shadows
    covers every named shadow of each thing (None: only ``thresholds.expected_shadows``)."""
    event_bus: str | None = None
    limits: ShadowLimits = DEFAULT_LIMITS
    """The limits updates are checked against (raise them for a 30 KB local service)."""
    read_reviews: ReviewReader | None = None
    """Reads held reviews, for ``resolve_pending_conflicts`` (None: that operation answers
    500, there is nowhere reviews are kept)."""

    def _shadows(
        self, thing: str, names: tuple[str | None, ...]
    ) -> dict[str | None, ShadowDocument | Mapping[str, Any] | None]:
        return {name: self.read_shadow(thing, name) for name in names}

    def _history_for(self, thing: str, shadows: tuple[str | None, ...]) -> History | HistoryHead:
        if self.read_head is not None:
            return self.read_head(thing, shadows)
        return self.read_history(thing)

    def _deciding(self, thing: str, shadows: tuple[str | None, ...]) -> _Deciding:
        return {
            "history": self._history_for(thing, shadows),
            "policy": self.policy_for(thing),
            "rules": self.rules_for(thing),
            "event_bus": self.event_bus,
            "limits": self.limits,
        }

    def handle(self, request: object, *, now: int) -> SyncResponse:
        """Serve one request; a malformed one is answered with status 400, not raised."""
        try:
            parsed = parse_request(request)
        except OperationError as error:
            return SyncResponse(status_code=error.status_code, body=error.to_json())
        try:
            return self._serve(parsed, now)
        except OperationError as error:
            return SyncResponse(status_code=error.status_code, body=error.to_json())
        except ShadowSyncError as error:
            # A shadow or history record that cannot be read as one: the data, not the request.
            return SyncResponse(
                status_code=500, body={"error": str(error), "operation": parsed.operation}
            )

    def _serve(self, parsed: SyncRequest, now: int) -> SyncResponse:
        if isinstance(parsed, SyncCheckRequest):
            result = sync_check(
                parsed,
                self._shadows(parsed.thing_name, parsed.shadow_names),
                now=now,
                history=self.read_history(parsed.thing_name),
            )
            return SyncResponse(status_code=200, body=result.to_json())
        if isinstance(parsed, OfflineSyncRequest):
            offline = offline_sync(
                parsed,
                self._shadows(parsed.thing_name, parsed.shadow_names),
                now=now,
                **self._deciding(parsed.thing_name, parsed.shadow_names),
            )
            return SyncResponse(
                status_code=200,
                body=offline.to_json(),
                updates=tuple(
                    (d.thing_name, d.shadow_name, d.update)
                    for d in offline.decisions
                    if d.update is not None
                ),
                records=tuple(r for d in offline.decisions for r in d.records),
                events=offline.events,
                metrics=offline.metrics,
                reviews=tuple(h for d in offline.decisions for h in held_reviews(d)),
            )
        if isinstance(parsed, ResolvePendingConflictsRequest):
            return self._reviews(parsed, now)
        if isinstance(parsed, ConflictSummaryRequest):
            summary = conflict_summary(parsed, self.read_history(parsed.thing_name), now=now)
            return SyncResponse(status_code=200, body=summary.to_json())
        assert isinstance(parsed, HealthReportRequest)
        if parsed.shadow_names is None and self.list_shadows is not None:
            return SyncResponse(status_code=200, body=self._listed_health(parsed, now).to_json())
        names = (
            parsed.shadow_names
            if parsed.shadow_names is not None
            else self.thresholds.expected_shadows
        )
        report = health_report(
            parsed,
            {thing: self._shadows(thing, names) for thing in parsed.thing_names},
            now=now,
            history=_fleet_history(self.read_history, parsed.thing_names),
            thresholds=self.thresholds,
        )
        return SyncResponse(status_code=200, body=report.to_json())

    def _listed_health(self, parsed: HealthReportRequest, now: int) -> HealthReport:
        """A health report over every named shadow of each thing (``list_shadows``).

        The classic shadow is looked at when it is expected, unless it does not exist while
        named shadows do: a device may use named shadows only.
        """
        assert self.list_shadows is not None
        devices: list[DeviceHealth] = []
        for thing in parsed.thing_names:
            listed = tuple(self.list_shadows(thing))
            names = tuple(dict.fromkeys((*self.thresholds.expected_shadows, *listed)))
            documents = self._shadows(thing, names)
            if documents.get(None) is None and any(documents.get(n) is not None for n in listed):
                names = tuple(name for name in names if name is not None)
            one = health_report(
                attrs.evolve(parsed, thing_names=(thing,), shadow_names=names),
                {thing: documents},
                now=now,
                history=_fleet_history(self.read_history, (thing,)),
                thresholds=self.thresholds,
            )
            devices.extend(one.devices)
        return HealthReport(generated_at=now, devices=tuple(devices))

    def _reviews(self, parsed: ResolvePendingConflictsRequest, now: int) -> SyncResponse:
        """``resolve_pending_conflicts``: list held reviews, or approve or reject one."""
        if self.read_reviews is None:
            raise ShadowSyncError("this sync manager has no review store (read_reviews)")
        thing = parsed.thing_name
        if parsed.action == "list":
            page = self.read_reviews(
                ReviewQuery(
                    thing_name=thing,
                    shadow_names=parsed.shadow_names,
                    limit=parsed.limit,
                    after=parsed.next_token,
                )
            )
            body = {
                "thingName": thing,
                "shadowName": None
                if parsed.shadow_names is None
                else shadow_label(parsed.shadow_names[0]),
                "reviews": [review.to_json() for review in page.reviews],
                "count": len(page.reviews),
                "nextToken": page.next_token,
            }
            return SyncResponse(status_code=200, body=body)
        assert parsed.shadow_names is not None
        assert parsed.review_id is not None
        name = parsed.shadow_names[0]
        found = self.read_reviews(
            ReviewQuery(
                thing_name=thing,
                shadow_names=(name,),
                review_id=parsed.review_id,
                resolved=True,
                limit=1,
            )
        ).reviews
        if not found:
            raise ReviewNotFoundError(
                f"{thing} has no review {parsed.review_id!r} of shadow {shadow_label(name)!r} "
                "(list them with action list)",
                operation=parsed.operation,
            )
        decision = resolve_review(
            found[0],
            parsed.action,
            self.read_shadow(thing, name),
            now=now,
            history=self._history_for(thing, (name,)),
            reviewer=parsed.reviewer,
            comment=parsed.comment,
            event_bus=self.event_bus,
            limits=self.limits,
        )
        return SyncResponse(
            status_code=200,
            body=decision.to_json(),
            updates=() if decision.update is None else ((thing, name, decision.update),),
            records=decision.records,
            events=decision.events,
            metrics=decision.metrics,
            resolved=() if decision.replayed else (decision.review,),
        )

    def resolve(self, event: object, *, now: int) -> ShadowDecision:
        """Resolve one delta event against the shadow as read now (see `handle_delta_event`).

        Raises `OperationError` for a malformed event.
        """
        parsed = event if isinstance(event, DeltaEvent) else DeltaEvent.from_dict(event)
        return handle_delta_event(
            parsed,
            self.read_shadow(parsed.thing_name, parsed.shadow_name),
            now=now,
            **self._deciding(parsed.thing_name, (parsed.shadow_name,)),
        )


def _fleet_history(read: HistoryReader, things: tuple[str, ...]) -> list[HistoryRecord]:
    from shadowsync.cloud._history import as_log

    records: list[HistoryRecord] = []
    for thing in things:
        records.extend(as_log(read(thing)).records)
    return records
