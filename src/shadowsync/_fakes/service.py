"""The in-memory shadow service and the manual clock (public through `shadowsync.testing`)."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs

from shadowsync import topics
from shadowsync._document import ShadowDocument
from shadowsync._json import describe, dumps_compact
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._update import Payload, UpdateResult, apply_update
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidRequestError,
    ShadowNotFoundError,
    ShadowRejectedError,
    TopicError,
)

Clock = Callable[[], float]
"""A source of epoch seconds, such as `time.time` or a `ManualClock`."""

VERSION_RETENTION_SECONDS = 48 * 3600
"""How long AWS remembers a deleted shadow's version (a re-created shadow continues it)."""

MAX_PAGE_SIZE = 100


class ManualClock:
    """A clock that moves only when told to: ``clock()`` returns the current epoch seconds.

    ```pycon
    >>> clock = ManualClock(100)
    >>> clock.advance(5)
    >>> clock()
    105.0

    ```
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or backward, with a negative number, to model a bad clock)."""
        self._now += seconds

    def set(self, now: float) -> None:
        """Jump to ``now``."""
        self._now = float(now)


@attrs.frozen
class _Deleted:
    version: int
    deleted_at: int


_Key = tuple[str, str | None]


class InMemoryShadowService:
    """An in-memory AWS IoT Device Shadow service for tests.

    Updates upsert (no thing registry is needed, as in AWS), GET and DELETE of a missing shadow
    raise `ShadowNotFoundError` with the AWS text, and a shadow that is
    re-created within 48 hours of its deletion continues its old version sequence.

    ``clock`` is called for every timestamp; pass a `ManualClock` for reproducible tests.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        limits: ShadowLimits = DEFAULT_LIMITS,
        version_retention_seconds: int = VERSION_RETENTION_SECONDS,
    ) -> None:
        if not callable(clock):
            raise InvalidArgumentError("clock must be callable and return epoch seconds")
        self._clock = clock
        self._limits = limits
        self._retention = version_retention_seconds
        self._shadows: dict[_Key, ShadowDocument] = {}
        self._deleted: dict[_Key, _Deleted] = {}
        self._lock = threading.Lock()

    @property
    def limits(self) -> ShadowLimits:
        """The limits this service enforces."""
        return self._limits

    def now(self) -> int:
        """The service's current time in epoch seconds."""
        return int(self._clock())

    def _key(self, thing_name: str, shadow_name: str | None) -> _Key:
        self._limits.check_thing_name(thing_name)
        if shadow_name is not None:
            self._limits.check_shadow_name(shadow_name)
        return (thing_name, shadow_name)

    @staticmethod
    def _not_found(thing_name: str, shadow_name: str | None) -> ShadowNotFoundError:
        name = thing_name if shadow_name is None else shadow_name
        return ShadowNotFoundError(f"No shadow exists with name: '{name}'")

    def _previous_version(self, key: _Key, now: int) -> int:
        deleted = self._deleted.get(key)
        if deleted is None or now - deleted.deleted_at > self._retention:
            return 0
        return deleted.version

    def update(
        self, thing_name: str, payload: Payload, shadow_name: str | None = None
    ) -> UpdateResult:
        """UpdateThingShadow: apply ``payload`` and return the result with every reply body.

        Raises the AWS rejection (400, 409, 413, 415) and changes nothing when it does.
        """
        key = self._key(thing_name, shadow_name)
        with self._lock:
            now = self.now()
            result = apply_update(
                self._shadows.get(key),
                payload,
                timestamp=now,
                limits=self._limits,
                previous_version=self._previous_version(key, now),
            )
            self._shadows[key] = result.document
            self._deleted.pop(key, None)
            return result

    def get(
        self, thing_name: str, shadow_name: str | None = None, *, client_token: str | None = None
    ) -> dict[str, Any]:
        """GetThingShadow: the full document including ``state.delta``, or 404."""
        key = self._key(thing_name, shadow_name)
        with self._lock:
            now = self.now()
            document = self._shadows.get(key)
            if document is None:
                # AWS answers a missing shadow without a timestamp (aws-semantics.md, 404).
                raise self._not_found(thing_name, shadow_name).with_context(
                    client_token=client_token
                )
            body = document.to_dict(timestamp=now)
        if client_token is not None:
            body["clientToken"] = client_token
        return body

    def delete(
        self, thing_name: str, shadow_name: str | None = None, *, client_token: str | None = None
    ) -> dict[str, Any]:
        """DeleteThingShadow: ``{"version": N, "timestamp": T}`` with the deleted version, or 404.

        A later update within 48 hours creates version N + 1; after that, version 1.
        """
        key = self._key(thing_name, shadow_name)
        with self._lock:
            now = self.now()
            document = self._shadows.pop(key, None)
            if document is None:
                # AWS answers a missing shadow without a timestamp (aws-semantics.md, 404).
                raise self._not_found(thing_name, shadow_name).with_context(
                    client_token=client_token
                )
            self._deleted[key] = _Deleted(version=document.version, deleted_at=now)
        body: dict[str, Any] = {"version": document.version, "timestamp": now}
        if client_token is not None:
            body["clientToken"] = client_token
        return body

    def list_named_shadows(
        self, thing_name: str, *, next_token: str | None = None, page_size: int | None = None
    ) -> dict[str, Any]:
        """ListNamedShadowsForThing: ``{"results": [...], "nextToken"?, "timestamp"}``.

        Names are sorted; the classic shadow is not listed; an unknown thing gives an empty list.
        ``page_size`` is 1 to 100 (default 100).
        """
        self._limits.check_thing_name(thing_name)
        size = MAX_PAGE_SIZE if page_size is None else page_size
        if type(size) is not int or not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidRequestError(
                "Invalid pageSize",
                detail=f"pageSize must be 1 to {MAX_PAGE_SIZE}, got {describe(size)}",
            )
        after = _decode_token(next_token) if next_token is not None else None
        with self._lock:
            now = self.now()
            names = sorted(
                shadow
                for (thing, shadow) in self._shadows
                if thing == thing_name and shadow is not None
            )
        if after is not None:
            names = [name for name in names if name > after]
        body: dict[str, Any] = {"results": list(names[:size])}
        if len(names) > size:
            body["nextToken"] = _encode_token(names[size - 1])
        body["timestamp"] = now
        return body

    def seed(
        self,
        thing_name: str,
        body: Mapping[str, Any] | ShadowDocument,
        shadow_name: str | None = None,
    ) -> ShadowDocument:
        """Store a shadow as given (a GetThingShadow body or a document), replacing any other."""
        key = self._key(thing_name, shadow_name)
        document = (
            body
            if isinstance(body, ShadowDocument)
            else ShadowDocument.from_dict(body, limits=self._limits)
        )
        with self._lock:
            self._shadows[key] = document
            self._deleted.pop(key, None)
        return document

    def document(self, thing_name: str, shadow_name: str | None = None) -> ShadowDocument | None:
        """The stored document, or ``None`` when the shadow does not exist."""
        key = self._key(thing_name, shadow_name)
        with self._lock:
            return self._shadows.get(key)

    def handle(self, topic: str, payload: bytes | str = b"") -> list[tuple[str, bytes]]:
        """Serve one MQTT publish to a reserved shadow topic; return what the service publishes.

        An update yields ``update/accepted``, then ``update/delta`` (when desired and reported
        differ) and ``update/documents``; a rejected one yields ``update/rejected``. ``get`` and
        ``delete`` yield their ``accepted`` or ``rejected`` message. Publishes to topics that
        are not shadow request topics are ignored, as the service ignores them.
        """
        try:
            parsed = topics.parse(topic, limits=self._limits)
        except TopicError:
            return []
        if not parsed.is_request:
            return []
        thing, shadow = parsed.thing_name, parsed.shadow_name

        def reply(response: topics.Response, body: Mapping[str, Any]) -> tuple[str, bytes]:
            name = topics.build(thing, parsed.operation, response, shadow_name=shadow)
            return (name, dumps_compact(body).encode("utf-8"))

        if parsed.operation == "update":
            try:
                result = self.update(thing, payload, shadow)
            except ShadowRejectedError as exc:
                return [reply("rejected", exc.to_rejected())]
            out = [reply("accepted", result.accepted)]
            if result.delta is not None:
                out.append(reply("delta", result.delta))
            out.append(reply("documents", result.documents))
            return out
        token = _request_token(payload, self._limits)
        try:
            if parsed.operation == "get":
                return [reply("accepted", self.get(thing, shadow, client_token=token))]
            return [reply("accepted", self.delete(thing, shadow, client_token=token))]
        except ShadowRejectedError as exc:
            return [reply("rejected", exc.with_context(client_token=token).to_rejected())]


def _request_token(payload: object, limits: ShadowLimits) -> str | None:
    """The clientToken of a get/delete request; AWS ignores the rest of the message."""
    if isinstance(payload, Mapping):
        body: object = payload
    else:
        try:
            body = json.loads(payload) if payload else None  # type: ignore[arg-type]
        except (ValueError, TypeError, RecursionError):
            return None
    if isinstance(body, Mapping):
        token = body.get("clientToken")
        if limits.client_token_problem(token) is None:
            return cast("str", token)
    return None


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode("ascii")


def _decode_token(token: object) -> str:
    if not isinstance(token, str):
        raise InvalidRequestError("Invalid nextToken", detail="nextToken must be a string")
    try:
        name = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        if not name:
            raise ValueError("empty token")
        return name.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestError(
            "Invalid nextToken", detail="nextToken was not returned by this service"
        ) from None
