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

__version__ = "0.1.0"

__all__ = [
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
    "__version__",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_update",
    "compute_delta",
    "errors",
    "json_equal",
    "make_json_patch",
    "make_merge_patch",
    "topics",
]
