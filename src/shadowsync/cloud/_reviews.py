"""Held reviews: conflicts a decision held for a person, and the approve/reject that settles one.

A decision whose strategy is manual review carries `ReviewItem` values; `held_reviews` turns
them into `HeldReview` values for a store to keep next to the decision's record. A person then
lists them (`page_reviews` over whatever a store returns) and approves or rejects one:
`resolve_review` checks that the value at the review's path is still the one the review was
held on, and builds the follow-up update (with the shadow's version), its history record and a
"Conflict Resolved" event. Nothing here does I/O: a store reads and writes, this module decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import attrs

from shadowsync._conflict.merge import ReviewItem, same
from shadowsync._json import (
    JSONObject,
    JSONValue,
    canonical_json,
    copy_json,
    describe,
    parse_json_pointer,
)
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._tree import MISSING, Value, lookup, nest
from shadowsync._update import apply_update
from shadowsync.audit import AuditLogError, HistoryRecord
from shadowsync.cloud._decision import ShadowDecision, client_token, history_position
from shadowsync.cloud._delta_event import shadow_document
from shadowsync.cloud._history import check_now, decision_history
from shadowsync.cloud._requests import OperationError, shadow_label
from shadowsync.cloud._signals import event_entry, iso_time, metric_datum

if TYPE_CHECKING:
    from shadowsync._audit.record import Decision
    from shadowsync._document import ShadowDocument
    from shadowsync.cloud._head import HistoryHead
    from shadowsync.cloud._history import History

ReviewAction: TypeAlias = Literal["approve", "reject"]
"""What a person does with a held review: apply the proposed value, or confirm the current."""

ReviewStatus: TypeAlias = Literal["pending", "approved", "rejected"]
"""Where a held review stands."""

_STATUS: dict[ReviewAction, ReviewStatus] = {"approve": "approved", "reject": "rejected"}


class ReviewNotFoundError(OperationError):
    """No held review of that thing and shadow has that id: answered with status 404."""

    status_code: ClassVar[int] = 404


class ReviewConflictError(OperationError):
    """The review cannot be settled as asked (its path moved on since it was held, or it was
    settled the other way already): answered with status 409, and nothing is written."""

    status_code: ClassVar[int] = 409


def _value(data: Mapping[str, Any], key: str) -> Value:
    # A shadow section never holds null, so null stands for an absent value without ambiguity.
    value = data.get(key)
    return MISSING if value is None else value


def review_item_from_json(data: object) -> ReviewItem:
    """A `ReviewItem` from its `ReviewItem.to_json` form; raises `AuditLogError` otherwise."""
    if not isinstance(data, Mapping):
        raise AuditLogError(f"a review item must be an object, got {describe(data)}")
    pointer, section = data.get("pointer"), data.get("section")
    path = parse_json_pointer(pointer) if isinstance(pointer, str) else None
    if path is None or section not in ("desired", "reported"):
        raise AuditLogError(f"a review item needs a pointer and a section: {describe(data)}")
    item_id, reason = data.get("id"), data.get("reason", "")
    if not isinstance(item_id, str) or not isinstance(reason, str):
        raise AuditLogError(f"a review item needs a string id and reason: {describe(data)}")
    return ReviewItem(
        id=item_id,
        path=path,
        section=section,
        current=_value(data, "current"),
        proposed=_value(data, "proposed"),
        base=_value(data, "base"),
        reason=reason,
    )


@attrs.frozen(kw_only=True)
class ReviewResolution:
    """How a held review was settled: by whom, when, and the record and update that did it."""

    action: ReviewAction
    reviewer: str | None
    comment: str | None
    resolved_at: int
    record: str
    """The checksum of the history record of the resolution."""
    update: JSONObject
    """The update the resolution sent (with the shadow's version then)."""

    def to_json(self) -> dict[str, Any]:
        """``{"action", "reviewer", "comment", "resolvedAt", "record", "update"}``."""
        return {
            "action": self.action,
            "reviewer": self.reviewer,
            "comment": self.comment,
            "resolvedAt": self.resolved_at,
            "record": self.record,
            "update": self.update,
        }


@attrs.frozen(kw_only=True)
class HeldReview:
    """A conflict held for a person: the thing and shadow, the `ReviewItem`, the shadow version
    and time it was held at, the record that held it, and how it was settled (if it was).

    ```pycon
    >>> from shadowsync._conflict.merge import review_id
    >>> item = ReviewItem(id=review_id("desired", ("rate",), 90, 85), path=("rate",),
    ...                   section="desired", current=90, proposed=85, base=80, reason="held")
    >>> held = HeldReview(thing_name="pump-7", shadow_name="configuration", item=item,
    ...                   version=3, held_at=1700000013, record="ab" * 32)
    >>> held.status, HeldReview.from_json(held.to_json()) == held
    ('pending', True)

    ```
    """

    thing_name: str
    shadow_name: str | None
    item: ReviewItem
    version: int
    """The shadow version the decision that held it was made at."""
    held_at: int
    record: str
    """The checksum of the history record of the decision that held it."""
    resolution: ReviewResolution | None = None

    @property
    def id(self) -> str:
        """The review item's id (stable: derived from its section, path and values)."""
        return self.item.id

    @property
    def status(self) -> ReviewStatus:
        """``pending`` until approved or rejected."""
        return "pending" if self.resolution is None else _STATUS[self.resolution.action]

    def to_json(self) -> dict[str, Any]:
        """The review as JSON: ``thingName``, ``shadowName`` (``"$default"`` for the classic
        shadow), ``reviewId``, ``item``, ``version``, ``heldAt``, ``record``, ``status`` and
        ``resolution`` (null while pending)."""
        return {
            "thingName": self.thing_name,
            "shadowName": shadow_label(self.shadow_name),
            "reviewId": self.id,
            "item": self.item.to_json(),
            "version": self.version,
            "heldAt": self.held_at,
            "record": self.record,
            "status": self.status,
            "resolution": None if self.resolution is None else self.resolution.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> HeldReview:
        """A review from `to_json`'s form; raises `AuditLogError` for anything else."""
        if not isinstance(data, Mapping):
            raise AuditLogError(f"a held review must be an object, got {describe(data)}")
        try:
            thing, label = data["thingName"], data["shadowName"]
            resolution = data.get("resolution")
            held = cls(
                thing_name=thing,
                shadow_name=None if label == shadow_label(None) else label,
                item=review_item_from_json(data["item"]),
                version=data["version"],
                held_at=data["heldAt"],
                record=data["record"],
                resolution=None
                if resolution is None
                else ReviewResolution(
                    action=resolution["action"],
                    reviewer=resolution.get("reviewer"),
                    comment=resolution.get("comment"),
                    resolved_at=resolution["resolvedAt"],
                    record=resolution["record"],
                    update=resolution["update"],
                ),
            )
        except (KeyError, TypeError) as exc:
            raise AuditLogError(f"a held review is missing {exc}: {describe(data)}") from None
        if not all(isinstance(v, str) for v in (held.thing_name, held.record)) or any(
            type(v) is not int for v in (held.version, held.held_at)
        ):
            raise AuditLogError(f"a held review has a field of the wrong type: {describe(data)}")
        return held


@attrs.frozen(kw_only=True)
class ReviewQuery:
    """What a `ReviewReader` is asked for: one thing's reviews, in pages.

    ``shadow_names`` limits them to some shadows (None: every shadow); ``review_id`` to one
    review; ``resolved`` asks for settled reviews as well as pending ones (a store may answer
    that only for one ``review_id``: `SyncManager` asks for settled ones only so, to find a
    review's resolution). ``after`` is the ``next_token`` of the page before.
    """

    thing_name: str
    shadow_names: tuple[str | None, ...] | None = None
    review_id: str | None = None
    resolved: bool = False
    limit: int = 50
    after: str | None = None


@attrs.frozen(kw_only=True)
class ReviewPage:
    """One page of held reviews, and the token that reads the next (None: it was the last)."""

    reviews: tuple[HeldReview, ...]
    next_token: str | None = None


ReviewReader = Callable[[ReviewQuery], ReviewPage]
"""Reads held reviews: ``(query) -> page``. For one ``review_id``, a pending review comes
before settled copies of it, and settled copies newest first."""


def _key(review: HeldReview) -> str:
    return canonical_json([shadow_label(review.shadow_name), review.id, review.held_at])


def page_reviews(reviews: Iterable[HeldReview], query: ReviewQuery) -> ReviewPage:
    """Answer ``query`` from reviews held in memory (a `ReviewReader` for tests and examples).

    Reviews are ordered by shadow, id and time held; the page token is the last one's place.

    ```pycon
    >>> page_reviews([], ReviewQuery(thing_name="pump-7"))
    ReviewPage(reviews=(), next_token=None)

    ```
    """
    chosen = sorted(
        (
            r
            for r in reviews
            if r.thing_name == query.thing_name
            and (query.shadow_names is None or r.shadow_name in query.shadow_names)
            and (query.review_id is None or r.id == query.review_id)
            and (query.resolved or r.resolution is None)
            and (query.after is None or _key(r) > query.after)
        ),
        key=lambda r: (r.resolution is not None, _key(r)),
    )
    page = tuple(chosen[: query.limit])
    more = len(chosen) > query.limit
    return ReviewPage(reviews=page, next_token=_key(page[-1]) if more else None)


def held_reviews(decision: ShadowDecision) -> tuple[HeldReview, ...]:
    """The reviews ``decision`` holds, to be stored with its record (none for most decisions)."""
    version = decision.update.get("version") if decision.update else None
    return tuple(
        HeldReview(
            thing_name=decision.thing_name,
            shadow_name=decision.shadow_name,
            item=item,
            version=version if type(version) is int else decision.record.version,
            held_at=decision.record.timestamp,
            record=decision.record.checksum,
        )
        for item in decision.reviews
    )


@attrs.frozen(kw_only=True)
class ReviewDecision:
    """What approving or rejecting a held review comes to: the update to send (with the
    shadow's version), the records to store before it, the review as it is once settled, and
    the "Conflict Resolved" event. ``replayed`` is True when the review was already settled
    the same way: then there is nothing to write and the body repeats the stored answer."""

    review: HeldReview
    update: JSONObject | None
    records: tuple[HistoryRecord, ...]
    events: tuple[dict[str, Any], ...]
    metrics: tuple[dict[str, Any], ...]
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        """The response body: the review (with its ``resolution``), ``update``, ``replayed``."""
        resolution = self.review.resolution
        assert resolution is not None
        return {
            "thingName": self.review.thing_name,
            "shadowName": shadow_label(self.review.shadow_name),
            "reviewId": self.review.id,
            "action": resolution.action,
            "status": self.review.status,
            "update": resolution.update,
            "historyHead": resolution.record,
            "review": self.review.to_json(),
            "replayed": self.replayed,
        }


def _written(held: Value, target: Value) -> JSONValue:
    """What an update writes so that a path holding ``held`` holds ``target`` afterwards."""
    if target is MISSING:
        return None
    if type(held) is dict and type(target) is dict:
        written = {key: _written(held.get(key, MISSING), value) for key, value in target.items()}
        written.update({key: None for key in held if key not in target})
        return written
    return copy_json(target)


def _shown(value: Value) -> str:
    return "absent" if value is MISSING else canonical_json(value)


def _where(review: HeldReview) -> str:
    return f"{review.thing_name}/{shadow_label(review.shadow_name)} review {review.id}"


def resolve_review(
    review: HeldReview | None,
    action: ReviewAction,
    shadow: ShadowDocument | Mapping[str, Any] | None,
    *,
    now: int,
    history: History | HistoryHead,
    reviewer: str | None = None,
    comment: str | None = None,
    event_bus: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
) -> ReviewDecision:
    """Approve or reject ``review`` against ``shadow`` as read now (a document, a
    GetThingShadow body, or None when it no longer exists).

    The update is ``item.approve()`` or ``item.reject()`` (with nulls for the keys an object
    value loses, so that the path holds exactly the chosen value) with the shadow's version
    and a client token derived from it, so it fails with 409 rather than overwrite a change
    made in between. Raises `ReviewConflictError` (409) when the value at the review's path is
    no longer its ``current`` (the shadow moved on since it was held: decide again rather than
    apply it blindly) or when the review was already settled the other way, and
    `ReviewNotFoundError` (404) when there is no such review. A review already settled the
    same way is answered from its resolution, with nothing to write.
    """
    if review is None:
        raise ReviewNotFoundError(
            "no held review with that id", operation="resolve_pending_conflicts"
        )
    if review.resolution is not None:
        if review.resolution.action != action:
            raise ReviewConflictError(
                f"{_where(review)} was already {review.status}; it cannot be {_STATUS[action]}",
                operation="resolve_pending_conflicts",
            )
        return ReviewDecision(review=review, update=None, records=(), events=(), metrics=(),
                              replayed=True)  # fmt: skip
    now = check_now(now)
    shadow = shadow_document(shadow)
    item = review.item
    dotted = ".".join((item.section, *item.path))
    if shadow is None:
        raise ReviewConflictError(
            f"{_where(review)}: the shadow no longer exists, so {dotted} moved on since the "
            "review was held; nothing was written",
            operation="resolve_pending_conflicts",
        )
    held_now = lookup(shadow.desired if item.section == "desired" else shadow.reported, item.path)
    if not same(held_now, item.current):
        raise ReviewConflictError(
            f"{_where(review)}: {dotted} is now {_shown(held_now)}, not {_shown(item.current)} "
            "as when the review was held "
            f"at version {review.version}; the shadow moved on, so nothing was written (list "
            "the reviews again for the current ones)",
            operation="resolve_pending_conflicts",
        )
    target = item.proposed if action == "approve" else item.current
    # item.approve() / item.reject(), except that an object losing keys gets them as nulls: an
    # update merges objects, and the path must end up holding exactly the value chosen.
    state = nest((item.section, *item.path), _written(held_now, target))
    thing, name = review.thing_name, review.shadow_name
    update: JSONObject = {
        "state": state,
        "version": shadow.version,
        "clientToken": client_token(thing, name, shadow.version, state),
    }
    after = apply_update(shadow, update, timestamp=now, limits=limits).document
    log, previous = decision_history(history)
    position = history_position(log, thing, name, shadow, previous=previous, now=now)
    last = position.last
    who = f" by {reviewer}" if reviewer else ""
    verdict: Decision = "merge" if action == "approve" else "reject"
    record = HistoryRecord.create(
        thing,
        name,
        previous=position.previous,
        previous_state=position.base,
        new_state={"desired": after.desired, "reported": after.reported},
        version=after.version,
        timestamp=now if last is None else max(now, last.timestamp),
        change_type="update",
        decision=verdict,
        reason=f"review {item.id} {_STATUS[action]}{who}: {dotted} "
        + (
            f"set to the proposed {_shown(item.proposed)}"
            if action == "approve"
            else f"kept at {_shown(item.current)}"
        ),
        details={
            "review": review.to_json(),
            "action": action,
            "reviewer": reviewer,
            "comment": comment,
            "update": update,
        },
    )
    resolved = attrs.evolve(
        review,
        resolution=ReviewResolution(
            action=action,
            reviewer=reviewer,
            comment=comment,
            resolved_at=now,
            record=record.checksum,
            update=update,
        ),
    )
    label = shadow_label(name)
    detail: JSONObject = {
        "thingName": thing,
        "shadowName": label,
        "version": record.version,
        "timestamp": iso_time(now),
        "decision": verdict,
        "update": update,
        "review": resolved.to_json(),
    }
    records = position.closing, record
    return ReviewDecision(
        review=resolved,
        update=update,
        records=tuple(r for r in records if r is not None),
        events=(event_entry("Conflict Resolved", detail, timestamp=now, event_bus=event_bus),),
        metrics=(metric_datum("ConflictResolved", 1, timestamp=now, shadow_label=label),),
    )
