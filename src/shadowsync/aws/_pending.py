"""Records before shadows: the write order that leaves no shadow change without its record.

A decision's records are stored first, with the update each shadow waits on kept in the
shadow's head item (``pending``); the update is sent next, with the version it was decided
on; then the pending mark is cleared (`DynamoDBHistoryStore.confirm`). Whatever step a failure
stops at, the next invocation that reads the shadow's head finds the mark and `settle` finishes
the work: it sends the update again (same version, same client token) and confirms it, or, when
the shadow moved on without it, stores a record of the shadow as it really is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._tree import leaf_paths, lookup
from shadowsync.audit import HistoryRecord
from shadowsync.cloud import HeldReview
from shadowsync.errors import VersionConflictError
from shadowsync.strategies import MISSING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shadowsync._document import ShadowDocument
    from shadowsync._json import JSONObject
    from shadowsync.aws._history import DynamoDBHistoryStore, StoredAnswer
    from shadowsync.aws._iot import IotShadowClient
    from shadowsync.cloud import HistoryHead

__all__ = [
    "REVIEWS_WITH_RECORDS",
    "holds_update",
    "reopened",
    "settle",
    "stored_decision",
    "store_records",
]

REVIEWS_WITH_RECORDS = 90
"""Held reviews of one shadow written in the transaction of its records (100 items at most,
with the records and head items)."""


def holds_update(document: ShadowDocument | None, update: Mapping[str, Any]) -> bool:
    """Whether ``document`` took ``update``: past its version, every value it wrote in place."""
    if document is None:
        return False
    version = update.get("version")
    if isinstance(version, int) and document.version <= version:
        return False
    state = update.get("state") or {}
    for section in ("desired", "reported"):
        written = state.get(section)
        if not isinstance(written, dict):
            continue
        held = document.desired if section == "desired" else document.reported
        for path in leaf_paths(written):
            value = lookup(written, path)
            now = lookup(held, path)
            if (value is None and now is not MISSING) or (value is not None and now != value):
                return False
    return True


def settle(
    shadows: IotShadowClient,
    history: DynamoDBHistoryStore,
    head: HistoryHead,
    shadow_name: str | None,
    *,
    now: int,
) -> bool:
    """Finish the update the shadow's last record waits on, if any; True when there was one.

    The update is sent again: accepted, or refused with 409 by a shadow that already holds it,
    it is confirmed. Refused by a shadow that moved on without it, a record going back to the
    state before the waiting one follows it (the chain is append-only) and clears the mark; the
    event that record decided is forgotten, and the stored answer of the ``offline_sync`` that
    decided it is deleted, so that a retry decides it again.
    """
    thing = head.thing_name
    shadow = head.shadow(shadow_name)
    if shadow is None or shadow.pending is None:
        return False
    try:
        shadows.update(thing, shadow.pending, shadow_name)
        history.confirm(thing, shadow_name, shadow.record.checksum)
        return True
    except VersionConflictError:
        document = shadows.get(thing, shadow_name)
    if holds_update(document, shadow.pending):
        history.confirm(thing, shadow_name, shadow.record.checksum)
        return True
    last = shadow.record
    moved = f"version {document.version}" if document is not None else "deletion"
    record = HistoryRecord.create(
        thing,
        shadow_name,
        previous=head.head or None,
        previous_state=shadow.state,
        new_state=shadow.before,
        version=last.version,
        timestamp=max(now, last.timestamp),
        change_type="update",
        decision="accept",
        reason=(
            f"the update the record before decided was not applied (the shadow moved on to "
            f"{moved}): back to the state before it"
        ),
        details={"notApplied": last.checksum},
    )
    # The event the waiting record decided is decided again, not answered from that record;
    # a review it settled is held again, since its update never reached the shadow.
    decided = (last.details or {}).get("eventVersion")
    history.append(
        [record],
        after=head,
        forget=(shadow_name, decided) if isinstance(decided, int) else None,
        reviews=reopened(last),
        # The answer of the request that decided this update would say it was applied.
        drop_answer=shadow.answer_key,
    )
    return True


def reopened(record: HistoryRecord) -> tuple[HeldReview, ...]:
    """The review ``record`` settled (``details["review"]``), pending again; () for others."""
    held = (record.details or {}).get("review")
    if held is None:
        return ()
    return (attrs.evolve(HeldReview.from_json(held), resolution=None),)


def stored_decision(
    history: DynamoDBHistoryStore, head: HistoryHead, shadow_name: str | None, version: int
) -> HistoryRecord | None:
    """The record that decided the delta event at ``version`` of the shadow, if one did."""
    shadow = head.shadow(shadow_name)
    if shadow is None:
        return None
    sequence = shadow.event_record(version)
    if sequence is None:
        return None
    if shadow.record.details is not None and shadow.record.details.get("eventVersion") == version:
        return shadow.record
    return history.record_at(head.thing_name, sequence)


def store_records(
    history: DynamoDBHistoryStore,
    head: HistoryHead,
    records: Sequence[HistoryRecord],
    *,
    pending: Mapping[str | None, JSONObject],
    event: tuple[str | None, int] | None = None,
    reviews: Sequence[HeldReview] = (),
    resolved: Sequence[HeldReview] = (),
    answer: StoredAnswer | None = None,
) -> list[HistoryRecord]:
    """Append one thing's ``records`` after ``head``, in transactions that each fit.

    Each shadow's pending update, the reviews it holds (up to `REVIEWS_WITH_RECORDS`; any
    more are stored just before) and the reviews settled on it go with the batch holding its
    last record, and the keyed request's ``answer`` with the last batch: once it is stored,
    every record is. Raises `HistoryConflictError` when the chain moved on since ``head`` was
    read (or the answer was stored meanwhile).
    """
    last_of = {record.shadow_name: index for index, record in enumerate(records)}
    extra: dict[str | None, int] = {}
    kept: list[HeldReview] = []
    ahead: list[HeldReview] = []
    for review in reviews:
        count = extra.get(review.shadow_name, 0)
        if count < REVIEWS_WITH_RECORDS:
            extra[review.shadow_name] = count + 1
            kept.append(review)
        else:
            ahead.append(review)
    if ahead:
        # More reviews than fit beside their record: these go first, so that the record never
        # exists without its reviews (a review without its record, left by a failure here, is
        # held again by the retried decision; settling one still checks its path).
        history.hold(ahead)
    reviews = kept
    for review in resolved:
        extra[review.shadow_name] = extra.get(review.shadow_name, 0) + 2
    placed: list[HistoryRecord] = []
    start: HistoryHead | None = head
    batches = history.batches(records, extra, reserve=1 if answer is not None else 0)
    for number, batch in enumerate(batches, start=1):
        first = len(placed)
        names = {name for name, index in last_of.items() if first <= index < first + len(batch)}
        history.append(
            batch,
            after=start,
            pending={name: update for name, update in pending.items() if name in names},
            event=event if event is not None and event[0] in names else None,
            reviews=[r for r in reviews if r.shadow_name in names],
            resolved=[r for r in resolved if r.shadow_name in names],
            answer=answer if number == len(batches) else None,
            answer_key=answer.request_key if answer is not None else None,
        )
        placed.extend(batch)
        start = None  # the next batch reads where this one left the chain
    return placed
