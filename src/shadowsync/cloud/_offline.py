"""``offline_sync``: replay the changes a device cached while offline against the shadows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from shadowsync._conflict.merge import ConflictRecord, same, stamps_at
from shadowsync._json import json_pointer
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._tree import Path, Value, copy_value, leaf_paths, lookup, overlaps
from shadowsync.cloud._decision import (
    ShadowDecision,
    apply_rules,
    conclude,
    conflicts_json,
    history_position,
    settled_context,
)
from shadowsync.cloud._delta_event import shadow_document
from shadowsync.cloud._history import History, check_now, decision_history
from shadowsync.cloud._requests import (
    OfflineSyncRequest,
    OperationError,
    shadow_label,
    shadows_for,
    sync_request,
)
from shadowsync.cloud._signals import event_entry, iso_time, metric_datum
from shadowsync.errors import InvalidArgumentError, ShadowRejectedError
from shadowsync.strategies import MISSING, ConflictKind

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._document import ShadowDocument
    from shadowsync.cloud._head import HistoryHead
    from shadowsync.rules import RuleSet
    from shadowsync.strategies import Strategy

ChangeStatus: TypeAlias = Literal[
    "applied", "unchanged", "superseded", "conflict", "review", "rejected", "refused"
]
"""What became of one cached change (see `CachedChangeResult`)."""


@attrs.frozen(kw_only=True)
class CachedChangeResult:
    """What became of one cached change.

    ``status`` is ``applied`` (its values were written), ``unchanged`` (the shadow already held
    them), ``superseded`` (a later cached change set the same paths), ``conflict`` (the shadow
    was changed after it, and the policy settled each clash: see ``conflicts``), ``review``
    (a clash is held for a person) or ``rejected`` (a business rule refused a value). When
    several apply, the first in the order review, rejected, conflict, applied wins. A change
    whose timestamp cannot be trusted (in milliseconds, or too far ahead of the clock) is
    ``refused`` before any decision, with a ``reason``.
    """

    shadow_name: str | None
    timestamp: int
    status: ChangeStatus
    applied: tuple[Path, ...]
    """Paths whose cached value is now in the shadow."""
    conflicts: tuple[ConflictRecord, ...]
    reason: str | None = None
    """Why a ``refused`` change was refused."""

    def to_json(self) -> dict[str, Any]:
        """A JSON form for the response (``reason`` only for a refused change)."""
        out = {
            "shadowName": shadow_label(self.shadow_name),
            "timestamp": self.timestamp,
            "status": self.status,
            "applied": [json_pointer(p) for p in self.applied],
            "conflicts": conflicts_json(self.conflicts),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


MILLISECONDS = 100_000_000_000
"""Timestamps from here on (the year 5138 in seconds) are taken for epoch milliseconds."""


def untrusted_timestamp(timestamp: int, *, now: int, max_skew: int) -> str | None:
    """Why a cached change's ``timestamp`` cannot be trusted, or None when it can."""
    if timestamp >= MILLISECONDS:
        return (
            f"timestamp {timestamp} looks like epoch milliseconds; cached changes are stamped "
            "in epoch seconds"
        )
    if timestamp > now + max_skew:
        return (
            f"timestamp {timestamp} is {timestamp - now} s ahead of the cloud's clock ({now}), "
            f"more than the {max_skew} s allowed; a device clock that far ahead would win "
            "every clash"
        )
    return None


@attrs.frozen(kw_only=True)
class OfflineSyncResult:
    """The outcome of an ``offline_sync``: per cached change, per shadow, and in total."""

    thing_name: str
    offline_duration_seconds: int
    changes: tuple[CachedChangeResult, ...]
    decisions: tuple[ShadowDecision, ...]
    """One per shadow the cached changes touch: its update, history record and signals."""
    events: tuple[dict[str, Any], ...]
    metrics: tuple[dict[str, Any], ...]
    completed_at: int

    @property
    def processed_changes(self) -> int:
        """Cached changes applied or already in the shadow."""
        return sum(1 for c in self.changes if c.status in ("applied", "unchanged"))

    @property
    def conflicts_detected(self) -> int:
        """Cached changes that clashed with a newer change of the shadow."""
        return sum(1 for c in self.changes if c.status in ("conflict", "review"))

    def to_json(self) -> dict[str, Any]:
        """The response body, with the seed's ``processedChanges``, ``conflictsDetected``,
        ``conflicts`` and ``syncCompleted``."""
        return {
            "thingName": self.thing_name,
            "offlineDurationSeconds": self.offline_duration_seconds,
            "processedChanges": self.processed_changes,
            "conflictsDetected": self.conflicts_detected,
            "conflicts": conflicts_json(r for d in self.decisions for r in d.report),
            "reviews": [item.to_json() for d in self.decisions for item in d.reviews],
            "changes": [c.to_json() for c in self.changes],
            "shadows": [d.to_json() for d in self.decisions],
            "syncCompleted": iso_time(self.completed_at),
        }


def offline_sync(
    request: OfflineSyncRequest | Mapping[str, Any] | str | bytes,
    shadows: Mapping[str | None, ShadowDocument | Mapping[str, Any] | None],
    *,
    now: int,
    history: History | HistoryHead = (),
    policy: ResolutionPolicy | Strategy | None = None,
    rules: RuleSet | None = None,
    event_bus: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
    max_skew: int = 300,
) -> OfflineSyncResult:
    """Decide which of a returning device's cached changes apply, which clash, which need review.

    ``shadows`` maps each shadow name the changes touch (None: the classic shadow) to the
    shadow as read now (None when it does not exist). Each shadow's cached changes are taken in
    timestamp order, a later one overriding an earlier one path by path. A cached value is then
    compared with the shadow's reported value and its metadata timestamp: when the shadow's
    value is not newer than the cached change, the device's value applies; when it is newer
    (someone wrote it while the device was away) the two clash and the ``policy`` settles it
    (section ``reported``; the shadow is the cloud's side, the cached change the device's),
    with both timestamps as stamps. ``rules`` then judge each value to be written against the
    reported state in force. A change stamped in milliseconds, or more than ``max_skew``
    seconds ahead of ``now``, is refused with a reason and takes no part (a shadow with only
    refused changes is left alone).

    ```pycon
    >>> from shadowsync import apply_update
    >>> telemetry = apply_update(None, {"state": {"reported": {"temperature": 23.5}}},
    ...                          timestamp=1700000000).document
    >>> result = offline_sync(
    ...     {"thingName": "sensor-1", "offlineDurationSeconds": 3600,
    ...      "cachedChanges": [{"shadowName": "telemetry", "state": {"temperature": 28.5},
    ...                         "timestamp": 1700000600}]},
    ...     {"telemetry": telemetry}, now=1700003600)
    >>> result.processed_changes, result.conflicts_detected
    (1, 0)
    >>> result.decisions[0].update["state"]
    {'reported': {'temperature': 28.5}}

    ```
    """
    now = check_now(now)
    if type(max_skew) is not int or max_skew < 0:
        raise InvalidArgumentError(f"max_skew must be an int >= 0 (seconds), got {max_skew!r}")
    parsed: OfflineSyncRequest = sync_request(request, OfflineSyncRequest, "offline_sync")
    shadows = shadows_for(shadows, parsed.shadow_names, "a cached change touches")
    log, previous = decision_history(history)
    thing = parsed.thing_name
    results: list[tuple[int, CachedChangeResult]] = []
    decisions: list[ShadowDecision] = []
    for shadow_name in parsed.shadow_names:
        document = shadow_document(shadows[shadow_name])
        indexed = []
        for i, c in enumerate(parsed.cached_changes):
            if c.shadow_name != shadow_name:
                continue
            reason = untrusted_timestamp(c.timestamp, now=now, max_skew=max_skew)
            if reason is None:
                indexed.append((i, c))
                continue
            refused = CachedChangeResult(
                shadow_name=shadow_name,
                timestamp=c.timestamp,
                status="refused",
                applied=(),
                conflicts=(),
                reason=reason,
            )
            results.append((i, refused))
        if not indexed:
            continue
        indexed.sort(key=lambda item: item[1].timestamp)
        # Path -> (value, timestamp, index of the change that set it); later changes win.
        device: dict[Path, tuple[Value, int, int]] = {}
        for index, change in indexed:
            for path in leaf_paths(change.state):
                for other in [p for p in device if overlaps(p, path)]:
                    del device[other]
                value = copy_value(lookup(change.state, path))
                device[path] = (MISSING if value is None else value, change.timestamp, index)

        reported = document.reported if document is not None else {}
        stamps = (
            stamps_at(document.section_metadata("reported"), device) if document is not None else {}
        )
        entries: list[tuple[Path, Value, Value, Value]] = []
        cloud_stamps: dict[Path, int] = {}
        device_stamps: dict[Path, int] = {}
        for path, (value, stamp, _) in device.items():
            current = copy_value(lookup(reported, path))
            written = stamps.get(path)
            # A shadow value written after the cached change clashes with it (no common base).
            newer = written is not None and current is not MISSING and written > stamp
            entries.append((path, MISSING if newer else current, current, value))
            device_stamps[path] = stamp
            if written is not None:
                cloud_stamps[path] = written

        position = history_position(log, thing, shadow_name, document, previous=previous, now=now)
        context = settled_context(
            entries,
            section="reported",
            document=document,
            thing_name=thing,
            shadow_name=shadow_name,
            history=position,
            details={
                "offlineDurationSeconds": parsed.offline_duration_seconds,
                "cachedChanges": len(indexed),
                "shadowVersion": document.version if document is not None else None,
            },
            fast_forward="applied the device's offline changes",
            policy=policy,
            rules=rules,
            now=now,
            event_bus=event_bus,
            limits=limits,
            cloud_stamps=cloud_stamps,
            device_stamps=device_stamps,
        )
        try:
            # The judgement is kept: it says what the rules left of each cached value.
            judgement = apply_rules(context)
            decision = conclude(context, judgement)
        except ShadowRejectedError as exc:
            # The service would refuse the update (too deep, too large): the cached
            # changes cannot be applied as sent, which is the request's fault.
            raise OperationError(
                f"the cached changes of shadow {shadow_label(shadow_name)!r} cannot be "
                f"applied: {exc}",
                operation="offline_sync",
            ) from None
        decisions.append(decision)
        previous = decision.record

        rejected = {
            r.path for r in decision.report if r.kind is ConflictKind.BUSINESS_RULE_VIOLATION
        }
        clashes = [r for r in decision.report if r.kind is not ConflictKind.BUSINESS_RULE_VIOLATION]
        for index, change in indexed:
            own = [p for p, (_, _, i) in device.items() if i == index]
            applied = tuple(
                p
                for p in own
                if same(judgement.final[p], device[p][0])
                and not same(lookup(reported, p), device[p][0])
            )

            def touches(path: Path, own: list[Path] = own) -> bool:
                return any(overlaps(p, path) for p in own)

            conflicts = tuple(r for r in clashes if touches(r.path))
            status: ChangeStatus
            if any(touches(item.path) for item in decision.reviews):
                status = "review"
            elif any(touches(path) for path in rejected):
                status = "rejected"
            elif conflicts:
                status = "conflict"
            elif applied:
                status = "applied"
            elif own:
                status = "unchanged"
            else:
                status = "superseded"
            results.append(
                (
                    index,
                    CachedChangeResult(
                        shadow_name=shadow_name,
                        timestamp=change.timestamp,
                        status=status,
                        applied=applied,
                        conflicts=conflicts,
                    ),
                )
            )

    changes = tuple(result for _, result in sorted(results, key=lambda item: item[0]))
    events = [entry for d in decisions for entry in d.events]
    metrics = [datum for d in decisions for datum in d.metrics]
    metrics.append(metric_datum("OfflineSync", 1, timestamp=now))
    metrics.append(metric_datum("OfflineChanges", len(changes), timestamp=now))
    metrics.append(
        metric_datum(
            "OfflineDuration",
            parsed.offline_duration_seconds,
            timestamp=now,
            unit="Seconds",
        )
    )
    summary = OfflineSyncResult(
        thing_name=thing,
        offline_duration_seconds=parsed.offline_duration_seconds,
        changes=changes,
        decisions=tuple(decisions),
        events=(),
        metrics=tuple(metrics),
        completed_at=now,
    )
    events.append(
        event_entry(
            "Offline Sync Completed",
            {
                "thingName": thing,
                "offlineDurationSeconds": parsed.offline_duration_seconds,
                "processedChanges": summary.processed_changes,
                "conflictsDetected": summary.conflicts_detected,
                "timestamp": iso_time(now),
            },
            timestamp=now,
            event_bus=event_bus,
        )
    )
    return attrs.evolve(summary, events=tuple(events))
