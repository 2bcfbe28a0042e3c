"""Held reviews in the history table: items in their own sort-key ranges, beside the chain.

A review held by a decision is an item of the thing's partition in the *pending* range, keyed by
its shadow and id, so a review held again (the same conflict seen by a later decision) is the
same item. Settling it moves it to the *resolved* range, keyed by its shadow, id and the record
that settled it, so it is kept, not deleted. Both ranges are far below the shadow head items
and the checkpoint (records are at 1, 2, ...), so no read of records ever meets them.

The items are written by `DynamoDBHistoryStore.append` in the transaction that stores the
decision's records: a review is never stored without the record that held it, nor marked
settled without the record that settled it, and a transaction that fails writes neither.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shadowsync._json import canonical_json
from shadowsync.audit import AuditLogError
from shadowsync.aws._errors import aws_call
from shadowsync.aws._tables import key_hash
from shadowsync.cloud import (
    CLASSIC_SHADOW_NAME,
    HeldReview,
    OperationError,
    ResolvePendingConflictsRequest,
    ReviewPage,
    parse_request,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shadowsync.cloud import ReviewQuery

__all__ = [
    "drop_items",
    "hold_items",
    "query_reviews",
    "resolve_items",
    "review_target",
]

_SPAN = 2**52  # each range holds 52-bit hashes
_PENDING = -(2**60)  # pending reviews: _PENDING - hash(shadow, id)
_RESOLVED = -(2**61)  # settled reviews: _RESOLVED - hash(shadow, id, settling record)


def _hash(*parts: str) -> int:
    return key_hash(canonical_json(list(parts)))


def _label(shadow_name: str | None) -> str:
    return shadow_name if shadow_name is not None else CLASSIC_SHADOW_NAME


def pending_slot(shadow_name: str | None, review_id: str) -> int:
    """The sort key of a pending review of ``shadow_name`` with ``review_id``."""
    return _PENDING - _hash(_label(shadow_name), review_id)


def _resolved_slot(review: HeldReview) -> int:
    assert review.resolution is not None
    return _RESOLVED - _hash(_label(review.shadow_name), review.id, review.resolution.record)


def _key(thing: str, slot: int) -> dict[str, Any]:
    return {"thingName": {"S": thing}, "sequence": {"N": str(slot)}}


def _item(review: HeldReview, slot: int) -> dict[str, Any]:
    return {
        **_key(review.thing_name, slot),
        "kind": {"S": "review"},
        "shadowName": {"S": _label(review.shadow_name)},
        "reviewId": {"S": review.id},
        "status": {"S": review.status},
        "heldAt": {"N": str(review.held_at)},
        "heldRecord": {"S": review.record},
        "review": {"S": canonical_json(review.to_json())},
    }


def hold_items(table: str, reviews: Iterable[HeldReview]) -> list[dict[str, Any]]:
    """Transaction items that hold ``reviews`` (pending) in ``table``."""
    return [
        {"Put": {"TableName": table, "Item": _item(r, pending_slot(r.shadow_name, r.id))}}
        for r in reviews
    ]


def resolve_items(table: str, reviews: Iterable[HeldReview]) -> list[dict[str, Any]]:
    """Transaction items that mark ``reviews`` (each with its resolution) settled.

    The pending item is deleted on the condition that it still holds the same review (held by
    the same record): a review settled meanwhile by another invocation, or held again by a newer
    decision, fails the transaction, and the caller reads again. The settled copy goes in the
    resolved range, where nothing else can be.
    """
    items: list[dict[str, Any]] = []
    for review in reviews:
        items.append(
            {
                "Delete": {
                    "TableName": table,
                    "Key": _key(review.thing_name, pending_slot(review.shadow_name, review.id)),
                    "ConditionExpression": "heldRecord = :held",
                    "ExpressionAttributeValues": {":held": {"S": review.record}},
                }
            }
        )
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": _item(review, _resolved_slot(review)),
                    "ConditionExpression": "attribute_not_exists(#seq)",
                    "ExpressionAttributeNames": {"#seq": "sequence"},
                }
            }
        )
    return items


def drop_items(table: str, reviews: Iterable[HeldReview]) -> list[dict[str, Any]]:
    """Transaction items that remove pending ``reviews`` whose records are being taken back."""
    return [
        {
            "Delete": {
                "TableName": table,
                "Key": _key(r.thing_name, pending_slot(r.shadow_name, r.id)),
                "ConditionExpression": "attribute_not_exists(#seq) OR heldRecord = :held",
                "ExpressionAttributeNames": {"#seq": "sequence"},
                "ExpressionAttributeValues": {":held": {"S": r.record}},
            }
        }
        for r in reviews
    ]


def _review(item: dict[str, Any]) -> HeldReview:
    text = item.get("review", {}).get("S")
    if not isinstance(text, str):
        raise AuditLogError(f"a review item has no review: {item.get('sequence')}")
    try:
        return HeldReview.from_json(json.loads(text))
    except ValueError:
        raise AuditLogError(f"a review item is not JSON: {item.get('sequence')}") from None


def _shadow_filter(names: Sequence[str | None] | None) -> dict[str, Any]:
    if names is None:
        return {}
    labels = {f":s{index}": {"S": _label(name)} for index, name in enumerate(names)}
    return {
        "FilterExpression": f"shadowName IN ({', '.join(labels)})",
        "ExpressionAttributeValues": labels,
    }


def _token(text: str) -> int:
    try:
        slot = int(text)
    except ValueError:
        slot = 0
    if not _PENDING - _SPAN <= slot <= _PENDING:
        raise OperationError(
            f"nextToken {text[:40]!r} is not one a list of reviews answered with",
            operation="resolve_pending_conflicts",
        )
    return slot


def query_reviews(client: Any, table: str, query: ReviewQuery) -> ReviewPage:
    """Answer ``query`` from the history table (see `shadowsync.cloud.ReviewReader`).

    A query for one review of one shadow reads its pending item (one GetItem) and, when there
    is none and settled ones are asked for too, the settled copies of that id (newest first).
    Otherwise the pending range is read in key order, a page of at most ``limit`` reviews.
    """
    thing = query.thing_name
    if query.review_id is not None and query.shadow_names is not None:
        return ReviewPage(reviews=_one(client, table, query, query.review_id))
    found: list[dict[str, Any]] = []
    start = None if query.after is None else _key(thing, _token(query.after))
    more = True
    filters = _shadow_filter(query.shadow_names)
    while more and len(found) < query.limit:
        extra = {"ExclusiveStartKey": start} if start else {}
        with aws_call("Query"):
            answer = client.query(
                TableName=table,
                KeyConditionExpression="thingName = :t AND #seq BETWEEN :low AND :high",
                ExpressionAttributeNames={"#seq": "sequence"},
                ExpressionAttributeValues={
                    ":t": {"S": thing},
                    ":low": {"N": str(_PENDING - _SPAN)},
                    ":high": {"N": str(_PENDING)},
                    **filters.get("ExpressionAttributeValues", {}),
                },
                **({"FilterExpression": filters["FilterExpression"]} if filters else {}),
                Limit=query.limit,
                ConsistentRead=True,
                **extra,
            )
        found.extend(answer.get("Items") or [])
        start = answer.get("LastEvaluatedKey")
        more = bool(start)
    page = found[: query.limit]
    last = page[-1]["sequence"]["N"] if page else None
    return ReviewPage(
        reviews=tuple(_review(item) for item in page),
        next_token=last if (more or len(found) > query.limit) else None,
    )


def _one(client: Any, table: str, query: ReviewQuery, review_id: str) -> tuple[HeldReview, ...]:
    thing = query.thing_name
    assert query.shadow_names is not None
    for name in query.shadow_names:
        with aws_call("GetItem"):
            answer = client.get_item(
                TableName=table, Key=_key(thing, pending_slot(name, review_id)), ConsistentRead=True
            )
        if "Item" in answer:
            return (_review(answer["Item"]),)
    if not query.resolved:
        return ()
    settled: list[HeldReview] = []
    start: dict[str, Any] | None = None
    labels = _shadow_filter(query.shadow_names)
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        with aws_call("Query"):
            answer = client.query(
                TableName=table,
                KeyConditionExpression="thingName = :t AND #seq BETWEEN :low AND :high",
                FilterExpression=f"reviewId = :id AND ({labels['FilterExpression']})",
                ExpressionAttributeNames={"#seq": "sequence"},
                ExpressionAttributeValues={
                    ":t": {"S": thing},
                    ":low": {"N": str(_RESOLVED - _SPAN)},
                    ":high": {"N": str(_RESOLVED)},
                    ":id": {"S": review_id},
                    **labels["ExpressionAttributeValues"],
                },
                ConsistentRead=True,
                **extra,
            )
        settled.extend(_review(item) for item in answer.get("Items") or [])
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    settled.sort(key=_newest_first)
    return tuple(settled[: query.limit])


def _newest_first(review: HeldReview) -> tuple[int, int]:
    """Sort key, newest settlement first: by time, then (for two in one second, as when an
    approval was gone back on and approved again) by the shadow version its update was sent
    with, which grows with every settlement that followed another."""
    resolution = review.resolution
    if resolution is None:
        return (0, 0)
    version = resolution.update.get("version")
    return (-resolution.resolved_at, -(version if type(version) is int else 0))


def review_target(request: object) -> tuple[str, str | None] | None:
    """The thing and shadow an approve or reject request is about (None for anything else):
    an update an earlier invocation left waiting there is settled before it is served."""
    try:
        parsed = parse_request(request)
    except OperationError:
        return None
    if (
        isinstance(parsed, ResolvePendingConflictsRequest)
        and parsed.action != "list"
        and parsed.shadow_names
    ):
        return parsed.thing_name, parsed.shadow_names[0]
    return None
