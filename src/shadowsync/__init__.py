"""shadowsync: keep IoT device shadows consistent when the network cannot be trusted.

The core is pure and I/O-free: shadow documents with exact AWS IoT Device Shadow semantics,
deltas, updates, limits, topics and patches. Adapters for boto3, MQTT and SQLite live in
optional modules; `shadowsync.testing` ships an AWS-faithful in-memory shadow service.

```pycon
>>> from shadowsync import apply_update
>>> first = apply_update(None, b'{"state": {"desired": {"color": "red"}}}', timestamp=1700000000)
>>> first.delta["state"]
{'color': 'red'}

```
"""

from typing import TYPE_CHECKING, Any

from shadowsync import errors, topics
from shadowsync._delta import compute_delta
from shadowsync._document import ShadowDocument
from shadowsync._json import JSONObject, JSONValue, json_equal
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._patch import apply_json_patch, apply_merge_patch, make_json_patch, make_merge_patch
from shadowsync._update import ABSENT, UpdateRequest, UpdateResult, apply_update
from shadowsync.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowNotFoundError,
    ShadowRejectedError,
    ShadowSyncError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from shadowsync import events, rules, stores, strategies
    from shadowsync._clocks import (
        ClockSkewError,
        HLCStamp,
        HybridLogicalClock,
        Ordering,
        VectorClock,
    )
    from shadowsync._merge import (
        ChangeClass,
        ConflictRecord,
        ConflictReport,
        MergeResult,
        PathChange,
        ReviewItem,
        merge,
        stamps_at,
        stamps_from_metadata,
    )
    from shadowsync._policy import PolicyConfigError, PolicyRule, ResolutionPolicy
    from shadowsync._queue import (
        DropRecord,
        Intent,
        OfflineQueue,
        PutResult,
        QueueLimits,
        QueueStats,
        ReplayBatch,
    )
    from shadowsync._session import (
        Backoff,
        SessionConfig,
        SessionHealth,
        SessionState,
        SessionStateError,
        ShadowSession,
        Trigger,
    )
    from shadowsync._stamped import StampedEntry, StampedState
    from shadowsync._versioning import (
        Causality,
        MessageClass,
        classify_change,
        classify_clocks,
        classify_message,
    )

# The conflict engine is imported on first use, so that a device agent or a Lambda that only
# handles documents pays nothing for it at start-up.
_LAZY = {
    "rules": "shadowsync.rules",
    "strategies": "shadowsync.strategies",
    "stores": "shadowsync.stores",
    "events": "shadowsync.events",
    **dict.fromkeys(
        (
            "Backoff",
            "SessionConfig",
            "SessionHealth",
            "SessionState",
            "SessionStateError",
            "ShadowSession",
            "Trigger",
        ),
        "shadowsync._session",
    ),
    **dict.fromkeys(
        (
            "DropRecord",
            "Intent",
            "OfflineQueue",
            "PutResult",
            "QueueLimits",
            "QueueStats",
            "ReplayBatch",
        ),
        "shadowsync._queue",
    ),
    **dict.fromkeys(
        ("ClockSkewError", "HLCStamp", "HybridLogicalClock", "Ordering", "VectorClock"),
        "shadowsync._clocks",
    ),
    **dict.fromkeys(
        (
            "ChangeClass",
            "ConflictRecord",
            "ConflictReport",
            "MergeResult",
            "PathChange",
            "ReviewItem",
            "merge",
            "stamps_at",
            "stamps_from_metadata",
        ),
        "shadowsync._merge",
    ),
    **dict.fromkeys(("PolicyConfigError", "PolicyRule", "ResolutionPolicy"), "shadowsync._policy"),
    **dict.fromkeys(("StampedEntry", "StampedState"), "shadowsync._stamped"),
    **dict.fromkeys(
        ("Causality", "MessageClass", "classify_change", "classify_clocks", "classify_message"),
        "shadowsync._versioning",
    ),
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'shadowsync' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = module if module_name.endswith(f".{name}") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ABSENT",
    "Backoff",
    "Causality",
    "ChangeClass",
    "ClockSkewError",
    "ConflictRecord",
    "ConflictReport",
    "DEFAULT_LIMITS",
    "DropRecord",
    "HLCStamp",
    "HybridLogicalClock",
    "Intent",
    "InvalidRequestError",
    "JSONObject",
    "JSONValue",
    "MergeResult",
    "MessageClass",
    "OfflineQueue",
    "Ordering",
    "PathChange",
    "PayloadTooLargeError",
    "PolicyConfigError",
    "PolicyRule",
    "PutResult",
    "QueueLimits",
    "QueueStats",
    "ReplayBatch",
    "ResolutionPolicy",
    "ReviewItem",
    "SessionConfig",
    "SessionHealth",
    "SessionState",
    "SessionStateError",
    "ShadowDocument",
    "ShadowLimits",
    "ShadowNotFoundError",
    "ShadowRejectedError",
    "ShadowSession",
    "ShadowSyncError",
    "StampedEntry",
    "StampedState",
    "Trigger",
    "UpdateRequest",
    "UpdateResult",
    "VectorClock",
    "VersionConflictError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_update",
    "classify_change",
    "classify_clocks",
    "classify_message",
    "compute_delta",
    "errors",
    "events",
    "json_equal",
    "make_json_patch",
    "make_merge_patch",
    "merge",
    "rules",
    "stamps_at",
    "stamps_from_metadata",
    "stores",
    "strategies",
    "topics",
    "__version__",
]
