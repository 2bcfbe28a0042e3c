"""The end of every cloud-side decision: rules, the update, the history record, the signals."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._conflict.merge import (
    ConflictRecord,
    ConflictReport,
    MergeResult,
    ReviewItem,
    merge,
    same,
)
from shadowsync._json import JSONObject, canonical_json, copy_object, json_pointer
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._patch import apply_merge_patch
from shadowsync._tree import Path, Value, copy_value, leaf_paths, lookup, nested, overlaps, place
from shadowsync._update import apply_update
from shadowsync.audit import ChangeType, Decision, HistoryRecord, record_from_states
from shadowsync.cloud._requests import shadow_label
from shadowsync.cloud._signals import event_entry, iso_time, metric_datum
from shadowsync.strategies import MISSING, ConflictKind, Severity

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._document import ShadowDocument
    from shadowsync.rules import Acknowledgement, RuleSet, Violation
    from shadowsync.strategies import Strategy


@attrs.frozen(kw_only=True)
class ShadowDecision:
    """What was decided about one shadow, and everything to write and emit.

    `handle_delta_event` returns one per event, `offline_sync` one per shadow that a device's
    cached changes touch. ``decision`` is ``accept`` (nothing to change), ``merge`` (an update
    settles it), ``reject`` (a business rule refused a change) or ``review`` (conflicts are held
    for a person; any other part is still settled).

    ``update`` is the UpdateThingShadow request to send, with ``version`` for optimistic
    locking so that it fails with 409 rather than overwrite a newer change, or None when the
    shadow is left as it is. ``record`` is the history record to store once the update
    succeeded (at once when there is no update): it describes the shadow as it will then be.
    ``events`` are EventBridge entries and ``metrics`` CloudWatch metric data.
    """

    thing_name: str
    shadow_name: str | None
    decision: Decision
    reason: str
    update: JSONObject | None
    record: HistoryRecord
    report: ConflictReport
    reviews: tuple[ReviewItem, ...]
    acknowledgement: Acknowledgement | None
    pending: tuple[Path, ...]
    """The delta paths still pending once the update is applied."""
    events: tuple[dict[str, Any], ...]
    metrics: tuple[dict[str, Any], ...]
    stale_event: bool = False
    """True when a delta event's version was below the shadow's: it was judged on the newer
    shadow."""
    records: tuple[HistoryRecord, ...] = ()
    """Every history record to store, in order; the last is `record`. There are two when the
    shadow was deleted and created again since its last record: a ``delete`` record closes its
    old history first."""

    def __attrs_post_init__(self) -> None:
        if not self.records:
            object.__setattr__(self, "records", (self.record,))

    def to_json(self) -> dict[str, Any]:
        """The decision as a response body (with the seed's ``hasConflict`` and ``resolution``)."""
        return {
            "thingName": self.thing_name,
            "shadowName": shadow_label(self.shadow_name),
            "decision": self.decision,
            "reason": self.reason,
            "hasConflict": bool(self.report),
            "resolution": self.decision if self.report else "none",
            "conflicts": self.report.to_json(),
            "reviews": [item.to_json() for item in self.reviews],
            "update": self.update,
            "pending": [json_pointer(p) for p in self.pending],
            "staleEvent": self.stale_event,
            "version": self.record.version,
        }


def client_token(thing: str, shadow: str | None, version: int, state: JSONObject) -> str:
    """A client token derived from the update, so a retried decision sends the same one."""
    text = canonical_json([thing, shadow, version, state])
    return "shadowsync-" + hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def deletion_record(
    thing_name: str,
    shadow_name: str | None,
    *,
    previous: HistoryRecord | str | None,
    base: dict[str, Any] | None,
    last: HistoryRecord,
    now: int,
    version: int,
) -> HistoryRecord:
    """The record that closes a shadow's history when the shadow was deleted and created again.

    The shadow is found at ``version``, below its last record's: it was deleted (AWS restarts
    the version sequence of a shadow re-created more than 48 hours after its deletion), so its
    old history is over and the next record starts from the empty state.
    """
    return HistoryRecord.create(
        thing_name,
        shadow_name,
        previous=previous,
        previous_state=base,
        new_state=None,
        version=last.version,
        timestamp=max(now, last.timestamp),
        change_type="delete",
        decision="accept",
        reason=(
            f"the shadow was deleted and created again: its last record is at version "
            f"{last.version}, the shadow now at {version}"
        ),
    )


def settle(
    entries: list[tuple[Path, Value, Value, Value]],
    *,
    section: Literal["desired", "reported"],
    current: JSONObject,
    policy: ResolutionPolicy | Strategy | None,
    thing_name: str,
    shadow_name: str | None,
    cloud_stamps: dict[Path, int],
    device_stamps: dict[Path, int],
) -> tuple[MergeResult, dict[Path, Value]]:
    """Three-way merge ``(path, base, cloud, device)`` entries of one section.

    The cloud's side is "ours", the device's "theirs". Returns the merge and the value settled
    for each path; a path held for review keeps its ``current`` value.
    """
    result = merge(
        copy_object(nested((path, base) for path, base, _, _ in entries)),
        copy_object(nested((path, cloud) for path, _, cloud, _ in entries)),
        copy_object(nested((path, device) for path, _, _, device in entries)),
        policy=policy,
        section=section,
        thing_name=thing_name,
        shadow_name=shadow_name,
        ours_source="cloud",
        theirs_source="device",
        ours_stamps=cloud_stamps,
        theirs_stamps=device_stamps,
    )
    held = [item.path for item in result.reviews]
    final: dict[Path, Value] = {}
    for path, _, _, _ in entries:
        source = current if any(path[: len(h)] == h for h in held) else result.merged
        final[path] = copy_value(lookup(source, path))
    return result, final


def close_if_recreated(
    thing_name: str,
    shadow_name: str | None,
    document: ShadowDocument | None,
    *,
    previous: HistoryRecord | str | None,
    base: dict[str, Any] | None,
    last: HistoryRecord | None,
    now: int,
) -> tuple[HistoryRecord | None, HistoryRecord | str | None, dict[str, Any] | None, Any]:
    """When the shadow is below its last record's version (deleted and created again), the
    delete record that closes its old history; then the ``previous``, ``base`` and ``last``
    the decision's own record starts from (as given when there is nothing to close)."""
    if last is None or document is None or document.version >= last.version:
        return None, previous, base, last
    closing = deletion_record(
        thing_name,
        shadow_name,
        previous=previous,
        base=base,
        last=last,
        now=now,
        version=document.version,
    )
    return closing, closing, None, closing


def _drop_emptied_parents(
    update_state: JSONObject, current: JSONObject, writes: dict[Path, Value]
) -> None:
    """Delete the objects that the update's deletions would leave empty.

    AWS keeps an object whose last key an update deletes, as ``{}``; a desired ``{}`` that the
    reported state does not hold would stay in the delta, so the emptied object goes too.
    """
    after = apply_merge_patch(current, update_state)
    if not isinstance(after, dict):
        return
    for path, value in writes.items():
        if value is not MISSING:
            continue
        parent = path[:-1]
        while parent and lookup(after, parent) == {} and lookup(current, parent) != {}:
            place(update_state, parent, None)
            parent = parent[:-1]


def _violation_record(
    violation: Violation,
    section: Literal["desired", "reported"],
    in_force: JSONObject,
    proposed: JSONObject,
    base: dict[str, Any] | None,
) -> ConflictRecord:
    kept = copy_value(lookup(in_force, violation.path))
    return ConflictRecord(
        path=violation.path,
        section=section,
        kind=ConflictKind.BUSINESS_RULE_VIOLATION,
        severity=Severity.HIGH,
        base=MISSING if base is None else copy_value(lookup(base[section], violation.path)),
        ours=kept,
        theirs=copy_value(lookup(proposed, violation.path)),
        strategy=f"rule:{violation.rule}",
        winner="ours",
        value=kept,
        reason=violation.reason,
    )


def conclude(
    *,
    thing_name: str,
    shadow_name: str | None,
    document: ShadowDocument | None,
    section: Literal["desired", "reported"],
    final: dict[Path, Value],
    result: MergeResult,
    rules: RuleSet | None,
    now: int,
    base: dict[str, Any] | None,
    previous: HistoryRecord | str | None,
    last: HistoryRecord | None,
    event_bus: str | None,
    details: dict[str, Any],
    fast_forward: str,
    limits: ShadowLimits = DEFAULT_LIMITS,
    stale_event: bool = False,
    closing: HistoryRecord | None = None,
) -> ShadowDecision:
    """Judge ``final`` (path -> value settled for ``section``) and build the decision.

    ``closing`` is the delete record that `close_if_recreated` made, stored before the
    decision's own record.

    Rules judge every value still to be applied against the reported state in force: for
    ``desired``, a pending desired value against the reported one; for ``reported``, a new
    reported value against the current one. A refused value is replaced by the value in force.
    """
    label = shadow_label(shadow_name)
    desired = document.desired if document is not None else {}
    reported = document.reported if document is not None else {}
    current = desired if section == "desired" else reported
    version = document.version if document is not None else 0

    outcome = None
    violations: tuple[Violation, ...] = ()
    proposed = copy_object(reported)
    for path, value in final.items():
        if value is not MISSING:
            place(proposed, path, value)
        elif section == "reported":
            _remove(proposed, path)
    if rules is not None:
        outcome = rules.evaluate(
            "desired" if section == "desired" else "reported",
            reported,
            proposed,
            timestamp=now,
            metadata=document.section_metadata("reported") if document is not None else None,
            desired_version=version,
            thing_name=thing_name,
            shadow_name=shadow_name,
        )
        violations = outcome.violations
        for violation in violations:
            for path in final:
                if overlaps(path, violation.path):
                    final[path] = copy_value(lookup(outcome.accepted, path))

    # A refused value is replaced whole: paths under a refused path are written as the value
    # in force at the refused path (an object refused where a number is in force is replaced
    # by that number, not emptied key by key).
    writes: dict[Path, Value] = {}
    refused = [v.path for v in violations]
    for path, value in final.items():
        above = [r for r in refused if len(r) < len(path) and path[: len(r)] == r]
        if above and outcome is not None:
            top = min(above, key=len)
            writes[top] = copy_value(lookup(outcome.accepted, top))
        else:
            writes[path] = value
    # A rule's refusal settles a held conflict too: the value in force stays, so nothing is
    # left for a person to decide there.
    reviews = tuple(
        item for item in result.reviews if not any(overlaps(item.path, v.path) for v in violations)
    )
    update_state: JSONObject = {}
    for path, value in writes.items():
        if not same(value, lookup(current, path)):
            place(update_state, path, None if value is MISSING else value)
    _drop_emptied_parents(update_state, current, writes)
    update: JSONObject | None = None
    new_document = document
    if update_state:
        body: JSONObject = {"state": {section: update_state}}
        if document is not None:
            body["version"] = document.version
        body["clientToken"] = client_token(
            thing_name, shadow_name, version, {section: update_state}
        )
        update = body
        new_document = apply_update(
            document,
            body,
            timestamp=now,
            limits=limits,
            previous_version=last.version if last else 0,
        ).document
    pending = tuple(leaf_paths(new_document.delta or {})) if new_document is not None else ()

    resolved = [r for r in result.report if r.review_id is None]
    decision: Decision
    change_type: ChangeType
    if reviews:
        decision, change_type = "review", "manual_review"
        reason = f"{len(reviews)} conflict(s) held for manual review"
    elif violations:
        decision, change_type = "reject", "rule_rejected"
        reason = "; ".join(f"{v.rule}: {v.reason}" for v in violations)
    elif update is not None:
        decision = "merge"
        change_type = "conflict_resolved" if resolved else "update"
        if resolved:
            strategies = ", ".join(sorted({r.strategy for r in resolved}))
            reason = f"{len(resolved)} conflict(s) resolved by {strategies}"
        else:
            reason = fast_forward
    else:
        decision, change_type = "accept", "update"
        reason = "pending: the device has yet to apply the desired state" if pending else "in sync"

    report = ConflictReport(
        tuple(result.report.records)
        + tuple(
            _violation_record(v, section, outcome.accepted, proposed, base)
            for v in violations
            if outcome is not None
        )
    )
    acknowledgement = outcome.acknowledgement if outcome is not None and violations else None
    if acknowledgement is not None and section == "desired":
        # Desired values the rules let through are still to be applied by the device.
        acknowledgement = attrs.evolve(
            acknowledgement,
            applied=(),
            pending=acknowledgement.applied + acknowledgement.pending,
        )
    record_details: dict[str, Any] = {
        **details,
        "conflicts": report.to_json(),
        "reviews": [item.to_json() for item in reviews],
        "update": update,
        "pending": [json_pointer(p) for p in pending],
    }
    if acknowledgement is not None:
        record_details["acknowledgement"] = acknowledgement.to_dict()
    new_version = new_document.version if new_document is not None else version
    # The base was read from the history (AuditLog.last_state), which holds only valid states.
    record = record_from_states(
        thing_name,
        shadow_name,
        previous=previous,
        before=base if base is not None else {"desired": {}, "reported": {}},
        after=(
            {
                "desired": copy_object(new_document.desired),
                "reported": copy_object(new_document.reported),
            }
            if new_document is not None
            else {"desired": {}, "reported": {}}
        ),
        version=new_version,
        # Records of a shadow may not go back in time (another Lambda's clock may be behind).
        timestamp=now if last is None else max(now, last.timestamp),
        change_type=change_type,
        decision=decision,
        reason=reason,
        details=record_details,
    )

    events: list[dict[str, Any]] = []
    common: dict[str, Any] = {
        "thingName": thing_name,
        "shadowName": label,
        "version": new_version,
        "timestamp": iso_time(now),
    }
    if resolved:
        detail = {**common, "decision": decision, "update": update}
        detail["conflicts"] = [r.to_json() for r in resolved]
        events.append(event_entry("Conflict Resolved", detail, timestamp=now, event_bus=event_bus))
    if reviews:
        detail = {**common, "reviews": [item.to_json() for item in reviews]}
        events.append(
            event_entry("Manual Review Required", detail, timestamp=now, event_bus=event_bus)
        )
    if violations:
        detail = {
            **common,
            "violations": [
                {"path": json_pointer(v.path), "rule": v.rule, "reason": v.reason}
                for v in violations
            ],
            "acknowledgement": acknowledgement.to_dict() if acknowledgement else None,
        }
        events.append(event_entry("Change Rejected", detail, timestamp=now, event_bus=event_bus))

    metrics: list[dict[str, Any]] = []

    def metric(name: Any, value: float) -> None:
        metrics.append(
            metric_datum(name, value, timestamp=now, thing_name=thing_name, shadow_label=label)
        )

    metric("ConflictDetected", len(result.report))
    if resolved:
        metric("ConflictResolved", len(resolved))
    if reviews:
        metric("ManualReviewRequired", len(reviews))
    if violations:
        metric("ChangeRejected", len(violations))
    if not reviews:
        metric("SyncCompleted", 1)
    metric("PendingDeltaKeys", len(pending))

    return ShadowDecision(
        thing_name=thing_name,
        shadow_name=shadow_name,
        decision=decision,
        reason=reason,
        update=update,
        record=record,
        report=report,
        reviews=reviews,
        acknowledgement=acknowledgement,
        pending=pending,
        events=tuple(events),
        metrics=tuple(metrics),
        stale_event=stale_event,
        records=(record,) if closing is None else (closing, record),
    )


def _remove(target: JSONObject, path: Path) -> None:
    node: Any = target
    for key in path[:-1]:
        node = node.get(key) if type(node) is dict else None
    if type(node) is dict:
        node.pop(path[-1], None)
