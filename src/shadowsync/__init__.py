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

from shadowsync import (
    errors as errors,
)
from shadowsync import (
    topics as topics,
)
from shadowsync._delta import (
    compute_delta as compute_delta,
)
from shadowsync._document import (
    ShadowDocument as ShadowDocument,
)
from shadowsync._json import (
    JSONObject as JSONObject,
)
from shadowsync._json import (
    JSONValue as JSONValue,
)
from shadowsync._json import (
    json_equal as json_equal,
)
from shadowsync._limits import (
    DEFAULT_LIMITS as DEFAULT_LIMITS,
)
from shadowsync._limits import (
    ShadowLimits as ShadowLimits,
)
from shadowsync._patch import (
    apply_json_patch as apply_json_patch,
)
from shadowsync._patch import (
    apply_merge_patch as apply_merge_patch,
)
from shadowsync._patch import (
    make_json_patch as make_json_patch,
)
from shadowsync._patch import (
    make_merge_patch as make_merge_patch,
)
from shadowsync._update import (
    ABSENT as ABSENT,
)
from shadowsync._update import (
    UpdateRequest as UpdateRequest,
)
from shadowsync._update import (
    UpdateResult as UpdateResult,
)
from shadowsync._update import (
    apply_update as apply_update,
)
from shadowsync.errors import (
    InvalidRequestError as InvalidRequestError,
)
from shadowsync.errors import (
    PayloadTooLargeError as PayloadTooLargeError,
)
from shadowsync.errors import (
    ShadowNotFoundError as ShadowNotFoundError,
)
from shadowsync.errors import (
    ShadowRejectedError as ShadowRejectedError,
)
from shadowsync.errors import (
    ShadowSyncError as ShadowSyncError,
)
from shadowsync.errors import (
    VersionConflictError as VersionConflictError,
)

if TYPE_CHECKING:
    from shadowsync import (
        events as events,
    )
    from shadowsync import (
        rules as rules,
    )
    from shadowsync import (
        stores as stores,
    )
    from shadowsync import (
        strategies as strategies,
    )
    from shadowsync._conflict.clocks import (
        ClockSkewError as ClockSkewError,
    )
    from shadowsync._conflict.clocks import (
        HLCStamp as HLCStamp,
    )
    from shadowsync._conflict.clocks import (
        HybridLogicalClock as HybridLogicalClock,
    )
    from shadowsync._conflict.clocks import (
        Ordering as Ordering,
    )
    from shadowsync._conflict.clocks import (
        VectorClock as VectorClock,
    )
    from shadowsync._conflict.merge import (
        ChangeClass as ChangeClass,
    )
    from shadowsync._conflict.merge import (
        ConflictRecord as ConflictRecord,
    )
    from shadowsync._conflict.merge import (
        ConflictReport as ConflictReport,
    )
    from shadowsync._conflict.merge import (
        MergeResult as MergeResult,
    )
    from shadowsync._conflict.merge import (
        PathChange as PathChange,
    )
    from shadowsync._conflict.merge import (
        ReviewItem as ReviewItem,
    )
    from shadowsync._conflict.merge import (
        merge as merge,
    )
    from shadowsync._conflict.merge import (
        stamps_at as stamps_at,
    )
    from shadowsync._conflict.merge import (
        stamps_from_metadata as stamps_from_metadata,
    )
    from shadowsync._conflict.policy import (
        PolicyConfigError as PolicyConfigError,
    )
    from shadowsync._conflict.policy import (
        PolicyRule as PolicyRule,
    )
    from shadowsync._conflict.policy import (
        ResolutionPolicy as ResolutionPolicy,
    )
    from shadowsync._conflict.stamped import (
        StampedEntry as StampedEntry,
    )
    from shadowsync._conflict.stamped import (
        StampedState as StampedState,
    )
    from shadowsync._conflict.versioning import (
        Causality as Causality,
    )
    from shadowsync._conflict.versioning import (
        MessageClass as MessageClass,
    )
    from shadowsync._conflict.versioning import (
        classify_change as classify_change,
    )
    from shadowsync._conflict.versioning import (
        classify_clocks as classify_clocks,
    )
    from shadowsync._conflict.versioning import (
        classify_message as classify_message,
    )
    from shadowsync._device.config import (
        Backoff as Backoff,
    )
    from shadowsync._device.config import (
        SessionConfig as SessionConfig,
    )
    from shadowsync._device.config import (
        SessionHealth as SessionHealth,
    )
    from shadowsync._device.intent import (
        Intent as Intent,
    )
    from shadowsync._device.pacing import (
        ReportPolicy as ReportPolicy,
    )
    from shadowsync._device.queue import (
        DropRecord as DropRecord,
    )
    from shadowsync._device.queue import (
        OfflineQueue as OfflineQueue,
    )
    from shadowsync._device.queue import (
        PutResult as PutResult,
    )
    from shadowsync._device.queue import (
        QueueLimits as QueueLimits,
    )
    from shadowsync._device.queue import (
        QueueStats as QueueStats,
    )
    from shadowsync._device.replay import (
        ReplayBatch as ReplayBatch,
    )
    from shadowsync._device.session import (
        ShadowSession as ShadowSession,
    )
    from shadowsync._device.state import (
        SessionState as SessionState,
    )
    from shadowsync._device.state import (
        SessionStateError as SessionStateError,
    )
    from shadowsync._device.state import (
        Trigger as Trigger,
    )
    from shadowsync._device.thing import (
        ThingHealth as ThingHealth,
    )
    from shadowsync._device.thing import (
        ThingSession as ThingSession,
    )

# The conflict engine and the device side are imported on first use, so that a device agent or
# a Lambda that only handles documents pays nothing for them at start-up. This table is the one
# list of lazily imported names: `__getattr__`, `__dir__` and `__all__` are built from it (the
# block above repeats it for type checkers only; a test keeps the two equal).
_LAZY_FROM: dict[str, tuple[str, ...]] = {
    "shadowsync._conflict.clocks": (
        "ClockSkewError",
        "HLCStamp",
        "HybridLogicalClock",
        "Ordering",
        "VectorClock",
    ),
    "shadowsync._conflict.versioning": (
        "Causality",
        "MessageClass",
        "classify_change",
        "classify_clocks",
        "classify_message",
    ),
    "shadowsync._conflict.stamped": ("StampedEntry", "StampedState"),
    "shadowsync._conflict.policy": ("PolicyConfigError", "PolicyRule", "ResolutionPolicy"),
    "shadowsync._conflict.merge": (
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
    "shadowsync._device.intent": ("Intent",),
    "shadowsync._device.queue": (
        "DropRecord",
        "OfflineQueue",
        "PutResult",
        "QueueLimits",
        "QueueStats",
    ),
    "shadowsync._device.replay": ("ReplayBatch",),
    "shadowsync._device.state": ("SessionState", "SessionStateError", "Trigger"),
    "shadowsync._device.config": ("Backoff", "SessionConfig", "SessionHealth"),
    "shadowsync._device.session": ("ShadowSession",),
    "shadowsync._device.pacing": ("ReportPolicy",),
    "shadowsync._device.thing": ("ThingHealth", "ThingSession"),
}
_LAZY_MODULES = ("events", "rules", "stores", "strategies")
_LAZY = {name: module for module, names in _LAZY_FROM.items() for name in names}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY_MODULES:
        value: Any = importlib.import_module(f"shadowsync.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'shadowsync' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})


__version__ = "0.1.0"

__all__ = sorted(
    [
        "ABSENT",
        "DEFAULT_LIMITS",
        "InvalidRequestError",
        "JSONObject",
        "JSONValue",
        "PayloadTooLargeError",
        "ShadowDocument",
        "ShadowLimits",
        "ShadowNotFoundError",
        "ShadowRejectedError",
        "ShadowSyncError",
        "UpdateRequest",
        "UpdateResult",
        "VersionConflictError",
        "apply_json_patch",
        "apply_merge_patch",
        "apply_update",
        "compute_delta",
        "errors",
        "json_equal",
        "make_json_patch",
        "make_merge_patch",
        "topics",
        "__version__",
        *_LAZY,
        *_LAZY_MODULES,
    ]
)
