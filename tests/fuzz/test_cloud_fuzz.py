"""Fuzzing the cloud side: whatever arrives as a request or a delta event, nothing crashes.

`SyncManager.handle` answers everything with 200 or 400 (a body that goes on the wire), and
`parse_request`, `handle_delta_event` and `offline_sync` raise nothing but `ShadowSyncError`
subclasses, for arbitrary bytes, text and JSON, request-shaped mappings full of hostile values,
deep nesting and huge numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import ShadowDocument, apply_update
from shadowsync._conflict.merge import ReviewItem
from shadowsync.audit import AuditLog
from shadowsync.cloud import (
    HeldReview,
    OperationError,
    SyncManager,
    handle_delta_event,
    offline_sync,
    page_reviews,
    parse_request,
)
from shadowsync.errors import ShadowSyncError
from tests.strategies import (
    assert_wire_json,
    digit_run,
    hostile_get_bodies,
    hostile_payloads,
    outcome,
)
from tests.strategies.cloud import (
    REVIEW_IDS,
    as_wire,
    hostile_events,
    hostile_requests,
    hostile_review_requests,
)

NOW = 1_700_000_600
DEEP = 100_000

SHADOW = apply_update(
    None,
    {"state": {"desired": {"mode": "eco", "rate": 2}, "reported": {"mode": "normal", "rate": 2}}},
    timestamp=NOW - 300,
).document


def _history() -> AuditLog:
    log = AuditLog()
    log.append(
        "pump-7",
        None,
        previous_state=None,
        new_state=SHADOW,
        version=1,
        timestamp=NOW - 200,
        change_type="conflict_resolved",
        decision="merge",
        reason="settled",
        details={"conflicts": [{"path": "mode", "kind": "concurrent_modification"}]},
    )
    return log


HISTORY = _history()


class EveryShadow(Mapping[Any, Any]):
    """Holds the same shadow under every name (so any request's shadows are found)."""

    def __init__(self, document: ShadowDocument | None) -> None:
        self.document = document

    def __getitem__(self, key: Any) -> ShadowDocument | None:
        return self.document

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _manager(document: ShadowDocument | None) -> SyncManager:
    return SyncManager(
        read_shadow=lambda thing, shadow: document,
        read_history=lambda thing: HISTORY,
    )


@st.composite
def wire_requests(draw: st.DrawFn) -> Any:
    """A request as a mapping, as JSON text or as UTF-8 bytes."""
    return as_wire(draw, draw(hostile_requests()))


@st.composite
def wire_events(draw: st.DrawFn) -> Any:
    return as_wire(draw, draw(hostile_events()))


def _check_response(manager: SyncManager, request: Any) -> None:
    response = outcome(lambda: manager.handle(request, now=NOW))
    assert not isinstance(response, ShadowSyncError), f"handle raised {response!r}"[:300]
    assert response.status_code in (200, 400), (response.status_code, response.body)
    assert_wire_json(response.body)
    assert response.to_lambda()["statusCode"] == response.status_code
    if response.status_code == 400:
        assert set(response.body) == {"error", "operation"}
        assert isinstance(response.body["error"], str)
        assert response.body["error"]
        assert response.body["operation"] is None or isinstance(response.body["operation"], str)
        assert (response.updates, response.records, response.events) == ((), (), ())
    for entry in response.events:
        assert_wire_json(entry)


@given(st.one_of(hostile_payloads(), wire_requests()), st.booleans())
def test_the_sync_manager_answers_anything_with_200_or_400(request: Any, exists: bool) -> None:
    _check_response(_manager(SHADOW if exists else None), request)


@given(st.one_of(hostile_payloads(), wire_requests()))
def test_parse_request_raises_only_operation_errors(request: Any) -> None:
    result = outcome(lambda: parse_request(request))
    if isinstance(result, ShadowSyncError):
        assert isinstance(result, OperationError), type(result)
        assert result.to_response()["statusCode"] == 400


@given(
    st.one_of(hostile_payloads(), wire_events()),
    st.one_of(st.none(), st.just(SHADOW), hostile_get_bodies()),
    st.booleans(),
)
def test_delta_events_raise_only_shadowsync_errors(
    event: Any, shadow: Any, with_history: bool
) -> None:
    result = outcome(
        lambda: handle_delta_event(event, shadow, now=NOW, history=HISTORY if with_history else ())
    )
    if not isinstance(result, ShadowSyncError):
        assert_wire_json(result.to_json())
        for entry in result.events:
            assert_wire_json(entry)


@given(
    st.one_of(hostile_payloads(), wire_requests()),
    st.one_of(st.none(), st.just(SHADOW)),
)
def test_offline_sync_raises_only_shadowsync_errors(request: Any, shadow: Any) -> None:
    result = outcome(lambda: offline_sync(request, EveryShadow(shadow), now=NOW, history=HISTORY))
    if not isinstance(result, ShadowSyncError):
        assert_wire_json(result.to_json())
        for entry in result.events:
            assert_wire_json(entry)


# The classic killers, each on its own ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP + "]" * DEEP,
        '{"a":' * DEEP + "1" + "}" * DEEP,
        '{"operation":"offline_sync","thingName":"t","cachedChanges":' + "[" * DEEP,
        '{"operation":"sync_check","thingName":"t","recentHours":1e999}',
        '{"operation":"sync_check","thingName":"t","recentHours":NaN}',
        '{"operation":"sync_check","thingName":"t","recentHours":-Infinity}',
        '{"operation":"offline_sync","thingName":"t","offlineDurationSeconds":' + "9" * 5000 + "}",
        "\ufeff{}",
        "",
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-cached-changes",
        "overflowing-float",
        "nan",
        "minus-infinity",
        "5000-digits",
        "bom",
        "empty",
    ],
)
def test_hostile_texts_are_400(text: str) -> None:
    for payload in (text, text.encode("utf-8")):
        response = _manager(SHADOW).handle(payload, now=NOW)
        assert response.status_code == 400, response.body
        with pytest.raises(OperationError):
            handle_delta_event(payload, SHADOW, now=NOW)


def _short_id(value: Any) -> str:
    """A test id for a parameter (str() refuses ints of more than 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"int-{value.bit_length()}-bits"
    try:
        text = repr(value)
    except ValueError:
        return "holds-a-huge-int"
    return text if len(text) <= 40 else text[:37] + "..."


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("offlineDurationSeconds", digit_run(5000)),
        ("offlineDurationSeconds", 2**63),
        ("offlineDurationSeconds", -1),
        ("offlineDurationSeconds", math.inf),
        ("offlineDurationSeconds", 1e300),
        ("cachedChanges", [{"state": {"a": 1}, "timestamp": digit_run(5000)}]),
        ("cachedChanges", [{"state": {"a": 1}, "timestamp": 2**64}]),
        ("cachedChanges", [{"state": {"a": digit_run(5000)}, "timestamp": 1}]),
        ("cachedChanges", [{"state": {"a": math.nan}, "timestamp": 1}]),
        ("cachedChanges", [{"state": _deep(40), "timestamp": 1}]),
        ("cachedChanges", [{"state": _deep(8), "timestamp": 1}]),
        ("cachedChanges", [{"state": {"a": [[[[[[[1]]]]]]]}, "timestamp": 1}]),
        ("cachedChanges", [{"state": {"a": "x" * 9000}, "timestamp": 1}]),
    ],
    ids=_short_id,
)
def test_huge_and_deep_offline_requests_are_400(field: str, value: Any) -> None:
    request = {"operation": "offline_sync", "thingName": "pump-7", field: value}
    for document in (None, SHADOW):
        response = _manager(document).handle(request, now=NOW)
        assert response.status_code == 400, response.body
        assert response.body["operation"] == "offline_sync"
        with pytest.raises(OperationError):
            offline_sync(request, EveryShadow(document), now=NOW)


@pytest.mark.parametrize(
    "event",
    [
        {"thingName": "pump-7", "state": {}, "version": digit_run(5000)},
        {"thingName": "pump-7", "state": {}, "version": 2**63},
        {"thingName": "pump-7", "state": {}, "timestamp": 10**30},
        {"thingName": "pump-7", "state": _deep(40)},
        {"thingName": "pump-7", "state": {"a": digit_run(5000)}},
        {"thingName": "pump-7", "state": {"a": math.inf}},
    ],
    ids=_short_id,
)
def test_huge_and_deep_delta_events_are_operation_errors(event: dict[str, Any]) -> None:
    for document in (None, SHADOW):
        with pytest.raises(OperationError):
            handle_delta_event(event, document, now=NOW, history=HISTORY)


def test_the_largest_version_is_still_a_valid_event() -> None:
    decision = handle_delta_event(
        {"thingName": "pump-7", "state": {}, "version": 2**63 - 1}, None, now=NOW
    )
    assert (decision.record.change_type, decision.record.version) == ("delete", 2**63 - 1)


def _held(review_id: str, current: Any) -> HeldReview:
    item = ReviewItem(id=review_id, path=("mode",), section="desired", current=current,
                      proposed="boost", base="normal", reason="held")  # fmt: skip
    return HeldReview(thing_name="pump-7", shadow_name=None, item=item, version=1,
                      held_at=NOW - 100, record="")  # fmt: skip


# One review whose path still holds its value, one that moved on.
REVIEWS = (_held(REVIEW_IDS[0], "eco"), _held(REVIEW_IDS[1], "off"))


@given(hostile_review_requests(), st.booleans())
def test_review_requests_are_answered_with_a_status_not_an_exception(
    request: Any, exists: bool
) -> None:
    manager = attrs.evolve(
        _manager(SHADOW if exists else None),
        read_reviews=lambda query: page_reviews(REVIEWS, query),
    )
    response = outcome(lambda: manager.handle(request, now=NOW))
    assert not isinstance(response, ShadowSyncError), f"handle raised {response!r}"[:300]
    assert response.status_code in (200, 400, 404, 409), (response.status_code, response.body)
    assert_wire_json(response.body)
    if response.status_code != 200:
        assert set(response.body) == {"error", "operation"}
        assert (response.updates, response.records, response.resolved) == ((), (), ())
    for entry in response.events:
        assert_wire_json(entry)
