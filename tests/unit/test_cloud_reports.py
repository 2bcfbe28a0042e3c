"""sync_check, conflict_summary, health_report, the SyncManager and explain_change.

The fleet tests build hundreds of devices with `tests.strategies.fleet.build_fleet` and compare
every report with what the fleet's own model says it should be, computed here without the
library.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from shadowsync import JSONObject, ShadowDocument, apply_update
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.cloud import (
    HealthThresholds,
    SyncCheckRequest,
    SyncManager,
    conflict_summary,
    explain_change,
    explain_versions,
    handle_delta_event,
    health_report,
    sync_check,
)
from shadowsync.errors import InvalidArgumentError
from shadowsync.rules import Range, RuleSet
from tests.strategies.fleet import HOUR, NOW, SHADOWS, THRESHOLDS, DeviceModel, Fleet, build_fleet

CONFLICT_TYPES = {"conflict_resolved", "manual_review", "rule_rejected"}


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build_fleet(size=300, seed=2024)


def label(name: str | None) -> str:
    return "$default" if name is None else name


def iso(timestamp: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()


# The fleet: health ------------------------------------------------------------------------


def expected_health(
    model: DeviceModel,
    thresholds: HealthThresholds = THRESHOLDS,
    names: tuple[str | None, ...] | None = None,
) -> dict[str, Any]:
    """The device's deviceHealth entry, from the fleet model and the documented rules: the
    shadows looked at are ``names`` (else the expected ones), conflicts count in all."""
    names = thresholds.expected_shadows if names is None else names
    warnings: list[str] = []
    present = 0
    pending = 0
    for name in names:
        shadow = model.shadows.get(name)
        if shadow is None:
            warnings.append(f"shadow {label(name)} not found")
            continue
        present += 1
        pending += len(shadow.pending)
        overdue = [
            stamp
            for stamp in shadow.pending.values()
            if NOW - stamp > thresholds.pending_after_seconds
        ]
        if overdue:
            warnings.append(
                f"{len(overdue)} desired value(s) in {label(name)} pending for "
                f"{NOW - min(overdue)} s"
            )
    offline: list[str] = []
    seen = [model.shadows[n].last_report for n in names if n in model.shadows]
    last_seen = max((t for t in seen if t is not None), default=None)
    if last_seen is None:
        offline.append("never reported")
    elif NOW - last_seen > thresholds.offline_after_seconds:
        offline.append(f"no report for {NOW - last_seen} s")
    window = NOW - thresholds.conflict_window_seconds
    conflicts = [
        r
        for _, r in model.records()
        if window <= r.timestamp <= NOW and r.change_type in CONFLICT_TYPES
    ]
    conflict: list[str] = []
    if conflicts:
        text = f"{len(conflicts)} conflict(s) in the last {thresholds.conflict_window_seconds} s"
        reviews = sum(1 for r in conflicts if r.change_type == "manual_review")
        if reviews:
            text += f", {reviews} held for review"
        if len(conflicts) >= thresholds.conflicts_for_conflict:
            conflict.append(text)
        else:
            warnings.append(text)
    status = (
        "offline" if offline else "conflict" if conflict else "warning" if warnings else "healthy"
    )
    return {
        "thingName": model.thing,
        "status": status,
        "shadowCount": present,
        "issues": offline + conflict + warnings,
        "lastSeen": None if last_seen is None else iso(last_seen),
        "pendingChanges": pending,
        "recentConflicts": len(conflicts),
    }


def fleet_health(fleet: Fleet) -> Any:
    return health_report(
        {"thingNames": list(fleet.things)},
        {thing: fleet.shadows_of(thing) for thing in fleet.things},
        now=NOW,
        history=fleet.read_history(None),
        thresholds=THRESHOLDS,
    )


def test_the_fleet_is_varied_enough_to_test_anything(fleet: Fleet) -> None:
    statuses = Counter(expected_health(model)["status"] for model in fleet.devices.values())
    assert len(fleet.devices) == 300
    assert min(statuses[s] for s in ("healthy", "warning", "conflict", "offline")) >= 15
    kinds = Counter(r.change_type for m in fleet.devices.values() for _, r in m.records())
    assert min(kinds[t] for t in ("update", *CONFLICT_TYPES)) >= 5
    issues = [i for m in fleet.devices.values() for i in expected_health(m)["issues"]]
    for fragment in ("never reported", "not found", "pending for", "held for review"):
        assert any(fragment in issue for issue in issues), fragment


def test_health_of_every_device_matches_the_fleet_model(fleet: Fleet) -> None:
    report = fleet_health(fleet)
    assert [d.to_json() for d in report.devices] == [
        expected_health(fleet.devices[thing]) for thing in fleet.things
    ]


def test_health_totals_match_the_fleet_model(fleet: Fleet) -> None:
    statuses = Counter(expected_health(model)["status"] for model in fleet.devices.values())
    body = fleet_health(fleet).to_json()
    assert body["reportTimestamp"] == iso(NOW)
    assert body["overallMetrics"] == {
        "totalDevices": 300,
        "healthyDevices": statuses["healthy"],
        "warningDevices": statuses["warning"],
        "devicesWithConflicts": statuses["conflict"],
        "offlineDevices": statuses["offline"],
    }
    text = fleet_health(fleet).to_text().splitlines()
    assert len(text) == 301 - statuses["healthy"]
    assert text[-1] == (
        f"300 devices: {statuses['healthy']} healthy, {statuses['warning']} warning, "
        f"{statuses['conflict']} conflict, {statuses['offline']} offline"
    )


def test_health_through_the_sync_manager_equals_the_direct_report(fleet: Fleet) -> None:
    response = fleet.manager().handle(
        {"operation": "health_report", "thingNames": list(fleet.things)}, now=NOW
    )
    assert response.status_code == 200
    assert response.body == fleet_health(fleet).to_json()


def test_health_with_other_thresholds_and_a_subset_of_shadows(fleet: Fleet) -> None:
    thresholds = HealthThresholds(
        expected_shadows=("configuration", "telemetry"),
        offline_after_seconds=6 * HOUR,
        pending_after_seconds=HOUR,
        conflict_window_seconds=48 * HOUR,
        conflicts_for_conflict=1,
    )
    things = list(fleet.things)[::7]
    report = health_report(
        {"thingNames": things},
        {thing: fleet.shadows_of(thing) for thing in things},
        now=NOW,
        history=fleet.read_history(None),
        thresholds=thresholds,
    )
    assert [d.to_json() for d in report.devices] == [
        expected_health(fleet.devices[t], thresholds) for t in things
    ]
    # The request's shadowNames override the expected shadows.
    names = ["$default", "maintenance"]
    narrowed = health_report(
        {"thingNames": things, "shadowNames": names},
        {thing: fleet.shadows_of(thing) for thing in things},
        now=NOW,
        history=fleet.read_history(None),
        thresholds=thresholds,
    )
    assert [d.to_json() for d in narrowed.devices] == [
        expected_health(fleet.devices[t], thresholds, (None, "maintenance")) for t in things
    ]


# The fleet: sync_check and conflict_summary ----------------------------------------------


def test_sync_check_of_every_shadow_matches_the_fleet_model(fleet: Fleet) -> None:
    for thing, model in fleet.devices.items():
        result = sync_check(
            {"thingName": thing, "shadowNames": [label(n) for n in SHADOWS], "recentHours": 24},
            fleet.shadows_of(thing),
            now=NOW,
            history=fleet.logs[thing],
        )
        assert result.thing_name == thing
        in_sync = 0
        conflicted = 0
        for status, name in zip(result.shadows, SHADOWS, strict=True):
            shadow = model.shadows.get(name)
            assert status.shadow_name == name
            if shadow is None:
                assert (status.exists, status.version, status.pending) == (False, None, ())
                assert (status.last_report, status.last_sync, status.recent_conflicts) == (
                    None,
                    None,
                    (),
                )
                continue
            recent = [
                (r.timestamp, r.change_type)
                for r in shadow.records
                if r.timestamp >= NOW - 24 * HOUR and r.change_type in CONFLICT_TYPES
            ]
            assert status.exists
            assert status.version == shadow.version
            assert sorted(status.pending) == sorted((key,) for key in shadow.pending)
            assert status.last_report == shadow.last_report
            assert status.last_sync == shadow.records[-1].timestamp
            assert [(r.timestamp, r.change_type) for r in status.recent_conflicts] == recent
            assert status.in_sync == (not shadow.pending)
            in_sync += status.in_sync
            conflicted += bool(recent)
            entry = status.to_json()
            assert entry["syncStatus"]["pendingChanges"] == sorted(shadow.pending)
            assert entry["lastSync"] == iso(shadow.records[-1].timestamp)
        percentage = 100.0 * in_sync / 4
        assert result.to_json()["overallHealth"] == {
            "healthPercentage": round(percentage, 1),
            "totalShadows": 4,
            "healthyShadows": in_sync,
            "conflictedShadows": conflicted,
            "status": "healthy"
            if percentage > 80
            else "degraded"
            if percentage > 60
            else "critical",
        }


def expected_summary(fleet: Fleet, hours: float, thing: str | None = None) -> dict[str, Any]:
    since = int(NOW - hours * 3600)
    counters: dict[str, Counter[str]] = {
        key: Counter() for key in ("thing", "shadow", "kind", "strategy", "decision")
    }
    records = 0
    for model in fleet.devices.values():
        if thing is not None and model.thing != thing:
            continue
        for name, record in model.records():
            if not since <= record.timestamp <= NOW or record.change_type not in CONFLICT_TYPES:
                continue
            records += 1
            for kind, strategy in record.entries:
                counters["thing"][model.thing] += 1
                counters["shadow"][f"{model.thing}/{label(name)}"] += 1
                counters["kind"][kind] += 1
                counters["strategy"][strategy] += 1
                counters["decision"][record.decision] += 1

    def ordered(counter: Counter[str]) -> list[tuple[str, int]]:
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))

    return {
        "records": records,
        "total": sum(counters["kind"].values()),
        **{key: ordered(counter) for key, counter in counters.items()},
    }


@pytest.mark.parametrize("hours", [24, 48, 0.5])
def test_conflict_summary_of_the_fleet_matches_the_fleet_model(fleet: Fleet, hours: float) -> None:
    summary = conflict_summary({"timeRangeHours": hours}, fleet.read_history(None), now=NOW)
    expected = expected_summary(fleet, hours)
    assert (summary.records, summary.total) == (expected["records"], expected["total"])
    assert list(summary.by_thing.items()) == expected["thing"]
    assert list(summary.by_shadow.items()) == expected["shadow"]
    assert list(summary.by_kind.items()) == expected["kind"]
    assert list(summary.by_strategy.items()) == expected["strategy"]
    assert list(summary.by_decision.items()) == expected["decision"]
    body = summary.to_json()
    assert body["totalConflicts"] == expected["total"]
    assert body["timeRange"] == f"{hours:g} hours"
    assert (body["from"], body["to"]) == (iso(int(NOW - hours * 3600)), iso(NOW))
    if hours >= 24:
        assert {k for k, _ in expected["kind"]} == {
            "concurrent_modification",
            "data_type_conflict",
            "business_rule_violation",
        }
        assert {s for s, _ in expected["strategy"]} == {
            "last_writer_wins",
            "manual_review",
            "rule:range:samplingRate",
        }


def test_conflict_summary_of_one_thing_through_the_sync_manager(fleet: Fleet) -> None:
    busiest = max(fleet.devices, key=lambda t: expected_summary(fleet, 24, t)["total"])
    expected = expected_summary(fleet, 24, busiest)
    assert expected["total"] >= 2
    response = fleet.manager().handle(
        {"operation": "conflict_summary", "thingName": busiest}, now=NOW
    )
    assert response.status_code == 200
    assert response.body["totalConflicts"] == expected["total"]
    assert list(response.body["conflictsByThing"].items()) == expected["thing"]
    assert list(response.body["conflictsByType"].items()) == expected["kind"]
    fleet_wide = fleet.manager().handle({"operation": "conflict_summary"}, now=NOW)
    assert fleet_wide.body["totalConflicts"] == expected_summary(fleet, 24)["total"]


def test_sync_check_through_the_sync_manager(fleet: Fleet) -> None:
    thing = next(t for t, m in fleet.devices.items() if "maintenance" not in m.shadows)
    request = {
        "operation": "sync_check",
        "thingName": thing,
        "shadowNames": ["maintenance", "configuration"],
    }
    response = fleet.manager().handle(request, now=NOW)
    direct = sync_check(
        SyncCheckRequest(thing_name=thing, shadow_names=("maintenance", "configuration")),
        {name: fleet.read_shadow(thing, name) for name in ("maintenance", "configuration")},
        now=NOW,
        history=fleet.logs[thing],
    )
    assert response.status_code == 200
    assert response.body == direct.to_json()
    assert response.body["syncResults"][0]["syncStatus"]["exists"] is False


# Seed scenario: a health report over a small fleet, exactly -------------------------------


def document(at: int, state: JSONObject, *later: tuple[int, JSONObject]) -> ShadowDocument:
    result = apply_update(None, {"state": state}, timestamp=at)
    for when, more in later:
        result = apply_update(result.document, {"state": more}, timestamp=when)
    return result.document


def test_a_health_report_over_a_small_fleet() -> None:
    log = AuditLog()
    for at, change in ((NOW - 90_000, "conflict_resolved"), (NOW - 600, "manual_review")):
        log.append(
            "pump-3",
            None,
            previous_state=None if not len(log) else {"reported": {"rpm": 900}},
            new_state={"reported": {"rpm": 900}},
            version=1,
            timestamp=at,
            change_type=change,  # type: ignore[arg-type]
            decision="merge" if change == "conflict_resolved" else "review",
            reason="settled",
        )
    shadows: dict[str, dict[str | None, Any]] = {
        "pump-1": {None: document(NOW - 60, {"reported": {"rpm": 900}})},
        "pump-2": {None: document(NOW - 7200, {"reported": {"rpm": 0}})},
        "pump-3": {None: document(NOW - 30, {"reported": {"rpm": 900}})},
        "pump-4": {
            None: document(
                NOW - 3000,
                {"reported": {"rpm": 900, "mode": "eco"}},
                (NOW - 900, {"desired": {"mode": "boost", "limit": 5}}),
                (NOW - 100, {"desired": {"rpm": 950}}),
            )
        },
        "pump-5": {},
    }
    report = health_report(
        {"thingNames": ["pump-1", "pump-2", "pump-3", "pump-4", "pump-5"]},
        shadows,
        now=NOW,
        history=log,
    )
    assert report.to_json() == {
        "reportTimestamp": iso(NOW),
        "deviceHealth": [
            {
                "thingName": "pump-1",
                "status": "healthy",
                "shadowCount": 1,
                "issues": [],
                "lastSeen": iso(NOW - 60),
                "pendingChanges": 0,
                "recentConflicts": 0,
            },
            {
                "thingName": "pump-2",
                "status": "offline",
                "shadowCount": 1,
                "issues": ["no report for 7200 s"],
                "lastSeen": iso(NOW - 7200),
                "pendingChanges": 0,
                "recentConflicts": 0,
            },
            {
                "thingName": "pump-3",
                "status": "conflict",
                "shadowCount": 1,
                "issues": ["1 conflict(s) in the last 86400 s, 1 held for review"],
                "lastSeen": iso(NOW - 30),
                "pendingChanges": 0,
                "recentConflicts": 1,
            },
            {
                "thingName": "pump-4",
                "status": "warning",
                "shadowCount": 1,
                "issues": ["2 desired value(s) in $default pending for 900 s"],
                "lastSeen": iso(NOW - 3000),
                "pendingChanges": 3,
                "recentConflicts": 0,
            },
            {
                "thingName": "pump-5",
                "status": "offline",
                "shadowCount": 0,
                "issues": ["never reported", "shadow $default not found"],
                "lastSeen": None,
                "pendingChanges": 0,
                "recentConflicts": 0,
            },
        ],
        "overallMetrics": {
            "totalDevices": 5,
            "healthyDevices": 1,
            "warningDevices": 1,
            "devicesWithConflicts": 1,
            "offlineDevices": 2,
        },
    }
    assert report.to_text() == "\n".join(
        [
            "pump-2: offline (no report for 7200 s)",
            "pump-3: conflict (1 conflict(s) in the last 86400 s, 1 held for review)",
            "pump-4: warning (2 desired value(s) in $default pending for 900 s)",
            "pump-5: offline (never reported; shadow $default not found)",
            "5 devices: 1 healthy, 1 warning, 1 conflict, 2 offline",
        ]
    )


def test_health_at_the_threshold_boundaries() -> None:
    shadows: dict[str, dict[str | None, Any]] = {
        "at-limit": {
            None: document(NOW - 3600, {"reported": {"a": 1}}, (NOW - 600, {"desired": {"a": 2}}))
        },
        "past-limit": {
            None: document(NOW - 3601, {"reported": {"a": 1}}, (NOW - 601, {"desired": {"a": 2}}))
        },
    }
    report = health_report({"thingNames": list(shadows)}, shadows, now=NOW)
    assert [(d.status, d.reasons) for d in report.devices] == [
        ("healthy", ()),
        ("offline", ("no report for 3601 s", "1 desired value(s) in $default pending for 601 s")),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("offline_after_seconds", 0),
        ("pending_after_seconds", -1),
        ("conflict_window_seconds", 1.5),
        ("conflicts_for_conflict", 0),
        ("expected_shadows", ()),
        ("expected_shadows", "configuration"),
        ("expected_shadows", (None, 7)),
    ],
)
def test_health_thresholds_refuse_nonsense(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        HealthThresholds(**{field: value})


def test_a_summary_counts_a_conflict_record_without_a_conflict_list_once() -> None:
    log = AuditLog()
    log.append(
        "pump-7",
        "configuration",
        previous_state=None,
        new_state={"desired": {"a": 1}},
        version=1,
        timestamp=NOW - 10,
        change_type="rule_rejected",
        decision="reject",
        reason="range",
    )
    log.append(
        "pump-7",
        "configuration",
        previous_state={"desired": {"a": 1}},
        new_state={"desired": {"a": 1}},
        version=1,
        timestamp=NOW - 5,
        change_type="update",
        decision="accept",
        reason="not a conflict",
    )
    summary = conflict_summary({"timeRangeHours": 1}, log, now=NOW)
    assert summary.to_json() == {
        "totalConflicts": 1,
        "records": 1,
        "conflictsByThing": {"pump-7": 1},
        "conflictsByShadow": {"pump-7/configuration": 1},
        "conflictsByType": {"rule_rejected": 1},
        "conflictsByStrategy": {"unknown": 1},
        "conflictsByDecision": {"reject": 1},
        "timeRange": "1 hour",
        "from": iso(NOW - 3600),
        "to": iso(NOW),
    }


# The sync manager ---------------------------------------------------------------------------


def _manager(shadow: Any = None, **options: Any) -> SyncManager:
    return SyncManager(read_shadow=lambda thing, name: shadow, **options)


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"operation": "reboot"}, "unknown operation 'reboot'"),
        (b"not json", "the request is not valid JSON"),
        ("[]", "the request must be a JSON object, got an array"),
        ({"operation": "sync_check"}, "sync_check needs a thingName"),
        ({"thingName": "pump-7", "verbose": True}, "unknown fields ['verbose'] for sync_check"),
        ({"operation": "health_report"}, "health_report needs thingNames"),
        ({"operation": "health_report", "thingNames": "pump-7"}, "thingNames must be a list"),
        (
            {"operation": "conflict_summary", "timeRangeHours": 0},
            "timeRangeHours must be a positive",
        ),
        (
            {"operation": "offline_sync", "thingName": "pump-7", "cachedChanges": {}},
            "cachedChanges must be a list",
        ),
    ],
)
def test_the_sync_manager_answers_malformed_requests_with_400(
    request_body: Any, message: str
) -> None:
    response = _manager().handle(request_body, now=NOW)
    assert response.status_code == 400
    assert message in response.body["error"]
    assert (response.updates, response.records, response.events, response.metrics) == (
        (),
        (),
        (),
        (),
    )
    assert json.loads(response.to_lambda()["body"]) == response.body
    assert response.to_lambda()["statusCode"] == 400


def test_an_unreadable_shadow_is_a_500_not_a_crash() -> None:
    response = _manager({"state": {"reported": {"a": None}}, "version": 1}).handle(
        {"operation": "sync_check", "thingName": "pump-7"}, now=NOW
    )
    assert response.status_code == 500
    assert response.body["operation"] == "sync_check"
    assert "the current shadow" in response.body["error"]


def test_resolve_reads_the_shadow_history_policy_and_rules_of_the_thing() -> None:
    shadow = document(
        NOW - 100, {"desired": {"rate": 9000, "mode": "eco"}, "reported": {"rate": 30}}
    )
    seen: list[Any] = []

    def read(thing: str, name: str | None) -> ShadowDocument:
        seen.append(("shadow", thing, name))
        return shadow

    def history(thing: str | None) -> AuditLog:
        seen.append(("history", thing))
        return AuditLog()

    def policy(thing: str) -> ResolutionPolicy:
        seen.append(("policy", thing))
        return ResolutionPolicy.recommended()

    manager = SyncManager(
        read_shadow=read,
        read_history=history,
        policy_for=policy,
        rules_for=lambda thing: RuleSet(rules=[Range(path="rate", maximum=600)]),
        event_bus="bus",
    )
    event = {
        "thingName": "pump-7",
        "shadowName": "configuration",
        "state": {"rate": 9000},
        "version": 1,
    }
    decision = manager.resolve(event, now=NOW)
    assert seen == [
        ("shadow", "pump-7", "configuration"),
        ("history", "pump-7"),
        ("policy", "pump-7"),
    ]
    direct = handle_delta_event(
        event,
        shadow,
        now=NOW,
        policy=ResolutionPolicy.recommended(),
        rules=RuleSet(rules=[Range(path="rate", maximum=600)]),
        event_bus="bus",
    )
    assert decision.to_json() == direct.to_json()
    assert decision.decision == "reject"
    assert decision.events[0]["EventBusName"] == "bus"


# explain_change and explain_versions -----------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "lines"),
    [
        ({"desired": {"a": 1}}, {"desired": {"a": 1, "b": "x"}}, ['desired.b added: "x"']),
        ({"reported": {"a": {"b": 1}}}, {"reported": {}}, ['reported.a removed (was {"b": 1})']),
        ({"desired": {"a": 1}}, {"desired": {"a": 2}}, ["desired.a changed from 1 to 2"]),
        ({"desired": {"a": 1}}, {"desired": {"a": 1.0}}, []),
        (
            {"desired": {"a": "1"}},
            {"desired": {"a": 1}},
            ['desired.a changed from string "1" to number 1'],
        ),
        (
            {"desired": {"on": True}},
            {"desired": {"on": 1}},
            ["desired.on changed from boolean true to number 1"],
        ),
        (
            {"reported": {"on": 0}},
            {"reported": {"on": False}},
            ["reported.on changed from number 0 to boolean false"],
        ),
        (
            {"desired": {"a": [1, 2]}},
            {"desired": {"a": [2, 1]}},
            ["desired.a changed from [1, 2] to [2, 1]"],
        ),
        (
            {"desired": {"a": [{"x": 1}, 2]}},
            {"desired": {"a": [{"x": 2}, 2, 3]}},
            ['desired.a changed from [{"x": 1}, 2] to [{"x": 2}, 2, 3]'],
        ),
        (
            {"desired": {"a": [True]}},
            {"desired": {"a": [1]}},
            ["desired.a changed from [true] to [1]"],
        ),
        ({"desired": {"a": [1]}}, {"desired": {"a": [1.0]}}, []),
        (
            {"desired": {"a": [1]}},
            {"desired": {"a": {"0": 1}}},
            ['desired.a changed from [1] to {"0": 1}'],
        ),
        (
            {"desired": {"a": {"b": {"c": 1}}}},
            {"desired": {"a": {"b": {"c": 2, "d": 3}}}},
            ["desired.a.b.c changed from 1 to 2", "desired.a.b.d added: 3"],
        ),
        (
            {"reported": {"weird key": 1, "a/b": 2, "température": 3}},
            {"reported": {"weird key": 2, "température": 4}},
            [
                'reported["a/b"] removed (was 2)',
                'reported["température"] changed from 3 to 4',
                'reported["weird key"] changed from 1 to 2',
            ],
        ),
        (
            {"reported": {"z": 1}},
            {"desired": {"z": 1}},
            ["desired.z added: 1", "reported.z removed (was 1)"],
        ),
        (None, {"desired": {"x": "y" * 100}}, ['desired.x added: "' + "y" * 56 + "..."]),
        (None, None, []),
    ],
)
def test_explain_change_says_what_changed(before: Any, after: Any, lines: list[str]) -> None:
    assert explain_change(before, after) == tuple(lines)


def test_explain_change_reads_documents() -> None:
    before = document(NOW, {"desired": {"mode": "eco"}, "reported": {"mode": "eco"}})
    after = apply_update(before, {"state": {"desired": {"mode": "boost"}}}, timestamp=NOW + 1)
    assert explain_change(before, after.document) == ('desired.mode changed from "eco" to "boost"',)


def test_explain_versions_rebuilds_each_version_from_the_log() -> None:
    log = AuditLog()
    states: list[JSONObject] = [
        {"desired": {"rate": 30}, "reported": {"rate": 30}},
        {"desired": {"rate": 60}, "reported": {"rate": 30}},
        {"desired": {"rate": 60}, "reported": {"rate": 60, "fw": "1.1"}},
    ]
    previous: JSONObject | None = None
    for version, state in enumerate(states, start=1):
        log.append(
            "pump-7",
            "configuration",
            previous_state=previous,
            new_state=state,
            version=version,
            timestamp=NOW + version,
            change_type="update",
            decision="accept",
            reason="recorded",
        )
        previous = state
    assert explain_versions(log, "pump-7", "configuration", 1, 3) == (
        "desired.rate changed from 30 to 60",
        'reported.fw added: "1.1"',
        "reported.rate changed from 30 to 60",
    )
    assert explain_versions(list(log), "pump-7", "configuration", 2, 1) == (
        "desired.rate changed from 60 to 30",
    )
    assert explain_versions(log, "pump-7", "configuration", 0, 1) == (
        "desired.rate added: 30",
        "reported.rate added: 30",
    )
    with pytest.raises(InvalidArgumentError, match="must be ints"):
        explain_versions(log, "pump-7", "configuration", 1, "3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="no records"):
        explain_versions(log, "pump-8", None, 1, 2)


def test_explain_versions_over_a_resolved_fleet_device(fleet: Fleet) -> None:
    thing, model = next(
        (t, m)
        for t, m in fleet.devices.items()
        if any(r.change_type == "conflict_resolved" for r in m.shadows["configuration"].records)
    )
    log = fleet.logs[thing]
    records: list[HistoryRecord] = list(log.records_for(thing, "configuration"))
    resolved = next(r for r in records if r.change_type == "conflict_resolved")
    before = max(r.version for r in records if r.version < resolved.version)
    lines = explain_versions(log, thing, "configuration", before, resolved.version)
    conflicts: Any = (resolved.details or {})["conflicts"]
    [entry] = conflicts
    assert f"desired.{entry['path']} changed from" in lines[0]
    assert model.shadows["configuration"].records
