"""`DynamoDBHistoryStore`: hash-chained history records in a DynamoDB table, one chain a thing.

Table schema (see `create_history_table`):

- partition key ``thingName`` (S), sort key ``sequence`` (N): a record's place in its
  thing's chain, 1 for the first;
- ``record`` (S): the record as canonical JSON (`HistoryRecord.to_json`), which is what is
  read back, so numbers never pass through DynamoDB's decimal type;
- ``shadowName`` (S, ``"$default"`` for the classic shadow), ``version`` (N), ``timestamp``
  (N), ``changeType`` (S), ``checksum`` (S) and ``previousChecksum`` (S), copies for queries
  and for people browsing the table.

One chain per thing, because that is how the cloud side chains: a decision's record follows
the newest record of the history it was given, and the sync manager reads a thing's history.
A record goes in at ``sequence = n + 1`` only if it chains to record ``n`` and no item holds
that key yet (a conditional write), so two writers can never both extend the same record.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

import attrs
from botocore.exceptions import ClientError

from shadowsync._json import canonical_json, describe
from shadowsync.audit import AuditLog, AuditLogError, HistoryRecord, VerificationResult
from shadowsync.aws._errors import HistoryConflictError, aws_call
from shadowsync.aws._reviews import drop_items, hold_items, query_reviews, resolve_items
from shadowsync.aws._tables import create_keyed_table, key_hash
from shadowsync.cloud import CLASSIC_SHADOW_NAME, HistoryHead, ShadowHead
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from shadowsync._json import JSONObject
    from shadowsync.cloud import HeldReview, ReviewPage, ReviewQuery

__all__ = ["DynamoDBHistoryStore", "StoredAnswer", "answer_slot", "create_history_table"]

_MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
_MAX_BATCH_GET = 100  # BatchGetItem's limit
_MAX_BATCH_WRITE = 25  # BatchWriteItem's limit
_KEPT_EVENTS = 32  # delta events remembered per shadow, for retries
# Below every shadow slot (-(2**52) .. -1): where a thing's checkpoint is kept.
_CHECKPOINT_SLOT = -(2**52) - 1
# Below the checkpoint: the answers of keyed requests, -(2**53) - (2**52 - 1) .. -(2**53).
_ANSWER_SLOTS = -(2**53)
# An answer is stored compressed; one whose compressed text would pass this is stored without
# its per-change and per-shadow detail (DynamoDB items hold at most 400 KB).
_MAX_ANSWER_BYTES = 300_000


def shadow_slot(shadow_name: str | None) -> int:
    """The sort key of a shadow's head item: a negative number derived from its name.

    Records are at 1, 2, ...; the thing's head item at 0; shadow heads below 0, at 52 bits of
    the name's SHA-256 (a collision within one thing's shadows is not a practical concern).
    """
    label = shadow_name if shadow_name is not None else CLASSIC_SHADOW_NAME
    return -(key_hash(label) + 1)


def answer_slot(request_key: str) -> int:
    """The sort key of the item keeping a keyed request's answer (see `StoredAnswer`): 52 bits
    of the key's SHA-256 below every other item of the thing."""
    return _ANSWER_SLOTS - key_hash(request_key)


@attrs.frozen(kw_only=True)
class StoredAnswer:
    """What a keyed request (an ``offline_sync``) answered, kept so that a retry is answered
    the same way and writes nothing.

    Stored in the transaction of the request's last records, so its presence means every record
    of the request is stored; ``shadow_names`` are the shadows those records decided, whose
    pending updates a retry settles before answering.
    """

    request_key: str
    body: dict[str, Any]
    shadow_names: tuple[str | None, ...]
    last_sequence: int = 0
    """The sequence of the request's last record (set when stored): `retire` drops the answer
    with its records."""

    def item(self, thing_name: str, last_sequence: int) -> dict[str, Any]:
        """The table item: the body as compressed canonical JSON, trimmed when too large."""
        body = zlib.compress(canonical_json(self.body).encode("utf-8"))
        if len(body) > _MAX_ANSWER_BYTES:
            kept = {k: v for k, v in self.body.items() if not isinstance(v, (list, dict))}
            body = zlib.compress(canonical_json({**kept, "detailDropped": True}).encode("utf-8"))
        return {
            "thingName": {"S": thing_name},
            "sequence": {"N": str(answer_slot(self.request_key))},
            "kind": {"S": "answer"},
            "requestKey": {"S": self.request_key},
            "lastSequence": {"N": str(last_sequence)},
            "shadowNames": {
                "S": canonical_json([name or CLASSIC_SHADOW_NAME for name in self.shadow_names])
            },
            "body": {"B": body},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredAnswer:
        """Read an answer item back."""
        try:
            body = json.loads(zlib.decompress(item["body"]["B"]).decode("utf-8"))
            labels = json.loads(_text(item, "shadowNames"))
        except (KeyError, TypeError, ValueError, zlib.error):
            raise AuditLogError(f"an answer item cannot be read: {describe(item)}") from None
        return cls(
            request_key=_text(item, "requestKey"),
            body=body,
            shadow_names=tuple(None if n == CLASSIC_SHADOW_NAME else n for n in labels),
            last_sequence=_number(item, "lastSequence"),
        )


def _items_needed(records: Sequence[HistoryRecord], reviews: int = 0) -> int:
    things = {r.thing_name for r in records}
    shadows = {(r.thing_name, r.shadow_name) for r in records}
    return len(records) + len(things) + len(shadows) + reviews


def _shadow_item(thing_name: str, shadow_name: str | None, shadow: ShadowHead) -> dict[str, Any]:
    """A shadow's head item: its last record, the state that record left, the update it waits
    on (if any) and the latest delta events decided."""
    item = {
        "thingName": {"S": thing_name},
        "sequence": {"N": str(shadow_slot(shadow_name))},
        "kind": {"S": "shadow-head"},
        "shadowName": {"S": shadow_name or CLASSIC_SHADOW_NAME},
        "recordSequence": {"N": str(shadow.sequence)},
        "checksum": {"S": shadow.record.checksum},
        "record": {"S": canonical_json(shadow.record.to_json())},
        "state": {"S": canonical_json(shadow.state)},
    }
    if shadow.pending is not None:
        item["pending"] = {"S": canonical_json(shadow.pending)}
        item["before"] = {"S": canonical_json(shadow.before or {"desired": {}, "reported": {}})}
        if shadow.answer_key is not None:
            item["answerKey"] = {"S": shadow.answer_key}
    if shadow.events:
        item["events"] = {"S": canonical_json([list(pair) for pair in shadow.events])}
    return item


def _shadow_requests(head: HistoryHead) -> list[dict[str, Any]]:
    """BatchWriteItem requests putting the shadow head items of ``head``."""
    return [
        {"PutRequest": {"Item": _shadow_item(head.thing_name, name, shadow)}}
        for name, shadow in head.shadows.items()
    ]


def _thing_head_item(head: HistoryHead, newest: HistoryRecord) -> dict[str, Any]:
    """A thing's head item: the place and content of its newest record."""
    return {
        "thingName": {"S": head.thing_name},
        "sequence": {"N": "0"},
        "kind": {"S": "head"},
        "headSequence": {"N": str(head.sequence)},
        "checksum": {"S": newest.checksum},
        "record": {"S": canonical_json(newest.to_json())},
    }


def _every_item(page: Callable[..., Any], **request: Any) -> list[dict[str, Any]]:
    """The items of every page of a Query or Scan ``request``, following LastEvaluatedKey."""
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        answer = page(**request, **extra)
        items.extend(answer.get("Items") or [])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return items


def _number(item: dict[str, Any], name: str) -> int:
    try:
        return int(item[name]["N"])
    except (KeyError, TypeError, ValueError):
        raise AuditLogError(f"a history item has no number {name!r}: {describe(item)}") from None


def create_history_table(client: Any, table_name: str, *, wait: bool = True) -> None:
    """Create the history table (on-demand billing) with the schema `DynamoDBHistoryStore` uses.

    The CloudFormation equivalent::

        HistoryTable:
          Type: AWS::DynamoDB::Table
          Properties:
            BillingMode: PAY_PER_REQUEST
            AttributeDefinitions:
              - {AttributeName: thingName, AttributeType: S}
              - {AttributeName: sequence, AttributeType: N}
            KeySchema:
              - {AttributeName: thingName, KeyType: HASH}
              - {AttributeName: sequence, KeyType: RANGE}
    """
    create_keyed_table(client, table_name, sort_key="sequence", sort_type="N", wait=wait)


@attrs.frozen(kw_only=True)
class DynamoDBHistoryStore:
    """History records in a DynamoDB table, through an injected ``boto3.client("dynamodb")``.

    `read` returns a thing's records as an `AuditLog`, `read_head` what a decision needs of
    them (a `HistoryHead`, read from a few head items whatever the length of the history),
    `append` stores the records a decision returns with the head items, refusing any that would
    fork the chain with `HistoryConflictError`.
    """

    client: Any
    """A ``boto3.client("dynamodb")``."""
    table_name: str

    def read(self, thing_name: str | None, shadow_name: str | None = None) -> AuditLog:
        """The records of a thing, oldest first (``thing_name=None``: the whole table).

        With ``shadow_name`` (``"$default"`` for the classic shadow) only that shadow's
        records are returned; they are a filtered view and do not verify as a chain. A read of
        one thing verifies with `AuditLog.verify`; a whole-table read holds one chain per thing.
        Head items are not records and are never returned. After `retire`, a thing's records
        start after its checkpoint: verify them with `verify`.
        """
        if thing_name is None:
            items = self._scan()
        else:
            items = self._query(thing_name, after=self.checkpoint(thing_name)[0])
        records = [self._record(item) for item in items]
        if shadow_name is not None:
            wanted = None if shadow_name == CLASSIC_SHADOW_NAME else shadow_name
            records = [r for r in records if r.shadow_name == wanted]
        return AuditLog(records)

    def head(self, thing_name: str) -> tuple[int, HistoryRecord | None]:
        """The newest record of a thing and its sequence number (``(0, None)`` for none).

        One item read: the thing's head item (a table written before head items were kept
        is answered from its newest record).
        """
        item = self._get({"thingName": {"S": thing_name}, "sequence": {"N": "0"}})
        if item is not None:
            return _number(item, "headSequence"), self._record(item)
        return self._newest(thing_name)

    def read_head(self, thing_name: str, shadow_names: Iterable[str | None] = ()) -> HistoryHead:
        """What a decision on ``shadow_names`` needs of ``thing_name``'s history.

        Reads the thing's head item and one head item per shadow (``None`` is the classic
        shadow), so its cost does not grow with the history. A thing whose records were
        written before head items were kept is read whole once, and its head items are
        written then.
        """
        return self._start(thing_name, tuple(dict.fromkeys(shadow_names)))

    def batches(
        self,
        records: Sequence[HistoryRecord],
        extra: Mapping[str | None, int] | None = None,
        *,
        reserve: int = 0,
    ) -> list[list[HistoryRecord]]:
        """``records`` in order, cut into groups that each fit one `append` transaction
        (the records, the head item of their things and of each shadow they touch).

        ``extra`` counts, per shadow, the review items that go with the batch holding that
        shadow's last record (`append`'s ``reviews`` and ``resolved``); ``reserve`` leaves
        room for that many more items in each batch (a `StoredAnswer`)."""
        extra = extra or {}
        last = {r.shadow_name: index for index, r in enumerate(records)}
        groups: list[list[HistoryRecord]] = []
        group: list[HistoryRecord] = []
        for index, record in enumerate(records):
            candidate = [*group, record]
            first = index - len(group)
            ending = sum(extra.get(n, 0) for n, i in last.items() if first <= i <= index)
            if group and _items_needed(candidate, ending) + reserve > _MAX_TRANSACTION_ITEMS:
                groups.append(group)
                candidate = [record]
            group = candidate
        if group:
            groups.append(group)
        return groups

    def append(
        self,
        records: Iterable[HistoryRecord],
        *,
        after: HistoryHead | None = None,
        pending: Mapping[str | None, JSONObject] | None = None,
        event: tuple[str | None, int] | None = None,
        forget: tuple[str | None, int] | None = None,
        reviews: Sequence[HeldReview] = (),
        resolved: Sequence[HeldReview] = (),
        answer: StoredAnswer | None = None,
        answer_key: str | None = None,
        drop_answer: str | None = None,
    ) -> None:
        """Store records at the end of their things' chains, all or none.

        Each record must be intact and chained to the thing's newest stored record (or to the
        record before it in ``records``). The write is one transaction: every record's item is
        conditional on its place being free and the thing's head item on still naming the
        record the batch follows, so a concurrent append by another writer makes it fail as a
        whole; the shadows' head items are written in the same transaction. Raises
        `HistoryConflictError` when the chain moved on. At most 100 records, and at most 100
        items with the head items: cut a longer list with `batches`.

        ``after`` is the head the records were decided on, as `read_head` returned it (for the
        things and shadows of ``records``): it is not read again, and the write is still
        conditional on it. ``pending`` maps a shadow to the update its last record here
        describes, not sent yet (`confirm` clears it once the shadow took it); ``event`` is
        ``(shadow_name, event version)`` of the delta event these records decide, kept with
        that shadow's head so that a retried event finds its record; ``forget`` is one to drop
        from there (its record's update was not applied, so it is to be decided again).

        ``reviews`` are held reviews stored (pending) in the same transaction, and ``resolved``
        settled ones moved out of the pending range there (each on the condition that it is
        still pending as read): see `read_reviews`.
        ``answer`` is the answer of the keyed request these records end (records of one thing
        only); it is stored in the same transaction, on the condition that no answer is stored
        under its key yet. ``answer_key`` is that request's key, kept with each ``pending``
        update of these records (in every batch of the request), and ``drop_answer`` the key of
        an answer to delete here: the answer of a request whose pending update these records go
        back on.
        """
        batch = list(records)
        if not batch:
            return
        for record in batch:
            if not isinstance(record, HistoryRecord):
                raise InvalidArgumentError(
                    f"records must be HistoryRecord values, got {describe(record)}"
                )
            if not record.intact:
                raise InvalidArgumentError(
                    "a record's checksum does not match its content; it was altered"
                )
        if len(batch) > _MAX_TRANSACTION_ITEMS:
            raise InvalidArgumentError(
                f"at most {_MAX_TRANSACTION_ITEMS} records can be appended at once, "
                f"got {len(batch)}"
            )
        needed = (
            _items_needed(batch, len(reviews) + 2 * len(resolved))
            + (answer is not None)
            + (drop_answer is not None)
        )
        if needed > _MAX_TRANSACTION_ITEMS:
            raise InvalidArgumentError(
                f"{len(batch)} records, the head items they update and the review items are "
                f"{needed} items, over the {_MAX_TRANSACTION_ITEMS} of one transaction; cut "
                "them with batches()"
            )
        things = tuple(dict.fromkeys(r.thing_name for r in batch))
        if answer is not None and not isinstance(answer, StoredAnswer):
            raise InvalidArgumentError(f"answer must be a StoredAnswer, got {describe(answer)}")
        if (answer is not None or drop_answer is not None) and len(things) != 1:
            raise InvalidArgumentError("an answer goes with the records of one thing only")
        items: list[dict[str, Any]] = []
        for thing in things:
            mine = [r for r in batch if r.thing_name == thing]
            start = after if after is not None and after.thing_name == thing else None
            items.extend(
                self._thing_items(thing, mine, start, pending or {}, (event, forget), answer_key)
            )
        if answer is not None:
            # `_thing_items` ends with the thing's head item: it names the last record's place.
            last = int(items[-1]["Put"]["Item"]["headSequence"]["N"])
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": answer.item(things[0], last),
                        "ConditionExpression": "attribute_not_exists(#seq)",
                        "ExpressionAttributeNames": {"#seq": "sequence"},
                    }
                }
            )
        if drop_answer is not None:
            items.append(
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": {
                            "thingName": {"S": things[0]},
                            "sequence": {"N": str(answer_slot(drop_answer))},
                        },
                    }
                }
            )
        items += hold_items(self.table_name, reviews) + resolve_items(self.table_name, resolved)
        if not self._transact(items):
            raise HistoryConflictError(
                "another writer appended to the history at the same time; read it again and "
                "decide again"
            )

    def load(self, log: AuditLog) -> None:
        """Load whole histories into things that have none yet, with their head items.

        For importing an audit log kept elsewhere (or filling a table for a test): each thing's
        records, oldest first, must verify as one chain from its beginning. The records go in
        with BatchWriteItem, 25 at a time and not as one transaction, so this is for things no
        handler writes to meanwhile; the head items are written last, so a thing interrupted
        half-way reads as a table written before head items were kept and is migrated.
        """
        if not isinstance(log, AuditLog):
            raise InvalidArgumentError(f"log must be an AuditLog, got {describe(log)}")
        for thing in dict.fromkeys(r.thing_name for r in log.records):
            mine = AuditLog(r for r in log.records if r.thing_name == thing)
            checked = mine.verify()
            if not checked:
                raise InvalidArgumentError(f"the records of {thing!r} do not verify: {checked}")
            if self.head(thing)[1] is not None:
                raise InvalidArgumentError(f"{thing!r} already has history records")
            whole = HistoryHead.from_log(mine, thing)
            requests = [
                {"PutRequest": {"Item": self._item(record, index)}}
                for index, record in enumerate(mine.records, start=1)
            ]
            requests += _shadow_requests(whole)
            requests.append({"PutRequest": {"Item": _thing_head_item(whole, mine[-1])}})
            self._batch_write(requests)

    def _thing_items(
        self,
        thing: str,
        records: list[HistoryRecord],
        known: HistoryHead | None,
        pending: Mapping[str | None, JSONObject],
        events: tuple[tuple[str | None, int] | None, tuple[str | None, int] | None],
        answer_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """The transaction items that store one thing's ``records`` and move its heads."""
        names = tuple(dict.fromkeys(r.shadow_name for r in records))
        start = known if known is not None else self._start(thing, names)
        checksum = start.head
        first = records[0]
        if first.previous_checksum != checksum:
            raise HistoryConflictError(
                f"the record for {thing!r} (version {first.version}) is chained to "
                f"{first.previous_checksum[:12] or 'nothing'}, but the newest stored record "
                f"of {thing!r} is {checksum[:12] or 'none'}: the history changed since it "
                "was read; read it again and decide again"
            )
        head = start
        items: list[dict[str, Any]] = []
        places: dict[str | None, int] = {}
        befores: dict[str | None, JSONObject] = {}
        for record in records:
            known_state = head.last_state(thing, record.shadow_name)
            befores[record.shadow_name] = known_state or {"desired": {}, "reported": {}}
            try:
                head = head.followed_by(record)
            except InvalidArgumentError as exc:
                raise HistoryConflictError(
                    f"the records for {thing!r} do not follow its stored history ({exc}): "
                    "the history changed since it was read; read it again and decide again"
                ) from None
            places[record.shadow_name] = head.sequence
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(record, head.sequence),
                        "ConditionExpression": "attribute_not_exists(#seq)",
                        "ExpressionAttributeNames": {"#seq": "sequence"},
                    }
                }
            )
        for name in names:
            shadow = head.shadow(name)
            assert shadow is not None  # a record of it was just added
            event, forget = events
            kept = shadow.events
            if forget is not None and forget[0] == name:
                kept = tuple(pair for pair in kept if pair[0] != forget[1])
            if event is not None and event[0] == name:
                kept = (*kept, (event[1], places[name]))[-_KEPT_EVENTS:]
            waiting = pending.get(name)
            shadow = attrs.evolve(
                shadow,
                pending=waiting,
                before=befores[name] if waiting is not None else None,
                events=kept,
                answer_key=answer_key if waiting is not None else None,
            )
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": _shadow_item(thing, name, shadow),
                    }
                }
            )
        guard: dict[str, Any] = (
            {
                "ConditionExpression": "attribute_not_exists(#seq)",
                "ExpressionAttributeNames": {"#seq": "sequence"},
            }
            if start.sequence == 0
            # A table written before head items were kept has none yet: the records' own
            # conditions keep the chain then.
            else {
                "ConditionExpression": "attribute_not_exists(#seq) OR headSequence = :expected",
                "ExpressionAttributeNames": {"#seq": "sequence"},
                "ExpressionAttributeValues": {":expected": {"N": str(start.sequence)}},
            }
        )
        items.append(
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _thing_head_item(head, records[-1]),
                    **guard,
                }
            }
        )
        return items

    def _start(self, thing: str, names: tuple[str | None, ...]) -> HistoryHead:
        """Where the thing's chain stands now, with the heads of ``names``."""
        sequence, newest = self.head(thing)
        if newest is None:
            return HistoryHead(thing_name=thing)
        start = HistoryHead(
            thing_name=thing,
            head=newest.checksum,
            sequence=sequence,
            shadows=self._shadow_heads(thing, names),
        )
        if len(start.shadows) < len(names) and not self._has_head_item(thing):
            start = self._migrate(thing, names)
        return start

    def take_back(
        self,
        before: HistoryHead,
        records: Sequence[HistoryRecord],
        reviews: Sequence[HeldReview] = (),
    ) -> bool:
        """Remove ``records``, just appended after ``before``, when their update was refused.

        Only while they are still the newest records of their thing and fit one transaction:
        the records (and the ``reviews`` they held) are deleted and the head items put back as
        ``before`` holds them, on the condition that the thing's head item still names the last
        of ``records``. Returns False (and changes nothing) otherwise; the caller then records
        the way back instead.
        """
        batch = list(records)
        thing = before.thing_name
        names = tuple(dict.fromkeys(r.shadow_name for r in batch))
        if not batch or len(batch) + len(names) + len(reviews) + 1 > _MAX_TRANSACTION_ITEMS:
            return False
        last = before.sequence + len(batch)
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": {"thingName": {"S": thing}, "sequence": {"N": str(sequence)}},
                }
            }
            for sequence in range(before.sequence + 1, last + 1)
        ]
        for name in names:
            key = {"thingName": {"S": thing}, "sequence": {"N": str(shadow_slot(name))}}
            shadow = before.shadow(name)
            if shadow is None:
                items.append({"Delete": {"TableName": self.table_name, "Key": key}})
            else:
                item = _shadow_item(thing, name, shadow)
                items.append({"Put": {"TableName": self.table_name, "Item": item}})
        guard = {
            "ConditionExpression": "headSequence = :last",
            "ExpressionAttributeValues": {":last": {"N": str(last)}},
        }
        key = {"thingName": {"S": thing}, "sequence": {"N": "0"}}
        if before.sequence == 0:
            items.append({"Delete": {"TableName": self.table_name, "Key": key, **guard}})
        else:
            newest = self.record_at(thing, before.sequence)
            if newest is None:
                return False
            item = _thing_head_item(before, newest)
            items.append({"Put": {"TableName": self.table_name, "Item": item, **guard}})
        return self._transact(items + drop_items(self.table_name, reviews))

    def hold(self, reviews: Sequence[HeldReview]) -> None:
        """Store held ``reviews`` (pending) on their own, in transactions of 100.

        For the reviews of a decision that do not fit in the transaction of its records
        (`append`'s ``reviews``); the same review stored again is the same item.
        """
        for offset in range(0, len(reviews), _MAX_TRANSACTION_ITEMS):
            chunk = reviews[offset : offset + _MAX_TRANSACTION_ITEMS]
            self._transact(hold_items(self.table_name, chunk))

    def read_reviews(self, query: ReviewQuery) -> ReviewPage:
        """Held reviews of a thing (a `shadowsync.cloud.ReviewReader`).

        Pending reviews are read in pages of ``query.limit``; a query naming one shadow and one
        ``review_id`` reads that review: the pending one, or (``resolved=True``) the settled
        copies of it, newest first. Reviews are items of the thing's partition with sort keys
        far below its records and head items; `read` never returns them.
        """
        return query_reviews(self.client, self.table_name, query)

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """TransactWriteItems; False when a condition failed (nothing was written)."""
        with aws_call("TransactWriteItems"):
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    return False
                raise
        return True

    def confirm(self, thing_name: str, shadow_name: str | None, checksum: str) -> bool:
        """Mark the update that the shadow's last record (``checksum``) waits on as applied.

        Returns False when there was nothing to confirm: the record is no longer the shadow's
        last, or its update was already confirmed (by a retry, or by another invocation).
        """
        with aws_call("UpdateItem"):
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={
                        "thingName": {"S": thing_name},
                        "sequence": {"N": str(shadow_slot(shadow_name))},
                    },
                    UpdateExpression="REMOVE pending, #before, answerKey",
                    ExpressionAttributeNames={"#before": "before"},
                    ConditionExpression="checksum = :c AND attribute_exists(pending)",
                    ExpressionAttributeValues={":c": {"S": checksum}},
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def record_at(self, thing_name: str, sequence: int) -> HistoryRecord | None:
        """The record at ``sequence`` in the thing's chain (None: no such record)."""
        if type(sequence) is not int or sequence < 1:
            raise InvalidArgumentError(f"sequence must be an int >= 1, got {describe(sequence)}")
        item = self._get({"thingName": {"S": thing_name}, "sequence": {"N": str(sequence)}})
        return None if item is None else self._record(item)

    def answer(self, thing_name: str, request_key: str) -> StoredAnswer | None:
        """The stored answer of the keyed request ``request_key`` of a thing (one item read)."""
        item = self._get(
            {"thingName": {"S": thing_name}, "sequence": {"N": str(answer_slot(request_key))}}
        )
        if item is None:
            return None
        stored = StoredAnswer.from_item(item)
        # 52 bits of a hash share a slot only by a practically impossible chance; still, an
        # answer is only ever given for its own key.
        return stored if stored.request_key == request_key else None

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        with aws_call("GetItem"):
            response = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _has_head_item(self, thing_name: str) -> bool:
        return self._get({"thingName": {"S": thing_name}, "sequence": {"N": "0"}}) is not None

    def _newest(self, thing_name: str) -> tuple[int, HistoryRecord | None]:
        with aws_call("Query"):
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="thingName = :t AND #seq > :zero",
                ExpressionAttributeNames={"#seq": "sequence"},
                ExpressionAttributeValues={":t": {"S": thing_name}, ":zero": {"N": "0"}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        items = response.get("Items") or []
        if not items:
            return 0, None
        return self._sequence(items[0]), self._record(items[0])

    def _shadow_heads(
        self, thing_name: str, names: tuple[str | None, ...]
    ) -> dict[str | None, ShadowHead]:
        """The head items of ``names`` that exist, read with BatchGetItem."""
        keys = [
            {"thingName": {"S": thing_name}, "sequence": {"N": str(shadow_slot(name))}}
            for name in names
        ]
        items: list[dict[str, Any]] = []
        with aws_call("BatchGetItem"):
            for offset in range(0, len(keys), _MAX_BATCH_GET):
                pending: dict[str, Any] = {
                    self.table_name: {
                        "Keys": keys[offset : offset + _MAX_BATCH_GET],
                        "ConsistentRead": True,
                    }
                }
                while pending:
                    response = self.client.batch_get_item(RequestItems=pending)
                    items.extend((response.get("Responses") or {}).get(self.table_name, []))
                    pending = response.get("UnprocessedKeys") or {}
        heads: dict[str | None, ShadowHead] = {}
        for item in items:
            label = _text(item, "shadowName")
            name = None if label == CLASSIC_SHADOW_NAME else label
            try:
                state = json.loads(_text(item, "state"))
            except ValueError:
                raise AuditLogError(f"the head item of {thing_name} {label} is not JSON") from None
            heads[name] = ShadowHead(
                record=self._record(item),
                state=state,
                sequence=_number(item, "recordSequence"),
                pending=json.loads(_text(item, "pending")) if "pending" in item else None,
                before=json.loads(_text(item, "before")) if "before" in item else None,
                answer_key=_text(item, "answerKey") if "answerKey" in item else None,
                events=tuple(
                    (int(event), int(sequence))
                    for event, sequence in json.loads(_text(item, "events"))
                )
                if "events" in item
                else (),
            )
        return heads

    def _migrate(self, thing_name: str, names: tuple[str | None, ...]) -> HistoryHead:
        """Build the head items of a thing written before they were kept, from its records.

        The thing's own head item is left to the next append (its condition then makes sure
        no record was added in between); shadow head items describe stored records, so
        writing them is safe whoever does it.
        """
        log = self.read(thing_name)
        whole = HistoryHead.from_log(log, thing_name)
        self._batch_write(_shadow_requests(whole))
        return attrs.evolve(whole, shadows={n: s for n, s in whole.shadows.items() if n in names})

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        with aws_call("BatchWriteItem"):
            for offset in range(0, len(requests), _MAX_BATCH_WRITE):
                pending: dict[str, Any] = {
                    self.table_name: requests[offset : offset + _MAX_BATCH_WRITE]
                }
                while pending:
                    response = self.client.batch_write_item(RequestItems=pending)
                    pending = response.get("UnprocessedItems") or {}

    def checkpoint(self, thing_name: str) -> tuple[int, str]:
        """Where a thing's kept records start: the sequence and checksum of the last record
        `retire` removed (``(0, "")``: none removed)."""
        item = self._get({"thingName": {"S": thing_name}, "sequence": {"N": str(_CHECKPOINT_SLOT)}})
        if item is None:
            return 0, ""
        return _number(item, "checkpointSequence"), _text(item, "checksum")

    def verify(self, thing_name: str) -> VerificationResult:
        """`AuditLog.verify` of a thing's records, chained from its checkpoint."""
        return self.read(thing_name).verify(previous_checksum=self.checkpoint(thing_name)[1])

    def retire(self, thing_name: str, through: int) -> tuple[int, str]:
        """Remove a thing's records up to sequence ``through``, keeping the chain verifiable.

        A checkpoint item first keeps the checksum of record ``through``, which the first kept
        record chains to (`verify` starts there); then the records are deleted, 25 at a time.
        The newest record always stays, and decisions, which read head items, are not
        affected. The stored answers of requests whose records are removed go too. An
        interrupted retire leaves records that `read` of the thing skips and a whole-table
        read still shows: run it again. Returns the checkpoint.
        """
        if type(through) is not int or through < 1:
            raise InvalidArgumentError(f"through must be an int >= 1, got {describe(through)}")
        sequence, _ = self.head(thing_name)
        if through >= sequence:
            raise InvalidArgumentError(
                f"{thing_name!r} has {sequence} record(s); through must leave the newest one, "
                f"got {through}"
            )
        done, checksum = self.checkpoint(thing_name)
        if through > done:
            last = self.record_at(thing_name, through)
            if last is None:
                raise InvalidArgumentError(f"{thing_name!r} has no record {through} to retire")
            checksum = last.checksum
            with aws_call("PutItem"):
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        "thingName": {"S": thing_name},
                        "sequence": {"N": str(_CHECKPOINT_SLOT)},
                        "kind": {"S": "checkpoint"},
                        "checkpointSequence": {"N": str(through)},
                        "checksum": {"S": checksum},
                    },
                )
        # Deleting again what an interrupted retire already deleted is harmless.
        stale = self._query(thing_name, after=0, through=through)
        # Answers of requests whose records are retired go with them.
        stale += [
            item
            for item in self._query(thing_name, after=_ANSWER_SLOTS - 2**52, through=_ANSWER_SLOTS)
            if _number(item, "lastSequence") <= through
        ]
        self._batch_write(
            [
                {
                    "DeleteRequest": {
                        "Key": {"thingName": {"S": thing_name}, "sequence": item["sequence"]}
                    }
                }
                for item in stale
            ]
        )
        return max(through, done), checksum

    def _query(
        self, thing_name: str, *, after: int = 0, through: int | None = None
    ) -> list[dict[str, Any]]:
        condition = "thingName = :t AND #seq > :after"
        values: dict[str, Any] = {":t": {"S": thing_name}, ":after": {"N": str(after)}}
        if through is not None:
            condition = "thingName = :t AND #seq BETWEEN :first AND :through"
            values = {
                ":t": {"S": thing_name},
                ":first": {"N": str(after + 1)},
                ":through": {"N": str(through)},
            }
        with aws_call("Query"):
            return _every_item(
                self.client.query,
                TableName=self.table_name,
                KeyConditionExpression=condition,
                ExpressionAttributeNames={"#seq": "sequence"},
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            )

    def _scan(self) -> list[dict[str, Any]]:
        with aws_call("Scan"):
            items = _every_item(
                self.client.scan,
                TableName=self.table_name,
                ConsistentRead=True,
                FilterExpression="#seq > :zero",
                ExpressionAttributeNames={"#seq": "sequence"},
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        # A scan returns partitions in no useful order: each thing's chain, oldest first.
        return sorted(items, key=lambda item: (_text(item, "thingName"), self._sequence(item)))

    @staticmethod
    def _item(record: HistoryRecord, sequence: int) -> dict[str, Any]:
        return {
            "thingName": {"S": record.thing_name},
            "sequence": {"N": str(sequence)},
            "shadowName": {"S": record.shadow_name or CLASSIC_SHADOW_NAME},
            "version": {"N": str(record.version)},
            "timestamp": {"N": str(record.timestamp)},
            "changeType": {"S": record.change_type},
            "checksum": {"S": record.checksum},
            "previousChecksum": {"S": record.previous_checksum},
            "record": {"S": canonical_json(record.to_json())},
        }

    @staticmethod
    def _sequence(item: dict[str, Any]) -> int:
        try:
            return int(item["sequence"]["N"])
        except (KeyError, TypeError, ValueError):
            raise AuditLogError(
                f"a history item has no numeric sequence: {describe(item)}"
            ) from None

    @staticmethod
    def _record(item: dict[str, Any]) -> HistoryRecord:
        text = _text(item, "record")
        try:
            return HistoryRecord.from_json(json.loads(text))
        except (ValueError, AuditLogError) as exc:
            where = f"{_text(item, 'thingName')} #{item.get('sequence', {}).get('N')}"
            raise AuditLogError(f"history item {where}: {exc}") from None


def _text(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise AuditLogError(f"a history item has no string attribute {name!r}: {describe(item)}")
    text: str = value["S"]
    return text
