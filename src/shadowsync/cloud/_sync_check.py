"""``sync_check``: per shadow, in sync or not, what is pending, when it last synced."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.merge import stamps_from_metadata
from shadowsync._json import json_pointer
from shadowsync._tree import Path, leaf_paths
from shadowsync.cloud._delta_event import shadow_document
from shadowsync.cloud._history import History, as_log, check_now, recent_conflicts
from shadowsync.cloud._requests import SyncCheckRequest, shadow_label, shadows_for, sync_request
from shadowsync.cloud._signals import iso_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync._document import ShadowDocument
    from shadowsync.audit import HistoryRecord


def newest_report(document: ShadowDocument) -> int | None:
    """The newest timestamp in the reported metadata: when the device last reported."""
    stamps = stamps_from_metadata(document.section_metadata("reported"))
    return max(stamps.values()) if stamps else None


def _conflict_json(record: HistoryRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "timestamp": record.timestamp,
        "changeType": record.change_type,
        "decision": record.decision,
        "reason": record.reason,
    }


@attrs.frozen(kw_only=True)
class ShadowSyncStatus:
    """The sync state of one shadow."""

    shadow_name: str | None
    exists: bool
    version: int | None
    pending: tuple[Path, ...]
    """The leaf paths of the delta: desired values the device has not reported yet."""
    last_report: int | None
    """When the device last reported anything (the newest reported metadata timestamp)."""
    last_sync: int | None
    """The timestamp of the shadow's newest history record."""
    recent_conflicts: tuple[HistoryRecord, ...]
    """History records in the recent window that resolved, held or rejected a conflict."""

    @property
    def in_sync(self) -> bool:
        """True when the shadow exists and nothing is pending."""
        return self.exists and not self.pending

    @property
    def has_conflicts(self) -> bool:
        """True when the recent window holds a conflict."""
        return bool(self.recent_conflicts)

    def to_json(self) -> dict[str, Any]:
        """The seed's per-shadow entry: ``shadowName``, ``syncStatus``, ``lastSync``, ..."""
        return {
            "shadowName": shadow_label(self.shadow_name),
            "syncStatus": {
                "exists": self.exists,
                "inSync": self.in_sync,
                "hasConflicts": self.has_conflicts,
                "lastUpdate": self.last_report,
                "version": self.version,
                "pendingChanges": sorted({p[0] for p in self.pending}),
                "pendingPaths": [json_pointer(p) for p in self.pending],
            },
            "lastSync": None if self.last_sync is None else iso_time(self.last_sync),
            "hasConflicts": self.has_conflicts,
            "recentConflicts": [_conflict_json(r) for r in self.recent_conflicts],
        }


@attrs.frozen(kw_only=True)
class SyncCheckResult:
    """The outcome of a ``sync_check`` for one thing."""

    thing_name: str
    shadows: tuple[ShadowSyncStatus, ...]

    def to_json(self) -> dict[str, Any]:
        """The response body: ``thingName``, ``syncResults`` and ``overallHealth``."""
        total = len(self.shadows)
        in_sync = sum(1 for s in self.shadows if s.in_sync)
        conflicted = sum(1 for s in self.shadows if s.has_conflicts)
        percentage = 100.0 * in_sync / total if total else 100.0
        if percentage > 80:
            status = "healthy"
        elif percentage > 60:
            status = "degraded"
        else:
            status = "critical"
        return {
            "thingName": self.thing_name,
            "syncResults": [s.to_json() for s in self.shadows],
            "overallHealth": {
                "healthPercentage": round(percentage, 1),
                "totalShadows": total,
                "healthyShadows": in_sync,
                "conflictedShadows": conflicted,
                "status": status,
            },
        }


def sync_check(
    request: SyncCheckRequest | Mapping[str, Any] | str | bytes,
    shadows: Mapping[str | None, ShadowDocument | Mapping[str, Any] | None],
    *,
    now: int,
    history: History = (),
) -> SyncCheckResult:
    """Report, per requested shadow, whether it is in sync and what is pending.

    ``shadows`` maps each requested shadow name (None: the classic shadow) to the shadow as
    read now (None when it does not exist); ``history`` holds the thing's history records.

    ```pycon
    >>> from shadowsync import apply_update
    >>> doc = apply_update(None, {"state": {"desired": {"rate": 60}, "reported": {"rate": 30}}},
    ...                    timestamp=1700000000).document
    >>> result = sync_check({"thingName": "pump-7", "shadowNames": ["configuration"]},
    ...                     {"configuration": doc}, now=1700000100)
    >>> status = result.shadows[0]
    >>> status.in_sync, status.pending, result.to_json()["overallHealth"]["status"]
    (False, (('rate',),), 'critical')

    ```
    """
    now = check_now(now)
    parsed: SyncCheckRequest = sync_request(request, SyncCheckRequest, "sync_check")
    shadows = shadows_for(shadows, parsed.shadow_names, "the request names")
    log = as_log(history)
    since = now - parsed.recent_hours * 3600
    statuses = []
    for name in parsed.shadow_names:
        document = shadow_document(shadows[name])
        records = log.records_for(parsed.thing_name, name)
        conflicts = tuple(recent_conflicts(records, since=since))
        statuses.append(
            ShadowSyncStatus(
                shadow_name=name,
                exists=document is not None,
                version=document.version if document is not None else None,
                pending=tuple(leaf_paths(document.delta or {})) if document is not None else (),
                last_report=newest_report(document) if document is not None else None,
                last_sync=records[-1].timestamp if records else None,
                recent_conflicts=conflicts,
            )
        )
    return SyncCheckResult(thing_name=parsed.thing_name, shadows=tuple(statuses))
