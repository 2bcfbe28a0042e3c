"""Records before shadows: a failure between any two AWS calls, then a retry, leaves shadows
and history consistent; a retried event writes nothing; concurrent resolvers keep one chain."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

import boto3

from shadowsync.aws import (
    DynamoDBHistoryStore,
    IotShadowClient,
    conflict_resolver_handler,
    sync_manager_handler,
)
from shadowsync.strategies import Priority
from tests.adapters.aws.conftest import REGION, TABLE, CountingClient
from tests.adapters.aws.test_handlers import Interfering

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.adapters.aws.conftest import Aws

T0 = 1_700_000_000
SHADOW = "configuration"
INITIAL = {"samplingRate": 30, "alertThreshold": 80, "operatingMode": "normal"}
CLOUD = {"samplingRate": 60, "alertThreshold": 90, "operatingMode": "high_performance"}
DEVICE = {"samplingRate": 30, "alertThreshold": 85, "operatingMode": "power_save"}
DEVICE_WINS = Priority(sources={"device": 2, "cloud": 1})


class Crash(Exception):
    """The failure injected between two AWS calls (a Lambda timeout, a lost container)."""


class Budget:
    """How many AWS calls may still go out before the next one fails (None: no limit)."""

    def __init__(self, calls: int | None) -> None:
        self.calls = calls
        self.made = 0

    def spend(self, name: str) -> None:
        if self.calls is not None and self.made >= self.calls:
            raise Crash(f"failed before call {self.made + 1} ({name})")
        self.made += 1


class FailingClient:
    """A boto3 client whose calls fail with `Crash` once the shared budget is spent."""

    def __init__(self, client: Any, budget: Budget) -> None:
        self.client = client
        self.budget = budget

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name.startswith("get_waiter") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.budget.spend(name)
            return attribute(*args, **kwargs)

        return call


def _resolver(aws: Aws, budget: Budget, dynamodb: Any = None) -> Callable[[Any, Any], Any]:
    return conflict_resolver_handler(
        shadows=IotShadowClient(client=FailingClient(aws.iot_data, budget)),
        history=DynamoDBHistoryStore(
            client=FailingClient(dynamodb or aws.dynamodb, budget), table_name=TABLE
        ),
        policy_for=lambda thing: DEVICE_WINS,
        now=lambda: T0 + 5,
    )


def _diverged(aws: Aws, thing: str) -> dict[str, Any]:
    """The recipe's conflict on a fresh thing; returns the delta event of the device's write."""
    aws.create_thing(thing)
    aws.shadows.update(thing, {"state": {"desired": INITIAL, "reported": INITIAL}}, SHADOW)
    aws.shadows.update(thing, {"state": {"desired": CLOUD}}, SHADOW)
    first = {"thingName": thing, "shadowName": SHADOW, "state": CLOUD, "version": 2}
    assert _resolver(aws, Budget(None))(first, None)["decision"] == "accept"
    aws.shadows.update(thing, {"state": {"reported": DEVICE}}, SHADOW)
    document = aws.shadows.get(thing, SHADOW)
    assert document is not None
    return {"thingName": thing, "shadowName": SHADOW, "state": document.delta, "version": 3}


def _consistent(aws: Aws, thing: str, shadows: list[str]) -> None:
    history = aws.history.read(thing)
    assert history.verify().ok
    head = aws.history.read_head(thing, shadows)
    for name in shadows:
        document = aws.shadows.get(thing, name)
        assert document is not None
        state = {"desired": document.desired, "reported": document.reported}
        assert history.replay(thing, name) == state
        shadow = head.shadow(name)
        assert shadow is not None
        assert shadow.pending is None


def test_a_failure_between_any_two_calls_of_the_resolver_then_a_retry(aws: Aws) -> None:
    clean = Budget(None)
    event = _diverged(aws, "clean")
    expected = _resolver(aws, clean)(event, None)
    assert (expected["decision"], expected["attempts"]) == ("merge", 1)
    merged = aws.shadows.get("clean", SHADOW)
    assert merged is not None
    assert clean.made >= 5  # head reads, the record, the update, the confirmation
    for calls in range(clean.made):
        thing = f"crash-{calls}"
        event = _diverged(aws, thing)
        try:
            _resolver(aws, Budget(calls))(event, None)
        except Crash:
            pass
        else:  # pragma: no cover - every budget below the clean run's calls fails
            raise AssertionError(f"no failure with {calls} calls")
        retried = _resolver(aws, Budget(None))(event, None)
        assert retried["statusCode"] == 200
        assert (retried["decision"], retried["update"]["state"]) == (
            "merge",
            expected["update"]["state"],
        ), calls
        document = aws.shadows.get(thing, SHADOW)
        assert document is not None
        assert (document.desired, document.version) == (merged.desired, merged.version), calls
        _consistent(aws, thing, [SHADOW])
        # The decision is recorded once, whichever call failed.
        kinds = [r.change_type for r in aws.history.read(thing)]
        assert kinds == ["update", "conflict_resolved"], (calls, kinds)


def test_a_retried_event_returns_the_stored_decision_and_writes_nothing(aws: Aws) -> None:
    event = _diverged(aws, "sensor-001")
    first = _resolver(aws, Budget(None))(event, None)
    assert (first["decision"], first["replayed"]) == ("merge", False)
    counting = CountingClient(aws.dynamodb)
    again = _resolver(aws, Budget(None), counting)(event, None)
    assert again["replayed"] is True
    assert counting.written == 0
    for key in ("decision", "reason", "conflicts", "update", "pending", "version", "hasConflict"):
        assert again[key] == first[key], key
    assert again["historyHead"] == first["historyHead"]
    assert len(aws.history.read("sensor-001")) == 2
    document = aws.shadows.get("sensor-001", SHADOW)
    assert document is not None
    assert document.version == first["update"]["version"] + 1


def test_a_failure_between_any_two_calls_of_an_offline_sync_then_a_retry(aws: Aws) -> None:
    names = ["telemetry", "maintenance", "configuration"]
    request = {
        "operation": "offline_sync",
        "thingName": "gateway",
        "cachedChanges": [
            {"shadowName": name, "state": {"level": index}, "timestamp": T0}
            for index, name in enumerate(names)
        ],
    }

    def manager(budget: Budget) -> Callable[[Any, Any], Any]:
        return sync_manager_handler(
            shadows=IotShadowClient(client=FailingClient(aws.iot_data, budget)),
            history=DynamoDBHistoryStore(
                client=FailingClient(aws.dynamodb, budget), table_name=TABLE
            ),
            now=lambda: T0 + 60,
        )

    clean = Budget(None)
    aws.create_thing("gateway")
    assert manager(clean)(request, None)["statusCode"] == 200
    for calls in range(clean.made):
        thing = f"gateway-{calls}"
        aws.create_thing(thing)
        mine = {**request, "thingName": thing}
        try:
            manager(Budget(calls))(mine, None)
        except Crash:
            pass
        else:  # pragma: no cover - every budget below the clean run's calls fails
            raise AssertionError(f"no failure with {calls} calls")
        assert manager(Budget(None))(mine, None)["statusCode"] == 200, calls
        for index, name in enumerate(names):
            document = aws.shadows.get(thing, name)
            assert document is not None
            assert document.reported == {"level": index}, (calls, name)
        _consistent(aws, thing, names)


def _offline_request(thing: str, names: list[str]) -> dict[str, Any]:
    return {
        "operation": "offline_sync",
        "thingName": thing,
        "offlineDurationSeconds": 600,
        "cachedChanges": [
            {"shadowName": name, "state": {"level": index}, "timestamp": T0}
            for index, name in enumerate(names)
        ],
    }


def _sync_manager(aws: Aws, budget: Budget, dynamodb: Any = None) -> Callable[[Any, Any], Any]:
    return sync_manager_handler(
        shadows=IotShadowClient(client=FailingClient(aws.iot_data, budget)),
        history=DynamoDBHistoryStore(
            client=FailingClient(dynamodb or aws.dynamodb, budget), table_name=TABLE
        ),
        now=lambda: T0 + 60,
    )


def test_a_retried_offline_sync_returns_the_stored_answer_and_writes_nothing(aws: Aws) -> None:
    names = ["telemetry", "maintenance"]
    aws.create_thing("gateway")
    request = _offline_request("gateway", names)
    first = _sync_manager(aws, Budget(None))(request, None)
    body = json.loads(first["body"])
    assert (first["statusCode"], body["replayed"], body["processedChanges"]) == (200, False, 2)
    records = len(aws.history.read("gateway"))
    versions = [aws.shadows.get("gateway", name).version for name in names]  # type: ignore[union-attr]
    counting = CountingClient(aws.dynamodb)
    # Delivered again as the same dict, and as API Gateway's JSON body.
    for again in (request, {"body": json.dumps(request)}):
        counting.reset()
        answer = _sync_manager(aws, Budget(None), counting)(again, None)
        assert counting.written == 0
        # The stored answer, then the head items of the thing and its shadows (any update
        # left pending there would be finished first); no history record.
        assert counting.read == 1 + 1 + len(names)
        replayed = json.loads(answer["body"])
        assert replayed == {**body, "replayed": True}
    assert len(aws.history.read("gateway")) == records
    assert [aws.shadows.get("gateway", n).version for n in names] == versions  # type: ignore[union-attr]
    # A different request (another timestamp) is decided, not answered from the first.
    changed = _offline_request("gateway", names)
    changed["cachedChanges"][0]["timestamp"] = T0 + 1
    other = json.loads(_sync_manager(aws, Budget(None))(changed, None)["body"])
    assert other["replayed"] is False


def test_a_failure_after_an_offline_syncs_records_is_finished_by_its_retry(aws: Aws) -> None:
    """The answer is stored with the records: a retry after a failure before the updates
    sends the updates left pending, then answers from the stored answer."""
    names = ["telemetry", "maintenance"]
    aws.create_thing("gateway")
    request = _offline_request("gateway", names)
    clean = Budget(None)
    first = json.loads(_sync_manager(aws, clean)(request, None)["body"])
    for calls in range(clean.made):
        thing = f"gateway-{calls}"
        aws.create_thing(thing)
        mine = _offline_request(thing, names)
        with contextlib.suppress(Crash):
            _sync_manager(aws, Budget(calls))(mine, None)
        retried = json.loads(_sync_manager(aws, Budget(None))(mine, None)["body"])
        expected = {**first, "thingName": thing, "replayed": retried["replayed"]}
        for key in ("processedChanges", "conflictsDetected", "changes"):
            assert retried[key] == expected[key], (calls, key)
        _consistent(aws, thing, names)
        # Exactly one decision per shadow: no record of a second decision.
        assert len(aws.history.read(thing)) == len(names), calls


def test_an_offline_sync_whose_update_the_shadow_moved_past_is_decided_again(aws: Aws) -> None:
    """Another writer changes the shadow between the records (with the answer) and the update:
    the update gets 409, settling goes back on it and deletes the answer, so the request is
    decided again on the shadow as it is, never answered as applied."""
    aws.create_thing("gateway")
    aws.shadows.update("gateway", {"state": {"reported": {"temperature": 24.1}}}, "telemetry")

    def concurrent() -> None:
        aws.shadows.update("gateway", {"state": {"reported": {"pressure": 1}}}, "telemetry")

    handler = sync_manager_handler(
        shadows=Interfering(client=aws.iot_data, before_update=[concurrent]),
        history=aws.history,
        now=lambda: T0 + 100,
    )
    request = {
        "operation": "offline_sync",
        "thingName": "gateway",
        "offlineDurationSeconds": 600,
        "cachedChanges": [
            {"shadowName": "telemetry", "state": {"humidity": 70.1}, "timestamp": T0 + 50}
        ],
    }
    body = json.loads(handler(request, None)["body"])
    assert (body["replayed"], body["processedChanges"]) == (False, 1)
    document = aws.shadows.get("gateway", "telemetry")
    assert document is not None
    assert document.reported == {"temperature": 24.1, "pressure": 1, "humidity": 70.1}
    reasons = [r.reason for r in aws.history.read("gateway")]
    assert len(reasons) == 3
    assert "back to the state before it" in reasons[1]
    _consistent(aws, "gateway", ["telemetry"])
    # The answer kept is the second decision's: a retry is answered from it.
    again = json.loads(_sync_manager(aws, Budget(None))(request, None)["body"])
    assert again == {**body, "replayed": True}


def test_a_retry_after_the_shadow_moved_past_a_pending_offline_update_decides_again(
    aws: Aws,
) -> None:
    names = ["telemetry"]
    request = _offline_request("gateway", names)
    for thing in ("gateway", "probe"):
        # An existing shadow, so that the update carries the version it was decided on.
        aws.create_thing(thing)
        aws.shadows.update(thing, {"state": {"reported": {"other": 1}}}, "telemetry")
    # Records and answer stored, then the invocation dies before its update.
    with contextlib.suppress(Crash):
        _sync_manager(aws, Budget(_calls_before_first_update(aws, request)))(request, None)
    assert aws.history.answer("gateway", _parsed_key(request)) is not None
    aws.shadows.update("gateway", {"state": {"reported": {"level": 9}}}, "telemetry")
    retried = json.loads(_sync_manager(aws, Budget(None))(request, None)["body"])
    assert retried["replayed"] is False
    document = aws.shadows.get("gateway", "telemetry")
    assert document is not None
    assert retried["changes"][0]["status"] in ("applied", "conflict")
    assert document.reported["level"] == (0 if retried["changes"][0]["status"] == "applied" else 9)
    _consistent(aws, "gateway", names)


def _calls_before_first_update(aws: Aws, request: dict[str, Any]) -> int:
    """How many AWS calls an offline sync of ``probe`` (made like the request's thing) makes
    before its first update."""
    probe = {**request, "thingName": "probe"}
    calls: list[str] = []

    class Recording(Budget):
        def spend(self, name: str) -> None:
            calls.append(name)
            super().spend(name)

    _sync_manager(aws, Recording(None))(probe, None)
    return calls.index("update_thing_shadow")


def test_retire_removes_the_answers_of_retired_records(aws: Aws) -> None:
    names = ["telemetry"]
    aws.create_thing("gateway")
    manager = _sync_manager(aws, Budget(None))
    manager(_offline_request("gateway", names), None)
    later = _offline_request("gateway", names)
    later["cachedChanges"][0]["timestamp"] = T0 + 30
    later["cachedChanges"][0]["state"] = {"level": 5}
    manager(later, None)
    first_key = _parsed_key(_offline_request("gateway", names))
    later_key = _parsed_key(later)
    assert aws.history.answer("gateway", first_key) is not None
    aws.history.retire("gateway", 1)
    assert aws.history.answer("gateway", first_key) is None
    assert aws.history.answer("gateway", later_key) is not None
    assert aws.history.verify("gateway").ok


def _parsed_key(request: dict[str, Any]) -> str:
    from shadowsync.cloud import OfflineSyncRequest, parse_request

    parsed = parse_request(request)
    assert isinstance(parsed, OfflineSyncRequest)
    return parsed.request_key


def test_eight_concurrent_resolvers_on_one_thing_keep_one_chain(aws: Aws) -> None:
    thing = "gateway"
    names = [f"valve-{index}" for index in range(8)]
    aws.create_thing(thing)
    for index, name in enumerate(names):
        aws.shadows.update(thing, {"state": {"desired": {"open": index}}}, name)
    summaries: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    def resolve(name: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        iot_data = session.client("iot-data", endpoint_url=aws.endpoint)
        dynamodb = session.client("dynamodb", endpoint_url=aws.endpoint)
        handler = conflict_resolver_handler(
            shadows=IotShadowClient(client=iot_data),
            history=DynamoDBHistoryStore(client=dynamodb, table_name=TABLE),
            now=lambda: T0,
            max_attempts=50,
        )
        event = {"thingName": thing, "shadowName": name, "state": {"open": 0}, "version": 1}
        try:
            summaries.append(handler(event, None))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=resolve, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(summaries) == 8
    history = aws.history.read(thing)
    assert history.verify().ok
    # One record per decision, none lost and none twice.
    assert sorted(r.shadow_name or "" for r in history) == names
    assert sorted(s["historyHead"] for s in summaries) == sorted(r.checksum for r in history)
    _consistent(aws, thing, names)
