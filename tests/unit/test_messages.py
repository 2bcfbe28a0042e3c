"""Reading the session's incoming messages: documents it knows already are not read again."""

from __future__ import annotations

import json

from shadowsync import DEFAULT_LIMITS, topics
from shadowsync._device.messages import Incoming, Notification, read_message, read_notification
from shadowsync.testing import InMemoryShadowService


def _documents(service: InMemoryShadowService, body: dict[str, object]) -> Incoming:
    replies = service.handle(topics.build("lamp", "update"), json.dumps(body).encode())
    [(topic, payload)] = [reply for reply in replies if reply[0].endswith("/documents")]
    message = read_message(
        topic,
        payload,
        thing_name="lamp",
        shadow_name=None,
        limits=DEFAULT_LIMITS,
        max_bytes=128 * 1024,
    )
    assert isinstance(message, Incoming)
    return message


def test_the_documents_of_a_known_document_bring_that_document() -> None:
    service = InMemoryShadowService(clock=lambda: 1_700_000_000)
    message = _documents(service, {"state": {"desired": {"on": True}, "reported": {"on": 1.0}}})
    read = read_notification(message, DEFAULT_LIMITS)
    assert isinstance(read, Notification)
    assert read.document is not None
    known = service.document("lamp")
    assert known == read.document

    again = read_notification(message, DEFAULT_LIMITS, known=known)
    assert isinstance(again, Notification)
    assert again.document is known
    assert again.version == known.version

    newer = _documents(service, {"state": {"reported": {"on": False}}})
    fresh = read_notification(newer, DEFAULT_LIMITS, known=known)
    assert isinstance(fresh, Notification)
    assert fresh.document is not known
    assert fresh.document == service.document("lamp")
