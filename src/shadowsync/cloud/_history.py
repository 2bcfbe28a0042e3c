"""What the cloud side reads from a history: the log itself, recent records, conflict types."""

from __future__ import annotations

from collections.abc import Iterable

from shadowsync._json import describe
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.cloud._head import HistoryHead
from shadowsync.errors import InvalidArgumentError

History = AuditLog | Iterable[HistoryRecord]
"""A shadow's history: an `AuditLog` or its records, oldest first (other shadows' records may
be mixed in; each operation picks the shadow's own)."""

CONFLICT_CHANGE_TYPES = frozenset({"conflict_resolved", "manual_review", "rule_rejected"})
"""The change types that count as conflicts in summaries, sync checks and health."""


def as_log(history: History) -> AuditLog:
    """``history`` as an `AuditLog` (the same object when it already is one)."""
    if isinstance(history, AuditLog):
        return history
    try:
        return AuditLog(history)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"history: {exc}") from None


def decision_history(
    history: History | HistoryHead,
) -> tuple[AuditLog | HistoryHead, HistoryRecord | str | None]:
    """What a decision reads ``history`` through, and what its first record chains to: the
    newest record of a log, or the checksum a `HistoryHead` ends with (None: no record)."""
    if isinstance(history, HistoryHead):
        return history, history.head or None
    log = as_log(history)
    return log, log[-1] if len(log) else None  # without a snapshot of every record


def recent_conflicts(
    records: Iterable[HistoryRecord], *, since: float, until: float | None = None
) -> list[HistoryRecord]:
    """The conflict records (`CONFLICT_CHANGE_TYPES`) with ``since <= timestamp`` (and
    ``<= until`` when given)."""
    return [
        r
        for r in records
        if r.timestamp >= since
        and (until is None or r.timestamp <= until)
        and r.change_type in CONFLICT_CHANGE_TYPES
    ]


def check_now(now: object) -> int:
    """``now`` (epoch seconds, an int or a float) as whole epoch seconds."""
    if isinstance(now, float) and now == now and now not in (float("inf"), float("-inf")):
        now = int(now)
    if type(now) is not int or now < 0:
        raise InvalidArgumentError(
            f"now must be epoch seconds (a non-negative number), got {describe(now)}"
        )
    return now
