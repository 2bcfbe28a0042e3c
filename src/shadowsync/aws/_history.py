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
from typing import TYPE_CHECKING, Any

import attrs
from botocore.exceptions import ClientError

from shadowsync._json import canonical_json, describe
from shadowsync.audit import AuditLog, AuditLogError, HistoryRecord
from shadowsync.aws._errors import HistoryConflictError, aws_call
from shadowsync.cloud import CLASSIC_SHADOW_NAME
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DynamoDBHistoryStore", "create_history_table"]

_MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit


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
    with aws_call("CreateTable"):
        client.create_table(
            TableName=table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "thingName", "AttributeType": "S"},
                {"AttributeName": "sequence", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "thingName", "KeyType": "HASH"},
                {"AttributeName": "sequence", "KeyType": "RANGE"},
            ],
        )
        if wait:
            client.get_waiter("table_exists").wait(
                TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )


@attrs.frozen(kw_only=True)
class DynamoDBHistoryStore:
    """History records in a DynamoDB table, through an injected ``boto3.client("dynamodb")``.

    `read` returns a thing's records as an `AuditLog` (hand it to `handle_delta_event` or a
    `SyncManager` as the history), `append` stores the records a decision returns, refusing any
    that would fork the chain with `HistoryConflictError`.
    """

    client: Any
    """A ``boto3.client("dynamodb")``."""
    table_name: str

    def read(self, thing_name: str | None, shadow_name: str | None = None) -> AuditLog:
        """The records of a thing, oldest first (``thing_name=None``: the whole table).

        With ``shadow_name`` (``"$default"`` for the classic shadow) only that shadow's
        records are returned; they are a filtered view and do not verify as a chain. A read of
        one thing verifies with `AuditLog.verify`; a whole-table read holds one chain per thing.
        """
        items = self._scan() if thing_name is None else self._query(thing_name)
        records = [self._record(item) for item in items]
        if shadow_name is not None:
            wanted = None if shadow_name == CLASSIC_SHADOW_NAME else shadow_name
            records = [r for r in records if r.shadow_name == wanted]
        return AuditLog(records)

    def head(self, thing_name: str) -> tuple[int, HistoryRecord | None]:
        """The newest record of a thing and its sequence number (``(0, None)`` for none)."""
        with aws_call("Query"):
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="thingName = :t",
                ExpressionAttributeValues={":t": {"S": thing_name}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        items = response.get("Items") or []
        if not items:
            return 0, None
        return self._sequence(items[0]), self._record(items[0])

    def append(self, records: Iterable[HistoryRecord]) -> None:
        """Store records at the end of their things' chains, all or none.

        Each record must be intact and chained to the thing's newest stored record (or to the
        record before it in ``records``). The write is one transaction whose every item is
        conditional on its place being free, so a concurrent append by another writer makes it
        fail as a whole. Raises `HistoryConflictError` when the chain moved on.
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
        heads: dict[str, tuple[int, str]] = {}
        items = []
        for record in batch:
            thing = record.thing_name
            if thing not in heads:
                sequence, newest = self.head(thing)
                heads[thing] = (sequence, newest.checksum if newest is not None else "")
            sequence, checksum = heads[thing]
            if record.previous_checksum != checksum:
                raise HistoryConflictError(
                    f"the record for {thing!r} (version {record.version}) is chained to "
                    f"{record.previous_checksum[:12] or 'nothing'}, but the newest stored record "
                    f"of {thing!r} is {checksum[:12] or 'none'}: the history changed since it "
                    "was read; read it again and decide again"
                )
            heads[thing] = (sequence + 1, record.checksum)
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": self._item(record, sequence + 1),
                        "ConditionExpression": "attribute_not_exists(#seq)",
                        "ExpressionAttributeNames": {"#seq": "sequence"},
                    }
                }
            )
        with aws_call("TransactWriteItems"):
            try:
                self.client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    raise HistoryConflictError(
                        "another writer appended to the history at the same time; read it "
                        "again and decide again"
                    ) from None
                raise

    def _query(self, thing_name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        with aws_call("Query"):
            while True:
                extra = {"ExclusiveStartKey": start} if start else {}
                page = self.client.query(
                    TableName=self.table_name,
                    KeyConditionExpression="thingName = :t",
                    ExpressionAttributeValues={":t": {"S": thing_name}},
                    ConsistentRead=True,
                    **extra,
                )
                items.extend(page.get("Items") or [])
                start = page.get("LastEvaluatedKey")
                if not start:
                    return items

    def _scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        with aws_call("Scan"):
            while True:
                extra = {"ExclusiveStartKey": start} if start else {}
                page = self.client.scan(TableName=self.table_name, ConsistentRead=True, **extra)
                items.extend(page.get("Items") or [])
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
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
