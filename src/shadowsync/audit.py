"""The audit trail: hash-chained history records of shadow changes, verification, JSON Lines.

Every change the cloud side makes to a shadow (an accepted update, a merge, a rejection by a
business rule, a conflict held for review, a delete) becomes a `HistoryRecord`: who (thing and
shadow), when (version and timestamp), what (the RFC 6902 patch from the previous state to the
new one), and which decision was taken and why. Each record carries the sha256 of its own
canonical JSON, which covers the checksum of the record before it, so the records form a hash
chain: altering, removing, inserting or reordering any record breaks the chain at a place that
`AuditLog.verify` names. Logs travel as JSON Lines, and `AuditLog.replay` rebuilds any recorded
state from the patches alone.

```pycon
>>> from shadowsync import apply_update
>>> from shadowsync.audit import AuditLog
>>> log = AuditLog()
>>> result = apply_update(None, {"state": {"desired": {"on": True}}}, timestamp=1700000000)
>>> record = log.append("lamp", None, previous_state=result.previous, new_state=result.document,
...                     version=1, timestamp=1700000000, change_type="update",
...                     decision="accept", reason="no conflict")
>>> record.patch
[{'op': 'add', 'path': '/desired/on', 'value': True}]
>>> log.verify().ok
True
>>> AuditLog.from_jsonl(log.to_jsonl()).replay("lamp", None)
{'desired': {'on': True}, 'reported': {}}

```
"""

from __future__ import annotations

from shadowsync._audit.log import AuditLog, VerificationResult
from shadowsync._audit.record import (
    CHANGE_TYPES,
    DECISIONS,
    AuditLogError,
    ChangeType,
    Decision,
    FailureReason,
    HistoryRecord,
    ShadowState,
)

__all__ = [
    "CHANGE_TYPES",
    "DECISIONS",
    "AuditLog",
    "AuditLogError",
    "ChangeType",
    "Decision",
    "FailureReason",
    "HistoryRecord",
    "ShadowState",
    "VerificationResult",
]
