"""The cloud side: a conflict resolver and a sync manager as pure functions over plain data.

Everything here takes what a Lambda would read (the event or request, the current shadows,
the shadows' history records, the device's policy and rules, the time) and returns what it
would write and emit (the update to apply, the history record, EventBridge entries, CloudWatch
metric data, the response body). Nothing here reads a clock or touches the network, so an
adapter only moves bytes, and every decision can be tested and replayed.

```pycon
>>> from shadowsync import apply_update
>>> from shadowsync.cloud import handle_delta_event
>>> shadow = apply_update(None, {"state": {"desired": {"mode": "eco"},
...                                        "reported": {"mode": "normal"}}},
...                       timestamp=1700000000).document
>>> decision = handle_delta_event({"thingName": "pump-7", "state": {"mode": "eco"},
...                                "version": 1}, shadow, now=1700000001)
>>> decision.decision, decision.reason
('accept', 'pending: the device has yet to apply the desired state')

```
"""

from __future__ import annotations

# isort: off
# In the order the API reference shows them.
from shadowsync.cloud._requests import (
    CLASSIC_SHADOW_NAME,
    OPERATIONS,
    Operation,
    OperationError,
    SyncRequest,
    SyncCheckRequest,
    OfflineSyncRequest,
    CachedChange,
    ConflictSummaryRequest,
    HealthReportRequest,
    ResolvePendingConflictsRequest,
    ReviewRequestAction,
    parse_request,
)
from shadowsync.cloud._history import History
from shadowsync.cloud._head import HistoryHead, ShadowHead
from shadowsync.cloud._config import (
    FLEET,
    POLICY_CONFIG,
    RULES_CONFIG,
    DeviceSettings,
    plain_config,
)
from shadowsync.cloud._decision import ShadowDecision
from shadowsync.cloud._delta_event import DeltaEvent, handle_delta_event
from shadowsync.cloud._offline import (
    ChangeStatus,
    CachedChangeResult,
    OfflineSyncResult,
    offline_sync,
)
from shadowsync.cloud._sync_check import ShadowSyncStatus, SyncCheckResult, sync_check
from shadowsync.cloud._summary import ConflictSummary, conflict_summary
from shadowsync.cloud._health import (
    HealthStatus,
    HealthThresholds,
    DeviceHealth,
    HealthReport,
    health_report,
)
from shadowsync.cloud._reviews import (
    HeldReview,
    ReviewAction,
    ReviewStatus,
    ReviewResolution,
    ReviewQuery,
    ReviewPage,
    ReviewReader,
    ReviewDecision,
    ReviewNotFoundError,
    ReviewConflictError,
    held_reviews,
    page_reviews,
    resolve_review,
)
from shadowsync.cloud._manager import (
    HeadReader,
    HistoryReader,
    ShadowReader,
    SyncManager,
    SyncResponse,
)
from shadowsync.cloud._explain import explain_change, explain_versions
from shadowsync.cloud._signals import (
    EVENT_SOURCE,
    EVENT_TYPES,
    EventType,
    METRIC_NAMESPACE,
    METRIC_NAMES,
    MetricName,
)

# isort: on

__all__ = [
    "CLASSIC_SHADOW_NAME",
    "EVENT_SOURCE",
    "FLEET",
    "EVENT_TYPES",
    "METRIC_NAMES",
    "METRIC_NAMESPACE",
    "OPERATIONS",
    "POLICY_CONFIG",
    "RULES_CONFIG",
    "CachedChange",
    "CachedChangeResult",
    "ChangeStatus",
    "ConflictSummary",
    "ConflictSummaryRequest",
    "DeltaEvent",
    "DeviceHealth",
    "DeviceSettings",
    "EventType",
    "HealthReport",
    "HealthReportRequest",
    "HealthStatus",
    "HealthThresholds",
    "History",
    "HeadReader",
    "HeldReview",
    "HistoryHead",
    "HistoryReader",
    "MetricName",
    "OfflineSyncRequest",
    "OfflineSyncResult",
    "Operation",
    "OperationError",
    "ResolvePendingConflictsRequest",
    "ReviewAction",
    "ReviewConflictError",
    "ReviewDecision",
    "ReviewNotFoundError",
    "ReviewPage",
    "ReviewQuery",
    "ReviewReader",
    "ReviewRequestAction",
    "ReviewResolution",
    "ReviewStatus",
    "ShadowDecision",
    "ShadowHead",
    "ShadowReader",
    "ShadowSyncStatus",
    "SyncCheckRequest",
    "SyncCheckResult",
    "SyncManager",
    "SyncRequest",
    "SyncResponse",
    "conflict_summary",
    "explain_change",
    "explain_versions",
    "handle_delta_event",
    "health_report",
    "held_reviews",
    "offline_sync",
    "page_reviews",
    "parse_request",
    "plain_config",
    "resolve_review",
    "sync_check",
]
