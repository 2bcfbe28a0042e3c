"""What a `ShadowSession` hands back: messages to send, and events for the application.

The session is sans-I/O. Every call (a message received, a connection change, a command, a tick
of time) returns a list of values from this module, in the order they happened. Two kinds of
value are for the transport, to be sent in order over the MQTT connection:

- `Subscribe`: subscribe to these topics (exact topics, never wildcards);
- `Publish`: publish this payload to this topic.

The others are for the application: a delta to apply, an update accepted or rejected, a conflict
settled, something held for a person, intents queued, confirmed or dropped, the sync finished.
They are frozen values, like h11's events: compare them, log them, keep them.

```pycon
>>> from shadowsync.events import Publish, SyncCompleted
>>> Publish(topic="$aws/things/lamp/shadow/get", payload=b'{"clientToken":"t1"}').topic
'$aws/things/lamp/shadow/get'
>>> SyncCompleted(version=7, at=1700000000)
SyncCompleted(version=7, at=1700000000)

```
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from shadowsync._json import describe
from shadowsync._validators import flag
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shadowsync._conflict.merge import ConflictReport, ReviewItem
    from shadowsync._device.intent import Intent
    from shadowsync._device.queue import DropRecord
    from shadowsync._device.state import SessionState, Trigger
    from shadowsync._json import JSONObject
    from shadowsync.rules import Acknowledgement, Rejection

__all__ = [
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
]


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{attribute.name} must be a string, got {describe(value)}")


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _version(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise InvalidArgumentError(
            f"{attribute.name} must be a non-negative int or None, got {describe(value)}"
        )


def _mapping(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{attribute.name} must be a JSON object, got {describe(value)}")


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgumentError(f"expected a sequence, got {describe(value)}")
    return tuple(value)


def _topics(value: Iterable[str]) -> tuple[str, ...]:
    topics = _tuple(value)
    for topic in topics:
        if not isinstance(topic, str) or not topic:
            raise InvalidArgumentError(f"a topic must be a non-empty string, got {describe(topic)}")
    return topics


def _seqs(value: Iterable[int]) -> tuple[int, ...]:
    seqs = _tuple(value)
    for seq in seqs:
        if type(seq) is not int:
            raise InvalidArgumentError(f"a sequence number must be an int, got {describe(seq)}")
    return seqs


def _payload(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidArgumentError(f"payload must be bytes or str, got {describe(value)}")


class Event:
    """Base class of everything a `ShadowSession` returns (outputs and events)."""

    __slots__ = ()


# -- for the transport -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Subscribe(Event):
    """Subscribe to ``topics`` (each an exact topic; send before the next `Publish`)."""

    topics: tuple[str, ...] = attrs.field(converter=_topics)


@attrs.frozen(kw_only=True)
class Unsubscribe(Event):
    """Unsubscribe from ``topics`` (filters subscribed before; a `ThingSession` that dropped a
    shadow, or moved its named shadows to wildcards to stay within the subscription budget)."""

    topics: tuple[str, ...] = attrs.field(converter=_topics)


@attrs.frozen(kw_only=True)
class Publish(Event):
    """Publish ``payload`` (UTF-8 JSON) to ``topic``."""

    topic: str = attrs.field(validator=_text)
    payload: bytes = attrs.field(converter=_payload)


# -- for the application -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StateChanged(Event):
    """The session moved from ``previous`` to ``current`` on ``trigger`` (see `TRANSITIONS`)."""

    previous: SessionState
    current: SessionState
    trigger: Trigger


@attrs.frozen(kw_only=True)
class SnapshotReceived(Event):
    """The full shadow was fetched: ``version`` is ``None`` when the shadow does not exist."""

    version: int | None = attrs.field(validator=_version)


@attrs.frozen(kw_only=True)
class DeltaReceived(Event):
    """Desired state the device should apply: ``state`` is the delta (as AWS shapes it).

    ``version`` is the shadow version it was computed from. Values the business rules refused
    are left out of ``state`` and listed in ``rejected`` (an acknowledgement says so to the
    cloud). ``auto_reported`` says the session has already queued these values as reported,
    so the application only applies them. A delta is evaluated again when it arrives again,
    so apply it idempotently.
    """

    state: JSONObject = attrs.field(hash=False, validator=_mapping)
    version: int = attrs.field(validator=_version)
    rejected: tuple[Rejection, ...] = attrs.field(default=(), converter=_tuple)
    auto_reported: bool = attrs.field(default=False, validator=flag)


@attrs.frozen(kw_only=True)
class IntentsQueued(Event):
    """Intents made durable in the offline queue (``seq`` set), from a report, an auto-report
    or an acknowledgement."""

    intents: tuple[Intent, ...] = attrs.field(converter=_tuple)


@attrs.frozen(kw_only=True)
class AcknowledgementQueued(Event):
    """An acknowledgement of the desired state was queued for ``reported["$ack"]``."""

    acknowledgement: Acknowledgement


@attrs.frozen(kw_only=True)
class UpdateAccepted(Event):
    """The cloud accepted the update sent with ``client_token``; the shadow is now at
    ``version``."""

    client_token: str = attrs.field(validator=_text)
    version: int = attrs.field(validator=_version)


@attrs.frozen(kw_only=True)
class IntentsConfirmed(Event):
    """Queued intents the cloud now holds, removed from the queue.

    ``client_token`` is the update that carried them, or ``None`` when the snapshot showed the
    cloud already held every value (nothing had to be sent).
    """

    seqs: tuple[int, ...] = attrs.field(converter=_seqs)
    client_token: str | None = attrs.field(default=None, validator=_optional_text)
    version: int | None = attrs.field(default=None, validator=_version)


@attrs.frozen(kw_only=True)
class UpdateRejected(Event):
    """The update sent with ``client_token`` was refused with an AWS ``code`` and ``message``.

    ``permanent`` rejections (400, 413, 415) are not retried: the intents the update carried are
    dropped (and a `Dropped` event lists them). Others (409 and transient errors) are retried.
    ``local`` is true when the session refused the update itself before sending it (the
    pre-flight size and validity check against the last known document).
    """

    code: int = attrs.field(validator=_version)
    message: str = attrs.field(validator=_text)
    client_token: str | None = attrs.field(default=None, validator=_optional_text)
    permanent: bool = attrs.field(default=False, validator=flag)
    local: bool = attrs.field(default=False, validator=flag)


@attrs.frozen(kw_only=True)
class RequestFailed(Event):
    """A get, update or delete request failed without a verdict on its content (a timeout, a
    transient error, an unreadable answer); the session backs off and retries."""

    operation: Literal["get", "update", "delete"]
    reason: str = attrs.field(validator=_text)
    code: int | None = attrs.field(default=None, validator=_version)
    client_token: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class ConflictResolved(Event):
    """A merge settled conflicts in ``section``; ``report`` says how, path by path."""

    report: ConflictReport
    section: Literal["desired", "reported"]
    version: int | None = attrs.field(default=None, validator=_version)


@attrs.frozen(kw_only=True)
class ReviewNeeded(Event):
    """A person must decide: ``items`` are the values held, ``reason`` says why.

    ``escalated`` is true when the session gave up retrying (its version-conflict budget is
    spent) and suspended syncing this shadow until `ShadowSession.resume` or a reconnect.
    """

    items: tuple[ReviewItem, ...] = attrs.field(converter=_tuple)
    reason: str = attrs.field(validator=_text)
    escalated: bool = attrs.field(default=False, validator=flag)


@attrs.frozen(kw_only=True)
class SyncCompleted(Event):
    """Device and cloud agree: nothing is queued or in flight, at shadow ``version``."""

    version: int | None = attrs.field(validator=_version)
    at: int = attrs.field(validator=_version)


@attrs.frozen(kw_only=True)
class Dropped(Event):
    """Intents the queue dropped (expired, queue full, superseded, rejected), each with why."""

    records: tuple[DropRecord, ...] = attrs.field(converter=_tuple)


@attrs.frozen(kw_only=True)
class ShadowDeleted(Event):
    """The shadow was deleted (``by_us``: by this session's `ShadowSession.delete`)."""

    version: int | None = attrs.field(validator=_version)
    by_us: bool = attrs.field(validator=flag)


@attrs.frozen(kw_only=True)
class MessageIgnored(Event):
    """A received message was not used: malformed, hostile, stale, not for this shadow, or an
    answer to a request no longer in flight. Nothing changed."""

    topic: str = attrs.field(validator=_text)
    reason: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class CacheReset(Event):
    """The shadow cache in the store could not be read and was ignored (the queue is kept)."""

    reason: str = attrs.field(validator=_text)


def _shadow_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(
            f"shadow_name must be a non-empty string or None, got {describe(value)}"
        )


def _event(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Event):
        raise InvalidArgumentError(f"event must be an Event, got {describe(value)}")


@attrs.frozen(kw_only=True)
class FromShadow(Event):
    """An application ``event`` of one shadow of a `ThingSession` (``None``: the classic one)."""

    shadow_name: str | None = attrs.field(validator=_shadow_name)
    event: Event = attrs.field(validator=_event)


Output: TypeAlias = Subscribe | Unsubscribe | Publish
"""A message for the transport."""

SessionEvent: TypeAlias = (
    StateChanged
    | SnapshotReceived
    | DeltaReceived
    | IntentsQueued
    | AcknowledgementQueued
    | UpdateAccepted
    | IntentsConfirmed
    | UpdateRejected
    | RequestFailed
    | ConflictResolved
    | ReviewNeeded
    | SyncCompleted
    | Dropped
    | ShadowDeleted
    | MessageIgnored
    | CacheReset
)
"""An event for the application."""
