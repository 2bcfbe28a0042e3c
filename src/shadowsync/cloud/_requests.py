"""The sync manager's request shapes, parsed into typed values, and its 400-style errors.

Requests arrive as the JSON a Lambda receives (``{"operation": "sync_check", "thingName": ...}``).
Each is checked completely before anything is read or written: a request that is not an object,
names an unknown operation, misses a field or holds a value of the wrong type ends in an
`OperationError` that renders the 400 response, never in a crash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias, get_args

import attrs

from shadowsync._json import (
    JSONObject,
    canonical_json,
    decode_payload,
    describe,
    kind_phrase,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH
from shadowsync._validators import MAX_COUNT
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidNameError,
    InvalidRequestError,
    ShadowSyncError,
    UnsupportedEncodingError,
)

CLASSIC_SHADOW_NAME = "$default"
"""How requests and responses name the classic (unnamed) shadow; ``None`` in the Python API."""

Operation: TypeAlias = Literal[
    "sync_check", "offline_sync", "conflict_summary", "health_report", "resolve_pending_conflicts"
]
"""The sync manager's operations (the request's ``operation``)."""

OPERATIONS: tuple[Operation, ...] = get_args(Operation)
"""Every `Operation`."""


class OperationError(ShadowSyncError):
    """A sync manager request that cannot be served: answered with a 400-style response.

    ```pycon
    >>> error = OperationError("unknown operation 'reboot'", operation="reboot")
    >>> error.to_response()["statusCode"], error.to_response()["body"]
    (400, '{"error": "unknown operation \\'reboot\\'", "operation": "reboot"}')

    ```
    """

    status_code: ClassVar[int] = 400

    def __init__(self, message: str, *, operation: str | None = None) -> None:
        self.message = message
        self.operation = operation
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        """The error body: ``{"error": message, "operation": name or null}``."""
        return {"error": self.message, "operation": self.operation}

    def to_response(self) -> dict[str, Any]:
        """The Lambda proxy response: ``{"statusCode": 400, "body": <JSON text>}``."""
        return {"statusCode": self.status_code, "body": json.dumps(self.to_json())}


def shadow_label(shadow_name: str | None) -> str:
    """The name a response uses for a shadow: ``"$default"`` for the classic shadow."""
    return CLASSIC_SHADOW_NAME if shadow_name is None else shadow_name


def parse_thing_name(value: object, field: str, operation: str | None) -> str:
    """A thing name from a request field, checked against the AWS naming rules."""
    return _parse_name(value, field, operation, "a thing name", DEFAULT_LIMITS.check_thing_name)


def parse_shadow_name(value: object, field: str, operation: str | None) -> str | None:
    """A shadow name from a request field; ``"$default"``, ``""`` and null mean the classic one."""
    if value is None or value == "" or value == CLASSIC_SHADOW_NAME:
        return None
    return _parse_name(value, field, operation, "a shadow name", DEFAULT_LIMITS.check_shadow_name)


def _parse_name(
    value: object, field: str, operation: str | None, what: str, check: Callable[[str], str]
) -> str:
    if not isinstance(value, str):
        raise OperationError(
            f"{field} must be {what} (a string), got {kind_phrase(value)}", operation=operation
        )
    try:
        return check(value)
    except InvalidNameError as exc:
        raise OperationError(f"{field}: {exc.detail or exc.message}", operation=operation) from None


def parse_count(value: object, field: str, operation: str | None, *, positive: bool = False) -> int:
    """A non-negative (or positive) whole number, at most 2**63 - 1, from a request field."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise OperationError(
            f"{field} must be {need} whole number, got {describe(value)}", operation=operation
        )
    if value > MAX_COUNT:
        raise OperationError(
            f"{field} is too large: {describe(value)} is above 2**63 - 1", operation=operation
        )
    return value


def parse_hours(value: object, field: str, operation: str | None) -> float:
    """A positive number of hours (fractions allowed) from a request field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise OperationError(
            f"{field} must be a positive number of hours, got {describe(value)}",
            operation=operation,
        )
    if value > 24 * 366 * 100:
        raise OperationError(f"{field} is too large: {describe(value)}", operation=operation)
    return float(value)


def _names(value: object, field: str, operation: str, parse: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise OperationError(
            f"{field} must be a list of names, got {kind_phrase(value)}", operation=operation
        )
    names = tuple(parse(item, f"{field}[{index}]", operation) for index, item in enumerate(value))
    if len(set(names)) != len(names):
        raise OperationError(f"{field} names a shadow or thing twice", operation=operation)
    return names


def _reject_unknown(request: Mapping[str, Any], known: frozenset[str], operation: str) -> None:
    unknown = sorted(str(key) for key in request if key not in known)
    if unknown:
        raise OperationError(
            f"unknown fields {unknown} for {operation}; expected some of {sorted(known)}",
            operation=operation,
        )


@attrs.frozen(kw_only=True)
class SyncCheckRequest:
    """``{"operation": "sync_check", "thingName": ..., "shadowNames": [...]}``.

    ``shadowNames`` defaults to the classic shadow; ``recentHours`` (default 24) is how far back
    history counts as recent.
    """

    operation: ClassVar[Operation] = "sync_check"
    thing_name: str
    shadow_names: tuple[str | None, ...] = (None,)
    recent_hours: float = 24.0


@attrs.frozen(kw_only=True)
class CachedChange:
    """One change a device made while offline: the reported values it set, and when."""

    shadow_name: str | None
    state: JSONObject
    timestamp: int


@attrs.frozen(kw_only=True)
class OfflineSyncRequest:
    """``{"operation": "offline_sync", "thingName", "offlineDurationSeconds", "cachedChanges"}``.

    Each cached change is ``{"shadowName", "state", "timestamp"}`` where ``state`` holds the
    reported values the device set at ``timestamp`` (epoch seconds) while it was offline.
    """

    operation: ClassVar[Operation] = "offline_sync"
    thing_name: str
    offline_duration_seconds: int = 0
    cached_changes: tuple[CachedChange, ...] = ()

    @property
    def shadow_names(self) -> tuple[str | None, ...]:
        """The shadows the cached changes touch, in order of first appearance.

        ```pycon
        >>> request = parse_request({"operation": "offline_sync", "thingName": "pump-7",
        ...     "cachedChanges": [{"shadowName": "telemetry", "state": {"t": 1},
        ...                        "timestamp": 1700000000}]})
        >>> request.shadow_names, request.request_key[:12]
        (('telemetry',), 'fe133f28fcea')

        ```
        """
        return tuple(dict.fromkeys(change.shadow_name for change in self.cached_changes))

    @property
    def request_key(self) -> str:
        """The idempotency key of this request: the SHA-256 of its canonical JSON (thing,
        offline duration and cached changes, in order).

        A request delivered again (a Lambda retry, a device sending its cache twice) has the
        same key, and is answered from what the first delivery stored.
        """
        content = [
            self.thing_name,
            self.offline_duration_seconds,
            [[shadow_label(c.shadow_name), c.state, c.timestamp] for c in self.cached_changes],
        ]
        return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


@attrs.frozen(kw_only=True)
class ConflictSummaryRequest:
    """``{"operation": "conflict_summary", "timeRangeHours": 24}``, optionally for one thing."""

    operation: ClassVar[Operation] = "conflict_summary"
    time_range_hours: float = 24.0
    thing_name: str | None = None


@attrs.frozen(kw_only=True)
class HealthReportRequest:
    """``{"operation": "health_report", "thingNames": [...]}``, optionally with ``shadowNames``.

    Without ``shadowNames`` the shadows expected on every device are those of the
    `HealthThresholds` in use.
    """

    operation: ClassVar[Operation] = "health_report"
    thing_names: tuple[str, ...]
    shadow_names: tuple[str | None, ...] | None = None


ReviewRequestAction: TypeAlias = Literal["list", "approve", "reject"]
"""What a ``resolve_pending_conflicts`` request does."""

REVIEW_ACTIONS: tuple[ReviewRequestAction, ...] = get_args(ReviewRequestAction)
MAX_REVIEW_PAGE = 100
"""The most reviews one ``list`` answers with (``limit``; the default is 50)."""


@attrs.frozen(kw_only=True)
class ResolvePendingConflictsRequest:
    """``{"operation": "resolve_pending_conflicts", "action": ..., "thingName": ...}``.

    ``list`` answers a thing's pending reviews, of one shadow when ``shadowName`` is given, at
    most ``limit`` (default 50, at most 100) at a time, the next page with ``nextToken``.
    ``approve`` and ``reject`` settle one review: ``shadowName`` and ``reviewId`` are required,
    ``reviewer`` and ``comment`` are kept in its history record.
    """

    operation: ClassVar[Operation] = "resolve_pending_conflicts"
    action: ReviewRequestAction
    thing_name: str
    shadow_names: tuple[str | None, ...] | None = None
    """The shadow asked about (None: every shadow, for ``list`` only)."""
    review_id: str | None = None
    reviewer: str | None = None
    comment: str | None = None
    limit: int = 50
    next_token: str | None = None


SyncRequest: TypeAlias = (
    SyncCheckRequest
    | OfflineSyncRequest
    | ConflictSummaryRequest
    | HealthReportRequest
    | ResolvePendingConflictsRequest
)
"""A parsed sync manager request, as `parse_request` returns it."""


def decode_object(payload: object, what: str) -> Mapping[str, Any]:
    """``payload`` (a mapping, or JSON as text or bytes) as a mapping, or an `OperationError`
    that names ``what`` it should have been."""
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        try:
            payload = decode_payload(payload, max_depth=64)
        except (InvalidRequestError, UnsupportedEncodingError) as exc:
            raise OperationError(f"{what} is not valid JSON: {exc.detail or exc.message}") from None
    if not isinstance(payload, Mapping):
        raise OperationError(f"{what} must be a JSON object, got {kind_phrase(payload)}")
    return payload


def _cached_change(value: object, index: int) -> CachedChange:
    where = f"cachedChanges[{index}]"
    operation = "offline_sync"
    if not isinstance(value, Mapping):
        raise OperationError(
            f"{where} must be an object, got {kind_phrase(value)}", operation=operation
        )
    _reject_unknown(value, frozenset({"shadowName", "state", "timestamp"}), operation)
    if "state" not in value or "timestamp" not in value:
        raise OperationError(f"{where} needs a state and a timestamp", operation=operation)
    shadow_name = parse_shadow_name(value.get("shadowName"), f"{where}.shadowName", operation)
    try:
        state = normalize_section(
            value["state"], section="reported", max_depth=MAX_CONFIGURABLE_DEPTH, nulls=True
        )
    except InvalidRequestError as exc:
        raise OperationError(
            f"{where}.state is not a reported state: {exc.detail or exc.message}",
            operation=operation,
        ) from None
    timestamp = parse_count(value["timestamp"], f"{where}.timestamp", operation)
    return CachedChange(shadow_name=shadow_name, state=state, timestamp=timestamp)


def parse_request(payload: object) -> SyncRequest:
    """Parse a sync manager request (a mapping, or its JSON as text or bytes).

    Raises `OperationError` for anything that is not a well-formed request.

    ```pycon
    >>> parse_request({"operation": "sync_check", "thingName": "pump-7",
    ...                "shadowNames": ["$default", "configuration"]}).shadow_names
    (None, 'configuration')
    >>> try:
    ...     parse_request(b'{"operation": "reboot"}')
    ... except OperationError as error:
    ...     print(error.to_response()["statusCode"], error.message[:26])
    400 unknown operation 'reboot'

    ```
    """
    request = decode_object(payload, "the request")
    if "Records" in request and "operation" not in request:
        raise OperationError(
            "received an event with Records (a DynamoDB stream, SQS or SNS batch), not a "
            "request; expected an object with operation, one of " + ", ".join(OPERATIONS)
        )
    operation = request.get("operation", "sync_check")
    if operation == "sync_device_shadows":
        raise OperationError(
            "unknown operation 'sync_device_shadows'; to replay a device's cached changes use "
            "offline_sync (thingName, cachedChanges); expected one of " + ", ".join(OPERATIONS),
            operation=operation,
        )
    if operation not in OPERATIONS:
        raise OperationError(
            f"unknown operation {describe(operation)}; expected one of {', '.join(OPERATIONS)}",
            operation=operation if isinstance(operation, str) else None,
        )
    if operation == "sync_check":
        _reject_unknown(
            request, frozenset({"operation", "thingName", "shadowNames", "recentHours"}), operation
        )
        if "thingName" not in request:
            raise OperationError("sync_check needs a thingName", operation=operation)
        return SyncCheckRequest(
            thing_name=parse_thing_name(request["thingName"], "thingName", operation),
            shadow_names=_names(
                request.get("shadowNames", [CLASSIC_SHADOW_NAME]),
                "shadowNames",
                operation,
                parse_shadow_name,
            ),
            recent_hours=parse_hours(request.get("recentHours", 24), "recentHours", operation),
        )
    if operation == "offline_sync":
        _reject_unknown(
            request,
            frozenset({"operation", "thingName", "offlineDurationSeconds", "cachedChanges"}),
            operation,
        )
        if "thingName" not in request:
            raise OperationError("offline_sync needs a thingName", operation=operation)
        changes = request.get("cachedChanges", [])
        if isinstance(changes, (str, bytes)) or not isinstance(changes, Sequence):
            raise OperationError(
                f"cachedChanges must be a list, got {kind_phrase(changes)}", operation=operation
            )
        return OfflineSyncRequest(
            thing_name=parse_thing_name(request["thingName"], "thingName", operation),
            offline_duration_seconds=parse_count(
                request.get("offlineDurationSeconds", 0), "offlineDurationSeconds", operation
            ),
            cached_changes=tuple(_cached_change(c, i) for i, c in enumerate(changes)),
        )
    if operation == "conflict_summary":
        _reject_unknown(request, frozenset({"operation", "timeRangeHours", "thingName"}), operation)
        thing = request.get("thingName")
        return ConflictSummaryRequest(
            time_range_hours=parse_hours(
                request.get("timeRangeHours", 24), "timeRangeHours", operation
            ),
            thing_name=None if thing is None else parse_thing_name(thing, "thingName", operation),
        )
    if operation == "resolve_pending_conflicts":
        return _review_request(request)
    _reject_unknown(request, frozenset({"operation", "thingNames", "shadowNames"}), operation)
    if "thingNames" not in request:
        raise OperationError("health_report needs thingNames", operation=operation)
    shadows = request.get("shadowNames")
    return HealthReportRequest(
        thing_names=_names(request["thingNames"], "thingNames", operation, parse_thing_name),
        shadow_names=None
        if shadows is None
        else _names(shadows, "shadowNames", operation, parse_shadow_name),
    )


_REVIEW_FIELDS = {
    "list": frozenset({"operation", "action", "thingName", "shadowName", "limit", "nextToken"}),
    "approve": frozenset(
        {"operation", "action", "thingName", "shadowName", "reviewId", "reviewer", "comment"}
    ),
}
_REVIEW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _text(value: object, field: str, most: int, operation: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise OperationError(
            f"{field} must be a string of 1 to {most} characters, got {describe(value)}",
            operation=operation,
        )
    return value


def _review_request(request: Mapping[str, Any]) -> ResolvePendingConflictsRequest:
    operation = "resolve_pending_conflicts"
    action = request.get("action")
    if action not in REVIEW_ACTIONS:
        raise OperationError(
            f"resolve_pending_conflicts needs an action, one of {', '.join(REVIEW_ACTIONS)}; "
            f"got {describe(action) if 'action' in request else 'none'}",
            operation=operation,
        )
    _reject_unknown(request, _REVIEW_FIELDS["list" if action == "list" else "approve"], operation)
    if "thingName" not in request:
        raise OperationError(f"{action} needs a thingName", operation=operation)
    thing = parse_thing_name(request["thingName"], "thingName", operation)
    if action == "list":
        shadow = request.get("shadowName")
        token = request.get("nextToken")
        limit = parse_count(request.get("limit", 50), "limit", operation, positive=True)
        if limit > MAX_REVIEW_PAGE:
            raise OperationError(
                f"limit must be at most {MAX_REVIEW_PAGE}, got {limit}", operation=operation
            )
        return ResolvePendingConflictsRequest(
            action="list",
            thing_name=thing,
            shadow_names=None
            if shadow is None
            else (parse_shadow_name(shadow, "shadowName", operation),),
            limit=limit,
            next_token=None if token is None else _text(token, "nextToken", 4096, operation),
        )
    missing = [f for f in ("shadowName", "reviewId") if f not in request]
    if missing:
        raise OperationError(
            f"{action} needs a thingName, a shadowName ('$default' for the classic shadow) and "
            f"a reviewId; missing {', '.join(missing)}",
            operation=operation,
        )
    review = request["reviewId"]
    if not isinstance(review, str) or _REVIEW_ID.fullmatch(review) is None:
        raise OperationError(
            "reviewId must be a review's id (1 to 64 letters, digits, '-' or '_'), got "
            f"{describe(review)}",
            operation=operation,
        )
    reviewer, comment = request.get("reviewer"), request.get("comment")
    return ResolvePendingConflictsRequest(
        action=action,
        thing_name=thing,
        shadow_names=(parse_shadow_name(request["shadowName"], "shadowName", operation),),
        review_id=review,
        reviewer=None if reviewer is None else _text(reviewer, "reviewer", 256, operation),
        comment=None if comment is None else _text(comment, "comment", 4096, operation),
    )


def sync_request(request: object, expected: type[Any], operation: str) -> Any:
    """``request`` parsed as the given request class (the operation may be left out)."""
    if isinstance(request, expected):
        return request
    if isinstance(request, Mapping) and "operation" not in request:
        request = {"operation": operation, **request}
    parsed = parse_request(request)
    if not isinstance(parsed, expected):
        raise OperationError(
            f"expected a {operation} request, got {parsed.operation}", operation=parsed.operation
        )
    return parsed


def shadows_for(
    shadows: object, names: tuple[str | None, ...], needed_by: str
) -> Mapping[str | None, Any]:
    """Check that ``shadows`` maps each of ``names`` (None: the classic shadow) to a shadow."""
    if not isinstance(shadows, Mapping):
        raise InvalidArgumentError(
            f"shadows must map shadow names to documents, got {type(shadows).__name__}"
        )
    for name in names:
        if name not in shadows:
            raise InvalidArgumentError(
                f"shadows has no entry for {shadow_label(name)!r}, which {needed_by}; pass None "
                "for a shadow that does not exist"
            )
    return shadows
