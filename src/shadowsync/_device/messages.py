"""Reading the messages a device session receives, before the session acts on them.

Anything may arrive on a subscribed topic. `read_message` checks the topic and the payload and
returns either an `Incoming` message for this shadow or the `MessageIgnored` event that says
why not; the parsers below read the bodies of notifications and rejections. None of them
raises for bad input from the network.

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

from typing import TYPE_CHECKING, Any

import attrs

from shadowsync import topics
from shadowsync._document import ShadowDocument
from shadowsync._json import decode_payload, describe, normalize_section
from shadowsync.errors import InvalidArgumentError, ShadowRejectedError, TopicError
from shadowsync.events import MessageIgnored

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync._json import JSONObject
    from shadowsync._limits import ShadowLimits

__all__ = [
    "Incoming",
    "parse_delta",
    "parse_documents",
    "read_message",
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


def parse_delta(body: Mapping[str, Any], limits: ShadowLimits) -> tuple[int, JSONObject]:
    """The version and state of an ``update/delta`` body; `InvalidArgumentError` if bad."""
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


def parse_documents(body: Mapping[str, Any], limits: ShadowLimits) -> ShadowDocument:
    """The ``current`` document of an ``update/documents`` body; a `ShadowSyncError` if bad."""
    current = body.get("current")
    if type(current) is not dict:
        raise InvalidArgumentError("current is not an object")
    if type(current.get("version")) is not int:
        raise InvalidArgumentError("current.version is not an int")
    timestamp = body.get("timestamp")
    return ShadowDocument.from_dict(
        {
            "state": current.get("state"),
            "metadata": current.get("metadata"),
            "version": current["version"],
            "timestamp": timestamp if type(timestamp) is int and timestamp >= 0 else 0,
        },
        limits=limits,
    )
