"""The public surface: exact ``__all__`` lists, import isolation of the core, docstrings."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import itertools
import json
import re
import subprocess
import sys
from types import ModuleType

import pytest

import shadowsync
import shadowsync.aws
import shadowsync.cli
import shadowsync.cloud
import shadowsync.errors
import shadowsync.events
import shadowsync.mqtt
import shadowsync.reconcile
import shadowsync.stores
import shadowsync.testing
import shadowsync.topics

EXPECTED_ALL: dict[str, set[str]] = {
    "shadowsync": {
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
        "Causality",
        "ChangeClass",
        "ClockSkewError",
        "ConflictRecord",
        "ConflictReport",
        "HLCStamp",
        "HybridLogicalClock",
        "MergeResult",
        "MessageClass",
        "Ordering",
        "PathChange",
        "PolicyConfigError",
        "PolicyRule",
        "ResolutionPolicy",
        "ReviewItem",
        "StampedEntry",
        "StampedState",
        "VectorClock",
        "classify_change",
        "classify_clocks",
        "classify_message",
        "merge",
        "rules",
        "stamps_at",
        "stamps_from_metadata",
        "strategies",
        "DropRecord",
        "Intent",
        "OfflineQueue",
        "PutResult",
        "QueueLimits",
        "QueueStats",
        "ReplayBatch",
        "ReportPolicy",
        "stores",
        "Backoff",
        "SessionConfig",
        "SessionHealth",
        "SessionState",
        "SessionStateError",
        "ShadowSession",
        "ThingHealth",
        "ThingSession",
        "Trigger",
        "events",
    },
    "shadowsync.errors": {
        "ForbiddenError",
        "InternalFailureError",
        "InvalidArgumentError",
        "InvalidDocumentError",
        "InvalidNameError",
        "InvalidRequestError",
        "MethodNotAllowedError",
        "PatchError",
        "PayloadTooLargeError",
        "ServiceUnavailableError",
        "ShadowNotFoundError",
        "ShadowRejectedError",
        "ShadowSyncError",
        "ThrottlingError",
        "TopicError",
        "UnauthorizedError",
        "UnsupportedEncodingError",
        "VersionConflictError",
        "error_for_code",
    },
    "shadowsync.topics": {
        "OPERATIONS",
        "RESPONSES",
        "Operation",
        "Response",
        "ShadowTopic",
        "build",
        "parse",
        "prefix",
        "subscriptions",
    },
    "shadowsync.testing": {
        "Clock",
        "FaultInjector",
        "Faults",
        "InMemoryShadowService",
        "LoopbackPair",
        "ManualClock",
        "VERSION_RETENTION_SECONDS",
    },
    "shadowsync.events": {
        "AcknowledgementQueued",
        "CacheReset",
        "ConflictResolved",
        "DeltaReceived",
        "Dropped",
        "Event",
        "FromShadow",
        "IntentsConfirmed",
        "IntentsQueued",
        "MessageIgnored",
        "Output",
        "Publish",
        "RequestFailed",
        "ReviewNeeded",
        "SessionEvent",
        "ShadowDeleted",
        "SnapshotReceived",
        "StateChanged",
        "Subscribe",
        "SyncCompleted",
        "Unsubscribe",
        "UpdateAccepted",
        "UpdateRejected",
    },
    "shadowsync.cli": {"main"},
    "shadowsync.cloud": {
        "CLASSIC_SHADOW_NAME",
        "EVENT_SOURCE",
        "EVENT_TYPES",
        "FLEET",
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
        "HeadReader",
        "HeldReview",
        "History",
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
    },
    "shadowsync.aws": {
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
    },
    "shadowsync.mqtt": {"DeviceBridge", "ServiceBridge", "TransportError"},
    "shadowsync.reconcile": {
        "Action",
        "Component",
        "ComponentError",
        "JSON_TYPES",
        "Phase",
        "PollConfig",
        "PollRequest",
        "PolledTarget",
        "PollerState",
        "RECONCILE_KEY",
        "ReconcileConfig",
        "ReconcileError",
        "ReconcileStateError",
        "ReconcileStatus",
        "Reconciler",
        "ReconcilerState",
        "ReportingSession",
        "STATE_FORMAT",
        "ShadowReconciler",
        "StateStore",
        "Step",
        "StepError",
        "TargetError",
        "TargetPoller",
        "UpdateStrategy",
        "change_actions",
    },
    "shadowsync.reconcile.http": {"MAX_TARGET_BYTES", "fetch_target"},
    "shadowsync.stores": {
        "CacheEntry",
        "MemoryStore",
        "SQLiteStore",
        "Store",
        "StoreCorruptError",
        "StoreError",
        "StoreSchemaError",
    },
}

PUBLIC_MODULES = sorted(EXPECTED_ALL)
FORBIDDEN_IN_CORE = (
    "boto3",
    "botocore",
    "paho",
    "deepdiff",
    "moto",
    "sqlite3",
    "urllib",
    "http",
    "aws_lambda_powertools",
)


def _public_names() -> list[tuple[str, str]]:
    return [(module, name) for module in PUBLIC_MODULES for name in sorted(EXPECTED_ALL[module])]


# --- (a) exact __all__ ---


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_exact_and_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert set(exported) == EXPECTED_ALL[module_name]
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} does not resolve"


def test_reexports_are_the_same_objects() -> None:
    for name in ("ShadowRejectedError", "ShadowSyncError", "VersionConflictError"):
        assert getattr(shadowsync, name) is getattr(shadowsync.errors, name)
    assert shadowsync.errors is importlib.import_module("shadowsync.errors")
    assert shadowsync.topics is importlib.import_module("shadowsync.topics")


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from shadowsync import *", namespace)
    exported = {name for name in namespace if name != "__builtins__"}
    assert exported == EXPECTED_ALL["shadowsync"]


# --- (b) the core imports no adapter dependency ---


def test_core_imports_none_of_the_adapter_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import shadowsync, shadowsync.testing, shadowsync.topics, shadowsync.cloud\n"
        "import shadowsync.reconcile\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout)
    assert "shadowsync.testing" in loaded
    assert "shadowsync.topics" in loaded
    assert "shadowsync.reconcile" in loaded
    offending = sorted(name for name in loaded if name.split(".")[0] in FORBIDDEN_IN_CORE)
    assert offending == []


# --- (c) docstrings on every public name ---


def _source_tree(module_name: str) -> ast.Module:
    return ast.parse(inspect.getsource(importlib.import_module(module_name)))


def _defining_module(module_name: str, name: str) -> str:
    """Follow ``from x import name`` re-exports to the module that assigns ``name``."""
    for node in _source_tree(module_name).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if alias.name == name and alias.asname in (None, name):
                    return _defining_module(node.module, name)
    return module_name


def _attribute_docstring(module_name: str, name: str) -> str | None:
    """The string literal that directly follows the top-level assignment of ``name``."""
    body = _source_tree(_defining_module(module_name, name)).body
    for node, following in itertools.pairwise(body):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                return following.value.value
            return None
    return None


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_modules_have_docstrings(module_name: str) -> None:
    doc = importlib.import_module(module_name).__doc__
    assert doc is not None
    assert doc.strip()


@pytest.mark.parametrize(("module_name", "name"), _public_names())
def test_every_public_name_has_a_docstring(module_name: str, name: str) -> None:
    obj = getattr(importlib.import_module(module_name), name)
    if name == "__version__":
        # Package metadata by convention; check its form instead.
        assert isinstance(obj, str)
        assert re.fullmatch(r"\d+\.\d+\.\d+(\.?(a|b|rc|dev|post)\d+)?", obj)
        return
    if isinstance(obj, ModuleType):
        doc = obj.__doc__
    elif inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    elif inspect.isfunction(obj):
        doc = obj.__doc__
    else:
        # Constants and type aliases: an attribute docstring in the defining module.
        doc = _attribute_docstring(module_name, name)
    assert doc is not None, f"{module_name}.{name} has no docstring"
    assert doc.strip(), f"{module_name}.{name} has an empty docstring"


def _public_members() -> list[tuple[str, str, str]]:
    members = []
    for module_name, name in _public_names():
        obj = getattr(importlib.import_module(module_name), name)
        if not inspect.isclass(obj):
            continue
        for member, value in vars(obj).items():
            if member.startswith("_"):
                continue
            if isinstance(
                value, (property, classmethod, staticmethod, functools.cached_property)
            ) or inspect.isfunction(value):
                members.append((module_name, name, member))
    return sorted(set(members))


@pytest.mark.parametrize(("module_name", "cls_name", "member"), _public_members())
def test_public_methods_and_properties_have_docstrings(
    module_name: str, cls_name: str, member: str
) -> None:
    cls = getattr(importlib.import_module(module_name), cls_name)
    doc = inspect.getdoc(getattr(cls, member))
    assert doc, f"{module_name}.{cls_name}.{member} has no docstring"


def test_public_members_are_found() -> None:
    found = {(cls, member) for _, cls, member in _public_members()}
    assert ("ShadowDocument", "from_dict") in found
    assert ("InMemoryShadowService", "handle") in found
    assert ("ShadowTopic", "is_request") in found
    assert ("ShadowRejectedError", "to_rejected") in found
