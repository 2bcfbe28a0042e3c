"""What the cloud side reads from a shadow's history: its base state and recent records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowsync._json import describe
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.errors import InvalidArgumentError

History = AuditLog | Iterable[HistoryRecord]
"""A shadow's history: an `AuditLog` or its records, oldest first (other shadows' records may
be mixed in; each operation picks the shadow's own)."""

CONFLICT_CHANGE_TYPES = frozenset({"conflict_resolved", "manual_review", "rule_rejected"})
"""The change types that count as conflicts in summaries and health."""


def as_log(history: History) -> AuditLog:
    """``history`` as an `AuditLog` (the same object when it already is one)."""
    if isinstance(history, AuditLog):
        return history
    try:
        return AuditLog(history)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"history: {exc}") from None


def shadow_records(
    log: AuditLog, thing_name: str, shadow_name: str | None
) -> tuple[HistoryRecord, ...]:
    """The records of one shadow, oldest first."""
    return log.records_for(thing_name, shadow_name)


def base_state(log: AuditLog, records: tuple[HistoryRecord, ...]) -> dict[str, Any] | None:
    """The state the shadow's last record left, or None when it has no records."""
    if not records:
        return None
    return log.last_state(records[0].thing_name, records[0].shadow_name)


def recent(
    records: Iterable[HistoryRecord], *, since: float, until: float | None = None
) -> list[HistoryRecord]:
    """The records with ``since <= timestamp`` (and ``<= until`` when given)."""
    return [r for r in records if r.timestamp >= since and (until is None or r.timestamp <= until)]


def check_now(now: object) -> int:
    """``now`` (epoch seconds, an int or a float) as whole epoch seconds."""
    if isinstance(now, float) and now == now and now not in (float("inf"), float("-inf")):
        now = int(now)
    if type(now) is not int or now < 0:
        raise InvalidArgumentError(
            f"now must be epoch seconds (a non-negative number), got {describe(now)}"
        )
    return now
