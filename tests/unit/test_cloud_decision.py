"""The steps of a cloud-side decision, one at a time, on small hand-made inputs.

`conclude` is the composition of `apply_rules`, `plan_update`, `classify`, `make_records` and
`make_signals` over one `DecisionContext`; the end-to-end behaviour is in
``test_cloud_delta_event.py`` and ``test_cloud_offline.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from shadowsync import apply_update
from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.cloud._decision import (
    DecisionContext,
    HistoryPosition,
    Judgement,
    PlannedUpdate,
    Verdict,
    apply_rules,
    classify,
    client_token,
    conclude,
    history_position,
    make_records,
    make_signals,
    plan_update,
    settle,
)
from shadowsync.rules import Range, RuleSet, Violation
from shadowsync.strategies import MISSING, ConflictKind

if TYPE_CHECKING:
    from shadowsync import JSONObject, ShadowDocument
    from shadowsync._tree import Path, Value

THING = "pump-7"
T0 = 1_700_000_000

# desired and reported differ on both leaves: the delta is {"rate": 60, "mode": "eco"}.
DOCUMENT: ShadowDocument = apply_update(
    None,
    {"state": {"desired": {"rate": 60, "mode": "eco"}, "reported": {"rate": 30, "mode": "heat"}}},
    timestamp=T0,
).document
# "rate": only the cloud changed it (pending); "mode": both sides changed it (a conflict the
# cloud wins, as its stamp is newer).
ENTRIES: list[tuple[Path, Value, Value, Value]] = [
    (("rate",), 30, 60, 30),
    (("mode",), "off", "eco", "heat"),
]
AT_MOST_50 = RuleSet(rules=[Range(path="rate", maximum=50)])


def context(
    *,
    policy: ResolutionPolicy | None = None,
    rules: RuleSet | None = None,
    document: ShadowDocument | None = DOCUMENT,
    entries: list[tuple[Path, Value, Value, Value]] = ENTRIES,
    section: str = "desired",
    history: HistoryPosition | None = None,
) -> DecisionContext:
    current = {} if document is None else getattr(document, section)
    merge, settled = settle(
        entries,
        section="desired" if section == "desired" else "reported",
        current=current,
        policy=policy,
        thing_name=THING,
        shadow_name=None,
        cloud_stamps={("mode",): T0},
        device_stamps={("mode",): T0 - 10},
    )
    return DecisionContext(
        thing_name=THING,
        shadow_name=None,
        document=document,
        section="desired" if section == "desired" else "reported",
        merge=merge,
        settled=settled,
        rules=rules,
        now=T0 + 5,
        history=history or HistoryPosition(previous=None, base=None, last=None),
        details={"eventVersion": 1},
        fast_forward="desired follows the device's own change",
    )


def stored(version: int, timestamp: int, reported: dict[str, Any] | None = None) -> HistoryRecord:
    """A shadow's record: an update that left ``reported``."""
    return HistoryRecord.create(
        THING,
        None,
        previous=None,
        previous_state=None,
        new_state={"desired": {}, "reported": reported or {}},
        version=version,
        timestamp=timestamp,
        change_type="update",
        decision="accept",
        reason="reported",
    )


def judgement(**changes: Any) -> Judgement:
    return attrs.evolve(apply_rules(context()), **changes)


def planned(update: dict[str, Any] | None, pending: tuple[Path, ...] = ()) -> PlannedUpdate:
    return PlannedUpdate(update=update, document=DOCUMENT, pending=pending)


# --------------------------------------------------------------------------------------------
# The context and where the history stands
# --------------------------------------------------------------------------------------------


def test_the_context_reads_the_shadow_it_decides_on() -> None:
    ctx = context()
    assert (ctx.current, ctx.reported, ctx.version) == (
        {"rate": 60, "mode": "eco"},
        {"rate": 30, "mode": "heat"},
        1,
    )
    assert [r.path for r in ctx.resolved] == [("mode",)]
    gone = context(document=None, entries=[])
    assert (gone.current, gone.reported, gone.version) == ({}, {}, 0)


def test_history_position_without_records_starts_the_shadow() -> None:
    position = history_position(AuditLog(), THING, None, DOCUMENT, previous="abc", now=T0)
    assert position == HistoryPosition(previous="abc", base=None, last=None, closing=None)


def test_history_position_continues_from_the_shadows_last_record() -> None:
    first = stored(1, T0, {"rate": 30})
    position = history_position(AuditLog([first]), THING, None, DOCUMENT, previous=first, now=T0)
    assert (position.previous, position.last, position.closing) == (first, first, None)
    assert position.base == {"desired": {}, "reported": {"rate": 30}}


def test_history_position_closes_the_history_of_a_recreated_shadow() -> None:
    last = stored(7, T0 + 100, {"rate": 30})
    position = history_position(AuditLog([last]), THING, None, DOCUMENT, previous=last, now=T0)
    closing = position.closing
    assert closing is not None
    assert (closing.change_type, closing.version, closing.timestamp) == ("delete", 7, T0 + 100)
    assert closing.previous_checksum == last.checksum
    # The decision's own record follows the delete record, from the empty state.
    assert (position.previous, position.last, position.base) == (closing, closing, None)


# --------------------------------------------------------------------------------------------
# Step 1: rules
# --------------------------------------------------------------------------------------------


def test_apply_rules_without_rules_keeps_what_the_merge_settled() -> None:
    ctx = context()
    judged = apply_rules(ctx)
    assert judged.final == ctx.settled == {("rate",): 60, ("mode",): "eco"}
    assert judged.final is not ctx.settled
    assert (judged.violations, judged.accepted, judged.acknowledgement) == ((), None, None)
    assert judged.report == ctx.merge.report
    assert judged.reviews == ctx.merge.reviews == ()


def test_apply_rules_replaces_a_refused_value_by_the_value_in_force() -> None:
    ctx = context(rules=AT_MOST_50)
    judged = apply_rules(ctx)
    assert judged.final == {("rate",): 30, ("mode",): "eco"}
    assert ctx.settled == {("rate",): 60, ("mode",): "eco"}  # the context is left as it was
    assert [(v.rule, v.path) for v in judged.violations] == [("range:rate", ("rate",))]
    assert judged.accepted == {"rate": 30, "mode": "eco"}
    violation = judged.report.records[-1]
    # Ours is the cloud's refused desired value, theirs the device's reported value, kept.
    assert (violation.kind, violation.ours, violation.theirs, violation.base) == (
        ConflictKind.BUSINESS_RULE_VIOLATION,
        60,
        30,
        MISSING,
    )
    # A desired value the rules let through is still for the device to apply.
    assert judged.acknowledgement is not None
    assert (judged.acknowledgement.applied, judged.acknowledgement.pending) == ((), (("mode",),))


def test_apply_rules_settles_a_held_conflict_on_a_refused_path() -> None:
    review_all = ResolutionPolicy.from_dict({"strategy": "manual_review"})
    entries: list[tuple[Path, Value, Value, Value]] = [(("rate",), 10, 60, 20)]
    assert len(apply_rules(context(policy=review_all, entries=entries)).reviews) == 1
    judged = apply_rules(context(policy=review_all, entries=entries, rules=AT_MOST_50))
    assert judged.reviews == ()
    assert [r.kind for r in judged.report] == [
        ConflictKind.CONCURRENT_MODIFICATION,
        ConflictKind.BUSINESS_RULE_VIOLATION,
    ]


# --------------------------------------------------------------------------------------------
# Step 2: update
# --------------------------------------------------------------------------------------------


def test_plan_update_leaves_an_unchanged_shadow_alone() -> None:
    plan = plan_update(context(), apply_rules(context()))
    assert (plan.update, plan.document, plan.pending) == (None, DOCUMENT, (("rate",), ("mode",)))


def test_plan_update_writes_the_judged_values_with_the_version_and_a_token() -> None:
    ctx = context(rules=AT_MOST_50)
    plan = plan_update(ctx, apply_rules(ctx))
    state: JSONObject = {"desired": {"rate": 30}}
    assert plan.update == {
        "state": state,
        "version": 1,
        "clientToken": client_token(THING, None, 1, state),
    }
    assert plan.document is not None
    assert (plan.document.version, plan.document.desired) == (2, {"rate": 30, "mode": "eco"})
    assert plan.pending == (("mode",),)


def test_plan_update_replaces_a_refused_object_whole() -> None:
    refused = Violation(
        rule="type:limits", path=("limits",), value={"low": 1, "high": 9}, reason="not a number"
    )
    judged = judgement(
        final={("limits", "low"): 1, ("limits", "high"): 9},
        violations=(refused,),
        accepted={"rate": 60, "mode": "eco", "limits": 5},
    )
    plan = plan_update(context(), judged)
    assert plan.update is not None
    assert plan.update["state"] == {"desired": {"limits": 5}}


def test_plan_update_drops_an_object_its_deletions_empty() -> None:
    document = apply_update(
        None, {"state": {"reported": {"pump": {"rate": 30}, "on": True}}}, timestamp=T0
    ).document
    entries: list[tuple[Path, Value, Value, Value]] = [(("pump", "rate"), 30, 30, MISSING)]
    ctx = context(document=document, entries=entries, section="reported")
    plan = plan_update(ctx, apply_rules(ctx))
    assert plan.update is not None
    assert plan.update["state"] == {"reported": {"pump": None}}
    assert plan.document is not None
    assert plan.document.reported == {"on": True}


# --------------------------------------------------------------------------------------------
# Step 3: classify
# --------------------------------------------------------------------------------------------


def test_classify_in_order_review_reject_merge_accept() -> None:
    ctx = context(rules=AT_MOST_50)
    judged = apply_rules(ctx)
    update = {"state": {"desired": {"rate": 30}}}
    held = apply_rules(context(policy=ResolutionPolicy.from_dict({"strategy": "manual_review"})))
    assert classify(ctx, attrs.evolve(judged, reviews=held.reviews), planned(update)) == Verdict(
        decision="review",
        change_type="manual_review",
        reason="1 conflict(s) held for manual review",
    )
    assert classify(ctx, judged, planned(update)) == Verdict(
        decision="reject",
        change_type="rule_rejected",
        reason="range:rate: 60 is greater than the maximum 50",
    )
    clean = attrs.evolve(judged, violations=())
    assert classify(ctx, clean, planned(update)) == Verdict(
        decision="merge",
        change_type="conflict_resolved",
        reason="1 conflict(s) resolved by last_writer_wins",
    )
    no_conflict = context(entries=[(("rate",), 30, 60, 30)])
    assert classify(no_conflict, clean, planned(update)) == Verdict(
        decision="merge", change_type="update", reason="desired follows the device's own change"
    )
    assert classify(no_conflict, clean, planned(None, (("rate",),))) == Verdict(
        decision="accept",
        change_type="update",
        reason="pending: the device has yet to apply the desired state",
    )
    assert classify(no_conflict, clean, planned(None)).reason == "in sync"


# --------------------------------------------------------------------------------------------
# Step 4: record
# --------------------------------------------------------------------------------------------


def test_make_records_describes_the_shadow_after_the_update() -> None:
    ctx = context(rules=AT_MOST_50)
    judged = apply_rules(ctx)
    plan = plan_update(ctx, judged)
    verdict = classify(ctx, judged, plan)
    (record,) = make_records(ctx, judged, plan, verdict)
    assert (record.version, record.timestamp, record.change_type, record.decision) == (
        2,
        T0 + 5,
        "rule_rejected",
        "reject",
    )
    details: dict[str, Any] = dict(record.details or {})
    assert details["eventVersion"] == 1
    assert details["update"] == plan.update
    assert details["pending"] == ["/mode"]
    assert details["acknowledgement"]["rejected"][0]["path"] == "/rate"
    assert len(details["conflicts"]) == 2
    replayed = AuditLog([record]).replay(THING, None)
    assert replayed == {"desired": {"rate": 30, "mode": "eco"}, "reported": DOCUMENT.reported}


def test_make_records_stores_the_closing_record_first_and_keeps_time_moving_forward() -> None:
    last = stored(9, T0 + 60)
    position = history_position(AuditLog([last]), THING, None, DOCUMENT, previous=last, now=T0)
    ctx = context(history=position)
    judged = apply_rules(ctx)
    plan = plan_update(ctx, judged)
    closing, record = make_records(ctx, judged, plan, classify(ctx, judged, plan))
    assert closing is position.closing
    assert record.previous_checksum == closing.checksum
    assert record.timestamp == T0 + 60  # not before the shadow's last record


# --------------------------------------------------------------------------------------------
# Step 5: signals
# --------------------------------------------------------------------------------------------


def test_make_signals_announces_what_was_decided() -> None:
    ctx = context(rules=AT_MOST_50)
    judged = apply_rules(ctx)
    plan = plan_update(ctx, judged)
    (record,) = make_records(ctx, judged, plan, classify(ctx, judged, plan))
    events, metrics = make_signals(ctx, judged, plan, record)
    assert [e["DetailType"] for e in events] == ["Conflict Resolved", "Change Rejected"]
    rejected = json.loads(events[1]["Detail"])
    assert (rejected["version"], rejected["violations"][0]["path"]) == (2, "/rate")
    assert [(m["MetricName"], m["Value"]) for m in metrics] == [
        ("ConflictDetected", 1),
        ("ConflictResolved", 1),
        ("ChangeRejected", 1),
        ("SyncCompleted", 1),
        ("PendingDeltaKeys", 1),
    ]
    assert all(m["Timestamp"] == T0 + 5 for m in metrics)


def test_make_signals_of_a_held_conflict() -> None:
    ctx = context(policy=ResolutionPolicy.from_dict({"strategy": "manual_review"}))
    judged = apply_rules(ctx)
    plan = plan_update(ctx, judged)
    (record,) = make_records(ctx, judged, plan, classify(ctx, judged, plan))
    events, metrics = make_signals(ctx, judged, plan, record)
    assert [e["DetailType"] for e in events] == ["Manual Review Required"]
    assert [m["MetricName"] for m in metrics] == [
        "ConflictDetected",
        "ManualReviewRequired",
        "PendingDeltaKeys",
    ]


# --------------------------------------------------------------------------------------------
# conclude: the composition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [None, AT_MOST_50])
def test_conclude_is_the_composition_of_the_steps(rules: RuleSet | None) -> None:
    ctx = context(rules=rules)
    judged = apply_rules(ctx)
    plan = plan_update(ctx, judged)
    verdict = classify(ctx, judged, plan)
    records = make_records(ctx, judged, plan, verdict)
    events, metrics = make_signals(ctx, judged, plan, records[-1])
    decision = conclude(ctx)
    assert decision == conclude(ctx, judged)
    assert (decision.decision, decision.reason) == (verdict.decision, verdict.reason)
    assert (decision.update, decision.pending) == (plan.update, plan.pending)
    assert (decision.report, decision.reviews) == (judged.report, judged.reviews)
    assert decision.acknowledgement == judged.acknowledgement
    assert (decision.records, decision.record) == (records, records[-1])
    assert (decision.events, decision.metrics) == (events, metrics)
