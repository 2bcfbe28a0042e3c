"""The messages a device session receives, and the changes the application gives it.

Anything may arrive on a subscribed topic. `read_message` checks the topic and the payload and
returns either an `Incoming` message for this shadow or the `MessageIgnored` event that says
why not; `read_notification` and `rejection` read the bodies. None of them raises for bad
input from the network. `read_changes` checks what the application reports or desires, as
the service would.

```pycon
>>> from shadowsync._limits import DEFAULT_LIMITS
>>> read = dict(thing_name="lamp", shadow_name=None, limits=DEFAULT_LIMITS, max_bytes=1024)
>>> read_message("$aws/things/lamp/shadow/get/accepted", b'{"version": 3}', **read).key
'get/accepted'
>>> read_message("$aws/things/lamp/shadow/get/accepted", b"[3]", **read).reason
'the payload is not a JSON object'

```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync import topics
from shadowsync._document import ShadowDocument
from shadowsync._json import (
    decode_payload,
    describe,
    encoded_size,
    json_equal,
    normalize_section,
)
from shadowsync.errors import (
    InvalidArgumentError,
    PayloadTooLargeError,
    ShadowRejectedError,
    ShadowSyncError,
    TopicError,
)
from shadowsync.events import MessageIgnored
from shadowsync.rules import ACK_KEY

if TYPE_CHECKING:
    from shadowsync._json import JSONObject
    from shadowsync._limits import ShadowLimits

__all__ = [
    "Incoming",
    "Notification",
    "read_changes",
    "read_message",
    "read_notification",
    "rejection",
    "rejections",
]

_MAX_TOPIC_SHOWN = 256


@attrs.frozen(kw_only=True)
class Incoming:
    """A response or notification for this shadow, with a payload that is a JSON object."""

    shown: str
    """The topic as events show it."""
    operation: topics.Operation
    response: topics.Response
    body: dict[str, Any] = attrs.field(eq=False)

    @property
    def key(self) -> str:
        """``operation/response``, e.g. ``update/delta``."""
        return f"{self.operation}/{self.response}"

    @property
    def accepted(self) -> bool:
        """Whether the response is an ``accepted`` one."""
        return self.response == "accepted"


def read_message(
    topic: str,
    payload: bytes | bytearray | memoryview | str,
    *,
    thing_name: str,
    shadow_name: str | None,
    limits: ShadowLimits,
    max_bytes: int,
) -> Incoming | MessageIgnored:
    """The message on ``topic``, or why it is ignored: not a response for this shadow, a
    payload over ``max_bytes``, malformed or not a JSON object."""
    shown = topic[:_MAX_TOPIC_SHOWN] if isinstance(topic, str) else describe(topic)
    try:
        parsed = topics.parse(topic, limits=limits)
    except TopicError as exc:
        return MessageIgnored(topic=shown, reason=f"not a shadow topic: {exc}")
    if (parsed.thing_name, parsed.shadow_name) != (thing_name, shadow_name):
        return MessageIgnored(topic=shown, reason="for another shadow")
    if parsed.response is None:
        return MessageIgnored(topic=shown, reason="a request topic, not a response")
    data: object = payload  # callers may pass anything; check before use
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray, str)):
        return MessageIgnored(topic=shown, reason="the payload is not bytes or text")
    if len(data) > max_bytes:
        return MessageIgnored(topic=shown, reason=f"payload of {len(data)} bytes is too big")
    try:
        body = decode_payload(data, max_depth=limits.max_depth)
    except ShadowRejectedError as exc:
        return MessageIgnored(topic=shown, reason=f"malformed payload: {exc}")
    if type(body) is not dict:
        return MessageIgnored(topic=shown, reason="the payload is not a JSON object")
    return Incoming(shown=shown, operation=parsed.operation, response=parsed.response, body=body)


def rejection(body: Mapping[str, Any]) -> tuple[int, str]:
    """The ``code`` and ``message`` of a ``*/rejected`` body (500 and "no message" if unusable)."""
    code = body.get("code")
    message = body.get("message")
    return (
        code if type(code) is int and 0 <= code < 1000 else 500,
        message[:500] if isinstance(message, str) and message else "no message",
    )


def rejections(ack: object) -> list[Any]:
    """The ``rejected`` list of an acknowledgement (``reported["$ack"]``); empty if none."""
    if isinstance(ack, dict):
        rejected = ack.get("rejected")
        if isinstance(rejected, list):
            return rejected
    return []


@attrs.frozen(kw_only=True)
class Notification:
    """An ``update/delta`` (with ``delta``) or ``update/documents`` (with ``document``)."""

    version: int
    delta: JSONObject | None = attrs.field(default=None, eq=False)
    document: ShadowDocument | None = None


def read_notification(
    message: Incoming, limits: ShadowLimits, *, known: ShadowDocument | None = None
) -> Notification | MessageIgnored:
    """The delta or documents ``message`` read, or why it is ignored (malformed).

    A documents message whose current document is ``known`` (the view's: usually the
    documents of the device's own update, which it has already computed) brings ``known``
    itself, without reading the document again."""
    try:
        if message.response == "delta":
            version, delta = _parse_delta(message.body, limits)
            return Notification(version=version, delta=delta)
        document = _parse_documents(message.body, limits, known)
    except ShadowSyncError as exc:
        return MessageIgnored(topic=message.shown, reason=f"malformed {message.key}: {exc}")
    return Notification(version=document.version, document=document)


def _parse_delta(body: Mapping[str, Any], limits: ShadowLimits) -> tuple[int, JSONObject]:
    version = body.get("version")
    if type(version) is not int or version < 0:
        raise InvalidArgumentError(f"version is {describe(version)}")
    state = body.get("state")
    if type(state) is not dict:
        raise InvalidArgumentError("state is not an object")
    try:
        return version, normalize_section(
            state, section="delta", max_depth=limits.max_depth, nulls=False
        )
    except ShadowRejectedError as exc:
        raise InvalidArgumentError(f"{exc.message} ({exc.detail})") from None


def _parse_documents(
    body: Mapping[str, Any], limits: ShadowLimits, known: ShadowDocument | None
) -> ShadowDocument:
    current = body.get("current")
    if type(current) is not dict:
        raise InvalidArgumentError("current is not an object")
    if type(current.get("version")) is not int:
        raise InvalidArgumentError("current.version is not an int")
    timestamp = body.get("timestamp")
    fields = {
        "state": current.get("state"),
        "metadata": current.get("metadata"),
        "version": current["version"],
        "timestamp": timestamp if type(timestamp) is int and timestamp >= 0 else 0,
    }
    if known is not None and _is_known(fields, known):
        return known
    return ShadowDocument.from_dict(fields, limits=limits)


def _is_known(fields: Mapping[str, Any], known: ShadowDocument) -> bool:
    """Whether the document ``fields`` hold is ``known`` (JSON-equal, section by section)."""
    state, metadata = fields["state"], fields["metadata"]
    if (
        fields["version"] != known.version
        or fields["timestamp"] != known.timestamp
        or type(state) is not dict
        or type(metadata) is not dict
        or not _SECTIONS.issuperset(state)
        or not _SECTIONS.issuperset(metadata)
    ):
        return False
    return all(
        json_equal(state.get(name, {}), known.section(name))
        and json_equal(metadata.get(name, {}), known.section_metadata(name))
        for name in _SECTIONS
    )


_SECTIONS = frozenset({"desired", "reported"})


def read_changes(
    changes: object, *, section: Literal["reported", "desired"], limits: ShadowLimits
) -> JSONObject:
    """The application's ``changes`` to ``section`` (``None`` deletes a key), refused with
    the AWS rejection (400, 413) where the service could never accept them."""
    if not isinstance(changes, Mapping):
        raise InvalidArgumentError(f"changes must be an object, got {describe(changes)}")
    if section == "reported" and ACK_KEY in changes:
        raise InvalidArgumentError(f"{ACK_KEY!r} is written by the session (acknowledgements)")
    normalized = normalize_section(changes, section=section, max_depth=limits.max_depth, nulls=True)
    if section == "reported":
        size = encoded_size({"reported": normalized})
        if size > limits.max_document_bytes:
            raise PayloadTooLargeError(
                detail=f"the report alone is {size} bytes; the limit is {limits.max_document_bytes}"
            )
    return normalized
