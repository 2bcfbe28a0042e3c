"""Hypothesis strategies for the cloud side: shadow histories driven through the service.

A history is a list of steps over one thing's classic and ``configuration`` shadows: the cloud
writes desired values, the device writes reported values, the clock moves, and the resolver
handles a delta event (with a policy, perhaps with business rules), its update applied to the
service and its record added to the log. `run_history` plays the steps against an
`InMemoryShadowService` on a `ManualClock` and keeps what the laws need: every version's state
as the service returned it, and each resolution with the shadow before and after it.

Keys and values come from small pools so that the two sides keep clashing on the same paths,
change a value's type, nest objects and delete keys.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs
from hypothesis import strategies as st

from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.audit import AuditLog
from shadowsync.cloud import ShadowDecision, handle_delta_event
from shadowsync.errors import ShadowRejectedError
from shadowsync.rules import OneOf, Range, RuleSet
from shadowsync.strategies import FieldMerge, LastWriterWins, ManualReview, OwnerWins
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.strategies import (
    hostile_strings,
    hostile_values,
    huge_ints,
    json_text,
    section_patches,
    shadow_names,
    thing_names,
    to_utf8,
)

if TYPE_CHECKING:
    from shadowsync import JSONObject, JSONValue, ShadowDocument

THING = "pump-7"
SHADOWS: tuple[str | None, ...] = (None, "configuration")
KEYS = ("mode", "rate", "fan")
INNER_KEYS = ("x", "y")
START = 1_700_000_000

POLICIES: dict[str, ResolutionPolicy] = {
    "default": ResolutionPolicy(),
    "recommended": ResolutionPolicy.recommended(),
    "owner": ResolutionPolicy(default=OwnerWins()),
    "review": ResolutionPolicy(default=ManualReview()),
    "field": ResolutionPolicy(
        default=FieldMerge(fallback=LastWriterWins(prefer="theirs")),
        field_severity={},
        auto_resolve_threshold=1,
    ),
    "severity": ResolutionPolicy.from_dict(
        {
            "strategy": "field_level_merge",
            "field_priorities": {"mode": "high", "fan.*": "low"},
            "manual_review_severity": "high",
        }
    ),
}
"""The policies a resolve step picks from, by name (so that examples print readably)."""

RULES = RuleSet(
    rules=[
        Range(path="rate", minimum=0, maximum=2),
        OneOf(path="mode", values=["eco", "boost", 1]),
        Range(path="fan.x", maximum=1),
    ]
)
"""Rules that refuse often: a rate above 2 (or not a number), an unknown mode, a fan.x > 1."""

leaves: st.SearchStrategy[JSONValue] = st.one_of(
    st.integers(0, 3),
    st.sampled_from(("eco", "boost", "off", True, False, 1.0, 2.5)),
    st.lists(st.integers(0, 2), max_size=2),
)
"""Scalars and short arrays; ``1`` and ``1.0``, ``True`` and ``1`` meet often."""

_patch_leaves = st.one_of(leaves, st.none())

patches: st.SearchStrategy[JSONObject] = st.dictionaries(
    st.sampled_from(KEYS),
    st.one_of(
        _patch_leaves,
        st.dictionaries(st.sampled_from(INNER_KEYS), _patch_leaves, max_size=2),
    ),
    min_size=1,
    max_size=3,
)
"""What one side writes: values, objects one level deep, nulls (deletes)."""

StepKind: TypeAlias = Literal["cloud", "device", "resolve", "advance"]


@attrs.frozen
class Step:
    kind: StepKind
    shadow: str | None = None
    patch: JSONObject = attrs.field(factory=dict)
    policy: str = "default"
    rules: bool = False
    stale: bool = False
    seconds: int = 0


shadow_choices = st.sampled_from(SHADOWS)

steps: st.SearchStrategy[Step] = st.one_of(
    st.builds(Step, kind=st.just("cloud"), shadow=shadow_choices, patch=patches),
    st.builds(Step, kind=st.just("device"), shadow=shadow_choices, patch=patches),
    st.builds(
        Step,
        kind=st.just("resolve"),
        shadow=shadow_choices,
        policy=st.sampled_from(sorted(POLICIES)),
        rules=st.booleans(),
        stale=st.booleans(),
    ),
    st.builds(Step, kind=st.just("advance"), seconds=st.sampled_from((0, 1, 5, 60))),
)


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 14) -> list[Step]:
    """Steps that create both shadows first, then mix writes, time and resolutions, and end
    with a resolution of each shadow."""
    opening = [
        Step("cloud", shadow, draw(patches)) for shadow in SHADOWS if draw(st.booleans())
    ] + [Step("device", shadow, draw(patches)) for shadow in SHADOWS]
    middle = draw(st.lists(steps, max_size=max_steps))
    closing = [
        Step("resolve", shadow, policy=draw(st.sampled_from(sorted(POLICIES))))
        for shadow in SHADOWS
    ]
    return opening + middle + closing


@attrs.frozen
class Resolution:
    """One resolve step: the shadow it judged, the decision, and the shadow after it."""

    step: Step
    event: dict[str, Any]
    before: ShadowDocument
    base: JSONObject | None
    """The state the shadow's last record left, as the log replayed it before the decision."""
    decision: ShadowDecision
    after: ShadowDocument
    history: tuple[Any, ...]
    """The log's records when the decision was made."""


@attrs.define
class Run:
    log: AuditLog
    states: dict[tuple[str | None, int], JSONObject]
    """(shadow, version) -> ``{"desired", "reported"}`` as the service returned it."""
    resolutions: list[Resolution]


def state_of(document: ShadowDocument) -> JSONObject:
    return {"desired": document.desired, "reported": document.reported}


def run_history(history: list[Step]) -> Run:
    """Play ``history`` against the service; every decision's update is applied and its record
    added to the log at once (an update the service refuses is left out, as is its record)."""
    clock = ManualClock(START)
    service = InMemoryShadowService(clock=clock)
    log = AuditLog()
    run = Run(log=log, states={}, resolutions=[])

    def keep(document: ShadowDocument, shadow: str | None) -> None:
        run.states[(shadow, document.version)] = state_of(document)

    for step in history:
        if step.kind == "advance":
            clock.advance(step.seconds)
            continue
        if step.kind in ("cloud", "device"):
            section = "desired" if step.kind == "cloud" else "reported"
            try:
                result = service.update(
                    THING, {"state": {section: step.patch}}, shadow_name=step.shadow
                )
            except ShadowRejectedError:
                continue
            keep(result.document, step.shadow)
            continue
        before = service.document(THING, step.shadow)
        if before is None:
            continue
        event = {
            "thingName": THING,
            "shadowName": step.shadow,
            "state": before.delta or {},
            "version": max(0, before.version - step.stale),
        }
        base = log.replay(THING, step.shadow) if log.records_for(THING, step.shadow) else None
        records = log.records
        decision = handle_delta_event(
            event,
            before,
            now=service.now(),
            history=log,
            policy=POLICIES[step.policy],
            rules=RULES if step.rules else None,
        )
        after = before
        if decision.update is not None:
            result = service.update(THING, decision.update, shadow_name=step.shadow)
            after = result.document
            keep(after, step.shadow)
        log.add(decision.record)
        run.resolutions.append(
            Resolution(
                step=step,
                event=event,
                before=before,
                base=base,
                decision=decision,
                after=after,
                history=records,
            )
        )
    return run


# --------------------------------------------------------------------------------------------
# Hostile input for the fuzz suite
# --------------------------------------------------------------------------------------------

OPERATION_NAMES = ("sync_check", "offline_sync", "conflict_summary", "health_report")


def _field(draw: st.DrawFn, valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """A request field: valid most often, else hostile, else left out (``_ABSENT``)."""
    pick = draw(st.sampled_from(("valid", "valid", "hostile", "absent")))
    if pick == "absent":
        return _ABSENT
    return draw(valid if pick == "valid" else hostile)


_ABSENT = object()


@functools.cache
def _hostile() -> st.SearchStrategy[Any]:
    return st.one_of(hostile_values(), huge_ints(), hostile_strings())


@functools.cache
def _names() -> st.SearchStrategy[Any]:
    return st.one_of(shadow_names(), st.sampled_from(("$default", "", None)))


@st.composite
def _cached_changes(draw: st.DrawFn) -> Any:
    changes = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 5)) == 0:
            changes.append(draw(_hostile()))
            continue
        change: dict[Any, Any] = {}
        for name, valid in (
            ("shadowName", _names()),
            ("state", st.one_of(patches, section_patches())),
            ("timestamp", st.integers(0, 2 * START)),
        ):
            value = _field(draw, valid, _hostile())
            if value is not _ABSENT:
                change[name] = value
        changes.append(change)
    return changes


def _filled(
    draw: st.DrawFn,
    request: dict[Any, Any],
    fields: tuple[tuple[str, st.SearchStrategy[Any]], ...],
    *,
    sometimes: bool,
) -> dict[Any, Any]:
    """``request`` with each of ``fields`` valid, hostile or left out (``sometimes``: drawn at
    all only half the time), and now and then a stray member."""
    for name, valid in fields:
        if sometimes and not draw(st.booleans()):
            continue
        value = _field(draw, valid, _hostile())
        if value is not _ABSENT:
            request[name] = value
    if draw(st.integers(0, 8)) == 0:
        request[draw(st.one_of(hostile_strings(), st.integers()))] = draw(_hostile())
    return request


@functools.cache
@st.composite
def hostile_requests(draw: st.DrawFn) -> dict[Any, Any]:
    """Mappings shaped like sync manager requests, every field valid, hostile or left out."""
    request: dict[Any, Any] = {}
    operation = _field(draw, st.sampled_from(OPERATION_NAMES), _hostile())
    if operation is not _ABSENT:
        request["operation"] = operation
    hours = st.one_of(st.floats(0.01, 1000), st.integers(1, 48))
    fields: tuple[tuple[str, st.SearchStrategy[Any]], ...] = (
        ("thingName", thing_names()),
        ("shadowNames", st.lists(_names(), max_size=3)),
        ("thingNames", st.lists(thing_names(), max_size=3)),
        ("recentHours", hours),
        ("timeRangeHours", hours),
        ("offlineDurationSeconds", st.integers(0, 10**6)),
        ("cachedChanges", _cached_changes()),
    )
    return _filled(draw, request, fields, sometimes=True)


@functools.cache
@st.composite
def hostile_review_requests(draw: st.DrawFn) -> dict[Any, Any]:
    """Mappings shaped like ``resolve_pending_conflicts`` requests, every field valid, hostile
    or left out (``reviewIds`` are drawn from ``REVIEW_IDS`` when valid)."""
    request: dict[Any, Any] = {"operation": "resolve_pending_conflicts"}
    fields: tuple[tuple[str, st.SearchStrategy[Any]], ...] = (
        ("action", st.sampled_from(("list", "approve", "reject"))),
        ("thingName", st.one_of(st.just("pump-7"), thing_names())),
        ("shadowName", _names()),
        ("reviewId", st.sampled_from(REVIEW_IDS)),
        ("reviewer", st.text(min_size=1, max_size=12)),
        ("comment", st.text(max_size=20)),
        ("limit", st.integers(1, 100)),
        ("nextToken", st.text(max_size=40)),
    )
    return _filled(draw, request, fields, sometimes=False)


REVIEW_IDS = ("0123456789abcdef0123", "review-1", "missing")
"""Review ids `hostile_review_requests` draws; give a fake reader reviews with some of them."""


@functools.cache
@st.composite
def hostile_events(draw: st.DrawFn) -> dict[Any, Any]:
    """Mappings shaped like delta events, every member valid, hostile or left out."""
    event: dict[Any, Any] = {}
    for name, valid in (
        ("thingName", thing_names()),
        ("shadowName", _names()),
        ("state", st.one_of(patches, section_patches())),
        ("version", st.integers(0, 10)),
        ("timestamp", st.integers(0, 2 * START)),
        ("metadata", st.just({})),
        ("clientToken", st.text(max_size=8)),
    ):
        value = _field(draw, valid, _hostile())
        if value is not _ABSENT:
            event[name] = value
    return event


def as_wire(draw: st.DrawFn, value: Any) -> Any:
    """``value`` itself, or its JSON text (as str or UTF-8 bytes)."""
    form = draw(st.sampled_from(("mapping", "text", "bytes")))
    if form == "mapping":
        return value
    text = json_text(value, ascii_only=draw(st.booleans()))
    return text if form == "text" else to_utf8(text)
