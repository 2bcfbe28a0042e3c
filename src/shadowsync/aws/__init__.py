"""AWS adapters over injected boto3 clients: IoT data plane, DynamoDB, EventBridge, CloudWatch.

Everything here only moves bytes between AWS and the pure core: the decisions are made by
`shadowsync.cloud`. Every client is passed in (create them once per Lambda container, at import
time); shadowsync never reads credentials or configuration. Every botocore failure surfaces as
a `shadowsync.errors.ShadowSyncError` subclass, never as a ``ClientError``.

- `IotShadowClient`: get, update, delete and list shadows (``boto3.client("iot-data")``).
- `DynamoDBHistoryStore`, `create_history_table`: hash-chained history records in DynamoDB,
  the reviews decisions hold for a person, stored with their records, and what a keyed
  ``offline_sync`` answered (`StoredAnswer`), kept for its retries.
- `publish_events`, `publish_metrics`: a decision's EventBridge entries and CloudWatch data.
- `conflict_resolver_handler`, `sync_manager_handler`: Lambda handlers wiring the above.

Needs the ``boto3`` extra: ``pip install "shadowsync[boto3]"``.
"""

from __future__ import annotations

try:
    import boto3  # noqa: F401  (the extra must be complete, not just botocore)
    import botocore.exceptions  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        'shadowsync.aws needs boto3; install it with: pip install "shadowsync[boto3]"'
    ) from exc

# isort: off
from shadowsync.aws._errors import RETRYABLE, HistoryConflictError
from shadowsync.aws._iot import IotShadowClient
from shadowsync.aws._history import DynamoDBHistoryStore, StoredAnswer, create_history_table
from shadowsync.aws._config import DeviceConfigTable, create_device_config_table
from shadowsync.aws._signals import PublishResult, publish_events, publish_metrics
from shadowsync.aws._handlers import (
    LambdaHandler,
    conflict_resolver_handler,
    sync_manager_handler,
)

# isort: on

__all__ = [
    "RETRYABLE",
    "DeviceConfigTable",
    "DynamoDBHistoryStore",
    "HistoryConflictError",
    "IotShadowClient",
    "LambdaHandler",
    "PublishResult",
    "StoredAnswer",
    "conflict_resolver_handler",
    "create_device_config_table",
    "create_history_table",
    "publish_events",
    "publish_metrics",
    "sync_manager_handler",
]
