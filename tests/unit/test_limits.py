"""The AWS shadow limits: document size, nesting depth, clientToken length, names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shadowsync import DEFAULT_LIMITS, ShadowDocument, ShadowLimits, apply_update, topics
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidNameError,
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowRejectedError,
    TopicError,
)
from shadowsync.testing import InMemoryShadowService, ManualClock

T = 1_700_000_000
NESTING = "JSON contains too many levels of nesting; maximum is 6"
TOO_LARGE = "The payload exceeds the maximum size allowed"


def rejection(document: ShadowDocument | None, payload: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ShadowRejectedError) as info:
        apply_update(document, payload, timestamp=T, **kwargs)
    return info.value.to_rejected()


def nest(levels: int, leaf: Any = 1) -> dict[str, Any]:
    """A section object spanning ``levels`` object levels (the section itself is level 1)."""
    value: Any = leaf
    for index in reversed(range(levels)):
        value = {f"k{index}": value}
    assert isinstance(value, dict)
    return value


# --- ShadowLimits as a value ---


def test_defaults_are_the_aws_limits() -> None:
    limits = ShadowLimits()
    assert (
        limits.max_document_bytes,
        limits.max_depth,
        limits.max_client_token_bytes,
        limits.max_thing_name_length,
        limits.max_shadow_name_length,
    ) == (8192, 6, 64, 128, 64)
    assert limits == DEFAULT_LIMITS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_document_bytes": 30 * 1024 + 1},
        {"max_document_bytes": 0},
        {"max_document_bytes": True},
        {"max_document_bytes": 8192.0},
        {"max_depth": 0},
        {"max_depth": 33},
        {"max_client_token_bytes": 0},
        {"max_client_token_bytes": 1025},
        {"max_thing_name_length": 129},
        {"max_shadow_name_length": 65},
        {"max_shadow_name_length": "64"},
    ],
)
def test_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        ShadowLimits(**kwargs)


def test_gg_local_limit_may_be_raised_to_30_kb() -> None:
    limits = ShadowLimits(max_document_bytes=30 * 1024)
    payload = {"state": {"reported": {"log": "x" * 20_000}}}
    result = apply_update(None, payload, timestamp=T, limits=limits)
    assert result.document.size == 20_000 + len('{"reported":{"log":""}}')
    with pytest.raises(PayloadTooLargeError):
        apply_update(None, payload, timestamp=T)


# --- Size (DIAG, DOC, LIM19, REPOST) and inferred 5 ---


def test_inferred_size_boundary_8192_accepted_8193_rejected() -> None:
    # '{"desired":{"k":"' + value + '"}}' is the value's length plus 20 bytes.
    fits = {"state": {"desired": {"k": "x" * 8172}}}
    result = apply_update(None, fits, timestamp=T)
    assert result.document.size == 8192
    too_big = {"state": {"desired": {"k": "x" * 8173}}}
    assert rejection(None, too_big) == {"code": 413, "message": TOO_LARGE, "timestamp": T}


def test_inferred_size_counts_non_ascii_as_utf8_bytes() -> None:
    # "é" is two bytes in UTF-8 and "😀" four; neither is escaped.
    fits = {"state": {"reported": {"k": "é" * 4083 + "😀" + "x"}}}
    result = apply_update(None, fits, timestamp=T)
    assert result.document.size == len('{"reported":{"k":""}}') + 4083 * 2 + 4 + 1 == 8192
    assert rejection(None, {"state": {"reported": {"k": "é" * 4084 + "😀"}}})["code"] == 413


def test_inferred_size_excludes_metadata_and_empty_sections() -> None:
    leaves = {f"k{index:03d}": 1 for index in range(700)}
    result = apply_update(None, {"state": {"reported": leaves}}, timestamp=T)
    state_bytes = len(json.dumps({"reported": leaves}, separators=(",", ":")).encode())
    assert result.document.size == state_bytes < 8192
    metadata_bytes = len(json.dumps(result.document.to_dict()["metadata"]).encode())
    assert metadata_bytes > 8192


def test_repost_413_on_the_merged_document_even_for_a_small_update() -> None:
    stored = apply_update(None, {"state": {"reported": {"log": "x" * 8000}}}, timestamp=T).document
    small = {"state": {"desired": {"note": "y" * 200}}, "clientToken": "small-1"}
    assert len(json.dumps(small)) < 300
    with pytest.raises(PayloadTooLargeError) as info:
        apply_update(stored, small, timestamp=T + 1)
    assert info.value.to_rejected() == {
        "code": 413,
        "message": TOO_LARGE,
        "timestamp": T + 1,
        "clientToken": "small-1",
    }
    assert stored.version == 1
    assert stored.desired == {}


def test_an_update_that_shrinks_an_oversized_merge_is_accepted() -> None:
    stored = apply_update(None, {"state": {"reported": {"log": "x" * 8000}}}, timestamp=T).document
    result = apply_update(
        stored,
        {"state": {"reported": {"log": None}, "desired": {"note": "y" * 200}}},
        timestamp=T + 1,
    )
    assert result.document.reported == {}
    assert result.document.desired == {"note": "y" * 200}


def test_repost_named_shadows_have_the_same_8192_byte_limit() -> None:
    service = InMemoryShadowService(clock=ManualClock(T))
    service.update("boiler-3", {"state": {"reported": {"log": "x" * 8000}}}, "telemetry")
    with pytest.raises(PayloadTooLargeError):
        service.update("boiler-3", {"state": {"desired": {"note": "y" * 200}}}, "telemetry")
    assert (
        service.document("boiler-3", "telemetry")
        == apply_update(None, {"state": {"reported": {"log": "x" * 8000}}}, timestamp=T).document
    )


# --- Depth (ERR "maximum is 6", GG) and inferred 4 ---


def test_inferred_depth_six_object_levels_accepted_seventh_rejected() -> None:
    accepted = apply_update(
        None, b'{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}', timestamp=T
    )
    assert accepted.document.desired == {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    assert rejection(
        None, b'{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}'
    ) == {
        "code": 400,
        "message": NESTING,
        "timestamp": T,
    }


@pytest.mark.parametrize("section", ["desired", "reported"])
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        pytest.param(nest(6), True, id="six-objects"),
        pytest.param(nest(7), False, id="seven-objects"),
        pytest.param(nest(6, {}), False, id="empty-object-at-level-7"),
        pytest.param(nest(5, [1]), True, id="array-at-level-6"),
        pytest.param(nest(5, [[1]]), False, id="array-at-level-7"),
        pytest.param({"a": [[[[[1]]]]]}, True, id="five-nested-arrays"),
        pytest.param({"a": [[[[[[1]]]]]]}, False, id="six-nested-arrays"),
        pytest.param(nest(4, [{"x": 1}]), True, id="object-in-array-at-level-6"),
        pytest.param(nest(4, [{"x": {}}]), False, id="object-in-array-at-level-7"),
        pytest.param(nest(7, None), False, id="null-delete-one-level-too-deep"),
    ],
)
def test_inferred_depth_arrays_count_leaves_do_not(section: str, value: Any, ok: bool) -> None:
    payload = {"state": {section: value}}
    if ok:
        result = apply_update(None, payload, timestamp=T)
        assert result.document.section(section) == value
    else:
        assert rejection(None, payload) == {"code": 400, "message": NESTING, "timestamp": T}


@pytest.mark.parametrize(
    "payload",
    [
        b'{"state":{"desired":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_002,
        b"[" * 100_000,
    ],
    ids=["deep-objects", "deep-arrays"],
)
def test_inferred_too_deep_for_the_parser_gets_the_nesting_message(payload: bytes) -> None:
    assert rejection(None, payload) == {"code": 400, "message": NESTING, "timestamp": T}


def test_custom_max_depth_changes_the_limit_and_the_message() -> None:
    limits = ShadowLimits(max_depth=3)
    apply_update(None, {"state": {"desired": nest(3)}}, timestamp=T, limits=limits)
    assert rejection(None, {"state": {"desired": nest(4)}}, limits=limits) == {
        "code": 400,
        "message": "JSON contains too many levels of nesting; maximum is 3",
        "timestamp": T,
    }


# --- clientToken (DOC §Client tokens, ERR) ---


@pytest.mark.parametrize(
    "token",
    ["x" * 64, "é" * 32, "😀" * 16, "", "a4dc2227-9213-4c6a-a6a5-053304f60258"],
    ids=["64-ascii", "64-bytes-2-byte-chars", "64-bytes-4-byte-chars", "empty", "uuid"],
)
def test_doc_client_token_of_at_most_64_bytes_is_accepted_and_echoed(token: str) -> None:
    result = apply_update(
        None, {"state": {"desired": {"on": True}}, "clientToken": token}, timestamp=T
    )
    assert result.accepted["clientToken"] == token
    assert result.documents["clientToken"] == token
    assert result.delta is not None
    assert result.delta["clientToken"] == token


@pytest.mark.parametrize(
    "token", ["x" * 65, "é" * 32 + "x", "😀" * 16 + "x"], ids=["65-ascii", "65-bytes", "68-bytes"]
)
def test_doc_client_token_over_64_bytes_is_invalid(token: str) -> None:
    payload = {"state": {"desired": {"on": True}}, "clientToken": token}
    assert rejection(None, payload) == {
        "code": 400,
        "message": "Invalid clientToken",
        "timestamp": T,
    }


def test_custom_client_token_limit() -> None:
    limits = ShadowLimits(max_client_token_bytes=8)
    apply_update(None, {"state": {}, "clientToken": "12345678"}, timestamp=T, limits=limits)
    with pytest.raises(InvalidRequestError, match="Invalid clientToken"):
        apply_update(None, {"state": {}, "clientToken": "123456789"}, timestamp=T, limits=limits)


# --- Names (API) and inferred 20 ---

THING_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"


@pytest.mark.parametrize("name", ["thermostat-42", "a", "A:b_c-9", (THING_CHARS * 2)[:128]])
def test_api_valid_thing_names(name: str) -> None:
    assert DEFAULT_LIMITS.check_thing_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 129, "a/b", "a+b", "a#b", "a b", "$thing", "küche", "a.b", "a\n"],
)
def test_api_invalid_thing_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        DEFAULT_LIMITS.check_thing_name(name)
    assert info.value.to_rejected() == {"code": 400, "message": "Invalid thing name"}


@pytest.mark.parametrize("name", ["config", "$config", "fw:v2_a-b", "s" * 64])
def test_api_valid_shadow_names(name: str) -> None:
    assert DEFAULT_LIMITS.check_shadow_name(name) == name


@pytest.mark.parametrize("name", ["", "s" * 65, "a/b", "a+b", "a#b", "a b", "ß"])
def test_api_invalid_shadow_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        DEFAULT_LIMITS.check_shadow_name(name)
    assert info.value.to_rejected() == {"code": 400, "message": "Invalid shadow name"}


@pytest.mark.parametrize("name", [None, 42, b"thing"])
def test_non_string_names_are_invalid(name: object) -> None:
    with pytest.raises(InvalidNameError, match="Invalid thing name"):
        DEFAULT_LIMITS.check_thing_name(name)
    with pytest.raises(InvalidNameError, match="Invalid shadow name"):
        DEFAULT_LIMITS.check_shadow_name(name)


def test_custom_name_lengths() -> None:
    limits = ShadowLimits(max_thing_name_length=10, max_shadow_name_length=3)
    assert limits.check_thing_name("x" * 10) == "x" * 10
    with pytest.raises(InvalidNameError):
        limits.check_thing_name("x" * 11)
    with pytest.raises(InvalidNameError):
        limits.check_shadow_name("abcd")


def test_inferred_names_service_raises_invalid_name_error_topics_raise_topic_error() -> None:
    service = InMemoryShadowService(clock=ManualClock(T))
    with pytest.raises(InvalidNameError) as thing_error:
        service.update("bad/thing", {"state": {}})
    assert (thing_error.value.code, thing_error.value.message) == (400, "Invalid thing name")
    with pytest.raises(InvalidNameError) as shadow_error:
        service.get("thermostat-42", "bad+shadow")
    assert (shadow_error.value.code, shadow_error.value.message) == (400, "Invalid shadow name")
    with pytest.raises(InvalidNameError):
        service.delete("x" * 129)
    with pytest.raises(InvalidNameError):
        service.list_named_shadows("a#b")
    with pytest.raises(TopicError):
        topics.build("bad/thing", "update")
    with pytest.raises(TopicError):
        topics.build("thermostat-42", "get", shadow_name="s" * 65)
    assert service.document("thermostat-42") is None
