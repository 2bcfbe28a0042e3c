"""Planning the updates a device session sends, as pure functions of what it knows.

Once the snapshot is in, the outbox merges three ways what both sides last agreed on (the
base), the base with the queued intents applied (ours) and the cloud's reported state
(theirs): `merge_reported`; the desired state is judged the same way (`merge_desired`, with
the business rules). `plan_updates` turns the queue's replay batches, the merged target
and the desired patch into the `Planned` updates to send, in order; `update_body` then cuts
each reported update down to what the cloud does not hold yet (`needed`), just before it is
sent; `escalation` is what to hold for review when updates keep meeting version conflicts.

```pycon
>>> needed({"hvac": {"mode": "heat"}, "on": True}, {"hvac": {"mode": "cool"}, "on": True},
...        {"hvac": {"mode": "heat"}, "on": True})
{'hvac': {'mode': 'heat'}}

```
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from shadowsync._conflict.merge import (
    ConflictRecord,
    ConflictReport,
    MergeResult,
    ReviewItem,
    merge,
    review_id,
    same,
    stamps_from_metadata,
)
from shadowsync._device.intent import written_leaves
from shadowsync._device.view import apply_at
from shadowsync._json import copy_json, copy_object, json_equal
from shadowsync._tree import MISSING, Missing, lookup
from shadowsync.events import ConflictResolved, ReviewNeeded

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._device.intent import Intent
    from shadowsync._device.replay import ReplayBatch
    from shadowsync._document import ShadowDocument
    from shadowsync._json import JSONObject, JSONValue
    from shadowsync._tree import Path
    from shadowsync.events import Event
    from shadowsync.rules import RuleSet

__all__ = [
    "Planned",
    "escalation",
    "fast_forward",
    "mark_written",
    "merge_desired",
    "merge_events",
    "merge_patches",
    "merge_reported",
    "needed",
    "plan_updates",
    "unmark",
    "update_body",
]


@attrs.frozen(kw_only=True)
class Planned:
    """One update of a plan: queued reports (to bring the paths of ``touched``, the batch's
    reported patch, to ``target``), the desired patch, or the empty update that creates the
    shadow."""

    kind: Literal["reported", "desired", "create"]
    token: str
    state: JSONObject = attrs.field(factory=dict, eq=False)
    seqs: tuple[int, ...] = ()
    touched: JSONObject = attrs.field(factory=dict, eq=False)
    target: JSONObject = attrs.field(factory=dict, eq=False)


# -- the reported merge ------------------------------------------------------------------------

_Found = TypeVar("_Found", ConflictRecord, ReviewItem)
"""A merge's finding whose values `unmark` scrubs."""

_WRITTEN = "\x00shadowsync: written since the base\x00"
"""Stands in the merge base for a path the device wrote back to its base value.

A queued write is a change even when it restores the base value (a value the device reported,
then changed back), while a three-way merge only sees a change where a side differs from the
base. Without this, the cloud still holding the intermediate value would look like the only
change, and win.
"""


def mark_written(base: JSONObject, ours: JSONObject, pending: Iterable[Intent]) -> JSONObject:
    """A copy of ``base`` where each path that a ``pending`` intent wrote back to its base
    value holds a marker, so that the merge sees the write (`unmark` takes them out again)."""
    marked = copy_object(base)
    for intent in pending:
        for path, _ in written_leaves(intent):
            if not same(lookup(base, path), lookup(ours, path)):
                continue
            node: Any = marked
            for key in path[:-1]:
                child = node.setdefault(key, {})
                if type(child) is not dict:
                    break
                node = child
            else:
                node[path[-1]] = _WRITTEN
    return marked


def _scrub(value: Any, path: Path, base: JSONObject) -> Any:
    """``value`` with every `_WRITTEN` marker replaced by the real base value there."""
    if value == _WRITTEN:
        return lookup(base, path)
    if type(value) is dict:
        out = {}
        for key, item in value.items():
            clean = _scrub(item, (*path, key), base)
            if clean is not MISSING:
                out[key] = clean
        return out
    return value


def _scrubbed(item: _Found, fields: tuple[str, ...], base: JSONObject) -> _Found:
    """``item`` with its value ``fields`` scrubbed (each value stands at ``item.path``)."""
    return attrs.evolve(item, **{f: _scrub(getattr(item, f), item.path, base) for f in fields})


def unmark(result: MergeResult, base: JSONObject) -> MergeResult:
    """The merge result as if the markers of `mark_written` had never been there."""
    records = tuple(_scrubbed(record, ("base", "value"), base) for record in result.report)
    reviews = tuple(_scrubbed(item, ("base", "current"), base) for item in result.reviews)
    return attrs.evolve(
        result,
        merged=_scrub(result.merged, (), base),
        report=ConflictReport(records),
        reviews=reviews,
    )


def fast_forward(
    base: JSONObject, pending: Sequence[Intent], cloud: ShadowDocument | None
) -> JSONObject | None:
    """The base with the ``pending`` intents applied, when the ``cloud``'s reported state is
    still the base (the usual case: nothing but the device wrote it since they agreed); else
    ``None``. Only our side changed then, and a three-way merge takes every change of one
    side as it is: `merge_reported` would give the same state, and no conflict."""
    if not json_equal({} if cloud is None else cloud.reported, base):
        return None
    ours = copy_object(base)
    for intent in pending:
        apply_at(ours, intent.path, intent.value)
    return ours


def merge_reported(
    *,
    base: JSONObject,
    pending: Sequence[Intent],
    cloud: ShadowDocument | None,
    policy: ResolutionPolicy,
    thing_name: str,
    shadow_name: str | None,
) -> MergeResult:
    """The three-way merge of the reported state: ``base``, the base with the ``pending``
    intents applied (ours, stamped with their creation times) and the ``cloud``'s."""
    ours = copy_object(base)
    for intent in pending:
        apply_at(ours, intent.path, intent.value)
    result = merge(
        mark_written(base, ours, pending),
        ours,
        {} if cloud is None else cloud.reported,
        policy=policy,
        section="reported",
        thing_name=thing_name,
        shadow_name=shadow_name,
        ours_stamps={intent.path: intent.created_at for intent in pending},
        theirs_stamps={} if cloud is None else stamps_from_metadata(cloud.reported_metadata),
    )
    return unmark(result, base)


def merge_events(result: MergeResult, version: int | None) -> list[Event]:
    """What the application hears of a reported merge against the cloud at ``version``: the
    conflicts it settled, and those the policy holds for review."""
    out: list[Event] = []
    if result.report:
        out.append(ConflictResolved(report=result.report, section="reported", version=version))
    if result.reviews:
        out.append(
            ReviewNeeded(
                items=result.reviews,
                reason="the resolution policy holds these conflicts for review",
            )
        )
    return out


def merge_desired(
    *,
    accepted: JSONObject,
    metadata: JSONObject,
    theirs: JSONObject,
    version: int,
    policy: ResolutionPolicy,
    rules: RuleSet | None,
    now: float,
    thing_name: str,
    shadow_name: str | None,
) -> MergeResult:
    """The device's judgement of the cloud's desired state ``theirs`` (at ``version``): the
    ``accepted`` state (with its ``metadata``) moves to it where the ``rules`` allow."""
    return merge(
        accepted,
        accepted,
        theirs,
        policy=policy,
        section="desired",
        thing_name=thing_name,
        shadow_name=shadow_name,
        rules=rules,
        timestamp=int(now),
        desired_version=version,
        metadata=metadata,
    )


# -- the plan ----------------------------------------------------------------------------------


def plan_updates(
    *,
    batches: Iterable[ReplayBatch],
    target: JSONObject,
    desired_patch: JSONObject,
    create_first: bool,
    token: Callable[[], str],
) -> list[Planned]:
    """The updates to send, in order: one per replay batch (each to bring its paths to
    ``target``), then the ``desired_patch`` if any, all behind the empty update that creates
    the shadow when ``create_first`` (the shadow is not known to exist and updates carry a
    version). ``token`` makes the client tokens of the last two."""
    plan: list[Planned] = []
    for batch in batches:
        request = batch.request["state"]["reported"]
        plan.append(
            Planned(
                kind="reported",
                token=batch.client_token,
                seqs=tuple(batch.seqs),
                touched=request,
                target=target,
            )
        )
    if desired_patch:
        plan.append(
            Planned(kind="desired", token=token(), state={"desired": copy_object(desired_patch)})
        )
    if plan and create_first:
        # Create the shadow empty first, then write with a version: a duplicate of an
        # update without one could be applied again later and undo newer values, while a
        # duplicate of an empty update changes nothing.
        plan.insert(0, Planned(kind="create", token=token()))
    return plan


def merge_patches(target: JSONObject, patch: Mapping[str, Any]) -> None:
    """Merge two update patches in place: later values win, ``None`` (delete) is kept."""
    for key, value in patch.items():
        if type(value) is dict and type(target.get(key)) is dict:
            child = target[key]
            assert isinstance(child, dict)
            merge_patches(child, value)
        else:
            target[key] = copy_json(value)


# -- what one update still has to send --------------------------------------------------------


class _NoChange(enum.Enum):
    NO_CHANGE = "no change"


_NO_CHANGE = _NoChange.NO_CHANGE


def _diff_value(theirs: JSONValue | Missing, target: JSONValue | Missing) -> Any:
    """The update value that turns ``theirs`` into ``target`` (``_NO_CHANGE`` if equal)."""
    if same(theirs, target):
        return _NO_CHANGE
    if target is MISSING:
        return None
    if type(target) is dict and type(theirs) is dict:
        patch: JSONObject = {key: None for key in theirs if key not in target}
        for key, value in target.items():
            change = _diff_value(theirs.get(key, MISSING), value)
            if change is not _NO_CHANGE:
                patch[key] = change
        return patch if patch else _NO_CHANGE
    return copy_json(target)


def update_body(
    planned: Planned, cloud: ShadowDocument | None, *, compare_and_set: bool
) -> dict[str, Any] | None:
    """The update request that carries ``planned`` to the ``cloud`` as the view knows it, with
    its version under ``compare_and_set``; ``None`` when the cloud holds all of it already."""
    state = planned.state
    if planned.kind == "reported":
        change = needed(planned.touched, {} if cloud is None else cloud.reported, planned.target)
        if not change:
            return None
        state = {"reported": change}
    body: dict[str, Any] = {"state": state, "clientToken": planned.token}
    if compare_and_set and cloud is not None:
        body["version"] = cloud.version
    return body


def needed(touched: JSONObject, theirs: JSONObject, target: JSONObject) -> JSONObject:
    """The update that makes the cloud hold ``target`` at every path ``touched`` writes (the
    leaves of that reported patch).

    ``theirs`` is what the cloud holds. Where the cloud has no object to merge into above a
    path, the target value is written whole there; at the path itself only the difference is
    sent (keys to delete as ``null``), so a value the cloud already holds is not sent again.
    """
    patch: JSONObject = {}
    for key, below in touched.items():
        here = theirs.get(key, MISSING)
        wanted = target.get(key, MISSING)
        if type(below) is dict and below and type(here) is dict:
            # Deeper paths, with an object to merge into: only what they need.
            change: Any = needed(below, here, wanted if type(wanted) is dict else {})
            if not change:
                continue
        else:
            # The path itself, or no object to merge into above deeper paths: the value.
            change = _diff_value(here, wanted)
            if change is _NO_CHANGE:
                continue
        patch[key] = change
    return patch


# -- escalation --------------------------------------------------------------------------------


def escalation(
    *,
    previous: Iterable[ReviewItem],
    pending: Iterable[Intent],
    theirs: JSONObject,
    base: JSONObject,
    conflicts: int,
    max_conflict_retries: int,
) -> ReviewNeeded:
    """What to hold for a person when updates keep meeting version conflicts: the reviews
    the last merge asked for, then each ``pending`` intent against the cloud's value."""
    items = list(previous)
    seen = {item.id for item in items}
    for intent in pending:
        current = lookup(theirs, intent.path)
        proposed: JSONValue | Missing = MISSING if intent.value is None else intent.value
        item = ReviewItem(
            id=review_id("reported", intent.path, current, proposed),
            path=intent.path,
            section="reported",
            current=copy_json(current) if current is not MISSING else MISSING,
            proposed=copy_json(proposed) if proposed is not MISSING else MISSING,
            base=lookup(base, intent.path),
            reason="the update kept meeting version conflicts",
        )
        if item.id not in seen:
            seen.add(item.id)
            items.append(item)
    return ReviewNeeded(
        items=items,
        reason=(
            f"{conflicts} version conflicts in a row (max_conflict_retries is "
            f"{max_conflict_retries}); syncing is suspended until resume() or a reconnect"
        ),
        escalated=True,
    )
