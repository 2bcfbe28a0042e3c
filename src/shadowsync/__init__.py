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

from shadowsync import errors, rules, strategies, topics
from shadowsync._clocks import ClockSkewError, HLCStamp, HybridLogicalClock, Ordering, VectorClock
from shadowsync._delta import compute_delta
from shadowsync._document import ShadowDocument
from shadowsync._json import JSONObject, JSONValue, json_equal
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._merge import (
    ChangeClass,
    ConflictRecord,
    ConflictReport,
    MergeResult,
    PathChange,
    ReviewItem,
    merge,
    stamps_from_metadata,
)
from shadowsync._patch import apply_json_patch, apply_merge_patch, make_json_patch, make_merge_patch
from shadowsync._policy import PolicyConfigError, PolicyRule, ResolutionPolicy
from shadowsync._stamped import StampedEntry, StampedState
from shadowsync._update import ABSENT, UpdateRequest, UpdateResult, apply_update
from shadowsync._versioning import (
    Causality,
    MessageClass,
    classify_change,
    classify_clocks,
    classify_message,
)
from shadowsync.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowNotFoundError,
    ShadowRejectedError,
    ShadowSyncError,
    VersionConflictError,
)

__version__ = "0.1.0"

__all__ = [
    "ABSENT",
    "Causality",
    "ChangeClass",
    "ClockSkewError",
    "ConflictRecord",
    "ConflictReport",
    "DEFAULT_LIMITS",
    "HLCStamp",
    "HybridLogicalClock",
    "InvalidRequestError",
    "JSONObject",
    "JSONValue",
    "MergeResult",
    "MessageClass",
    "Ordering",
    "PathChange",
    "PayloadTooLargeError",
    "PolicyConfigError",
    "PolicyRule",
    "ResolutionPolicy",
    "ReviewItem",
    "ShadowDocument",
    "ShadowLimits",
    "ShadowNotFoundError",
    "ShadowRejectedError",
    "ShadowSyncError",
    "StampedEntry",
    "StampedState",
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
    "json_equal",
    "make_json_patch",
    "make_merge_patch",
    "merge",
    "rules",
    "stamps_from_metadata",
    "strategies",
    "topics",
    "__version__",
]
