"""The delta-event resolver end to end: the service, the decision, the update and the history.

Every scenario runs through an `InMemoryShadowService` on a `ManualClock`: the delta event is
the one the service publishes, the decision's update is applied with ``service.update`` and its
record added to an `AuditLog`, which must verify and replay to the shadow's state.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync import apply_update
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync._patch import apply_json_patch
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.cloud import (
    EVENT_SOURCE,
    EVENT_TYPES,
    METRIC_NAMES,
    DeltaEvent,
    OperationError,
    ShadowDecision,
    handle_delta_event,
)
from shadowsync.errors import VersionConflictError
from shadowsync.rules import NoFirmwareDowngrade, Range, RuleSet
from shadowsync.strategies import MISSING, OwnerWins
from shadowsync.testing import InMemoryShadowService, ManualClock

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync import JSONObject, ShadowDocument, UpdateResult

THING = "sensor-001"
SHADOW = "configuration"
T0 = 1_700_000_000
INITIAL: JSONObject = {"samplingRate": 30, "alertThreshold": 80, "operatingMode": "normal"}
CLOUD: JSONObject = {"samplingRate": 60, "alertThreshold": 90, "operatingMode": "high_performance"}
DEVICE: JSONObject = {
    "samplingRate": 30,
    "alertThreshold": 85,
    "operatingMode": "power_save",
    "firmwareVersion": "v1.0.1",
}
SEED_DEVICE_CONFIG: dict[str, Any] = {
    "strategy": "field_level_merge",
    "field_priorities": {
        "alertThreshold": "high",
        "firmwareVersion": "high",
        "samplingRate": "medium",
        "operatingMode": "low",
    },
    "auto_resolve_threshold": 5,
    "manual_review_severity": "high",
}
RULES = RuleSet(
    rules=[
        NoFirmwareDowngrade(path="firmwareVersion"),
        Range(path="samplingRate", minimum=1, maximum=3600),
    ]
)


# Independent re-computations of the derived values -----------------------------------------


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def token(thing: str, shadow: str | None, version: int, state: Mapping[str, Any]) -> str:
    """The client token of an update of ``state`` (``{section: values}``): derived from the
    thing, the shadow, the version it locks on, the section and the values."""
    digest = hashlib.sha256(canonical([thing, shadow, version, state]).encode()).hexdigest()
    return "shadowsync-" + digest[:32]


def review_id(path: str, current: Any, proposed: Any) -> str:
    text = canonical(["desired", [path], current, proposed])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def dimensions(shadow: str = SHADOW) -> list[dict[str, str]]:
    # No ThingName dimension: each dimension value is a custom metric, billed per thing.
    return [{"Name": "ShadowName", "Value": shadow}]


def metric(name: str, value: int, at: int, shadow: str = SHADOW) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dimensions(shadow=shadow),
        "Timestamp": at,
        "Value": value,
        "Unit": "Count",
    }


def details(decision: ShadowDecision) -> list[tuple[str, dict[str, Any]]]:
    """Each event as (DetailType, parsed Detail), after checking the entry's shape."""
    out = []
    for entry in decision.events:
        assert entry["Source"] == EVENT_SOURCE == "iot.shadow.sync"
        assert entry["DetailType"] in EVENT_TYPES
        assert set(entry) == {"Source", "DetailType", "Detail", "Time"}
        out.append((entry["DetailType"], json.loads(entry["Detail"])))
    for datum in decision.metrics:
        assert datum["MetricName"] in METRIC_NAMES
    return out


def conflict_json(
    path: str,
    ours: Any,
    theirs: Any,
    base: Any,
    *,
    strategy: str,
    winner: str,
    value: Any,
    reason: str,
    severity: str = "medium",
    review: str | None = None,
    kind: str = "concurrent_modification",
) -> dict[str, Any]:
    return {
        "path": path,
        "pointer": "/" + path.replace(".", "/"),
        "section": "desired",
        "kind": kind,
        "severity": severity,
        "base": base,
        "ours": ours,
        "theirs": theirs,
        "strategy": strategy,
        "winner": winner,
        "value": value,
        "reason": reason,
        "reviewId": review,
        # The sides by name: on the cloud side ours is the cloud and theirs the device.
        "cloud": ours,
        "device": theirs,
        "winnerSide": {"ours": "cloud", "theirs": "device"}[winner],
    }


# The seed's scenario: concurrent desired and reported updates on `configuration` -----------


class Scenario:
    """The service, the clock and the log of one shadow's life."""

    def __init__(self, shadow: str | None = SHADOW) -> None:
        self.clock = ManualClock(T0)
        self.service = InMemoryShadowService(clock=self.clock)
        self.log = AuditLog()
        self.shadow = shadow

    def write(self, at: int, state: JSONObject) -> UpdateResult:
        self.clock.set(at)
        return self.service.update(THING, {"state": state}, shadow_name=self.shadow)

    @property
    def document(self) -> ShadowDocument | None:
        return self.service.document(THING, self.shadow)

    def event(self, result: UpdateResult | None = None, **extra: Any) -> dict[str, Any]:
        """The delta event the IoT rule hands over (the service's delta message + names)."""
        if result is None:
            document = self.document
            assert document is not None
            body: dict[str, Any] = {"state": document.delta or {}, "version": document.version}
        else:
            assert result.delta is not None
            body = dict(result.delta)
        return {**body, "thingName": THING, "shadowName": self.shadow, **extra}

    def resolve(self, at: int, event: Any = None, **options: Any) -> Any:
        return handle_delta_event(
            event if event is not None else self.event(),
            self.document,
            now=at,
            history=self.log,
            **options,
        )

    def apply(self, decision: ShadowDecision, at: int) -> None:
        """Apply the update (if any), then store the record, as an adapter does."""
        if decision.update is not None:
            self.clock.set(at)
            result = self.service.update(THING, decision.update, shadow_name=self.shadow)
            assert result.document.version == decision.record.version
        for record in decision.records:
            self.log.add(record)
        assert self.log.verify().ok
        document = self.document
        assert document is not None
        assert self.log.replay(THING, self.shadow) == {
            "desired": document.desired,
            "reported": document.reported,
        }
        delta_paths = sorted(_leaves(document.delta or {}))
        assert sorted(decision.pending) == delta_paths


def _leaves(section: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in section.items():
        if isinstance(value, dict) and value:
            out.extend(_leaves(value, (*prefix, key)))
        else:
            out.append((*prefix, key))
    return out


def seed_scenario() -> tuple[Scenario, dict[str, Any]]:
    """Baseline at T0 (recorded by the resolver), cloud writes at T0+10, device at T0+15."""
    scenario = Scenario()
    scenario.write(T0, {"desired": INITIAL, "reported": {**INITIAL, "firmwareVersion": "v1.0.0"}})
    baseline = scenario.resolve(T0, scenario.event(state={}))
    assert (baseline.decision, baseline.reason, baseline.update) == ("accept", "in sync", None)
    assert baseline.record.change_type == "update"
    assert baseline.record.version == 1
    assert baseline.record.previous_checksum == ""
    scenario.apply(baseline, T0)
    scenario.write(T0 + 10, {"desired": CLOUD})
    event = scenario.event(scenario.write(T0 + 15, {"reported": DEVICE}))
    assert event["state"] == CLOUD
    assert event["version"] == 3
    return scenario, event


def test_seed_conflict_under_the_default_policy_lets_the_later_device_write_win() -> None:
    scenario, event = seed_scenario()
    decision = scenario.resolve(T0 + 20, event)
    update_state = {"desired": {"alertThreshold": 85, "operatingMode": "power_save"}}
    client = token(THING, SHADOW, 3, update_state)
    assert decision.update == {"state": update_state, "version": 3, "clientToken": client}
    conflicts = [
        conflict_json(
            "alertThreshold",
            90,
            85,
            80,
            strategy="last_writer_wins",
            winner="theirs",
            value=85,
            reason=f"theirs written later ({T0 + 15})",
        ),
        conflict_json(
            "operatingMode",
            "high_performance",
            "power_save",
            "normal",
            strategy="last_writer_wins",
            winner="theirs",
            value="power_save",
            reason=f"theirs written later ({T0 + 15})",
        ),
    ]
    assert decision.to_json() == {
        "thingName": THING,
        "shadowName": SHADOW,
        "decision": "merge",
        "reason": "2 conflict(s) resolved by last_writer_wins",
        "hasConflict": True,
        "resolution": "merge",
        "conflicts": conflicts,
        "reviews": [],
        "update": decision.update,
        "pending": ["/samplingRate"],
        "staleEvent": False,
        "version": 4,
    }
    assert details(decision) == [
        (
            "Conflict Resolved",
            {
                "thingName": THING,
                "shadowName": SHADOW,
                "version": 4,
                "timestamp": "2023-11-14T22:13:40+00:00",
                "decision": "merge",
                "update": decision.update,
                "conflicts": conflicts,
            },
        )
    ]
    assert decision.events[0]["Time"] == T0 + 20
    at = T0 + 20
    assert list(decision.metrics) == [
        metric("ConflictDetected", 2, at),
        metric("ConflictResolved", 2, at),
        metric("SyncCompleted", 1, at),
        metric("PendingDeltaKeys", 1, at),
    ]
    record = decision.record
    assert (record.change_type, record.decision, record.version, record.timestamp) == (
        "conflict_resolved",
        "merge",
        4,
        T0 + 20,
    )
    assert record.previous_checksum == scenario.log.head
    scenario.apply(decision, T0 + 21)
    document = scenario.document
    assert document is not None
    assert document.desired == {
        "samplingRate": 60,
        "alertThreshold": 85,
        "operatingMode": "power_save",
    }
    assert document.reported == DEVICE
    assert document.delta == {"samplingRate": 60}


def test_seed_conflict_under_the_recommended_policy_is_held_for_review() -> None:
    scenario, event = seed_scenario()
    decision = scenario.resolve(T0 + 20, event, policy=ResolutionPolicy.recommended())
    assert (decision.decision, decision.update) == ("review", None)
    assert decision.reason == "2 conflict(s) held for manual review"
    reviews = [
        {
            "id": review_id("alertThreshold", 90, 85),
            "path": "alertThreshold",
            "pointer": "/alertThreshold",
            "section": "desired",
            "current": 90,
            "proposed": 85,
            "base": 80,
            "reason": "held for manual review",
        },
        {
            "id": review_id("operatingMode", "high_performance", "power_save"),
            "path": "operatingMode",
            "pointer": "/operatingMode",
            "section": "desired",
            "current": "high_performance",
            "proposed": "power_save",
            "base": "normal",
            "reason": "held for manual review",
        },
    ]
    assert [item.to_json() for item in decision.reviews] == reviews
    assert decision.to_json()["reviews"] == reviews
    assert [
        (c["path"], c["strategy"], c["winner"], c["reviewId"])
        for c in decision.to_json()["conflicts"]
    ] == [
        ("alertThreshold", "manual_review", "ours", review_id("alertThreshold", 90, 85)),
        (
            "operatingMode",
            "manual_review",
            "ours",
            review_id("operatingMode", "high_performance", "power_save"),
        ),
    ]
    assert decision.pending == (("samplingRate",), ("alertThreshold",), ("operatingMode",))
    assert details(decision) == [
        (
            "Manual Review Required",
            {
                "thingName": THING,
                "shadowName": SHADOW,
                "version": 3,
                "timestamp": "2023-11-14T22:13:40+00:00",
                "reviews": reviews,
            },
        )
    ]
    at = T0 + 20
    assert list(decision.metrics) == [
        metric("ConflictDetected", 2, at),
        metric("ManualReviewRequired", 2, at),
        metric("PendingDeltaKeys", 3, at),
    ]
    assert (decision.record.change_type, decision.record.version) == ("manual_review", 3)
    scenario.apply(decision, at)
    document = scenario.document
    assert document is not None
    assert document.desired == CLOUD  # nothing was written for the held paths

    # A person approves both: the approvals are ordinary updates, and the next event finds
    # only the sampling rate pending.
    for item in decision.reviews:
        scenario.write(T0 + 100, item.approve())
    after = scenario.resolve(T0 + 101, policy=ResolutionPolicy.recommended())
    assert (after.decision, after.update, after.reviews) == ("accept", None, ())
    assert after.pending == (("samplingRate",),)
    scenario.apply(after, T0 + 101)


def test_seed_device_config_merges_low_severity_and_holds_high_severity() -> None:
    scenario, event = seed_scenario()
    policy = ResolutionPolicy.from_dict(SEED_DEVICE_CONFIG)
    decision = scenario.resolve(T0 + 20, event, policy=policy)
    update_state = {"desired": {"operatingMode": "power_save"}}
    assert decision.update == {
        "state": update_state,
        "version": 3,
        "clientToken": token(THING, SHADOW, 3, update_state),
    }
    held = review_id("alertThreshold", 90, 85)
    assert decision.to_json()["conflicts"] == [
        conflict_json(
            "alertThreshold",
            90,
            85,
            80,
            strategy="manual_review",
            winner="ours",
            value=90,
            reason="held for manual review: severity high requires review",
            severity="high",
            review=held,
        ),
        conflict_json(
            "operatingMode",
            "high_performance",
            "power_save",
            "normal",
            strategy="field_merge",
            winner="theirs",
            value="power_save",
            reason=f"theirs written later ({T0 + 15})",
            severity="low",
        ),
    ]
    assert (decision.decision, decision.reason) == (
        "review",
        "1 conflict(s) held for manual review",
    )
    assert [
        (kind, body.get("reviews", body.get("conflicts"))) for kind, body in details(decision)
    ] == [
        ("Conflict Resolved", [decision.to_json()["conflicts"][1]]),
        ("Manual Review Required", [decision.reviews[0].to_json()]),
    ]
    at = T0 + 20
    assert list(decision.metrics) == [
        metric("ConflictDetected", 2, at),
        metric("ConflictResolved", 1, at),
        metric("ManualReviewRequired", 1, at),
        metric("PendingDeltaKeys", 2, at),
    ]
    assert decision.pending == (("samplingRate",), ("alertThreshold",))
    assert (decision.record.change_type, decision.record.version) == ("manual_review", 4)
    scenario.apply(decision, T0 + 21)


def test_more_conflicts_than_the_auto_resolve_threshold_are_all_held() -> None:
    scenario, event = seed_scenario()
    policy = ResolutionPolicy.from_dict({**SEED_DEVICE_CONFIG, "auto_resolve_threshold": 1})
    decision = scenario.resolve(T0 + 20, event, policy=policy)
    assert (decision.decision, decision.update) == ("review", None)
    assert [(r.path, r.reason) for r in decision.reviews] == [
        (("alertThreshold",), "held for manual review: too many conflicts in one merge"),
        (("operatingMode",), "held for manual review: too many conflicts in one merge"),
    ]
    scenario.apply(decision, T0 + 20)


def test_without_history_every_delta_path_is_pending_and_the_record_is_a_baseline() -> None:
    scenario = Scenario()
    scenario.write(T0, {"desired": CLOUD, "reported": DEVICE})
    decision = scenario.resolve(T0 + 5)
    assert (decision.decision, decision.update, len(decision.report)) == ("accept", None, 0)
    assert decision.reason == "pending: the device has yet to apply the desired state"
    assert decision.pending == (("samplingRate",), ("alertThreshold",), ("operatingMode",))
    record = decision.record
    assert (record.previous_checksum, record.version, record.timestamp) == ("", 1, T0 + 5)
    assert apply_json_patch({"desired": {}, "reported": {}}, record.patch) == {
        "desired": CLOUD,
        "reported": DEVICE,
    }
    scenario.apply(decision, T0 + 5)


def test_without_history_a_report_written_after_the_desired_value_clashes_with_it() -> None:
    """The recipe's two updates both land before the first delta event is handled: the
    metadata shows the device reported every path after the cloud's write (``samplingRate``
    sent again unchanged is stamped anew, and without a record nothing tells it apart from a
    change), so each differing path clashes with no common base and the policy settles it. A
    path the device did not report again stays pending."""
    scenario = Scenario()
    scenario.write(T0, {"desired": INITIAL, "reported": {**INITIAL, "firmwareVersion": "v1.0.0"}})
    scenario.write(T0 + 10, {"desired": CLOUD})
    device = {k: v for k, v in DEVICE.items() if k != "samplingRate"}
    scenario.write(T0 + 15, {"reported": device})
    decision = scenario.resolve(T0 + 20)
    assert decision.decision == "merge"
    assert [(r.path, r.ours, r.theirs, r.base, r.winner) for r in decision.report] == [
        (("alertThreshold",), 90, 85, MISSING, "theirs"),
        (("operatingMode",), "high_performance", "power_save", MISSING, "theirs"),
    ]
    assert decision.pending == (("samplingRate",),)
    assert decision.update is not None
    assert decision.update["state"] == {
        "desired": {"alertThreshold": 85, "operatingMode": "power_save"}
    }
    scenario.apply(decision, T0 + 21)
    # Under an owner-wins policy the cloud keeps every value it wrote.
    owner = Scenario()
    owner.write(T0, {"desired": INITIAL, "reported": INITIAL})
    owner.write(T0 + 10, {"desired": CLOUD})
    owner.write(T0 + 15, {"reported": DEVICE})
    kept = owner.resolve(T0 + 20, policy=OwnerWins())
    assert [(r.path, r.winner) for r in kept.report] == [
        (("samplingRate",), "ours"),
        (("alertThreshold",), "ours"),
        (("operatingMode",), "ours"),
    ]
    assert kept.update is None
    assert kept.pending == (("samplingRate",), ("alertThreshold",), ("operatingMode",))
    owner.apply(kept, T0 + 20)


@pytest.mark.parametrize("reported_at", [T0 - 5, T0])
def test_without_history_a_report_not_newer_than_the_desired_value_leaves_it_pending(
    reported_at: int,
) -> None:
    """Equal stamps (one update wrote both) or an older report: the desired value is the
    newer write, so the device has yet to apply it; nothing clashes."""
    scenario = Scenario()
    scenario.write(reported_at, {"reported": DEVICE})
    scenario.write(T0, {"desired": CLOUD, **({"reported": DEVICE} if reported_at == T0 else {})})
    decision = scenario.resolve(T0 + 5)
    assert (decision.decision, decision.update, len(decision.report)) == ("accept", None, 0)
    assert decision.pending == (("samplingRate",), ("alertThreshold",), ("operatingMode",))
    scenario.apply(decision, T0 + 5)


def test_a_device_only_change_makes_desired_follow_the_device() -> None:
    scenario = Scenario()
    scenario.write(T0, {"desired": INITIAL, "reported": INITIAL})
    scenario.apply(scenario.resolve(T0), T0)
    result = scenario.write(T0 + 30, {"reported": {"operatingMode": "manual"}})
    decision = scenario.resolve(T0 + 31, scenario.event(result))
    state = {"desired": {"operatingMode": "manual"}}
    assert decision.update == {
        "state": state,
        "version": 2,
        "clientToken": token(THING, SHADOW, 2, state),
    }
    assert (decision.decision, decision.reason, len(decision.report)) == (
        "merge",
        "desired follows the device's own change",
        0,
    )
    assert (decision.record.change_type, decision.record.version) == ("update", 3)
    assert decision.events == ()
    assert [m["MetricName"] for m in decision.metrics] == [
        "ConflictDetected",
        "SyncCompleted",
        "PendingDeltaKeys",
    ]
    scenario.apply(decision, T0 + 31)
    document = scenario.document
    assert document is not None
    assert document.delta is None


def test_the_classic_shadow_is_named_default_in_responses() -> None:
    scenario = Scenario(shadow=None)
    scenario.write(T0, {"desired": {"on": True}, "reported": {"on": False}})
    event = scenario.event()
    del event["shadowName"]
    decision = scenario.resolve(T0 + 1, event, event_bus="fleet-bus")
    assert decision.shadow_name is None
    assert decision.to_json()["shadowName"] == "$default"
    assert decision.metrics[0]["Dimensions"] == dimensions(shadow="$default")
    assert decision.record.shadow_name is None
    for name in ("", "$default", None):
        again = scenario.resolve(T0 + 1, {**event, "shadowName": name}, event_bus="fleet-bus")
        assert again.to_json() == decision.to_json()


# Business rules ----------------------------------------------------------------------------


def test_rules_refuse_a_downgrade_and_an_out_of_range_rate_and_keep_the_rest() -> None:
    scenario = Scenario(shadow="maintenance")
    scenario.write(
        T0, {"reported": {"firmwareVersion": "v2.0.0", "samplingRate": 30, "mode": "normal"}}
    )
    scenario.apply(scenario.resolve(T0, scenario.event(state={})), T0)
    scenario.write(
        T0 + 60, {"desired": {"firmwareVersion": "v1.9.9", "samplingRate": 7200, "mode": "eco"}}
    )
    decision = scenario.resolve(T0 + 61, rules=RULES)
    assert decision.decision == "reject"
    assert decision.reason == (
        'no_firmware_downgrade:firmwareVersion: "v1.9.9" is a downgrade from "v2.0.0"; '
        "range:samplingRate: 7200 is greater than the maximum 3600"
    )
    state = {"desired": {"firmwareVersion": "v2.0.0", "samplingRate": 30}}
    assert decision.update == {
        "state": state,
        "version": 2,
        "clientToken": token(THING, "maintenance", 2, state),
    }
    assert decision.acknowledgement is not None
    # /mode passed the rules but the device has yet to apply it: pending, not applied.
    assert decision.acknowledgement.to_dict() == {
        "desiredVersion": 2,
        "timestamp": T0 + 61,
        "applied": [],
        "rejected": [
            {
                "path": "/firmwareVersion",
                "rule": "no_firmware_downgrade:firmwareVersion",
                "reason": '"v1.9.9" is a downgrade from "v2.0.0"',
            },
            {
                "path": "/samplingRate",
                "rule": "range:samplingRate",
                "reason": "7200 is greater than the maximum 3600",
            },
        ],
        "pending": ["/mode"],
    }
    assert [(r.path, r.kind.value, r.strategy, r.value) for r in decision.report] == [
        (
            ("firmwareVersion",),
            "business_rule_violation",
            "rule:no_firmware_downgrade:firmwareVersion",
            "v2.0.0",
        ),
        (("samplingRate",), "business_rule_violation", "rule:range:samplingRate", 30),
    ]
    # One orientation in every record, as in a concurrent modification's: ours is the cloud
    # (here its refused desired values), theirs the device (its reported values, kept).
    assert [
        (c["ours"], c["cloud"], c["theirs"], c["device"], c["winnerSide"])
        for c in decision.to_json()["conflicts"]
    ] == [("v1.9.9", "v1.9.9", "v2.0.0", "v2.0.0", "device"), (7200, 7200, 30, 30, "device")]
    [(kind, detail)] = details(decision)
    assert kind == "Change Rejected"
    assert detail["violations"] == [
        {"path": v["path"], "rule": v["rule"], "reason": v["reason"]}
        for v in decision.acknowledgement.to_dict()["rejected"]
    ]
    assert detail["acknowledgement"] == decision.acknowledgement.to_dict()
    assert [(m["MetricName"], m["Value"]) for m in decision.metrics] == [
        ("ConflictDetected", 0),
        ("ChangeRejected", 2),
        ("SyncCompleted", 1),
        ("PendingDeltaKeys", 1),
    ]
    assert (decision.record.change_type, decision.record.decision) == ("rule_rejected", "reject")
    assert decision.pending == (("mode",),)
    scenario.apply(decision, T0 + 62)
    document = scenario.document
    assert document is not None
    text = json.dumps(document.to_dict())
    assert "v1.9.9" not in text
    assert "7200" not in text
    assert document.desired == {"firmwareVersion": "v2.0.0", "samplingRate": 30, "mode": "eco"}


def test_a_refused_value_with_nothing_reported_is_removed_from_desired() -> None:
    scenario = Scenario(shadow="maintenance")
    scenario.write(T0, {"desired": {"firmwareVersion": "latest"}, "reported": {"mode": "on"}})
    decision = scenario.resolve(T0 + 1, rules=RULES)
    assert decision.decision == "reject"
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"firmwareVersion": None}}
    assert decision.pending == ()
    scenario.apply(decision, T0 + 1)
    document = scenario.document
    assert document is not None
    assert document.desired == {}
    assert "latest" not in json.dumps(document.to_dict())


def test_a_refused_object_is_replaced_by_the_reported_value_not_emptied() -> None:
    # The rule refuses samplingRate as a whole; the desired object must give way to the
    # reported number, not be emptied key by key into {} (which would still be pending).
    scenario = Scenario(shadow="maintenance")
    scenario.write(
        T0,
        {
            "desired": {"samplingRate": {"day": 60, "night": 5}},
            "reported": {"samplingRate": 30},
        },
    )
    decision = scenario.resolve(T0 + 1, rules=RULES)
    assert decision.decision == "reject"
    assert [v.path for v in decision.report] == [("samplingRate",)]
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"samplingRate": 30}}
    assert decision.pending == ()
    scenario.apply(decision, T0 + 1)
    document = scenario.document
    assert document is not None
    assert (document.desired, document.delta) == ({"samplingRate": 30}, None)


def test_rules_never_see_what_the_device_itself_reported() -> None:
    # The device downgraded itself: desired follows the device, the rule judges only pending
    # desired values, so nothing is refused.
    scenario = Scenario(shadow="maintenance")
    scenario.write(
        T0, {"desired": {"firmwareVersion": "v2.0.0"}, "reported": {"firmwareVersion": "v2.0.0"}}
    )
    scenario.apply(scenario.resolve(T0, scenario.event(state={})), T0)
    scenario.write(T0 + 5, {"reported": {"firmwareVersion": "v1.0.0"}})
    decision = scenario.resolve(T0 + 6, rules=RULES)
    assert (decision.decision, decision.acknowledgement) == ("merge", None)
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"firmwareVersion": "v1.0.0"}}
    scenario.apply(decision, T0 + 6)


# Edge cases --------------------------------------------------------------------------------


def test_a_stale_event_is_judged_on_the_current_shadow() -> None:
    scenario, event = seed_scenario()
    fresh = scenario.resolve(T0 + 20, event)
    stale = scenario.resolve(T0 + 20, {**event, "version": 2, "state": {"samplingRate": 1}})
    assert (fresh.stale_event, stale.stale_event) == (False, True)
    assert stale.to_json() == {**fresh.to_json(), "staleEvent": True}
    assert stale.update == fresh.update
    assert stale.record.details is not None
    assert (stale.record.details["eventVersion"], stale.record.details["staleEvent"]) == (2, True)
    assert stale.record.checksum != fresh.record.checksum
    scenario.apply(stale, T0 + 20)


def test_the_same_event_twice_gives_equal_decisions_and_client_tokens() -> None:
    scenario, event = seed_scenario()
    first = scenario.resolve(T0 + 20, event)
    second = scenario.resolve(T0 + 20, json.dumps(event))
    third = scenario.resolve(T0 + 20, json.dumps(event).encode())
    assert first.to_json() == second.to_json() == third.to_json()
    assert first.record == second.record == third.record
    assert first.update is not None
    assert second.update is not None
    assert first.update["clientToken"] == second.update["clientToken"]
    assert first.events == second.events
    assert first.metrics == second.metrics
    scenario.apply(first, T0 + 21)
    # Delivered again after the update was applied: judged anew, nothing left to write.
    redelivered = scenario.resolve(T0 + 30, event)
    assert (redelivered.decision, redelivered.update, redelivered.stale_event) == (
        "accept",
        None,
        True,
    )
    assert redelivered.pending == (("samplingRate",),)
    scenario.apply(redelivered, T0 + 30)


def test_an_event_for_a_deleted_shadow_records_a_delete() -> None:
    scenario, event = seed_scenario()
    scenario.clock.set(T0 + 18)
    scenario.service.delete(THING, SHADOW)
    decision = scenario.resolve(T0 + 20, event)
    assert (decision.decision, decision.reason, decision.update) == (
        "accept",
        "the shadow no longer exists",
        None,
    )
    assert decision.stale_event is True
    assert decision.pending == ()
    assert decision.events == ()
    assert list(decision.metrics) == [metric("SyncCompleted", 1, T0 + 20)]
    record = decision.record
    assert (record.change_type, record.decision, record.version) == ("delete", "accept", 3)
    assert record.previous_checksum == scenario.log.head
    scenario.log.add(record)
    assert scenario.log.verify().ok
    assert scenario.log.replay(THING, SHADOW) == {"desired": {}, "reported": {}}
    assert scenario.log.replay(THING, SHADOW, version=1)["desired"] == INITIAL


def test_a_delete_record_never_goes_below_the_recorded_version() -> None:
    scenario, event = seed_scenario()
    scenario.service.delete(THING, SHADOW)
    decision = scenario.resolve(T0 + 20, {**event, "version": 0})
    assert decision.record.version == 1  # the baseline's
    assert decision.record.timestamp == T0 + 20


def _recreated(after_other_record: bool) -> tuple[Scenario, ShadowDecision]:
    """A shadow recorded up to version 4, deleted, and created again (version 1) more than
    48 hours later with desired and reported both differing from the old record."""
    scenario, event = seed_scenario()
    scenario.apply(scenario.resolve(T0 + 20, event), T0 + 20)
    scenario.clock.set(T0 + 30)
    scenario.service.delete(THING, SHADOW)
    if after_other_record:
        # Another shadow's record becomes the newest of the log.
        other = scenario.service.update(THING, {"state": {"reported": {"rssi": -50}}})
        scenario.log.add(
            handle_delta_event(
                {"thingName": THING, "state": {}, "version": 1},
                other.document,
                now=T0 + 31,
                history=scenario.log,
            ).record
        )
    scenario.write(
        T0 + 49 * 3600, {"desired": {"alertThreshold": 70}, "reported": {"alertThreshold": 75}}
    )
    document = scenario.document
    assert document is not None
    assert document.version == 1
    return scenario, scenario.resolve(T0 + 49 * 3600 + 1)


@pytest.mark.parametrize("after_other_record", [False, True])
def test_a_recreated_shadow_is_judged_without_its_old_history(after_other_record: bool) -> None:
    scenario, decision = _recreated(after_other_record)
    # The old records are no base: both sides differ from them, yet nothing is a conflict.
    assert (decision.decision, decision.update, len(decision.report)) == ("accept", None, 0)
    assert decision.pending == (("alertThreshold",),)
    assert decision.record.version == 1
    # A delete record closes the old history, chained to the newest record given (whichever
    # shadow that is); the decision's record starts the new history from the empty state.
    closing, record = decision.records
    assert record is decision.record
    assert (closing.change_type, closing.version) == ("delete", 4)
    assert closing.previous_checksum == scenario.log.head
    assert apply_json_patch(scenario.log.replay(THING, SHADOW), closing.patch) == {
        "desired": {},
        "reported": {},
    }
    assert record.previous_checksum == closing.checksum
    assert apply_json_patch({"desired": {}, "reported": {}}, record.patch) == {
        "desired": {"alertThreshold": 70},
        "reported": {"alertThreshold": 75},
    }


def test_a_recreated_shadows_records_can_be_stored() -> None:
    scenario, decision = _recreated(after_other_record=False)
    for record in decision.records:
        scenario.log.add(record)
    assert scenario.log.verify().ok
    assert scenario.log.replay(THING, SHADOW) == {
        "desired": {"alertThreshold": 70},
        "reported": {"alertThreshold": 75},
    }
    assert [r.change_type for r in scenario.log.records_for(THING, SHADOW)][-2:] == [
        "delete",
        "update",
    ]


def test_the_update_fails_with_409_when_the_shadow_moved_in_between() -> None:
    scenario, event = seed_scenario()
    decision = scenario.resolve(T0 + 20, event)
    assert decision.update is not None
    assert decision.update["version"] == 3
    scenario.write(T0 + 21, {"reported": {"samplingRate": 45}})
    with pytest.raises(VersionConflictError):
        scenario.service.update(THING, decision.update, shadow_name=SHADOW)
    document = scenario.document
    assert document is not None
    assert document.version == 4
    assert document.desired == CLOUD
    # Read again and decide again: the new decision locks on the new version.
    retry = scenario.resolve(T0 + 22)
    assert retry.update is not None
    assert retry.update["version"] == 4
    assert retry.update["state"] == {
        "desired": {"samplingRate": 45, "alertThreshold": 85, "operatingMode": "power_save"}
    }
    assert retry.update["clientToken"] != decision.update["clientToken"]
    scenario.apply(retry, T0 + 22)


def test_a_get_thing_shadow_body_is_read_like_the_document() -> None:
    scenario, event = seed_scenario()
    document = scenario.document
    assert document is not None
    from_document = handle_delta_event(event, document, now=T0 + 20, history=scenario.log)
    body = scenario.service.get(THING, shadow_name=SHADOW)
    from_body = handle_delta_event(event, body, now=T0 + 20, history=list(scenario.log))
    assert from_body.to_json() == from_document.to_json()
    assert from_body.record == from_document.record


def test_history_of_other_shadows_is_ignored_for_the_base() -> None:
    scenario, event = seed_scenario()
    decision = scenario.resolve(T0 + 20, event)
    other = AuditLog()
    other.append(
        "other-thing",
        SHADOW,
        previous_state=None,
        new_state={"reported": {"alertThreshold": 90}},
        version=1,
        timestamp=T0,
        change_type="update",
        decision="accept",
        reason="elsewhere",
    )
    [baseline] = scenario.log.records
    other.add(
        HistoryRecord.create(
            THING,
            SHADOW,
            previous=other.head,
            previous_state=None,
            new_state=scenario.log.replay(THING, SHADOW),
            version=baseline.version,
            timestamp=baseline.timestamp,
            change_type="update",
            decision="accept",
            reason="in sync",
        )
    )
    mixed = handle_delta_event(event, scenario.document, now=T0 + 20, history=other)
    assert mixed.to_json() == decision.to_json()
    assert mixed.record.previous_checksum == other.head


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"state": {"a": 1}}, "the delta event has no thingName"),
        ({"thingName": THING, "state": [1]}, "the delta event's state must be an object"),
        ({"thingName": THING}, "the delta event's state must be an object"),
        ({"thingName": "bad name!", "state": {}}, "thingName"),
        ({"thingName": THING, "state": {}, "version": -1}, "version must be a non-negative"),
        ({"thingName": THING, "state": {}, "version": 2**63}, "version is too large"),
        ({"thingName": THING, "state": {}, "timestamp": "soon"}, "timestamp must be"),
        ({"thingName": THING, "shadowName": 7, "state": {}}, "shadowName must be a shadow name"),
        ({"thingName": THING, "state": {"a": None}}, "the delta event's state is not a delta"),
        ([], "the delta event must be a JSON object, got an array"),
        ("{", "the delta event is not valid JSON"),
    ],
)
def test_malformed_events_raise_operation_errors(event: Any, message: str) -> None:
    with pytest.raises(OperationError, match=message.replace("(", r"\(")) as caught:
        handle_delta_event(event, None, now=T0)
    assert caught.value.to_response()["statusCode"] == 400


def test_the_event_is_parsed_once_into_a_delta_event() -> None:
    parsed = DeltaEvent.from_dict(
        {"thingName": THING, "shadowName": "$default", "state": {"a": {"b": 1}}, "version": 7.0}
    )
    assert parsed == DeltaEvent(
        thing_name=THING, shadow_name=None, state={"a": {"b": 1}}, version=7, timestamp=0
    )
    assert isinstance(parsed.version, int)


def test_a_rule_refusal_settles_a_conflict_that_would_be_held() -> None:
    scenario, event = seed_scenario()
    rules = RuleSet(rules=[Range(path="alertThreshold", maximum=88)])
    decision = scenario.resolve(T0 + 20, event, policy=ResolutionPolicy.recommended(), rules=rules)
    # alertThreshold (cloud 90, device 85) is no longer for a person: 90 breaks the rule, so
    # the value in force stays; operatingMode is still held.
    assert [item.path for item in decision.reviews] == [("operatingMode",)]
    assert decision.decision == "review"
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"alertThreshold": 85}}
    scenario.apply(decision, T0 + 20)


def test_client_tokens_differ_between_sections_with_the_same_values() -> None:
    from shadowsync.cloud._decision import client_token

    same_values: dict[str, Any] = {"rate": 30}
    assert client_token(THING, SHADOW, 3, {"desired": same_values}) != client_token(
        THING, SHADOW, 3, {"reported": same_values}
    )


def test_refusing_a_new_nested_value_leaves_no_empty_object_pending() -> None:
    shadow = apply_update(
        None,
        {"state": {"desired": {"fan": {"x": 2}}, "reported": {"mode": "eco"}}},
        timestamp=T0,
    ).document
    decision = handle_delta_event(
        {"thingName": THING, "state": {"fan": {"x": 2}}, "version": 1},
        shadow,
        now=T0 + 1,
        rules=RuleSet(rules=[Range(path="fan.x", maximum=1)]),
    )
    assert decision.decision == "reject"
    assert decision.update is not None
    assert decision.update["state"] == {"desired": {"fan": None}}
    after = apply_update(shadow, decision.update, timestamp=T0 + 1).document
    assert (after.desired, after.delta, decision.pending) == ({}, None, ())
