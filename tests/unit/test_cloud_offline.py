"""offline_sync end to end: a device back from hours offline replays its cached changes.

Each scenario writes the shadows through an `InMemoryShadowService`, runs `offline_sync` on the
shadows as read, applies every decision's update, stores every record in an `AuditLog` (which
must verify and replay to the shadows' states) and checks the response, events and metrics.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.audit import AuditLog
from shadowsync.cloud import (
    EVENT_SOURCE,
    OfflineSyncRequest,
    OfflineSyncResult,
    OperationError,
    SyncManager,
    offline_sync,
)
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import NoFirmwareDowngrade, Range, RuleSet
from shadowsync.testing import InMemoryShadowService, ManualClock

if TYPE_CHECKING:
    from shadowsync import JSONObject

THING = "sensor-001"
T0 = 1_700_000_000
NOW = T0 + 7200
TELEMETRY: JSONObject = {"temperature": 23.5, "humidity": 45.2, "pressure": 1013.25}
CACHED: JSONObject = {"temperature": 28.5, "humidity": 70.1, "pressure": 1015.2}
RULES = RuleSet(
    rules=[
        NoFirmwareDowngrade(path="firmwareVersion"),
        Range(path="batteryLevel", minimum=0, maximum=100),
    ]
)


class Device:
    """A thing's shadows in the service and their history."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.service = InMemoryShadowService(clock=self.clock)
        self.log = AuditLog()

    def write(self, shadow: str | None, at: int, section: str, state: JSONObject) -> None:
        self.clock.set(at)
        self.service.update(THING, {"state": {section: state}}, shadow_name=shadow)

    def shadows(self, *names: str | None) -> dict[str | None, Any]:
        return {name: self.service.document(THING, name) for name in names}

    def sync(
        self, request: dict[str, Any], *names: str | None, **options: Any
    ) -> OfflineSyncResult:
        return offline_sync(
            {"thingName": THING, **request},
            self.shadows(*names),
            now=NOW,
            history=self.log,
            **options,
        )

    def apply(self, result: OfflineSyncResult) -> None:
        self.clock.set(NOW)
        for decision in result.decisions:
            if decision.update is not None:
                applied = self.service.update(
                    THING, decision.update, shadow_name=decision.shadow_name
                )
                assert applied.document.version == decision.record.version
            for record in decision.records:
                self.log.add(record)
            document = self.service.document(THING, decision.shadow_name)
            assert document is not None
            assert self.log.replay(THING, decision.shadow_name) == {
                "desired": document.desired,
                "reported": document.reported,
            }
        assert self.log.verify().ok


def offline_request(changes: list[dict[str, Any]], duration: int = 3600) -> dict[str, Any]:
    return {"offlineDurationSeconds": duration, "cachedChanges": changes}


def metrics(result: OfflineSyncResult) -> list[tuple[str, Any, str, list[str]]]:
    return [
        (m["MetricName"], m["Value"], m["Unit"], [d["Value"] for d in m["Dimensions"]])
        for m in result.metrics
    ]


def events(result: OfflineSyncResult) -> list[tuple[str, dict[str, Any]]]:
    for entry in result.events:
        assert entry["Source"] == EVENT_SOURCE
        assert entry["Time"] == NOW
    return [(e["DetailType"], json.loads(e["Detail"])) for e in result.events]


# The seed's scenario: an hour offline, telemetry cached -----------------------------------


def telemetry_device() -> Device:
    device = Device()
    device.write("telemetry", T0, "reported", TELEMETRY)
    return device


def test_an_hour_of_cached_telemetry_applies_when_nobody_wrote_since() -> None:
    device = telemetry_device()
    result = device.sync(
        offline_request([{"shadowName": "telemetry", "state": CACHED, "timestamp": NOW - 3600}]),
        "telemetry",
    )
    [decision] = result.decisions
    assert decision.update is not None
    assert decision.update["state"] == {"reported": CACHED}
    assert decision.update["version"] == 1
    assert (decision.decision, decision.reason) == ("merge", "applied the device's offline changes")
    body = result.to_json()
    assert body == {
        "thingName": THING,
        "offlineDurationSeconds": 3600,
        "processedChanges": 1,
        "conflictsDetected": 0,
        "conflicts": [],
        "reviews": [],
        "changes": [
            {
                "shadowName": "telemetry",
                "timestamp": NOW - 3600,
                "status": "applied",
                "applied": ["/temperature", "/humidity", "/pressure"],
                "conflicts": [],
            }
        ],
        "shadows": [decision.to_json()],
        "syncCompleted": "2023-11-15T00:13:20+00:00",
    }
    assert decision.to_json()["version"] == 2
    assert events(result) == [
        (
            "Offline Sync Completed",
            {
                "thingName": THING,
                "offlineDurationSeconds": 3600,
                "processedChanges": 1,
                "conflictsDetected": 0,
                "timestamp": "2023-11-15T00:13:20+00:00",
            },
        )
    ]
    assert metrics(result) == [
        # No ThingName dimension: a metric per thing would be billed per thing.
        ("ConflictDetected", 0, "Count", ["telemetry"]),
        ("SyncCompleted", 1, "Count", ["telemetry"]),
        ("PendingDeltaKeys", 0, "Count", ["telemetry"]),
        ("OfflineSync", 1, "Count", []),
        ("OfflineChanges", 1, "Count", []),
        ("OfflineDuration", 3600, "Seconds", []),
    ]
    assert decision.record.change_type == "update"
    device.apply(result)
    document = device.service.document(THING, "telemetry")
    assert document is not None
    assert document.reported == CACHED


def test_a_newer_write_clashes_with_the_cached_change_and_the_rest_applies() -> None:
    device = telemetry_device()
    device.write("telemetry", NOW - 1800, "reported", {"temperature": 25.0})
    result = device.sync(
        offline_request([{"shadowName": "telemetry", "state": CACHED, "timestamp": NOW - 3600}]),
        "telemetry",
    )
    conflict = {
        "path": "temperature",
        "pointer": "/temperature",
        "section": "reported",
        "kind": "concurrent_modification",
        "severity": "medium",
        "base": None,
        "ours": 25.0,
        "theirs": 28.5,
        "strategy": "last_writer_wins",
        "winner": "ours",
        "value": 25.0,
        "reason": f"ours written later ({NOW - 1800})",
        "reviewId": None,
        "cloud": 25.0,
        "device": 28.5,
        "winnerSide": "cloud",
    }
    body = result.to_json()
    assert (body["processedChanges"], body["conflictsDetected"]) == (0, 1)
    assert body["conflicts"] == [conflict]
    assert body["changes"] == [
        {
            "shadowName": "telemetry",
            "timestamp": NOW - 3600,
            "status": "conflict",
            "applied": ["/humidity", "/pressure"],
            "conflicts": [conflict],
        }
    ]
    [decision] = result.decisions
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"humidity": 70.1, "pressure": 1015.2}}
    assert decision.update["version"] == 2
    assert (decision.decision, decision.reason) == (
        "merge",
        "1 conflict(s) resolved by last_writer_wins",
    )
    assert decision.record.change_type == "conflict_resolved"
    assert [kind for kind, _ in events(result)] == ["Conflict Resolved", "Offline Sync Completed"]
    assert events(result)[0][1]["conflicts"] == [conflict]
    assert events(result)[1][1]["conflictsDetected"] == 1
    assert [(name, value) for name, value, _, _ in metrics(result)][:4] == [
        ("ConflictDetected", 1),
        ("ConflictResolved", 1),
        ("SyncCompleted", 1),
        ("PendingDeltaKeys", 0),
    ]
    device.apply(result)
    document = device.service.document(THING, "telemetry")
    assert document is not None
    assert document.reported == {"temperature": 25.0, "humidity": 70.1, "pressure": 1015.2}


def test_a_write_at_the_same_second_as_the_cached_change_is_not_newer() -> None:
    device = telemetry_device()
    device.write("telemetry", NOW - 3600, "reported", {"temperature": 25.0})
    result = device.sync(
        offline_request([{"shadowName": "telemetry", "state": CACHED, "timestamp": NOW - 3600}]),
        "telemetry",
    )
    assert [c.status for c in result.changes] == ["applied"]
    assert len(result.decisions[0].report) == 0


def test_the_recommended_policy_holds_a_configuration_clash_for_review() -> None:
    device = Device()
    device.write("configuration", T0, "reported", {"mode": "normal", "rate": 30})
    device.write("configuration", NOW - 60, "reported", {"mode": "eco"})
    result = device.sync(
        offline_request(
            [
                {
                    "shadowName": "configuration",
                    "state": {"mode": "boost", "rate": 45},
                    "timestamp": NOW - 600,
                }
            ]
        ),
        "configuration",
        policy=ResolutionPolicy.recommended(),
    )
    [decision] = result.decisions
    assert [(r.path, r.current, r.proposed) for r in decision.reviews] == [
        (("mode",), "eco", "boost")
    ]
    assert decision.decision == "review"
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"rate": 45}}
    assert [(c.status, c.applied) for c in result.changes] == [("review", (("rate",),))]
    assert (result.processed_changes, result.conflicts_detected) == (0, 1)
    assert [kind for kind, _ in events(result)] == [
        "Manual Review Required",
        "Offline Sync Completed",
    ]
    device.apply(result)
    document = device.service.document(THING, "configuration")
    assert document is not None
    assert document.reported == {"mode": "eco", "rate": 45}


# Coalescing and statuses ------------------------------------------------------------------


def test_cached_changes_coalesce_in_timestamp_order_path_by_path() -> None:
    device = telemetry_device()
    changes = [
        {"shadowName": "telemetry", "state": {"temperature": 30.0}, "timestamp": NOW - 100},
        {
            "shadowName": "telemetry",
            "state": {"temperature": 29.0, "humidity": 50.0},
            "timestamp": NOW - 3000,
        },
        {"shadowName": "telemetry", "state": {"humidity": 45.2}, "timestamp": NOW - 200},
        {"shadowName": "telemetry", "state": {"pressure": 1000.0}, "timestamp": NOW - 3500},
        {"shadowName": "telemetry", "state": {"pressure": 1001.0}, "timestamp": NOW - 3500},
    ]
    result = device.sync(offline_request(changes), "telemetry")
    # In request order: the first is newest (applied); the second is overridden on both its
    # paths; the third brings humidity back to what the shadow holds; of the two with equal
    # timestamps the later one in the request wins.
    assert [(c.status, c.applied) for c in result.changes] == [
        ("applied", (("temperature",),)),
        ("superseded", ()),
        ("unchanged", ()),
        ("superseded", ()),
        ("applied", (("pressure",),)),
    ]
    assert [c.timestamp for c in result.changes] == [c["timestamp"] for c in changes]
    assert result.processed_changes == 3
    [decision] = result.decisions
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"temperature": 30.0, "pressure": 1001.0}}
    assert decision.record.details is not None
    assert decision.record.details["cachedChanges"] == 5
    device.apply(result)


def test_a_cached_null_deletes_and_nested_values_merge() -> None:
    device = Device()
    device.write(None, T0, "reported", {"led": {"color": "red", "level": 3}, "fan": "on"})
    result = device.sync(
        offline_request(
            [
                {"state": {"led": {"level": 5}, "fan": None}, "timestamp": NOW - 50},
                {
                    "shadowName": "$default",
                    "state": {"led": {"blink": True}},
                    "timestamp": NOW - 40,
                },
            ]
        ),
        None,
    )
    [decision] = result.decisions
    assert decision.shadow_name is None
    assert decision.to_json()["shadowName"] == "$default"
    assert decision.update is not None
    assert decision.update["state"] == {
        "reported": {"led": {"level": 5, "blink": True}, "fan": None}
    }
    assert [(c.status, c.applied, c.shadow_name) for c in result.changes] == [
        ("applied", (("led", "level"), ("fan",)), None),
        ("applied", (("led", "blink"),), None),
    ]
    device.apply(result)
    document = device.service.document(THING)
    assert document is not None
    assert document.reported == {"led": {"color": "red", "level": 5, "blink": True}}


def test_a_shadow_that_does_not_exist_is_created_and_shadows_are_chained_in_order() -> None:
    device = telemetry_device()
    result = device.sync(
        offline_request(
            [
                {
                    "shadowName": "maintenance",
                    "state": {"firmwareVersion": "v1.0.1"},
                    "timestamp": NOW - 10,
                },
                {"shadowName": "telemetry", "state": {"temperature": 24.0}, "timestamp": NOW - 20},
            ]
        ),
        "telemetry",
        "maintenance",
    )
    assert [d.shadow_name for d in result.decisions] == ["maintenance", "telemetry"]
    first, second = result.decisions
    assert first.update is not None
    assert "version" not in first.update  # nothing to lock on: the shadow is created
    assert first.record.version == 1
    assert first.record.previous_checksum == ""
    assert second.record.previous_checksum == first.record.checksum
    device.apply(result)


def test_a_shadow_with_history_continues_its_chain() -> None:
    device = telemetry_device()
    first = device.sync(
        offline_request(
            [{"shadowName": "telemetry", "state": {"temperature": 24.0}, "timestamp": NOW - 100}]
        ),
        "telemetry",
    )
    device.apply(first)
    second = device.sync(
        # Not older than the first sync's write (made at NOW): it applies.
        offline_request(
            [{"shadowName": "telemetry", "state": {"temperature": 24.5}, "timestamp": NOW}]
        ),
        "telemetry",
    )
    [decision] = second.decisions
    assert decision.record.previous_checksum == device.log.head
    assert decision.record.timestamp == NOW
    device.apply(second)
    assert device.log.replay(THING, "telemetry", version=2)["reported"] == {
        **TELEMETRY,
        "temperature": 24.0,
    }
    assert device.log.replay(THING, "telemetry")["reported"] == {**TELEMETRY, "temperature": 24.5}


def test_a_shadow_recreated_with_a_lower_version_chains_on_from_the_newest_record() -> None:
    device = telemetry_device()
    for index in range(3):
        done = device.sync(
            offline_request(
                [
                    {
                        "shadowName": "telemetry",
                        "state": {"temperature": 24.0 + index},
                        "timestamp": NOW + index,
                    }
                ]
            ),
            "telemetry",
        )
        device.apply(done)
    assert device.log[-1].version == 4
    device.clock.set(NOW)
    device.service.delete(THING, "telemetry")
    device.clock.set(NOW + 49 * 3600)
    device.service.update(
        THING, {"state": {"reported": {"humidity": 10.0}}}, shadow_name="telemetry"
    )
    other = device.sync(
        offline_request([{"shadowName": "maintenance", "state": {"x": 1}, "timestamp": NOW - 5}]),
        "maintenance",
    )
    device.apply(other)  # another shadow's record is now the newest
    result = offline_sync(
        {
            "thingName": THING,
            **offline_request(
                [
                    {
                        "shadowName": "telemetry",
                        "state": {"temperature": 20.0},
                        "timestamp": NOW + 49 * 3600,
                    }
                ]
            ),
        },
        device.shadows("telemetry"),
        now=NOW + 49 * 3600 + 1,
        history=device.log,
    )
    [decision] = result.decisions
    # A delete record closes the old history, chained to the newest record of the log; the
    # decision's record starts the new history from the empty state.
    closing, record = decision.records
    assert record is decision.record
    assert (closing.change_type, closing.version, closing.patch[:0]) == ("delete", 4, [])
    assert closing.previous_checksum == device.log.head
    assert record.previous_checksum == closing.checksum
    assert record.version == 2
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"temperature": 20.0}}
    device.clock.set(NOW + 49 * 3600 + 1)
    device.service.update(THING, decision.update, shadow_name="telemetry")
    for stored in decision.records:
        device.log.add(stored)
    assert device.log.verify().ok
    assert device.log.replay(THING, "telemetry") == {
        "desired": {},
        "reported": {"humidity": 10.0, "temperature": 20.0},
    }


# Business rules ---------------------------------------------------------------------------


def test_rules_refuse_a_cached_downgrade_and_an_impossible_battery_level() -> None:
    device = Device()
    device.write("maintenance", T0, "reported", {"firmwareVersion": "v2.0.0", "batteryLevel": 80})
    result = device.sync(
        offline_request(
            [
                {
                    "shadowName": "maintenance",
                    "state": {"firmwareVersion": "v1.9.0", "batteryLevel": 140, "uptime": 3600},
                    "timestamp": NOW - 100,
                }
            ]
        ),
        "maintenance",
        rules=RULES,
    )
    [decision] = result.decisions
    assert decision.decision == "reject"
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"uptime": 3600}}
    assert decision.acknowledgement is not None
    assert decision.acknowledgement.to_dict()["rejected"] == [
        {
            "path": "/firmwareVersion",
            "rule": "no_firmware_downgrade:firmwareVersion",
            "reason": '"v1.9.0" is a downgrade from "v2.0.0"',
        },
        {
            "path": "/batteryLevel",
            "rule": "range:batteryLevel",
            "reason": "140 is greater than the maximum 100",
        },
    ]
    assert [(c.status, c.applied, c.conflicts) for c in result.changes] == [
        ("rejected", (("uptime",),), ())
    ]
    assert [kind for kind, _ in events(result)] == ["Change Rejected", "Offline Sync Completed"]
    assert [(name, value) for name, value, _, _ in metrics(result)][:4] == [
        ("ConflictDetected", 0),
        ("ChangeRejected", 2),
        ("SyncCompleted", 1),
        ("PendingDeltaKeys", 0),
    ]
    assert decision.record.change_type == "rule_rejected"
    device.apply(result)
    document = device.service.document(THING, "maintenance")
    assert document is not None
    assert document.reported == {"firmwareVersion": "v2.0.0", "batteryLevel": 80, "uptime": 3600}
    assert "v1.9.0" not in json.dumps(document.to_dict())


def test_a_refused_value_for_a_new_path_is_not_created() -> None:
    device = Device()
    device.write("maintenance", T0, "reported", {"uptime": 1})
    result = device.sync(
        offline_request(
            [{"shadowName": "maintenance", "state": {"batteryLevel": -5}, "timestamp": NOW - 1}]
        ),
        "maintenance",
        rules=RULES,
    )
    [decision] = result.decisions
    assert (decision.decision, decision.update) == ("reject", None)
    assert [c.status for c in result.changes] == ["rejected"]
    device.apply(result)
    document = device.service.document(THING, "maintenance")
    assert document is not None
    assert document.reported == {"uptime": 1}


def test_a_refused_cached_object_leaves_the_reported_value_as_it_was() -> None:
    device = Device()
    device.write("maintenance", T0, "reported", {"batteryLevel": 80})
    result = device.sync(
        offline_request(
            [
                {
                    "shadowName": "maintenance",
                    "state": {"batteryLevel": {"cell1": 40, "cell2": 41}},
                    "timestamp": NOW - 1,
                }
            ]
        ),
        "maintenance",
        rules=RULES,
    )
    [decision] = result.decisions
    assert [v.path for v in decision.report] == [("batteryLevel",)]
    assert (decision.decision, decision.update) == ("reject", None)
    assert [c.status for c in result.changes] == ["rejected"]
    device.apply(result)
    document = device.service.document(THING, "maintenance")
    assert document is not None
    assert document.reported == {"batteryLevel": 80}


# Through the sync manager, and errors ----------------------------------------------------


def test_the_sync_manager_lists_the_updates_and_records_to_write() -> None:
    device = telemetry_device()
    device.write("telemetry", NOW - 1800, "reported", {"temperature": 25.0})
    manager = SyncManager(
        read_shadow=lambda thing, shadow: device.service.document(thing, shadow),
        read_history=lambda thing: device.log,
        event_bus="fleet-bus",
    )
    request = {
        "operation": "offline_sync",
        "thingName": THING,
        **offline_request([{"shadowName": "telemetry", "state": CACHED, "timestamp": NOW - 3600}]),
    }
    response = manager.handle(request, now=NOW)
    direct = device.sync(dict(request), "telemetry", event_bus="fleet-bus")
    assert response.status_code == 200
    assert response.body == direct.to_json()
    assert response.updates == tuple(
        (THING, "telemetry", d.update) for d in direct.decisions if d.update is not None
    )
    assert response.records == tuple(d.record for d in direct.decisions)
    assert response.events == direct.events
    assert all(entry["EventBusName"] == "fleet-bus" for entry in response.events)
    assert response.metrics == direct.metrics
    assert json.loads(response.to_lambda()["body"]) == response.body
    for thing, shadow, update in response.updates:
        device.service.update(thing, update, shadow_name=shadow)
    for record in response.records:
        device.log.add(record)
    assert device.log.verify().ok


def test_every_shadow_a_change_touches_must_be_given() -> None:
    device = telemetry_device()
    with pytest.raises(InvalidArgumentError, match="shadows has no entry for 'maintenance'"):
        device.sync(
            offline_request([{"shadowName": "maintenance", "state": {"a": 1}, "timestamp": 1}]),
            "telemetry",
        )


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}, "too many levels of nesting"),
        ({"blob": "x" * 9000}, "exceeds the maximum size"),
    ],
)
def test_cached_changes_the_service_would_refuse_are_a_bad_request(
    state: JSONObject, message: str
) -> None:
    device = telemetry_device()
    request = offline_request([{"shadowName": "telemetry", "state": state, "timestamp": NOW}])
    with pytest.raises(OperationError, match=message) as caught:
        device.sync(request, "telemetry")
    assert caught.value.operation == "offline_sync"
    assert "the cached changes of shadow 'telemetry' cannot be applied" in caught.value.message
    manager = SyncManager(read_shadow=lambda thing, shadow: device.service.document(thing, shadow))
    response = manager.handle({"operation": "offline_sync", "thingName": THING, **request}, now=NOW)
    assert response.status_code == 400
    assert response.body["operation"] == "offline_sync"
    assert (response.updates, response.records, response.events) == ((), (), ())


def test_a_parsed_request_is_accepted_as_is() -> None:
    device = telemetry_device()
    parsed = OfflineSyncRequest(thing_name=THING, offline_duration_seconds=5)
    result = offline_sync(parsed, {}, now=NOW)
    assert (result.changes, result.decisions) == ((), ())
    assert result.to_json()["offlineDurationSeconds"] == 5
    assert [name for name, *_ in metrics(result)] == [
        "OfflineSync",
        "OfflineChanges",
        "OfflineDuration",
    ]
    del device


# Timestamps that cannot be trusted -------------------------------------------------------


def test_a_change_in_milliseconds_or_far_ahead_is_refused_with_a_reason() -> None:
    from shadowsync import apply_update
    from shadowsync.cloud import offline_sync
    from shadowsync.errors import InvalidArgumentError

    now = 1_700_003_600
    written = apply_update(
        None, {"state": {"reported": {"temperature": 23.5}}}, timestamp=now - 60
    ).document
    request = {
        "thingName": "sensor-1",
        "cachedChanges": [
            # The recipe's own history table stamps in milliseconds.
            {"shadowName": "telemetry", "state": {"temperature": 99.0}, "timestamp": now * 1000},
            {"shadowName": "telemetry", "state": {"temperature": 98.0}, "timestamp": now + 86400},
            {"shadowName": "telemetry", "state": {"humidity": 70.1}, "timestamp": now - 600},
            {"shadowName": "other", "state": {"x": 1}, "timestamp": now + 301},
        ],
    }
    result = offline_sync(request, {"telemetry": written, "other": None}, now=now)
    body = result.to_json()
    assert [c["status"] for c in body["changes"]] == ["refused", "refused", "applied", "refused"]
    assert "milliseconds" in body["changes"][0]["reason"]
    assert "86400 s ahead" in body["changes"][1]["reason"]
    assert "301 s ahead" in body["changes"][3]["reason"]
    assert "reason" not in body["changes"][2]
    [decision] = result.decisions  # "other" had only refused changes: left alone
    assert decision.update is not None
    assert decision.update["state"] == {"reported": {"humidity": 70.1}}
    allowed = offline_sync(request, {"telemetry": written, "other": None}, now=now, max_skew=400)
    assert [c.status for c in allowed.changes][3] == "applied"
    with pytest.raises(InvalidArgumentError, match="max_skew"):
        offline_sync(request, {"telemetry": written, "other": None}, now=now, max_skew=-1)
