"""Fuzzing document parsing and the delta: only a ShadowSyncError may come out.

ShadowDocument.from_dict and from_json promise InvalidDocumentError for anything AWS would never
return; compute_delta must survive any pair of values, however deep or strange.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import ShadowDocument, compute_delta, errors
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies import (
    assert_wire_json,
    capped_examples,
    digit_run,
    get_bodies,
    hostile_get_bodies,
    hostile_json_texts,
    hostile_values,
    json_text,
    outcome,
    python_objects,
    to_utf8,
)

DEEP = 100_000

document_texts = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32),
    hostile_json_texts(),
    hostile_json_texts().map(to_utf8),
    hostile_get_bodies().map(json_text),
    hostile_get_bodies().map(lambda body: to_utf8(json_text(body, ascii_only=False))),
)
"""Text and bytes that may or may not be a GetThingShadow body."""


def _check_parsed(document: ShadowDocument) -> None:
    """A parsed document renders as sendable JSON and survives its own round trip."""
    assert_wire_json(document.to_dict())
    assert ShadowDocument.from_json(document.to_json()) == document


@capped_examples(150)
@given(st.one_of(hostile_get_bodies(), hostile_values()))
def test_from_dict_raises_only_shadowsync_errors(body: Any) -> None:
    outcome(lambda: ShadowDocument.from_dict(body))


@capped_examples(150)
@given(st.one_of(hostile_get_bodies(), hostile_values()))
def test_from_dict_rejects_only_with_invalid_document_error(body: Any) -> None:
    result = outcome(lambda: ShadowDocument.from_dict(body))
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.InvalidDocumentError), repr(result)


@capped_examples(150)
@given(hostile_get_bodies())
def test_a_body_from_dict_accepts_renders_as_sendable_json(body: Any) -> None:
    result = outcome(lambda: ShadowDocument.from_dict(body))
    if isinstance(result, ShadowDocument):
        _check_parsed(result)


@given(document_texts)
def test_from_json_raises_only_shadowsync_errors(data: str | bytes) -> None:
    outcome(lambda: ShadowDocument.from_json(data))


@given(document_texts)
def test_from_json_rejects_only_with_invalid_document_error(data: str | bytes) -> None:
    result = outcome(lambda: ShadowDocument.from_json(data))
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.InvalidDocumentError), repr(result)
    else:
        _check_parsed(result)


@given(python_objects())
def test_from_json_of_something_that_is_not_text_raises_only_shadowsync_errors(data: Any) -> None:
    outcome(lambda: ShadowDocument.from_json(data))


@given(hostile_values(), hostile_values())
def test_compute_delta_raises_only_shadowsync_errors(desired: Any, reported: Any) -> None:
    outcome(lambda: compute_delta(desired, reported))


@given(
    st.dictionaries(st.text(max_size=3), hostile_values(), max_size=3),
    st.dictionaries(st.text(max_size=3), hostile_values(), max_size=3),
)
def test_compute_delta_of_two_hostile_objects_raises_only_shadowsync_errors(
    desired: dict[str, Any], reported: dict[str, Any]
) -> None:
    outcome(lambda: compute_delta(desired, reported))
    outcome(lambda: compute_delta(desired, desired))


@capped_examples(150)
@given(st.one_of(hostile_get_bodies(), hostile_values()))
def test_service_seed_raises_only_shadowsync_errors_and_stores_nothing_on_error(body: Any) -> None:
    service = InMemoryShadowService(clock=ManualClock(1_700_000_000))
    result = outcome(lambda: service.seed("thing-1", body))
    if isinstance(result, errors.ShadowSyncError):
        assert service.document("thing-1") is None
    else:
        assert service.document("thing-1") is result


@capped_examples(150)
@given(get_bodies())
def test_from_json_accepts_the_non_ascii_form_of_a_get_body(body: Any) -> None:
    document = ShadowDocument.from_dict(body)
    assert ShadowDocument.from_json(to_utf8(json_text(body, ascii_only=False))) == document


# Explicit parser killers ------------------------------------------------------------------


def _deep_dict(levels: int, leaf: Any = 1) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(levels):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def _deep_body_text(levels: int) -> str:
    return '{"state":{"reported":' + '{"a":' * levels + "1" + "}" * levels + '},"version":1}'


DEEP_TEXTS = {
    "objects as text": _deep_body_text(DEEP),
    "objects as bytes": _deep_body_text(DEEP).encode(),
    "arrays as text": '{"state":{"desired":{"a":' + "[" * DEEP + "]" * DEEP + "}}}",
    "metadata as text": '{"metadata":{"desired":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}}",
}


@pytest.mark.parametrize("data", DEEP_TEXTS.values(), ids=DEEP_TEXTS.keys())
def test_from_json_of_json_nested_100000_deep_is_an_invalid_document(data: str | bytes) -> None:
    result = outcome(lambda: ShadowDocument.from_json(data))
    assert isinstance(result, errors.InvalidDocumentError)


DEEP_BODIES = {
    "desired": {"state": {"desired": _deep_dict(DEEP)}},
    "reported": {"state": {"reported": _deep_dict(DEEP)}},
    "delta": {"state": {"desired": {"a": 1}, "delta": _deep_dict(DEEP)}},
    "metadata": {"state": {"desired": {"a": 1}}, "metadata": {"desired": _deep_dict(DEEP)}},
}


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_from_dict_of_a_mapping_nested_100000_deep_raises_only_invalid_document_error(
    body: dict[str, Any],
) -> None:
    result = outcome(lambda: ShadowDocument.from_dict(body))
    if isinstance(result, errors.ShadowSyncError):
        assert isinstance(result, errors.InvalidDocumentError)


ODD_VALUES: dict[str, Any] = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "5000 digits": digit_run(5000, 7),
    "lone surrogate": "x\ud800",
    "set": {1, 2},
    "null in array": [1, None],
}


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_from_dict_refuses_values_aws_never_stores_with_invalid_document_error(value: Any) -> None:
    result = outcome(lambda: ShadowDocument.from_dict({"state": {"desired": {"a": value}}}))
    assert isinstance(result, errors.InvalidDocumentError), repr(result)


@pytest.mark.parametrize("sign", [1, -1], ids=["positive", "negative"])
def test_a_version_beyond_the_digit_limit_is_an_invalid_document(sign: int) -> None:
    result = outcome(
        lambda: ShadowDocument.from_dict({"state": {}, "version": sign * digit_run(4301)})
    )
    assert isinstance(result, errors.InvalidDocumentError), "parsed a version it cannot render"


def test_from_dict_refuses_a_lone_surrogate_key_with_invalid_document_error() -> None:
    result = outcome(lambda: ShadowDocument.from_dict({"state": {"reported": {"\udc00": 1}}}))
    assert isinstance(result, errors.InvalidDocumentError), repr(result)


ODD_TEXTS = {
    "NaN": '{"state":{"desired":{"a":NaN}}}',
    "Infinity": '{"state":{"desired":{"a":Infinity}}}',
    "-Infinity": '{"state":{"desired":{"a":-Infinity}}}',
    "1e400": '{"state":{"desired":{"a":1e400}}}',
    "5000 digits": '{"state":{"desired":{"a":' + "7" * 5000 + "}}}",
    "5000 digit version": '{"state":{},"version":' + "7" * 5000 + "}",
    "surrogate value": '{"state":{"desired":{"a":"\\ud800"}}}',
    "surrogate key": '{"state":{"desired":{"\\ud800":1}}}',
    "1 MB": '{"state":{"desired":{"a":"' + "x" * 1_000_000 + '"}}}',
}


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
def test_from_json_refuses_json_aws_never_returns_with_invalid_document_error(text: str) -> None:
    for data in (text, text.encode()):
        result = outcome(functools.partial(ShadowDocument.from_json, data))
        assert isinstance(result, errors.InvalidDocumentError), repr(result)


def test_compute_delta_of_two_dicts_nested_100000_deep_raises_only_shadowsync_errors() -> None:
    same, other = _deep_dict(DEEP), _deep_dict(DEEP, leaf=2)
    outcome(lambda: compute_delta(same, other))
    outcome(lambda: compute_delta(same, same))
    outcome(lambda: compute_delta(same, _deep_dict(DEEP)))
    outcome(lambda: compute_delta({"a": same}, {"a": 1}))
    outcome(lambda: compute_delta({"a": 1}, same))


def test_compute_delta_of_lists_nested_100000_deep_raises_only_shadowsync_errors() -> None:
    first: Any = []
    second: Any = [1]
    for _ in range(DEEP):
        first, second = [first], [second]
    outcome(lambda: compute_delta({"a": first}, {"a": second}))


def test_compute_delta_of_a_self_referencing_dict_raises_only_shadowsync_errors() -> None:
    loop: dict[str, Any] = {"on": True}
    loop["loop"] = loop
    outcome(lambda: compute_delta(loop, loop))
    outcome(lambda: compute_delta(loop, {"loop": {"loop": {}}}))
