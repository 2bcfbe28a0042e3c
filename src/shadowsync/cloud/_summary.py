"""``conflict_summary``: a time range's conflicts, totalled by thing, shadow, kind, strategy."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync.cloud._history import History, as_log, check_now, recent_conflicts
from shadowsync.cloud._requests import ConflictSummaryRequest, shadow_label, sync_request
from shadowsync.cloud._signals import iso_time

if TYPE_CHECKING:
    from collections.abc import Mapping


def _hours(hours: float) -> str:
    return f"{hours:g} hours" if hours != 1 else "1 hour"


@attrs.frozen(kw_only=True)
class ConflictSummary:
    """Totals over the conflicts recorded in ``[since, until]``.

    A conflict is one path of one history record whose change type is ``conflict_resolved``,
    ``manual_review`` or ``rule_rejected`` (each record's ``details["conflicts"]`` lists them;
    a record without that list counts once, under its change type).
    """

    since: int
    until: int
    time_range_hours: float
    records: int
    """History records that hold at least one conflict."""
    total: int
    by_thing: Mapping[str, int]
    by_shadow: Mapping[str, int]
    """Keyed by ``thing/shadow`` (``$default`` for the classic shadow)."""
    by_kind: Mapping[str, int]
    by_strategy: Mapping[str, int]
    by_decision: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        """The response body, with the seed's ``totalConflicts``, ``conflictsByType``,
        ``conflictsByThing`` and ``timeRange``."""
        return {
            "totalConflicts": self.total,
            "records": self.records,
            "conflictsByThing": dict(self.by_thing),
            "conflictsByShadow": dict(self.by_shadow),
            "conflictsByType": dict(self.by_kind),
            "conflictsByStrategy": dict(self.by_strategy),
            "conflictsByDecision": dict(self.by_decision),
            "timeRange": _hours(self.time_range_hours),
            "from": iso_time(self.since),
            "to": iso_time(self.until),
        }


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def conflict_summary(
    request: ConflictSummaryRequest | Mapping[str, Any] | str | bytes,
    history: History,
    *,
    now: int,
) -> ConflictSummary:
    """Total the conflicts recorded in the last ``timeRangeHours`` (default 24) before ``now``.

    ``history`` is the fleet's history records (or a thing's, with ``thingName`` in the
    request). Totals are sorted, largest first.

    ```pycon
    >>> from shadowsync.audit import AuditLog
    >>> log = AuditLog()
    >>> _ = log.append("pump-7", "configuration", previous_state=None,
    ...                new_state={"desired": {"rate": 30}}, version=1, timestamp=1700000000,
    ...                change_type="conflict_resolved", decision="merge", reason="lww",
    ...                details={"conflicts": [{"path": "rate", "kind": "concurrent_modification",
    ...                                        "strategy": "last_writer_wins"}]})
    >>> summary = conflict_summary({"timeRangeHours": 1}, log, now=1700000600)
    >>> summary.total, dict(summary.by_strategy)
    (1, {'last_writer_wins': 1})

    ```
    """
    now = check_now(now)
    parsed: ConflictSummaryRequest = sync_request(
        request, ConflictSummaryRequest, "conflict_summary"
    )
    log = as_log(history)
    since = int(now - parsed.time_range_hours * 3600)
    by_thing: Counter[str] = Counter()
    by_shadow: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    by_strategy: Counter[str] = Counter()
    by_decision: Counter[str] = Counter()
    records = 0
    for record in recent_conflicts(log.records, since=since, until=now):
        if parsed.thing_name is not None and record.thing_name != parsed.thing_name:
            continue
        entries = (record.details or {}).get("conflicts")
        items: list[tuple[str, str]] = []
        if isinstance(entries, list) and entries:
            for entry in entries:
                if isinstance(entry, dict):
                    kind = entry.get("kind")
                    strategy = entry.get("strategy")
                    items.append(
                        (
                            kind if isinstance(kind, str) else record.change_type,
                            strategy if isinstance(strategy, str) else "unknown",
                        )
                    )
        if not items:
            items.append((record.change_type, "unknown"))
        records += 1
        shadow = f"{record.thing_name}/{shadow_label(record.shadow_name)}"
        for kind, strategy in items:
            by_thing[record.thing_name] += 1
            by_shadow[shadow] += 1
            by_kind[kind] += 1
            by_strategy[strategy] += 1
            by_decision[record.decision] += 1
    return ConflictSummary(
        since=since,
        until=now,
        time_range_hours=parsed.time_range_hours,
        records=records,
        total=sum(by_kind.values()),
        by_thing=_sorted(by_thing),
        by_shadow=_sorted(by_shadow),
        by_kind=_sorted(by_kind),
        by_strategy=_sorted(by_strategy),
        by_decision=_sorted(by_decision),
    )
