"""The Lambda handlers end to end against moto: the seed's scenario, 409 retries, sync manager."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from shadowsync import ResolutionPolicy
from shadowsync.aws import (
    IotShadowClient,
    conflict_resolver_handler,
    sync_manager_handler,
)
from shadowsync.errors import VersionConflictError
from shadowsync.strategies import Priority

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.adapters.aws.conftest import Aws

THING = "sensor-001"
SHADOW = "configuration"
T0 = 1_700_000_000
INITIAL = {"samplingRate": 30, "alertThreshold": 80, "operatingMode": "normal"}
CLOUD = {"samplingRate": 60, "alertThreshold": 90, "operatingMode": "high_performance"}
DEVICE = {"samplingRate": 30, "alertThreshold": 85, "operatingMode": "power_save"}
# moto stamps every metadata leaf with the time of the latest update (AWS keeps per-leaf
# times), so last-writer-wins would see a tie; a source priority settles it the same way.
DEVICE_WINS = Priority(sources={"device": 2, "cloud": 1})


@attrs.frozen(kw_only=True)
class Interfering(IotShadowClient):
    """Runs ``before_update`` (once) just before the first update: a concurrent writer."""

    before_update: list[Callable[[], None]]

    def update(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        while self.before_update:
            self.before_update.pop()()
        return super().update(*args, **kwargs)


def _delta_event(aws: Aws) -> dict[str, Any]:
    document = aws.shadows.get(THING, SHADOW)
    assert document is not None
    return {
        "state": document.delta or {},
        "version": document.version,
        "thingName": THING,
        "shadowName": SHADOW,
    }


def _seed(aws: Aws, **options: Any) -> Callable[[Any, Any], dict[str, Any]]:
    """The seed: a baseline recorded by the resolver, then the cloud and the device diverge."""
    aws.create_thing(THING)
    aws.shadows.update(THING, {"state": {"desired": INITIAL, "reported": INITIAL}}, SHADOW)
    handler = conflict_resolver_handler(
        shadows=options.pop("shadows", aws.shadows),
        history=aws.history,
        events_client=aws.events,
        cloudwatch_client=aws.cloudwatch,
        now=lambda: T0,
        **options,
    )
    baseline = handler(_delta_event(aws), None)
    assert (baseline["decision"], baseline["reason"], baseline["update"]) == (
        "accept",
        "in sync",
        None,
    )
    aws.shadows.update(THING, {"state": {"desired": CLOUD}}, SHADOW)
    aws.shadows.update(THING, {"state": {"reported": DEVICE}}, SHADOW)
    return handler


def test_resolver_merges_the_seed_conflict_and_records_and_emits(aws: Aws) -> None:
    queue = aws.event_queue()
    handler = _seed(aws, policy_for=lambda thing: DEVICE_WINS)
    summary = handler(_delta_event(aws), None)
    assert summary["statusCode"] == 200
    assert (summary["decision"], summary["attempts"], summary["recordsStored"]) == (
        "merge",
        1,
        1,
    )
    assert [(c["path"], c["value"]) for c in summary["conflicts"]] == [
        ("alertThreshold", 85),
        ("operatingMode", "power_save"),
    ]
    assert summary["pending"] == ["/samplingRate"]
    json.dumps(summary)  # the summary is JSON-able as it is
    document = aws.shadows.get(THING, SHADOW)
    assert document is not None
    assert document.version == 4
    assert document.desired == {**DEVICE, "samplingRate": 60}
    assert document.delta == {"samplingRate": 60}
    history = aws.history.read(THING)
    assert history.verify().ok
    assert [r.change_type for r in history] == ["update", "conflict_resolved"]
    assert history.replay(THING, SHADOW) == {
        "desired": document.desired,
        "reported": document.reported,
    }
    assert summary["historyHead"] == history.head
    assert [e["detail-type"] for e in aws.received(queue, 1)] == ["Conflict Resolved"]
    assert summary["eventsSent"] == 1
    names = {m["MetricName"] for m in aws.cloudwatch.list_metrics()["Metrics"]}
    assert {"ConflictDetected", "ConflictResolved", "SyncCompleted"} <= names


def test_resolver_holds_the_seed_conflict_for_review(aws: Aws) -> None:
    queue = aws.event_queue()
    handler = _seed(aws, policy_for=lambda thing: ResolutionPolicy.recommended())
    summary = handler(_delta_event(aws), None)
    assert (summary["decision"], summary["update"]) == ("review", None)
    document = aws.shadows.get(THING, SHADOW)
    assert document is not None
    assert (document.version, document.desired) == (3, CLOUD)
    assert [r.change_type for r in aws.history.read(THING)] == ["update", "manual_review"]
    assert [e["detail-type"] for e in aws.received(queue, 1)] == ["Manual Review Required"]


def test_a_write_between_read_and_update_forces_a_new_decision(aws: Aws) -> None:
    def concurrent_report() -> None:
        aws.shadows.update(THING, {"state": {"reported": {"samplingRate": 45}}}, SHADOW)

    interfering = Interfering(client=aws.iot_data, before_update=[])
    handler = _seed(aws, shadows=interfering, policy_for=lambda thing: DEVICE_WINS)
    interfering.before_update.append(concurrent_report)
    summary = handler(_delta_event(aws), None)
    assert (summary["decision"], summary["attempts"]) == ("merge", 2)
    assert summary["update"]["version"] == 4  # decided again on the shadow the writer left
    document = aws.shadows.get(THING, SHADOW)
    assert document is not None
    assert document.desired == {**DEVICE, "samplingRate": 45}
    assert document.delta is None
    history = aws.history.read(THING)
    assert history.verify().ok
    assert history.replay(THING, SHADOW)["desired"] == document.desired


def test_the_retry_budget_ends_in_the_version_conflict(aws: Aws) -> None:
    writes = [0]

    def concurrent_report() -> None:
        writes[0] += 1
        aws.shadows.update(THING, {"state": {"reported": {"samplingRate": writes[0]}}}, SHADOW)

    interfering = Interfering(client=aws.iot_data, before_update=[])
    handler = _seed(aws, shadows=interfering, policy_for=lambda thing: DEVICE_WINS, max_attempts=2)
    original = Interfering.update

    def always_interfere(self: Interfering, *args: Any, **kwargs: Any) -> dict[str, Any]:
        concurrent_report()
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Interfering, "update", always_interfere)
        with pytest.raises(VersionConflictError):
            handler(_delta_event(aws), None)
    assert [r.change_type for r in aws.history.read(THING)] == ["update"]


def test_a_record_written_meanwhile_by_another_resolver_is_chained_after(aws: Aws) -> None:
    _seed(aws, policy_for=lambda thing: DEVICE_WINS)
    other = conflict_resolver_handler(shadows=aws.shadows, history=aws.history, now=lambda: T0)

    def other_thing_resolved() -> None:
        # Another shadow of the same thing is recorded while this resolver writes its update.
        aws.shadows.update(THING, {"state": {"reported": {"x": 1}}}, "telemetry")
        other({"thingName": THING, "shadowName": "telemetry", "state": {}, "version": 1}, None)

    interfering = Interfering(client=aws.iot_data, before_update=[other_thing_resolved])
    resolver = conflict_resolver_handler(
        shadows=interfering,
        history=aws.history,
        policy_for=lambda thing: DEVICE_WINS,
        now=lambda: T0 + 1,
    )
    summary = resolver(_delta_event(aws), None)
    assert summary["decision"] == "merge"
    history = aws.history.read(THING)
    assert history.verify().ok
    # Records go in before their update is sent: the other resolver's record, written while
    # this one sent its update, follows it in the chain.
    assert [(r.shadow_name, r.change_type) for r in history] == [
        (SHADOW, "update"),
        (SHADOW, "conflict_resolved"),
        ("telemetry", "update"),
    ]
    document = aws.shadows.get(THING, SHADOW)
    assert document is not None
    assert history.replay(THING, SHADOW)["desired"] == document.desired


def test_a_malformed_delta_event_is_a_400(aws: Aws) -> None:
    handler = conflict_resolver_handler(shadows=aws.shadows, history=aws.history)
    answer = handler({"state": {}}, None)
    assert answer["statusCode"] == 400
    assert "thingName" in answer["error"]


def test_sync_manager_serves_each_operation(aws: Aws) -> None:
    queue = aws.event_queue()
    resolver = _seed(aws, policy_for=lambda thing: DEVICE_WINS)
    resolver(_delta_event(aws), None)
    aws.shadows.update(THING, {"state": {"reported": {"temperature": 24.1}}}, "telemetry")
    handler = sync_manager_handler(
        shadows=aws.shadows,
        history=aws.history,
        events_client=aws.events,
        cloudwatch_client=aws.cloudwatch,
        now=lambda: T0 + 100,
    )

    def call(request: Any) -> tuple[int, dict[str, Any]]:
        response = handler(request, None)
        return response["statusCode"], json.loads(response["body"])

    status, body = call(
        {"operation": "sync_check", "thingName": THING, "shadowNames": [SHADOW, "telemetry"]}
    )
    assert status == 200
    assert [r["syncStatus"]["inSync"] for r in body["syncResults"]] == [False, True]
    assert body["syncResults"][0]["syncStatus"]["pendingPaths"] == ["/samplingRate"]

    status, body = call({"operation": "conflict_summary", "timeRangeHours": 24})
    assert (status, body["totalConflicts"]) == (200, 2)  # two paths in one decision

    status, body = call({"operation": "health_report", "thingNames": [THING, "ghost"],
                         "shadowNames": [SHADOW]})  # fmt: skip
    assert status == 200
    assert {d["thingName"]: d["status"] for d in body["deviceHealth"]}["ghost"] == "offline"

    offline = {
        "operation": "offline_sync",
        "thingName": THING,
        "offlineDurationSeconds": 600,
        "cachedChanges": [
            {"shadowName": "telemetry", "state": {"humidity": 70.1}, "timestamp": T0 + 50}
        ],
    }
    status, body = call({"body": json.dumps(offline), "httpMethod": "POST"})  # API Gateway
    assert (status, body["processedChanges"]) == (200, 1)
    telemetry = aws.shadows.get(THING, "telemetry")
    assert telemetry is not None
    assert telemetry.reported == {"temperature": 24.1, "humidity": 70.1}
    history = aws.history.read(THING)
    assert history.verify().ok
    assert history.replay(THING, "telemetry")["reported"] == telemetry.reported
    assert "Offline Sync Completed" in [e["detail-type"] for e in aws.received(queue, 2)]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"operation": "reboot"}, "unknown operation 'reboot'"),
        ({"operation": "sync_check"}, "sync_check needs a thingName"),
        ({"body": "{not json", "httpMethod": "POST"}, "not valid JSON"),
    ],
)
def test_sync_manager_answers_a_malformed_request_with_400(
    aws: Aws, request_: Any, message: str
) -> None:
    handler = sync_manager_handler(shadows=aws.shadows, history=aws.history)
    response = handler(request_, None)
    assert response["statusCode"] == 400
    assert message in json.loads(response["body"])["error"]


def test_the_recipes_validation_steps_on_a_fresh_table_find_its_conflicts(aws: Aws) -> None:
    """Steps 3 and 2 of the recipe's Validation and Testing, with no hand-made history: each
    update's delta event reaches the resolver in turn, as the IoT rule delivers them."""
    queue = aws.event_queue()
    aws.create_thing(THING)
    reported = {**INITIAL, "firmwareVersion": "v1.0.0"}
    aws.shadows.update(THING, {"state": {"desired": INITIAL, "reported": reported}}, SHADOW)
    handler = conflict_resolver_handler(
        shadows=aws.shadows,
        history=aws.history,
        events_client=aws.events,
        policy_for=lambda thing: DEVICE_WINS,
        now=lambda: T0,
    )
    # Update 1: the cloud changes the configuration; its delta event.
    aws.shadows.update(THING, {"state": {"desired": CLOUD}}, SHADOW)
    first = handler({**_delta_event(aws)}, None)
    assert (first["decision"], first["hasConflict"]) == ("accept", False)
    # Update 2: the device reports different values; its delta event.
    aws.shadows.update(
        THING, {"state": {"reported": {**DEVICE, "firmwareVersion": "v1.0.1"}}}, SHADOW
    )
    second = handler({**_delta_event(aws)}, None)
    assert (second["decision"], second["hasConflict"]) == ("merge", True)
    assert [(c["path"], c["cloud"], c["device"], c["winnerSide"]) for c in second["conflicts"]] == [
        ("alertThreshold", 90, 85, "device"),
        ("operatingMode", "high_performance", "power_save", "device"),
    ]
    assert second["pending"] == ["/samplingRate"]
    assert [e["detail-type"] for e in aws.received(queue, 1)] == ["Conflict Resolved"]
    history = aws.history.read(THING)
    assert [r.change_type for r in history] == ["update", "conflict_resolved"]
    assert history.verify().ok
