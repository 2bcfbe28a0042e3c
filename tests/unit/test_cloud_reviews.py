"""Held reviews on the pure side: the request, the stored value, paging, approve and reject."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowsync import ResolutionPolicy, ShadowSyncError, apply_update
from shadowsync._conflict.merge import ReviewItem, Section, review_id
from shadowsync.audit import AuditLog, AuditLogError
from shadowsync.cloud import (
    HeldReview,
    OperationError,
    ResolvePendingConflictsRequest,
    ReviewAction,
    ReviewConflictError,
    ReviewNotFoundError,
    ReviewQuery,
    SyncManager,
    handle_delta_event,
    held_reviews,
    page_reviews,
    parse_request,
    resolve_review,
)
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies.merge import values

THING, SHADOW, T0 = "gateway-7", "configuration", 1_700_000_000
OPERATION = "resolve_pending_conflicts"


def _scenario() -> tuple[InMemoryShadowService, AuditLog, tuple[HeldReview, ...]]:
    """The recipe's conflict, held for review by the strict policy; the reviews it holds."""
    clock = ManualClock(T0)
    service = InMemoryShadowService(clock=clock)
    log = AuditLog()
    settings = {"samplingRate": 30, "alertThreshold": 80, "operatingMode": "normal"}
    created = service.update(
        THING, {"state": {"desired": settings, "reported": settings}}, shadow_name=SHADOW
    )
    log.append(THING, SHADOW, previous_state=None, new_state=created.document, version=1,
               timestamp=T0, change_type="update", decision="accept",
               reason="baseline")  # fmt: skip
    clock.advance(10)
    cloud = {"samplingRate": 60, "alertThreshold": 90, "operatingMode": "high_performance"}
    service.update(THING, {"state": {"desired": cloud}}, shadow_name=SHADOW)
    clock.advance(2)
    device = {"alertThreshold": 85, "operatingMode": "power_save"}
    service.update(THING, {"state": {"reported": device}}, shadow_name=SHADOW)
    event = {"thingName": THING, "shadowName": SHADOW, "state": cloud, "version": 3}
    decision = handle_delta_event(
        event,
        service.get(THING, shadow_name=SHADOW),
        now=T0 + 13,
        history=log,
        policy=ResolutionPolicy.recommended(),
    )
    for record in decision.records:
        log.add(record)
    return service, log, held_reviews(decision)


def _manager(
    service: InMemoryShadowService, log: AuditLog, reviews: tuple[HeldReview, ...]
) -> SyncManager:
    def read(thing: str, shadow: str | None) -> dict[str, Any] | None:
        try:
            return service.get(thing, shadow_name=shadow)
        except ShadowSyncError:
            return None

    return SyncManager(
        read_shadow=read,
        read_history=lambda thing: log,
        read_reviews=lambda query: page_reviews(reviews, query),
    )


def _threshold(reviews: tuple[HeldReview, ...]) -> HeldReview:
    (review,) = [r for r in reviews if r.item.path == ("alertThreshold",)]
    return review


# --- the request -------------------------------------------------------------------------


def test_a_list_request_and_its_defaults() -> None:
    parsed = parse_request({"operation": OPERATION, "action": "list", "thingName": THING})
    assert parsed == ResolvePendingConflictsRequest(action="list", thing_name=THING)
    assert (parsed.shadow_names, parsed.limit, parsed.next_token) == (None, 50, None)
    one = parse_request(
        json.dumps(
            {
                "operation": OPERATION,
                "action": "list",
                "thingName": THING,
                "shadowName": "$default",
                "limit": 5,
                "nextToken": "x",
            }
        )
    )
    assert isinstance(one, ResolvePendingConflictsRequest)
    assert (one.shadow_names, one.limit, one.next_token) == ((None,), 5, "x")


def test_an_approve_request() -> None:
    parsed = parse_request(
        {
            "operation": OPERATION,
            "action": "approve",
            "thingName": THING,
            "shadowName": SHADOW,
            "reviewId": "abc123",
            "reviewer": "ana",
            "comment": "ok",
        }
    )
    assert parsed == ResolvePendingConflictsRequest(
        action="approve",
        thing_name=THING,
        shadow_names=(SHADOW,),
        review_id="abc123",
        reviewer="ana",
        comment="ok",
    )


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "resolve_pending_conflicts needs an action, one of list, approve, reject; got none"),
        (
            {"action": "apply"},
            "resolve_pending_conflicts needs an action, one of list, approve, reject; got 'apply'",
        ),
        ({"action": "list"}, "list needs a thingName"),
        (
            {"action": "list", "thingName": THING, "reviewId": "x"},
            "unknown fields ['reviewId'] for resolve_pending_conflicts; expected some of "
            "['action', 'limit', 'nextToken', 'operation', 'shadowName', 'thingName']",
        ),
        (
            {"action": "list", "thingName": THING, "limit": 0},
            "limit must be a positive whole number, got 0",
        ),
        (
            {"action": "list", "thingName": THING, "limit": 101},
            "limit must be at most 100, got 101",
        ),
        (
            {"action": "list", "thingName": THING, "nextToken": 5},
            "nextToken must be a string of 1 to 4096 characters, got 5",
        ),
        (
            {"action": "approve", "thingName": THING},
            "approve needs a thingName, a shadowName ('$default' for the classic shadow) and a "
            "reviewId; missing shadowName, reviewId",
        ),
        (
            {"action": "reject", "thingName": THING, "shadowName": SHADOW, "reviewId": "a b"},
            "reviewId must be a review's id (1 to 64 letters, digits, '-' or '_'), got 'a b'",
        ),
        (
            {
                "action": "reject",
                "thingName": THING,
                "shadowName": SHADOW,
                "reviewId": "a",
                "reviewer": "",
            },
            "reviewer must be a string of 1 to 256 characters, got ''",
        ),
        (
            {"action": "approve", "thingName": THING, "shadowName": 5, "reviewId": "a"},
            "shadowName must be a shadow name (a string), got a number",
        ),
    ],
)
def test_malformed_review_requests_are_400s(fields: dict[str, Any], error: str) -> None:
    request = {"operation": OPERATION, **fields}
    with pytest.raises(OperationError) as caught:
        parse_request(request)
    assert caught.value.args[0] == error
    service, log, reviews = _scenario()
    response = _manager(service, log, reviews).handle(request, now=T0 + 60)
    assert (response.status_code, response.body) == (400, {"error": error, "operation": OPERATION})


# --- the stored value and paging -----------------------------------------------------------


def test_a_review_decision_holds_its_reviews() -> None:
    _, log, reviews = _scenario()
    assert sorted(r.item.path for r in reviews) == [("alertThreshold",), ("operatingMode",)]
    for review in reviews:
        assert (review.thing_name, review.shadow_name, review.version) == (THING, SHADOW, 3)
        assert (review.record, review.held_at, review.status) == (log.head, T0 + 13, "pending")
        assert HeldReview.from_json(json.loads(json.dumps(review.to_json()))) == review


@pytest.mark.parametrize(
    "bad",
    [None, [], {"thingName": "x"}, {"thingName": 5, "shadowName": "$default", "item": {}}],
)
def test_a_stored_review_that_is_not_one_is_an_audit_log_error(bad: object) -> None:
    with pytest.raises(AuditLogError):
        HeldReview.from_json(bad)


def test_page_reviews_pages_and_filters() -> None:
    _, _, reviews = _scenario()
    first = page_reviews(reviews, ReviewQuery(thing_name=THING, limit=1))
    assert len(first.reviews) == 1
    assert first.next_token is not None
    second = page_reviews(reviews, ReviewQuery(thing_name=THING, limit=1, after=first.next_token))
    assert second.next_token is None
    assert {first.reviews[0].id, second.reviews[0].id} == {r.id for r in reviews}
    assert page_reviews(reviews, ReviewQuery(thing_name="other")).reviews == ()
    assert page_reviews(reviews, ReviewQuery(thing_name=THING, shadow_names=(None,))).reviews == ()


# --- approve and reject --------------------------------------------------------------------


def test_approve_builds_the_update_with_the_version_its_record_and_event() -> None:
    service, log, reviews = _scenario()
    review = _threshold(reviews)
    shadow = service.get(THING, shadow_name=SHADOW)
    decision = resolve_review(
        review, "approve", shadow, now=T0 + 60, history=log, reviewer="ana", comment="fine"
    )
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"alertThreshold": 85}}
    assert decision.update["version"] == shadow["version"] == 3
    assert str(decision.update["clientToken"]).startswith("shadowsync-")
    (record,) = decision.records
    assert (record.previous_checksum, record.version, record.decision) == (log.head, 4, "merge")
    assert record.details is not None
    assert (record.details["reviewer"], record.details["comment"]) == ("ana", "fine")
    assert record.details["review"] == review.to_json()
    assert decision.review.status == "approved"
    assert decision.review.resolution is not None
    assert decision.review.resolution.record == record.checksum
    assert [e["DetailType"] for e in decision.events] == ["Conflict Resolved"]
    assert [m["MetricName"] for m in decision.metrics] == ["ConflictResolved"]
    # The record describes the shadow once the update is applied.
    after = service.update(THING, decision.update, shadow_name=SHADOW).document
    log.add(record)
    assert log.verify().ok
    assert log.replay(THING, SHADOW) == {"desired": after.desired, "reported": after.reported}


def test_reject_confirms_the_current_value() -> None:
    service, log, reviews = _scenario()
    shadow = service.get(THING, shadow_name=SHADOW)
    decision = resolve_review(_threshold(reviews), "reject", shadow, now=T0 + 60, history=log)
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"alertThreshold": 90}}
    assert (decision.review.status, decision.records[-1].decision) == ("rejected", "reject")


def test_a_moved_path_is_a_409() -> None:
    service, log, reviews = _scenario()
    service.update(THING, {"state": {"desired": {"alertThreshold": 95}}}, shadow_name=SHADOW)
    with pytest.raises(ReviewConflictError, match="alertThreshold is now 95, not 90") as caught:
        resolve_review(
            _threshold(reviews),
            "approve",
            service.get(THING, shadow_name=SHADOW),
            now=T0,
            history=log,
        )
    assert caught.value.to_response()["statusCode"] == 409
    with pytest.raises(ReviewConflictError, match="no longer exists"):
        resolve_review(_threshold(reviews), "approve", None, now=T0, history=log)


def test_a_settled_review_replays_the_same_way_and_refuses_the_other() -> None:
    service, log, reviews = _scenario()
    shadow = service.get(THING, shadow_name=SHADOW)
    settled = resolve_review(_threshold(reviews), "approve", shadow, now=T0 + 60, history=log)
    again = resolve_review(settled.review, "approve", shadow, now=T0 + 90, history=log)
    assert (again.replayed, again.update, again.records) == (True, None, ())
    assert again.to_json()["update"] == settled.to_json()["update"]
    with pytest.raises(ReviewConflictError, match="already approved"):
        resolve_review(settled.review, "reject", shadow, now=T0 + 90, history=log)
    with pytest.raises(ReviewNotFoundError):
        resolve_review(None, "reject", shadow, now=T0 + 90, history=log)


def test_the_manager_lists_approves_and_answers_404_409_and_500() -> None:
    service, log, reviews = _scenario()
    manager = _manager(service, log, reviews)
    listed = manager.handle({"operation": OPERATION, "action": "list", "thingName": THING}, now=T0)
    assert (listed.status_code, listed.body["count"], listed.body["nextToken"]) == (200, 2, None)
    request = {
        "operation": OPERATION,
        "action": "approve",
        "thingName": THING,
        "shadowName": SHADOW,
        "reviewId": _threshold(reviews).id,
    }
    approved = manager.handle(request, now=T0 + 60)
    assert approved.status_code == 200
    assert approved.updates == ((THING, SHADOW, approved.body["update"]),)
    assert [r.resolution is not None for r in approved.resolved] == [True]
    assert len(approved.records) == 1
    missing = manager.handle({**request, "reviewId": "nope"}, now=T0 + 60)
    assert missing.status_code == 404
    assert "has no review 'nope' of shadow 'configuration'" in missing.body["error"]
    service.update(THING, {"state": {"desired": {"alertThreshold": 95}}}, shadow_name=SHADOW)
    moved = manager.handle(request, now=T0 + 60)
    assert (moved.status_code, moved.updates, moved.records) == (409, (), ())
    bare = attrs.evolve(manager, read_reviews=None)
    assert bare.handle(request, now=T0).status_code == 500


def test_an_offline_sync_answer_carries_the_reviews_to_hold() -> None:
    service = InMemoryShadowService(clock=ManualClock(T0 + 100))
    service.update(THING, {"state": {"reported": {"rate": 5}}}, shadow_name=SHADOW)
    manager = SyncManager(
        read_shadow=lambda thing, shadow: service.get(thing, shadow_name=shadow),
        policy_for=lambda thing: ResolutionPolicy.recommended(),
    )
    response = manager.handle(
        {
            "operation": "offline_sync",
            "thingName": THING,
            "cachedChanges": [{"shadowName": SHADOW, "state": {"rate": 7}, "timestamp": T0}],
        },
        now=T0 + 200,
    )
    (review,) = response.reviews
    assert (review.item.current, review.item.proposed, review.item.section) == (5, 7, "reported")
    assert review.record == response.records[-1].checksum


# --- properties ----------------------------------------------------------------------------

_keys = st.sampled_from(("a", "b", "c/d", "~e"))


@given(
    path=st.lists(_keys, min_size=1, max_size=3).map(tuple),
    section=st.sampled_from(("desired", "reported")),
    current=values(1),
    proposed=values(1),
    action=st.sampled_from(("approve", "reject")),
)
def test_settling_a_review_writes_its_value_at_its_path(
    path: tuple[str, ...], section: Section, current: Any, proposed: Any, action: ReviewAction
) -> None:
    item = ReviewItem(id=review_id(section, path, current, proposed), path=path,
                      section=section, current=current, proposed=proposed, base=current,
                      reason="held")  # fmt: skip
    held = HeldReview(thing_name=THING, shadow_name=None, item=item, version=1,
                      held_at=T0, record="")  # fmt: skip
    assert HeldReview.from_json(json.loads(json.dumps(held.to_json()))) == held
    shadow = apply_update(None, {"state": item.reject()}, timestamp=T0).document
    decision = resolve_review(held, action, shadow, now=T0 + 1, history=())
    assert decision.update is not None
    assert decision.update["version"] == shadow.version
    after = apply_update(shadow, decision.update, timestamp=T0 + 1).document
    section_now = after.desired if section == "desired" else after.reported
    node: Any = section_now
    for key in path:
        node = node[key]
    assert node == (proposed if action == "approve" else current)
