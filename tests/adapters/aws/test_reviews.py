"""Held reviews against moto: stored with their records, listed, approved and rejected with the
version check, a moved path refused, retries writing nothing, and every crash point."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync import ResolutionPolicy
from shadowsync.aws import (
    DynamoDBHistoryStore,
    IotShadowClient,
    conflict_resolver_handler,
    sync_manager_handler,
)
from shadowsync.cloud import ReviewQuery
from tests.adapters.aws.conftest import TABLE, CountingClient
from tests.adapters.aws.test_crash_points import (
    CLOUD,
    DEVICE,
    INITIAL,
    SHADOW,
    T0,
    Budget,
    Crash,
    FailingClient,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from shadowsync.cloud import HeldReview
    from tests.adapters.aws.conftest import Aws

STRICT = ResolutionPolicy.recommended()  # a configuration shadow's conflicts go to a person


class Capturing(CountingClient):
    """A counting client that also keeps each transaction's items."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions.append(kwargs["TransactItems"])
        return super().transact_write_items(**kwargs)


def _resolver(aws: Aws, dynamodb: Any = None) -> Callable[[Any, Any], dict[str, Any]]:
    return conflict_resolver_handler(
        shadows=aws.shadows,
        history=DynamoDBHistoryStore(client=dynamodb or aws.dynamodb, table_name=TABLE),
        policy_for=lambda thing: STRICT,
        now=lambda: T0 + 5,
    )


def _manager(
    aws: Aws, dynamodb: Any = None, iot_data: Any = None, events: Any = None
) -> Callable[[Any, Any], dict[str, Any]]:
    return sync_manager_handler(
        shadows=IotShadowClient(client=iot_data or aws.iot_data),
        history=DynamoDBHistoryStore(client=dynamodb or aws.dynamodb, table_name=TABLE),
        events_client=events,
        policy_for=lambda thing: STRICT,
        now=lambda: T0 + 60,
    )


def _held(aws: Aws, thing: str, dynamodb: Any = None) -> dict[str, Any]:
    """The recipe's conflict on ``thing``, held for review by the resolver; its summary."""
    aws.create_thing(thing)
    aws.shadows.update(thing, {"state": {"desired": INITIAL, "reported": INITIAL}}, SHADOW)
    aws.shadows.update(thing, {"state": {"desired": CLOUD}}, SHADOW)
    first = {"thingName": thing, "shadowName": SHADOW, "state": CLOUD, "version": 2}
    assert _resolver(aws)(first, None)["decision"] == "accept"
    aws.shadows.update(thing, {"state": {"reported": DEVICE}}, SHADOW)
    document = aws.shadows.get(thing, SHADOW)
    assert document is not None
    event = {"thingName": thing, "shadowName": SHADOW, "state": document.delta, "version": 3}
    summary = _resolver(aws, dynamodb)(event, None)
    assert (summary["decision"], summary["update"]) == ("review", None)
    return summary


def _call(handler: Callable[[Any, Any], dict[str, Any]], **request: Any) -> tuple[int, Any]:
    answer = handler({"operation": "resolve_pending_conflicts", **request}, None)
    return answer["statusCode"], json.loads(answer["body"])


def _pending(aws: Aws, thing: str) -> list[HeldReview]:
    return list(aws.history.read_reviews(ReviewQuery(thing_name=thing)).reviews)


def _review(aws: Aws, thing: str, review_id: str) -> HeldReview:
    query = ReviewQuery(
        thing_name=thing, shadow_names=(SHADOW,), review_id=review_id, resolved=True
    )
    return aws.history.read_reviews(query).reviews[0]


def _threshold_review(aws: Aws, thing: str) -> str:
    (review,) = [r for r in _pending(aws, thing) if r.item.path == ("alertThreshold",)]
    return review.id


def test_a_held_review_is_stored_in_the_transaction_of_its_record(aws: Aws) -> None:
    capturing = Capturing(aws.dynamodb)
    summary = _held(aws, "sensor-1", capturing)
    assert len(capturing.transactions) == 1
    kinds = sorted(
        item["Put"]["Item"].get("kind", {"S": "record"})["S"]
        for item in capturing.transactions[0]
        if "Put" in item
    )
    assert kinds == ["head", "record", "review", "review", "shadow-head"]
    history = aws.history.read("sensor-1")
    assert [r.change_type for r in history] == ["update", "manual_review"]
    reviews = _pending(aws, "sensor-1")
    assert sorted(r.item.path for r in reviews) == [("alertThreshold",), ("operatingMode",)]
    for review in reviews:
        assert (review.status, review.record, review.version) == ("pending", history.head, 3)
        assert (review.thing_name, review.shadow_name, review.held_at) == (
            "sensor-1",
            SHADOW,
            T0 + 5,
        )
    assert sorted(r.id for r in reviews) == sorted(i["id"] for i in summary["reviews"])
    # Reviews are not records: reading and verifying the chain does not meet them.
    assert history.verify().ok
    assert len(aws.history.read(None)) == 2


def test_list_pages_through_pending_reviews(aws: Aws) -> None:
    _held(aws, "sensor-1")
    manager = _manager(aws)
    status, body = _call(manager, action="list", thingName="sensor-1")
    assert (status, body["count"], body["nextToken"]) == (200, 2, None)
    assert {r["item"]["path"] for r in body["reviews"]} == {"alertThreshold", "operatingMode"}
    status, first = _call(manager, action="list", thingName="sensor-1", limit=1)
    assert (status, first["count"]) == (200, 1)
    assert first["nextToken"] is not None
    status, second = _call(
        manager, action="list", thingName="sensor-1", limit=1, nextToken=first["nextToken"]
    )
    assert status == 200
    seen = [first["reviews"][0]["reviewId"], *(r["reviewId"] for r in second["reviews"])]
    assert sorted(seen) == sorted(r["reviewId"] for r in body["reviews"])
    _, other = _call(manager, action="list", thingName="sensor-1", shadowName="telemetry")
    assert other["reviews"] == []
    status, bad = _call(manager, action="list", thingName="sensor-1", nextToken="12")
    assert status == 400
    assert "nextToken" in bad["error"]


def test_approve_sends_the_update_with_the_version_and_records_it(aws: Aws) -> None:
    queue = aws.event_queue()
    _held(aws, "sensor-1")
    review_id = _threshold_review(aws, "sensor-1")
    status, body = _call(
        _manager(aws, events=aws.events),
        action="approve",
        thingName="sensor-1",
        shadowName=SHADOW,
        reviewId=review_id,
        reviewer="ana",
        comment="the device knows best",
    )
    assert status == 200
    assert (body["status"], body["replayed"]) == ("approved", False)
    assert body["update"]["state"] == {"desired": {"alertThreshold": 85}}
    assert body["update"]["version"] == 3
    document = aws.shadows.get("sensor-1", SHADOW)
    assert document is not None
    assert (document.version, document.desired["alertThreshold"]) == (4, 85)
    history = aws.history.read("sensor-1")
    assert history.verify().ok
    assert [r.change_type for r in history] == ["update", "manual_review", "update"]
    last = history[-1]
    assert last.checksum == body["historyHead"]
    assert last.decision == "merge"
    assert last.details is not None
    assert (last.details["reviewer"], last.details["action"]) == ("ana", "approve")
    assert last.details["update"] == body["update"]
    assert history.replay("sensor-1", SHADOW) == {
        "desired": document.desired,
        "reported": document.reported,
    }
    settled = _review(aws, "sensor-1", review_id)
    assert settled.status == "approved"
    assert settled.resolution is not None
    assert (settled.resolution.reviewer, settled.resolution.record) == ("ana", last.checksum)
    assert [r.item.path for r in _pending(aws, "sensor-1")] == [("operatingMode",)]
    head = aws.history.read_head("sensor-1", [SHADOW]).shadow(SHADOW)
    assert head is not None
    assert head.pending is None
    assert [e["detail-type"] for e in aws.received(queue, 1)] == ["Conflict Resolved"]


def test_reject_confirms_the_cloud_value(aws: Aws) -> None:
    _held(aws, "sensor-1")
    review_id = _threshold_review(aws, "sensor-1")
    status, body = _call(
        _manager(aws), action="reject", thingName="sensor-1", shadowName=SHADOW, reviewId=review_id
    )
    assert (status, body["status"]) == (200, "rejected")
    assert body["update"]["state"] == {"desired": {"alertThreshold": 90}}
    document = aws.shadows.get("sensor-1", SHADOW)
    assert document is not None
    assert (document.version, document.desired["alertThreshold"]) == (4, 90)
    history = aws.history.read("sensor-1")
    assert history.verify().ok
    assert history[-1].decision == "reject"
    assert _review(aws, "sensor-1", review_id).status == "rejected"
    # Settled one way, it cannot be settled the other.
    status, body = _call(
        _manager(aws), action="approve", thingName="sensor-1", shadowName=SHADOW, reviewId=review_id
    )
    assert status == 409
    assert "already rejected" in body["error"]


def test_approve_on_a_moved_path_is_a_409_and_writes_nothing(aws: Aws) -> None:
    _held(aws, "sensor-1")
    review_id = _threshold_review(aws, "sensor-1")
    aws.shadows.update("sensor-1", {"state": {"desired": {"alertThreshold": 95}}}, SHADOW)
    counting = CountingClient(aws.dynamodb)
    status, body = _call(
        _manager(aws, counting),
        action="approve",
        thingName="sensor-1",
        shadowName=SHADOW,
        reviewId=review_id,
    )
    assert status == 409
    assert "desired.alertThreshold is now 95, not 90" in body["error"]
    assert counting.written == 0
    document = aws.shadows.get("sensor-1", SHADOW)
    assert document is not None
    assert (document.version, document.desired["alertThreshold"]) == (4, 95)
    assert len(aws.history.read("sensor-1")) == 2
    assert _review(aws, "sensor-1", review_id).status == "pending"


def test_an_unknown_review_is_a_404(aws: Aws) -> None:
    _held(aws, "sensor-1")
    status, body = _call(
        _manager(aws), action="approve", thingName="sensor-1", shadowName=SHADOW, reviewId="nope"
    )
    assert status == 404
    assert "no review 'nope'" in body["error"]


def test_a_retried_approve_answers_from_what_is_stored_and_writes_nothing(aws: Aws) -> None:
    _held(aws, "sensor-1")
    review_id = _threshold_review(aws, "sensor-1")
    request = {"action": "approve", "thingName": "sensor-1", "shadowName": SHADOW}
    _, first = _call(_manager(aws), **request, reviewId=review_id)
    counting = CountingClient(aws.dynamodb)
    status, again = _call(_manager(aws, counting), **request, reviewId=review_id)
    assert (status, again["replayed"], counting.written) == (200, True, 0)
    for key in ("status", "update", "historyHead", "reviewId"):
        assert again[key] == first[key], key
    document = aws.shadows.get("sensor-1", SHADOW)
    assert document is not None
    assert document.version == 4
    assert len(aws.history.read("sensor-1")) == 3


def test_an_offline_sync_holds_its_reviews_with_its_records(aws: Aws) -> None:
    aws.create_thing("gateway")
    # The shadow's values are newer than the device's cached ones: a conflict on each path,
    # which the strict policy holds for a person.
    aws.shadows.update("gateway", {"state": {"reported": {"rate": 5}}}, SHADOW)
    request = {
        "operation": "offline_sync",
        "thingName": "gateway",
        "cachedChanges": [{"shadowName": SHADOW, "state": {"rate": 7}, "timestamp": T0}],
    }
    answer = _manager(aws)(request, None)
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200
    assert len(body["reviews"]) == 1
    (review,) = _pending(aws, "gateway")
    history = aws.history.read("gateway")
    assert (review.record, review.item.proposed, review.item.current) == (history.head, 7, 5)
    status, approved = _call(
        _manager(aws),
        action="approve",
        thingName="gateway",
        shadowName=SHADOW,
        reviewId=review.id,
    )
    assert (status, approved["update"]["state"]) == (200, {"reported": {"rate": 7}})
    document = aws.shadows.get("gateway", SHADOW)
    assert document is not None
    assert document.reported == {"rate": 7}
    assert aws.history.read("gateway").verify().ok


def _consistent(aws: Aws, thing: str, review_id: str) -> None:
    history = aws.history.read(thing)
    assert history.verify().ok
    document = aws.shadows.get(thing, SHADOW)
    assert document is not None
    assert history.replay(thing, SHADOW) == {
        "desired": document.desired,
        "reported": document.reported,
    }
    head = aws.history.read_head(thing, [SHADOW]).shadow(SHADOW)
    assert head is not None
    assert head.pending is None


def test_a_failure_between_any_two_calls_of_an_approve_then_a_retry(aws: Aws) -> None:
    def approve(thing: str, budget: Budget) -> tuple[int, Any]:
        return _call(
            _manager(
                aws,
                FailingClient(aws.dynamodb, budget),
                FailingClient(aws.iot_data, budget),
            ),
            action="approve",
            thingName=thing,
            shadowName=SHADOW,
            reviewId=_threshold_review(aws, thing),
        )

    _held(aws, "clean")
    clean = Budget(None)
    status, expected = approve("clean", clean)
    assert status == 200
    assert clean.made >= 6  # the head, the review, the shadow, the records, update, confirm
    for calls in range(clean.made):
        thing = f"crash-{calls}"
        _held(aws, thing)
        review_id = _threshold_review(aws, thing)
        try:
            approve(thing, Budget(calls))
        except Crash:
            pass
        else:  # pragma: no cover - every budget below the clean run's calls fails
            raise AssertionError(f"no failure with {calls} calls")
        status, retried = _call(
            _manager(aws),
            action="approve",
            thingName=thing,
            shadowName=SHADOW,
            reviewId=review_id,
        )
        assert status == 200, (calls, retried)
        assert retried["update"]["state"] == expected["update"]["state"], calls
        document = aws.shadows.get(thing, SHADOW)
        assert document is not None
        assert (document.version, document.desired["alertThreshold"]) == (4, 85), calls
        _consistent(aws, thing, review_id)
        # The approval is recorded once and the review settled once, by that record.
        history = aws.history.read(thing)
        assert [r.change_type for r in history] == ["update", "manual_review", "update"], calls
        settled = _review(aws, thing, review_id)
        assert settled.resolution is not None
        assert (settled.status, settled.resolution.record) == ("approved", history.head), calls
        assert [r.item.path for r in _pending(aws, thing)] == [("operatingMode",)], calls


def test_a_retried_review_event_writes_nothing(aws: Aws) -> None:
    first = _held(aws, "sensor-1")
    counting = CountingClient(aws.dynamodb)
    event = {"thingName": "sensor-1", "shadowName": SHADOW, "state": {}, "version": 3}
    again = _resolver(aws, counting)(event, None)
    assert (again["replayed"], counting.written) == (True, 0)
    assert again["reviews"] == first["reviews"]
    assert len(_pending(aws, "sensor-1")) == 2


class UpdateFails:
    """An iot-data client whose shadow updates fail with `Crash` (reads go through)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_thing_shadow(self, **kwargs: Any) -> Any:
        raise Crash("lost before the update")


def test_an_approval_whose_update_never_landed_is_held_again(aws: Aws) -> None:
    _held(aws, "sensor-1")
    review_id = _threshold_review(aws, "sensor-1")
    request = {"action": "approve", "thingName": "sensor-1", "shadowName": SHADOW}
    with pytest.raises(Crash):
        _call(_manager(aws, iot_data=UpdateFails(aws.iot_data)), **request, reviewId=review_id)
    assert _review(aws, "sensor-1", review_id).status == "approved"
    # Another writer moves the shadow on before the retry: the stored update cannot apply.
    aws.shadows.update("sensor-1", {"state": {"desired": {"samplingRate": 45}}}, SHADOW)
    status, body = _call(_manager(aws), **request, reviewId=review_id)
    assert (status, body["replayed"]) == (200, False)
    assert body["update"]["version"] == 4
    document = aws.shadows.get("sensor-1", SHADOW)
    assert document is not None
    assert (document.desired["alertThreshold"], document.desired["samplingRate"]) == (85, 45)
    history = aws.history.read("sensor-1")
    assert history.verify().ok
    reasons = [r.reason for r in history][2:]
    assert "not applied" in reasons[1]
    assert [r.decision for r in history][2:] == ["merge", "accept", "merge"]
    assert _review(aws, "sensor-1", review_id).resolution is not None
    _consistent(aws, "sensor-1", review_id)
    # Both approvals were settled in the same second: a retry answers from the later one, the
    # one whose update landed, not from the one gone back on.
    settled = _review(aws, "sensor-1", review_id).resolution
    assert settled is not None
    assert settled.update["version"] == 4
    status, again = _call(_manager(aws), **request, reviewId=review_id)
    assert (status, again["replayed"], again["update"]["version"]) == (200, True, 4)


def test_a_decision_holding_more_reviews_than_a_transaction_fits_stores_them_all(
    aws: Aws,
) -> None:
    thing, keys = "mixer", [f"k{index}" for index in range(130)]
    aws.create_thing(thing)
    zero = dict.fromkeys(keys, 0)
    aws.shadows.update(thing, {"state": {"desired": zero, "reported": zero}}, SHADOW)
    event = {"thingName": thing, "shadowName": SHADOW, "state": {}, "version": 1}
    assert _resolver(aws)(event, None)["decision"] == "accept"
    aws.shadows.update(thing, {"state": {"desired": dict.fromkeys(keys, 1)}}, SHADOW)
    aws.shadows.update(thing, {"state": {"reported": dict.fromkeys(keys, 2)}}, SHADOW)
    event = {"thingName": thing, "shadowName": SHADOW, "state": {}, "version": 3}
    summary = _resolver(aws)(event, None)
    assert (summary["decision"], len(summary["reviews"])) == ("review", 130)
    history = aws.history.read(thing)
    assert [r.change_type for r in history] == ["update", "manual_review"]
    found: list[HeldReview] = []
    token = None
    while True:
        page = aws.history.read_reviews(ReviewQuery(thing_name=thing, limit=50, after=token))
        found.extend(page.reviews)
        token = page.next_token
        if token is None:
            break
    assert sorted(r.item.path[0] for r in found) == sorted(keys)
    assert {r.record for r in found} == {history.head}
