"""Fuzzing update requests: whatever arrives, only a ShadowSyncError may come out.

Covers UpdateRequest.parse, apply_update and the in-memory service's update (directly and over
MQTT) with arbitrary bytes and text, hostile JSON, request-shaped mappings full of non-JSON
Python values, and the classic parser killers (deep nesting, NaN, huge integers, surrogates,
megabyte payloads).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import (
    ShadowDocument,
    UpdateRequest,
    UpdateResult,
    apply_update,
    errors,
    topics,
)
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies import (
    FORBIDDEN_ESCAPES,
    NESTING_TEXT,
    assert_wire_json,
    built_documents,
    capped_examples,
    check_error,
    contains_null,
    digit_run,
    hostile_json_texts,
    hostile_payloads,
    hostile_update_bodies,
    outcome,
    python_objects,
    to_utf8,
)

NOW = 1_700_000_000
DEEP = 100_000
THING = "thing-1"


def _service(document: ShadowDocument | None = None) -> InMemoryShadowService:
    service = InMemoryShadowService(clock=ManualClock(NOW))
    if document is not None:
        service.seed(THING, document)
    return service


def _check_accepted(result: UpdateResult) -> None:
    """An accepted update stores plain, null-free JSON and answers with sendable bodies."""
    assert not contains_null(result.document.to_dict())
    assert result.document.size <= 8192
    assert_wire_json(result.document.to_dict())
    assert_wire_json(result.accepted)
    assert_wire_json(result.documents)
    if result.delta is not None:
        assert_wire_json(result.delta)


def _rejection(call: Any) -> errors.ShadowRejectedError:
    """Run ``call``, which must be rejected; no other exception may escape."""
    result = outcome(call)
    assert isinstance(result, errors.ShadowRejectedError), f"accepted: {result!r}"[:300]
    return result


# Hypothesis: nothing but ShadowSyncError escapes ------------------------------------------


@given(hostile_payloads())
def test_update_request_parse_raises_only_shadowsync_errors(payload: Any) -> None:
    outcome(lambda: UpdateRequest.parse(payload))


@given(hostile_payloads())
def test_apply_update_to_a_new_shadow_raises_only_shadowsync_errors(payload: Any) -> None:
    outcome(lambda: apply_update(None, payload, timestamp=NOW))


@capped_examples(150)
@given(built_documents(), hostile_payloads())
def test_apply_update_to_an_existing_shadow_raises_only_shadowsync_errors(
    document: ShadowDocument, payload: Any
) -> None:
    outcome(lambda: apply_update(document, payload, timestamp=NOW))


@given(hostile_payloads())
def test_an_accepted_hostile_update_stores_and_answers_with_sendable_json(payload: Any) -> None:
    result = outcome(lambda: apply_update(None, payload, timestamp=NOW))
    if isinstance(result, UpdateResult):
        _check_accepted(result)


@given(hostile_update_bodies())
def test_an_accepted_request_shaped_mapping_answers_with_sendable_json(body: Any) -> None:
    result = outcome(lambda: apply_update(None, body, timestamp=NOW))
    if isinstance(result, UpdateResult):
        _check_accepted(result)


@given(st.one_of(python_objects(), st.dictionaries(st.text(max_size=3), python_objects())))
def test_a_non_object_state_is_refused_with_a_400(state: Any) -> None:
    result = outcome(lambda: apply_update(None, {"state": state}, timestamp=NOW))
    if not isinstance(result, UpdateResult):
        assert isinstance(result, errors.InvalidRequestError)


def _valid_token(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(value.encode("utf-8")) <= 64
    except UnicodeEncodeError:
        return False


@given(
    st.sampled_from(("version", "clientToken")),
    st.one_of(python_objects(), st.floats(), st.integers(max_value=-1), st.text(min_size=65)),
)
def test_a_hostile_version_or_client_token_is_refused_with_a_400(field: str, value: Any) -> None:
    if field == "clientToken" and _valid_token(value):
        return
    if field == "version" and type(value) is int and value >= 0:
        return
    error = _rejection(lambda: apply_update(None, {"state": {}, field: value}, timestamp=NOW))
    assert error.code == 400
    assert error.message == ("Invalid version" if field == "version" else "Invalid clientToken")


@capped_examples(150)
@given(built_documents(), hostile_payloads())
def test_a_rejected_update_to_the_service_leaves_the_stored_shadow_unchanged(
    document: ShadowDocument, payload: Any
) -> None:
    service = _service(document)
    before = service.get(THING)
    result = outcome(lambda: service.update(THING, payload))
    if isinstance(result, UpdateResult):
        assert service.document(THING) is result.document
        assert result.document.version == document.version + 1
    else:
        assert service.document(THING) is document
        assert service.get(THING) == before


@given(hostile_payloads(), st.sampled_from(("update", "get", "delete")))
def test_service_handle_answers_every_request_with_sendable_json(
    payload: Any, operation: topics.Operation
) -> None:
    service = _service()
    service.update(THING, {"state": {"desired": {"on": True}}})
    topic = topics.build(THING, operation)
    replies = outcome(lambda: service.handle(topic, payload))
    assert isinstance(replies, list)
    assert replies
    for reply_topic, body in replies:
        parsed = topics.parse(reply_topic)
        assert (parsed.thing_name, parsed.operation) == (THING, operation)
        assert parsed.response is not None
        assert isinstance(json.loads(body.decode("utf-8")), dict)


@given(hostile_json_texts())
def test_json_text_as_str_and_as_utf8_bytes_gets_the_same_answer(text: str) -> None:
    as_text = outcome(lambda: apply_update(None, text, timestamp=NOW))
    as_bytes = outcome(lambda: apply_update(None, to_utf8(text), timestamp=NOW))
    if isinstance(as_bytes, errors.UnsupportedEncodingError):
        # Only a raw lone surrogate in the text makes its bytes invalid UTF-8.
        assert any(0xD800 <= ord(char) <= 0xDFFF for char in text)
    elif isinstance(as_text, UpdateResult):
        assert isinstance(as_bytes, UpdateResult)
        assert as_text.document == as_bytes.document
    else:
        assert isinstance(as_text, errors.ShadowRejectedError)
        assert isinstance(as_bytes, errors.ShadowRejectedError)
        assert (as_text.code, as_text.message) == (as_bytes.code, as_bytes.message)


# Explicit parser killers ------------------------------------------------------------------


def _deep_object_text(levels: int) -> str:
    return '{"state":{"desired":' + '{"a":' * levels + "1" + "}" * levels + "}}"


def _deep_array_text(levels: int) -> str:
    return '{"state":{"desired":{"a":' + "[" * levels + "]" * levels + "}}}"


def _deep_mapping(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return {"state": {"desired": value}}


def _deep_lists(levels: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return {"state": {"reported": {"a": value}}}


DEEP_PAYLOADS = {
    "objects as text": _deep_object_text(DEEP),
    "objects as bytes": _deep_object_text(DEEP).encode(),
    "arrays as text": _deep_array_text(DEEP),
    "arrays as bytes": _deep_array_text(DEEP).encode(),
}


@pytest.mark.parametrize("payload", DEEP_PAYLOADS.values(), ids=DEEP_PAYLOADS.keys())
def test_json_nested_100000_deep_is_refused_with_the_nesting_message(payload: str | bytes) -> None:
    error = _rejection(lambda: apply_update(None, payload, timestamp=NOW))
    assert (error.code, error.message) == (400, NESTING_TEXT)


@pytest.mark.parametrize("build", [_deep_mapping, _deep_lists], ids=["mapping", "lists"])
def test_a_python_value_nested_100000_deep_is_refused_with_the_nesting_message(
    build: Any,
) -> None:
    error = _rejection(lambda: apply_update(None, build(DEEP), timestamp=NOW))
    assert (error.code, error.message) == (400, NESTING_TEXT)


def test_a_self_referencing_mapping_is_refused_with_the_nesting_message() -> None:
    loop: dict[str, Any] = {"on": True}
    loop["loop"] = loop
    error = _rejection(lambda: apply_update(None, {"state": {"desired": loop}}, timestamp=NOW))
    assert (error.code, error.message) == (400, NESTING_TEXT)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize(
    "template",
    ['{"state":{"desired":{"a":%s}}}', '{"state":{"reported":{"a":[1,%s]}}}'],
    ids=["value", "array item"],
)
def test_non_finite_numbers_in_json_text_are_invalid_json(token: str, template: str) -> None:
    payload = template.replace("%s", token)
    for form in (payload, payload.encode()):
        error = _rejection(functools.partial(apply_update, None, form, timestamp=NOW))
        assert (error.code, error.message) == (400, "Invalid JSON")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_in_a_mapping_are_invalid_json(number: float) -> None:
    body = {"state": {"desired": {"a": {"b": number}}}}
    error = _rejection(lambda: apply_update(None, body, timestamp=NOW))
    assert (error.code, error.message) == (400, "Invalid JSON")


def test_a_5000_digit_integer_in_json_text_is_invalid_json() -> None:
    payload = '{"state":{"desired":{"a":' + "7" * 5000 + "}}}"
    error = _rejection(lambda: apply_update(None, payload, timestamp=NOW))
    assert (error.code, error.message) == (400, "Invalid JSON")


def test_a_5000_digit_integer_in_a_mapping_is_invalid_json() -> None:
    body = {"state": {"desired": {"a": digit_run(5000, 7)}}}
    error = _rejection(lambda: apply_update(None, body, timestamp=NOW))
    assert (error.code, error.message) == (400, "Invalid JSON")


@pytest.mark.parametrize(
    "version", [digit_run(5000, 7), -digit_run(5000, 7)], ids=["big", "negative"]
)
def test_a_5000_digit_version_in_a_mapping_is_refused_without_a_valueerror(version: int) -> None:
    error = _rejection(lambda: apply_update(None, {"state": {}, "version": version}, timestamp=NOW))
    assert error.code in (400, 409)


SURROGATE_PAYLOADS = {
    "escaped in a value": '{"state":{"desired":{"a":"x\\ud800"}}}',
    "raw in a value": '{"state":{"desired":{"a":"x\ud800"}}}',
    "escaped in a key": '{"state":{"reported":{"\\ud800":1}}}',
    "escaped in an array": '{"state":{"reported":{"a":["\\udc00"]}}}',
    "escaped in a deleted key": '{"state":{"desired":{"\\ud800":null}}}',
    "escaped in a nested deleted key": '{"state":{"desired":{"a":{"\\udfff":null}}}}',
}


@pytest.mark.parametrize("payload", SURROGATE_PAYLOADS.values(), ids=SURROGATE_PAYLOADS.keys())
def test_a_lone_surrogate_is_invalid_json(payload: str) -> None:
    error = _rejection(lambda: apply_update(None, payload, timestamp=NOW))
    assert (error.code, error.message) == (400, "Invalid JSON")


@pytest.mark.parametrize(
    "body",
    [{"state": {"desired": {"a": "\ud800"}}}, {"state": {"desired": {"\ud800": None}}}],
    ids=["value", "deleted key"],
)
def test_a_lone_surrogate_in_a_mapping_is_invalid_json(body: dict[str, Any]) -> None:
    error = _rejection(lambda: apply_update(None, body, timestamp=NOW))
    assert (error.code, error.message) == (400, "Invalid JSON")


def test_surrogate_bytes_are_not_utf8() -> None:
    payload = b'{"state":{"desired":{"a":"\xed\xa0\x80"}}}'
    error = _rejection(lambda: apply_update(None, payload, timestamp=NOW))
    assert error.code == 415
    assert error.message == "Unsupported documented encoding; supported encoding is UTF-8"


def test_a_1_mb_value_is_refused_with_413() -> None:
    payload = '{"state":{"desired":{"a":"' + "x" * 1_000_000 + '"}}}'
    for form in (payload, payload.encode()):
        error = _rejection(functools.partial(apply_update, None, form, timestamp=NOW))
        assert (error.code, error.message) == (413, "The payload exceeds the maximum size allowed")


def test_a_1_mb_payload_of_deletes_raises_only_shadowsync_errors() -> None:
    members = ",".join(f'"k{index}":null' for index in range(80_000))
    payload = '{"state":{"desired":{' + members + "}}}"
    assert len(payload) > 1_000_000
    outcome(lambda: apply_update(None, payload, timestamp=NOW))


@pytest.mark.parametrize("operation", ["get", "delete"])
@pytest.mark.parametrize(
    "payload",
    ['{"clientToken":"\\ud800"}', b'{"clientToken":"\\udc00"}', '{"clientToken":"a\ud800"}'],
    ids=["escaped text", "escaped bytes", "raw text"],
)
def test_handle_answers_a_lone_surrogate_client_token_with_utf8_json(
    operation: topics.Operation, payload: str | bytes
) -> None:
    service = _service()
    service.update(THING, {"state": {"desired": {"on": True}}})
    replies = outcome(lambda: service.handle(topics.build(THING, operation), payload))
    assert isinstance(replies, list)
    assert len(replies) == 1
    assert isinstance(json.loads(replies[0][1].decode("utf-8")), dict)


@pytest.mark.parametrize("operation", ["get", "delete"])
@pytest.mark.parametrize(
    "payload", [5, {"clientToken": "t"}, ["x"], None], ids=["int", "dict", "list", "None"]
)
def test_handle_of_a_payload_that_is_not_text_raises_only_shadowsync_errors(
    operation: topics.Operation, payload: Any
) -> None:
    service = _service()
    service.update(THING, {"state": {"desired": {"on": True}}})
    outcome(lambda: service.handle(topics.build(THING, operation), payload))


HOSTILE_PAYLOADS: dict[str, Any] = {
    **DEEP_PAYLOADS,
    "deep mapping": _deep_mapping(DEEP),
    "deep lists": _deep_lists(DEEP),
    "NaN text": '{"state":{"desired":{"a":NaN}}}',
    "1e400 text": '{"state":{"desired":{"a":1e400}}}',
    "inf mapping": {"state": {"desired": {"a": math.inf}}},
    "5000 digits text": '{"state":{"desired":{"a":' + "7" * 5000 + "}}}",
    "5000 digits mapping": {"state": {"desired": {"a": digit_run(5000, 7)}}},
    "surrogate value": '{"state":{"desired":{"a":"\\ud800"}}}',
    "surrogate deleted key": '{"state":{"desired":{"\\ud800":null}}}',
    "1 MB": '{"state":{"desired":{"a":"' + "x" * 1_000_000 + '"}}}',
    "not UTF-8": b'{"state":{"desired":{"a":"\xff"}}}',
}


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS.values(), ids=HOSTILE_PAYLOADS.keys())
def test_a_hostile_update_to_the_service_is_rejected_and_changes_nothing(payload: Any) -> None:
    service = _service()
    stored = service.update(THING, {"state": {"desired": {"on": True}}}).document
    before = service.get(THING)
    try:
        service.update(THING, payload)
    except errors.ShadowRejectedError as error:
        check_error(error)
    except FORBIDDEN_ESCAPES as exc:
        pytest.fail(f"{type(exc).__name__} escaped: {str(exc)[:200]}")
    else:
        pytest.fail("the hostile update was accepted")
    assert service.document(THING) is stored
    assert service.get(THING) == before
