"""The end of every cloud-side decision: rules, the update, the history record, the signals.

An operation settles a shadow's section and builds one `DecisionContext` (`settled_context`), and
`conclude` takes it through five steps, each a function of the context and what the steps
before it made: `apply_rules`, `plan_update`, `classify`, `make_records`, `make_signals`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._audit.log import last_record, shared_last_state
from shadowsync._audit.record import record_from_states
from shadowsync._conflict.merge import (
    ConflictRecord,
    ConflictReport,
    MergeResult,
    ReviewItem,
    Section,
    merge_policy,
    merge_sections,
    same,
    section_value,
)
from shadowsync._delta import updated_delta
from shadowsync._document import is_checked
from shadowsync._json import JSONObject, canonical_json, copy_json, copy_object, json_pointer
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._patch import apply_merge_patch
from shadowsync._tree import (
    Path,
    Value,
    copy_value,
    holder,
    leaf_paths,
    lookup,
    overlaps,
    place,
)
from shadowsync._update import apply_update
from shadowsync.audit import ChangeType, Decision, HistoryRecord
from shadowsync.cloud._head import HistoryHead
from shadowsync.cloud._requests import shadow_label
from shadowsync.cloud._signals import MetricName, event_entry, iso_time, metric_datum
from shadowsync.strategies import MISSING, ConflictKind, Severity

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._document import ShadowDocument
    from shadowsync.audit import AuditLog
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
            "conflicts": conflicts_json(self.report),
            "reviews": [item.to_json() for item in self.reviews],
            "update": self.update,
            "pending": [json_pointer(p) for p in self.pending],
            "staleEvent": self.stale_event,
            "version": self.record.version,
        }


def conflicts_json(records: ConflictReport | Iterable[ConflictRecord]) -> list[dict[str, Any]]:
    """Conflict records as JSON, each with its sides named: ``cloud`` and ``device`` values and
    ``winnerSide``. On the cloud side "ours" is always the cloud and "theirs" the device, in
    every kind of conflict, so the names say the same as ``ours``/``theirs`` without needing
    to know that."""
    out = []
    for record in records:
        data = record.to_json()
        data["cloud"], data["device"] = data["ours"], data["theirs"]
        data["winnerSide"] = {"ours": "cloud", "theirs": "device"}.get(record.winner, record.winner)
        out.append(data)
    return out


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
    checked_sides: bool = False,
    sides: tuple[JSONObject, JSONObject, JSONObject] | None = None,
) -> tuple[MergeResult, dict[Path, Value]]:
    """Three-way merge ``(path, base, cloud, device)`` entries of one section.

    The cloud's side is "ours", the device's "theirs". Returns the merge and the value settled
    for each path; a path held for review keeps its ``current`` value. The values of
    ``entries`` stay the caller's (they are copied here). ``checked_sides`` says that the
    cloud's and the device's values are a checked document's (`is_checked`): they are copied
    without being checked again. The base, read from the history, is checked as `merge`
    checks it. ``sides`` are the three sides as `_nested_sides` makes them of ``entries``
    (with ``copy_sides=checked_sides``), when the caller nested them already.
    """
    # What `merge` does first (the policy, then each side checked and copied, as `merge`
    # words its errors), without checking values that cannot fail.
    resolved = merge_policy(policy, section)
    if sides is None:
        sides = _nested_sides(entries, copy_sides=checked_sides)
    base_tree, ours, theirs = sides
    agreed = section_value(base_tree, "base")
    if not checked_sides:
        ours, theirs = section_value(ours, "ours"), section_value(theirs, "theirs")
    result = merge_sections(
        agreed,
        ours,
        theirs,
        policy=resolved,
        section=section,
        thing_name=thing_name,
        shadow_name=shadow_name,
        ours_source="cloud",
        theirs_source="device",
        ours_stamps=cloud_stamps,
        theirs_stamps=device_stamps,
        changes=False,  # what each path's change was: no decision reads it
    )
    held = [item.path for item in result.reviews]
    final: dict[Path, Value] = {}
    merged = result.merged
    for path, _, _, _ in entries:
        if held and any(path[: len(h)] == h for h in held):
            final[path] = copy_value(lookup(current, path))
        else:
            # The merged section is the merge's own copy, which nothing else holds.
            final[path] = lookup(merged, path)
    return result, final


def _nested_sides(
    entries: list[tuple[Path, Value, Value, Value]], *, copy_sides: bool
) -> tuple[JSONObject, JSONObject, JSONObject]:
    """The base's, the cloud's and the device's values of ``entries`` as three objects, each
    as `nested` makes it, in one pass; with ``copy_sides`` the cloud's and the device's values
    are copies (as a copy of each whole object would be), the base's are placed as given."""
    agreed: JSONObject = {}
    ours: JSONObject = {}
    theirs: JSONObject = {}
    for path, base, cloud, device in entries:
        last = path[-1]
        if base is not MISSING:
            holder(agreed, path)[last] = base
        if cloud is not MISSING:
            holder(ours, path)[last] = copy_json(cloud) if copy_sides else cloud
        if device is not MISSING:
            holder(theirs, path)[last] = copy_json(device) if copy_sides else device
    return agreed, ours, theirs


@attrs.frozen(kw_only=True)
class HistoryPosition:
    """Where a shadow's history stands when a decision on it is made (`history_position`)."""

    previous: HistoryRecord | str | None
    """What the decision's record chains to: the newest record given, or its checksum."""
    base: dict[str, Any] | None
    """The shadow's state as its last record left it (None: no record yet, or a closed one)."""
    last: HistoryRecord | None
    """The shadow's last record."""
    closing: HistoryRecord | None = None
    """The delete record that closes the shadow's old history, stored before the decision's."""


def history_position(
    log: AuditLog | HistoryHead,
    thing_name: str,
    shadow_name: str | None,
    document: ShadowDocument | None,
    *,
    previous: HistoryRecord | str | None,
    now: int,
) -> HistoryPosition:
    """Where the shadow's history in ``log`` stands for a decision on ``document``.

    When the shadow is below its last record's version (deleted and created again), a delete
    record closes its old history, and the decision's own record starts after it, from the
    empty state.
    """
    last = _last_record(log, thing_name, shadow_name)
    base = _shared_base(log, thing_name, shadow_name)
    if last is None or document is None or document.version >= last.version:
        return HistoryPosition(previous=previous, base=base, last=last)
    closing = deletion_record(
        thing_name,
        shadow_name,
        previous=previous,
        base=base,
        last=last,
        now=now,
        version=document.version,
    )
    return HistoryPosition(previous=closing, base=None, last=closing, closing=closing)


def _last_record(
    log: AuditLog | HistoryHead, thing_name: str, shadow_name: str | None
) -> HistoryRecord | None:
    """The shadow's last record in ``log`` (``log.records_for(...)[-1]``), None without one."""
    if isinstance(log, HistoryHead):
        records = log.records_for(thing_name, shadow_name)
        return records[-1] if records else None
    return last_record(log, thing_name, shadow_name)


def _shared_base(
    log: AuditLog | HistoryHead, thing_name: str, shadow_name: str | None
) -> dict[str, Any] | None:
    """``log.last_state(thing_name, shadow_name)`` without the copy, shared with the history:
    a decision only reads its base (and copies what it keeps of it)."""
    if isinstance(log, HistoryHead):
        shadow = log.shadow(shadow_name) if thing_name == log.thing_name else None
        return None if shadow is None else shadow.state
    return shared_last_state(log, thing_name, shadow_name)


def _drop_emptied_parents(
    update_state: JSONObject, current: JSONObject, writes: dict[Path, Value]
) -> None:
    """Delete the objects that the update's deletions would leave empty.

    AWS keeps an object whose last key an update deletes, as ``{}``; a desired ``{}`` that the
    reported state does not hold would stay in the delta, so the emptied object goes too.
    """
    if not any(value is MISSING for value in writes.values()):
        return  # only a deletion empties an object (and the patched copy costs a deep copy)
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
    refused = copy_value(lookup(proposed, violation.path))
    # Ours is the cloud, theirs the device, as in the merge's records: a refused desired value
    # is the cloud's (the device's reported value is kept); a refused reported value is the
    # device's (the value the cloud holds is kept).
    cloud_refused = section == "desired"
    return ConflictRecord(
        path=violation.path,
        section=section,
        kind=ConflictKind.BUSINESS_RULE_VIOLATION,
        severity=Severity.HIGH,
        base=MISSING if base is None else copy_value(lookup(base[section], violation.path)),
        ours=refused if cloud_refused else kept,
        theirs=kept if cloud_refused else refused,
        strategy=f"rule:{violation.rule}",
        winner="theirs" if cloud_refused else "ours",
        value=kept,
        reason=violation.reason,
    )


@attrs.frozen(kw_only=True)
class DecisionContext:
    """Everything one shadow's decision is made from, built once by the operation deciding.

    ``settled`` maps each path of ``section`` to the value the three-way merge (``merge``)
    settled for it (`settle`), and ``history`` where the shadow's history stands
    (`history_position`). ``details`` start the history record's details and ``fast_forward``
    is the reason given when an update settles the shadow without a conflict.
    """

    thing_name: str
    shadow_name: str | None
    document: ShadowDocument | None
    section: Literal["desired", "reported"]
    merge: MergeResult
    settled: dict[Path, Value]
    rules: RuleSet | None
    now: int
    history: HistoryPosition
    event_bus: str | None = None
    limits: ShadowLimits = DEFAULT_LIMITS
    details: dict[str, Any]
    fast_forward: str
    stale_event: bool = False
    checked: bool = False
    """True when the shadow's values were checked (`is_checked`), the merge's base was checked
    as `merge` checks it, and ``details`` hold only plain JSON: then what the decision makes of
    them is plain JSON too, wherever no strategy or rule made a value of its own."""

    @property
    def reported(self) -> JSONObject:
        """The shadow's reported section (empty when there is no shadow)."""
        return _section(self.document, "reported")

    @property
    def current(self) -> JSONObject:
        """The decided section as the shadow holds it now."""
        return _section(self.document, self.section)

    @property
    def version(self) -> int:
        """The shadow's version now (0 when there is no shadow)."""
        return self.document.version if self.document is not None else 0

    @property
    def resolved(self) -> list[ConflictRecord]:
        """The merge's conflicts that its strategies settled (not held for review)."""
        return [r for r in self.merge.report if r.review_id is None]


def settled_context(
    entries: list[tuple[Path, Value, Value, Value]],
    *,
    section: Section,
    document: ShadowDocument | None,
    thing_name: str,
    shadow_name: str | None,
    history: HistoryPosition,
    details: dict[str, Any],
    fast_forward: str,
    stale_event: bool = False,
    policy: ResolutionPolicy | Strategy | None,
    rules: RuleSet | None,
    now: int,
    event_bus: str | None,
    limits: ShadowLimits,
    cloud_stamps: dict[Path, int],
    device_stamps: dict[Path, int],
    checked_sides: bool = False,
    sides: tuple[JSONObject, JSONObject, JSONObject] | None = None,
) -> DecisionContext:
    """The `DecisionContext` of ``entries`` once `settle` has merged them.

    First what is decided (the context's fields), then how: the operation's ``policy``,
    ``rules``, time and limits, and each side's stamps for the merge (``checked_sides`` and
    ``sides``: see `settle`). The section is settled against its value in the shadow now
    (``document``).
    """
    result, final = settle(
        entries,
        section=section,
        current=_section(document, section),
        policy=policy,
        thing_name=thing_name,
        shadow_name=shadow_name,
        cloud_stamps=cloud_stamps,
        device_stamps=device_stamps,
        checked_sides=checked_sides,
        sides=sides,
    )
    return DecisionContext(
        thing_name=thing_name,
        shadow_name=shadow_name,
        document=document,
        section=section,
        merge=result,
        settled=final,
        rules=rules,
        now=now,
        history=history,
        event_bus=event_bus,
        limits=limits,
        details=details,
        fast_forward=fast_forward,
        stale_event=stale_event,
        checked=checked_sides,
    )


@attrs.frozen(kw_only=True)
class Judgement:
    """What the rules made of the settled values (the first step, `apply_rules`)."""

    final: dict[Path, Value]
    """The settled values with each refused one replaced by the value in force."""
    violations: tuple[Violation, ...]
    accepted: JSONObject | None
    """The rules' accepted section (None without rules): refused changes reverted."""
    reviews: tuple[ReviewItem, ...]
    """The merge's review items that no rule settled."""
    report: ConflictReport
    """The merge's conflicts, then one business-rule conflict per violation."""
    acknowledgement: Acknowledgement | None

    @functools.cached_property
    def conflicts(self) -> list[dict[str, Any]]:
        """`report` as JSON (`conflicts_json`), made once for the record and the signals, which
        only read it."""
        return conflicts_json(self.report)


@attrs.frozen(kw_only=True)
class PlannedUpdate:
    """The update that settles the shadow (the second step, `plan_update`)."""

    update: JSONObject | None
    """The UpdateThingShadow request, or None when the shadow is left as it is."""
    document: ShadowDocument | None
    """The shadow once the update is applied."""
    pending: tuple[Path, ...]
    """The delta paths still pending then."""


@attrs.frozen(kw_only=True)
class Verdict:
    """The decision, the history record's change type and the reason (`classify`)."""

    decision: Decision
    change_type: ChangeType
    reason: str


def apply_rules(context: DecisionContext) -> Judgement:
    """Step 1: judge the settled values with the rules.

    Rules judge every value still to be applied against the reported state in force: for
    ``desired``, a pending desired value against the reported one; for ``reported``, a new
    reported value against the current one. A refused value is replaced by the value in force,
    and a rule's refusal settles a held conflict on its path too.
    """
    document, section, reported = context.document, context.section, context.reported
    final = dict(context.settled)
    outcome = None
    violations: tuple[Violation, ...] = ()
    proposed: JSONObject = {}
    if context.rules is not None:
        # What the rules judge (and nothing else reads): a copy of reported, settled values in.
        proposed = copy_object(reported)
        for path, value in final.items():
            if value is not MISSING:
                place(proposed, path, value)
            elif section == "reported":
                _remove(proposed, path)
        outcome = context.rules.evaluate(
            "desired" if section == "desired" else "reported",
            reported,
            proposed,
            timestamp=context.now,
            metadata=document.section_metadata("reported") if document is not None else None,
            desired_version=context.version,
            thing_name=context.thing_name,
            shadow_name=context.shadow_name,
        )
        violations = outcome.violations
        for violation in violations:
            for path in final:
                if overlaps(path, violation.path):
                    final[path] = copy_value(lookup(outcome.accepted, path))
    # The value in force stays where a rule refused, so nothing is left for a person there.
    reviews = tuple(
        item
        for item in context.merge.reviews
        if not any(overlaps(item.path, v.path) for v in violations)
    )
    report = ConflictReport(
        tuple(context.merge.report.records)
        + tuple(
            _violation_record(v, section, outcome.accepted, proposed, context.history.base)
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
    return Judgement(
        final=final,
        violations=violations,
        accepted=outcome.accepted if outcome is not None else None,
        reviews=reviews,
        report=report,
        acknowledgement=acknowledgement,
    )


def plan_update(context: DecisionContext, judgement: Judgement) -> PlannedUpdate:
    """Step 2: the update that writes the judged values, and the shadow once it is applied.

    The update carries the shadow's version (optimistic locking) and a client token derived
    from it. Raises `ShadowRejectedError` when the service would refuse it (size, depth).
    """
    document, section, current = context.document, context.section, context.current
    # A refused value is replaced whole: paths under a refused path are written as the value
    # in force at the refused path (an object refused where a number is in force is replaced
    # by that number, not emptied key by key).
    writes: dict[Path, Value] = {}
    refused = [v.path for v in judgement.violations]
    for path, value in judgement.final.items():
        above = (
            [r for r in refused if len(r) < len(path) and path[: len(r)] == r] if refused else ()
        )
        if above and judgement.accepted is not None:
            top = min(above, key=len)
            writes[top] = copy_value(lookup(judgement.accepted, top))
        else:
            writes[path] = value
    update_state: JSONObject = {}
    for path, value in writes.items():
        if not same(value, lookup(current, path)):
            place(update_state, path, None if value is MISSING else value)
    _drop_emptied_parents(update_state, current, writes)
    if not update_state:
        pending = tuple(leaf_paths(document.delta or {})) if document is not None else ()
        return PlannedUpdate(update=None, document=document, pending=pending)
    body: JSONObject = {"state": {section: update_state}}
    if document is not None:
        body["version"] = document.version
    body["clientToken"] = client_token(
        context.thing_name, context.shadow_name, context.version, {section: update_state}
    )
    after = apply_update(
        document,
        body,
        timestamp=context.now,
        limits=context.limits,
        previous_version=context.history.last.version if context.history.last else 0,
    ).document
    if document is None:
        delta = after.delta
    else:
        # The update shares what it leaves alone with the document, whose delta is known.
        delta = updated_delta(
            after.desired,
            after.reported,
            previous_desired=document.desired,
            previous_reported=document.reported,
            previous_delta=document.delta,
        )
    return PlannedUpdate(update=body, document=after, pending=tuple(leaf_paths(delta or {})))


def classify(context: DecisionContext, judgement: Judgement, planned: PlannedUpdate) -> Verdict:
    """Step 3: the decision and why: review before reject before merge before accept."""
    resolved = context.resolved
    if judgement.reviews:
        reason = f"{len(judgement.reviews)} conflict(s) held for manual review"
        return Verdict(decision="review", change_type="manual_review", reason=reason)
    if judgement.violations:
        reason = "; ".join(f"{v.rule}: {v.reason}" for v in judgement.violations)
        return Verdict(decision="reject", change_type="rule_rejected", reason=reason)
    if planned.update is not None and resolved:
        strategies = ", ".join(sorted({r.strategy for r in resolved}))
        reason = f"{len(resolved)} conflict(s) resolved by {strategies}"
        return Verdict(decision="merge", change_type="conflict_resolved", reason=reason)
    if planned.update is not None:
        return Verdict(decision="merge", change_type="update", reason=context.fast_forward)
    if planned.pending:
        reason = "pending: the device has yet to apply the desired state"
    else:
        reason = "in sync"
    return Verdict(decision="accept", change_type="update", reason=reason)


def make_records(
    context: DecisionContext, judgement: Judgement, planned: PlannedUpdate, verdict: Verdict
) -> tuple[HistoryRecord, ...]:
    """Step 4: the history records to store: the context's ``closing`` record, if any, then the
    decision's own, which describes the shadow as it will be once the update is applied."""
    thing_name, shadow_name, now = context.thing_name, context.shadow_name, context.now
    previous, base, last = context.history.previous, context.history.base, context.history.last
    version = context.version
    decision, change_type, reason = verdict.decision, verdict.change_type, verdict.reason
    new_document, acknowledgement = planned.document, judgement.acknowledgement
    plain = _plain_details(context, judgement)
    record_details: dict[str, Any] = {
        **context.details,
        # The conflicts' JSON is the judgement's, which the signals only read.
        "conflicts": judgement.conflicts,
        "reviews": [item.to_json() for item in judgement.reviews],
        # The update is the decision's too: the record keeps a copy.
        "update": copy_json(planned.update) if plain else planned.update,
        "pending": [json_pointer(p) for p in planned.pending],
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
        # Only read: the patch copies every value it takes from them.
        after=(
            {"desired": new_document.desired, "reported": new_document.reported}
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
        # The patch's values are the new document's (a shadow that is gone holds none).
        checked_after=new_document is None or is_checked(new_document),
        plain_details=plain,
    )
    closing = context.history.closing
    return (record,) if closing is None else (closing, record)


def _plain_details(context: DecisionContext, judgement: Judgement) -> bool:
    """Whether the record's details will hold only plain JSON, so that the record need not
    check and copy them again.

    They do when the context is checked (its values, base and details), no rule judged (rules
    make values and acknowledgements of their own), and every strategy kept one of the sides'
    values (or none) with a name, winner and reason that are plain strings: then every value in
    the conflicts, reviews and update is a copy of a checked one.
    """
    if not context.checked or context.rules is not None:
        return False
    for record in judgement.report:
        value = record.value
        if not (
            value is MISSING
            or value is record.ours
            or value is record.theirs
            or value is record.base
        ):
            return False
        if not (type(record.strategy) is str and type(record.reason) is str):
            return False
        if type(record.winner) is not str:
            return False
    return True


def make_signals(
    context: DecisionContext, judgement: Judgement, planned: PlannedUpdate, record: HistoryRecord
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """Step 5: the EventBridge entries and CloudWatch metric data announcing ``record``."""
    now, event_bus, label = context.now, context.event_bus, shadow_label(context.shadow_name)
    resolved, reviews, violations = context.resolved, judgement.reviews, judgement.violations
    events: list[dict[str, Any]] = []
    common: dict[str, Any] = {
        "thingName": context.thing_name,
        "shadowName": label,
        "version": record.version,
        "timestamp": iso_time(now),
    }
    if resolved:
        detail = {**common, "decision": record.decision, "update": planned.update}
        # `Judgement.report` starts with the merge's records (then the rules'): the resolved
        # ones are among them, at the same index.
        detail["conflicts"] = [
            data
            for conflict, data in zip(context.merge.report, judgement.conflicts, strict=False)
            if conflict.review_id is None
        ]
        events.append(event_entry("Conflict Resolved", detail, timestamp=now, event_bus=event_bus))
    if reviews:
        detail = {**common, "reviews": [item.to_json() for item in reviews]}
        events.append(
            event_entry("Manual Review Required", detail, timestamp=now, event_bus=event_bus)
        )
    if violations:
        acknowledgement = judgement.acknowledgement
        detail = {
            **common,
            "violations": [
                {"path": json_pointer(v.path), "rule": v.rule, "reason": v.reason}
                for v in violations
            ],
            "acknowledgement": acknowledgement.to_dict() if acknowledgement else None,
        }
        events.append(event_entry("Change Rejected", detail, timestamp=now, event_bus=event_bus))

    counts: list[tuple[MetricName, int]] = [("ConflictDetected", len(context.merge.report))]
    if resolved:
        counts.append(("ConflictResolved", len(resolved)))
    if reviews:
        counts.append(("ManualReviewRequired", len(reviews)))
    if violations:
        counts.append(("ChangeRejected", len(violations)))
    if not reviews:
        counts.append(("SyncCompleted", 1))
    counts.append(("PendingDeltaKeys", len(planned.pending)))
    metrics = tuple(
        metric_datum(name, value, timestamp=now, shadow_label=label) for name, value in counts
    )
    return tuple(events), metrics


def conclude(context: DecisionContext, judgement: Judgement | None = None) -> ShadowDecision:
    """The decision on ``context``: its steps `apply_rules`, `plan_update`, `classify`,
    `make_records` and `make_signals`, in that order.

    ``judgement`` is the first step's result when the caller takes it itself (`offline_sync`
    reports per cached change what the rules left of it).
    """
    if judgement is None:
        judgement = apply_rules(context)
    planned = plan_update(context, judgement)
    verdict = classify(context, judgement, planned)
    records = make_records(context, judgement, planned, verdict)
    record = records[-1]
    events, metrics = make_signals(context, judgement, planned, record)
    return ShadowDecision(
        thing_name=context.thing_name,
        shadow_name=context.shadow_name,
        decision=verdict.decision,
        reason=verdict.reason,
        update=planned.update,
        record=record,
        report=judgement.report,
        reviews=judgement.reviews,
        acknowledgement=judgement.acknowledgement,
        pending=planned.pending,
        events=events,
        metrics=metrics,
        stale_event=context.stale_event,
        records=records,
    )


def _section(document: ShadowDocument | None, section: Section) -> JSONObject:
    if document is None:
        return {}
    return document.desired if section == "desired" else document.reported


def _remove(target: JSONObject, path: Path) -> None:
    node: Any = target
    for key in path[:-1]:
        node = node.get(key) if type(node) is dict else None
    if type(node) is dict:
        node.pop(path[-1], None)
