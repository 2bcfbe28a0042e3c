"""History at constant cost: head items, reads that do not grow, long appends, old tables."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.aws import DynamoDBHistoryStore, conflict_resolver_handler, sync_manager_handler
from shadowsync.cloud import HistoryHead
from shadowsync.errors import InvalidArgumentError
from tests.adapters.aws.conftest import TABLE, CountingClient

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws

T0 = 1_700_000_000
SHADOW = "configuration"


def _history(thing: str, length: int) -> AuditLog:
    """``length`` records of one shadow: the device reports ``rate`` 0, 1, ..."""
    log = AuditLog()
    for step in range(length):
        log.append(thing, SHADOW, previous_state=log.last_state(thing, SHADOW),
                   new_state={"desired": {"rate": step}, "reported": {"rate": step}},
                   version=1, timestamp=T0 + step, change_type="update", decision="accept",
                   reason=f"step {step}")  # fmt: skip
    return log


def _resolve_once(aws: Aws, counting: CountingClient, thing: str, length: int) -> dict[str, Any]:
    """Load ``length`` records, diverge the shadow from the last one, resolve its delta."""
    store = DynamoDBHistoryStore(client=counting, table_name=TABLE)
    store.load(_history(thing, length))
    aws.create_thing(thing)
    last = length - 1
    aws.shadows.update(thing, {"state": {"desired": {"rate": last}, "reported": {"rate": last}}},
                       SHADOW)  # fmt: skip
    aws.shadows.update(thing, {"state": {"desired": {"rate": 600}}}, SHADOW)
    handler = conflict_resolver_handler(shadows=aws.shadows, history=store, now=lambda: T0 + 10**5)
    counting.reset()
    event = {"thingName": thing, "shadowName": SHADOW, "state": {"rate": 600}, "version": 2}
    summary = handler(event, None)
    summary["itemsRead"], summary["itemsWritten"] = counting.read, counting.written
    summary["calls"] = list(counting.calls)
    return summary


def test_items_read_per_resolver_invocation_do_not_grow_with_the_history(aws: Aws) -> None:
    counting = CountingClient(aws.dynamodb)
    short = _resolve_once(aws, counting, "short-history", 10)
    long = _resolve_once(aws, counting, "long-history", 10_000)
    for summary in (short, long):
        assert summary["statusCode"] == 200
        assert (summary["decision"], summary["recordsStored"]) == ("accept", 1)
    # Counted items, not time: the thing's head item and the shadow's, read once; one record,
    # the shadow's head and the thing's head written.
    assert short["itemsRead"] == long["itemsRead"] == 2
    assert short["itemsWritten"] == long["itemsWritten"] == 3
    assert short["calls"] == long["calls"]
    assert "Query" not in long["calls"]
    assert "Scan" not in long["calls"]
    sequence, newest = aws.history.head("long-history")
    assert sequence == 10_001
    assert newest is not None
    assert newest.checksum == long["historyHead"]
    stored = aws.history.read("short-history")
    assert len(stored) == 11
    assert stored.verify().ok


def test_the_head_agrees_with_the_records(aws: Aws) -> None:
    log = AuditLog()
    log.append("pump-7", "telemetry", previous_state=None, new_state={"reported": {"rpm": 900}},
               version=1, timestamp=T0, change_type="update", decision="accept",
               reason="baseline")  # fmt: skip
    log.append("pump-7", None, previous_state=None, new_state={"desired": {"on": True}},
               version=1, timestamp=T0 + 1, change_type="update", decision="accept",
               reason="baseline")  # fmt: skip
    aws.history.append(log.records)
    head = aws.history.read_head("pump-7", ["telemetry", None, "never-written"])
    assert head == HistoryHead.from_log(log, "pump-7")
    assert (head.sequence, head.head) == (2, log.head)
    assert head.last_state("pump-7", None) == {"desired": {"on": True}, "reported": {}}
    assert head.records_for("pump-7", "never-written") == ()
    assert aws.history.read_head("nobody", ["telemetry"]) == HistoryHead(thing_name="nobody")
    # Head items are not records: reads of a thing and of the table leave them out.
    assert aws.history.read("pump-7").records == log.records
    assert aws.history.read(None).records == log.records


def test_a_list_longer_than_a_transaction_goes_in_batches(aws: Aws) -> None:
    log = _history("pump-7", 250)
    with pytest.raises(InvalidArgumentError, match="at most 100 records"):
        aws.history.append(log.records[:101])
    with pytest.raises(InvalidArgumentError, match="cut them with batches"):
        aws.history.append(log.records[:99])  # 99 records, 1 shadow head, 1 thing head
    batches = aws.history.batches(log.records)
    assert [len(b) for b in batches] == [98, 98, 54]
    for batch in batches:
        aws.history.append(batch)
    stored = aws.history.read("pump-7")
    assert stored.records == log.records
    assert aws.history.read_head("pump-7", [SHADOW]) == HistoryHead.from_log(log, "pump-7")


def test_a_table_written_before_head_items_is_migrated_on_first_use(aws: Aws) -> None:
    log = _history("pump-7", 5)
    for sequence, record in enumerate(log.records, start=1):
        # The layout of a record item, as tables held them before head items were kept.
        aws.dynamodb.put_item(TableName=TABLE, Item={
            "thingName": {"S": "pump-7"}, "sequence": {"N": str(sequence)},
            "shadowName": {"S": SHADOW}, "version": {"N": "1"},
            "timestamp": {"N": str(record.timestamp)}, "changeType": {"S": "update"},
            "checksum": {"S": record.checksum},
            "previousChecksum": {"S": record.previous_checksum},
            "record": {"S": json.dumps(record.to_json())},
        })  # fmt: skip
    assert aws.history.head("pump-7") == (5, log[-1])
    head = aws.history.read_head("pump-7", [SHADOW])
    assert head == HistoryHead.from_log(log, "pump-7")
    following = HistoryRecord.create(
        "pump-7", SHADOW, previous=log.head, previous_state=log.last_state("pump-7", SHADOW),
        new_state={"desired": {"rate": 7}, "reported": {"rate": 7}}, version=2,
        timestamp=T0 + 50, change_type="update", decision="accept", reason="next")  # fmt: skip
    aws.history.append([following])
    stored = aws.history.read("pump-7")
    assert stored.records == (*log.records, following)
    assert stored.verify().ok
    counting = CountingClient(aws.dynamodb)
    DynamoDBHistoryStore(client=counting, table_name=TABLE).read_head("pump-7", [SHADOW])
    assert counting.calls == ["GetItem", "BatchGetItem"]  # migrated: no query, no scan


def test_load_refuses_what_it_cannot_import(aws: Aws) -> None:
    log = _history("pump-7", 3)
    aws.history.load(log)
    with pytest.raises(InvalidArgumentError, match="already has history records"):
        aws.history.load(log)
    broken = AuditLog(log.records[1:])
    with pytest.raises(InvalidArgumentError, match="do not verify"):
        aws.history.load(broken)
    with pytest.raises(InvalidArgumentError, match="AuditLog"):
        aws.history.load(list(log.records))  # type: ignore[arg-type]


def test_an_offline_sync_over_150_named_shadows_stores_every_record(aws: Aws) -> None:
    aws.create_thing("gateway-1")
    names = [f"sensor-{index:03}" for index in range(150)]
    handler = sync_manager_handler(shadows=aws.shadows, history=aws.history, now=lambda: T0 + 60)
    response = handler(
        {
            "operation": "offline_sync",
            "thingName": "gateway-1",
            "cachedChanges": [
                {"shadowName": name, "state": {"level": index}, "timestamp": T0}
                for index, name in enumerate(names)
            ],
        },
        None,
    )
    assert response["statusCode"] == 200, response
    stored = aws.history.read("gateway-1")
    assert len(stored) == 150
    assert stored.verify().ok
    for index, name in enumerate(names):
        document = aws.shadows.get("gateway-1", name)
        assert document is not None
        assert document.reported == {"level": index}
        assert stored.replay("gateway-1", name) == {"desired": {}, "reported": {"level": index}}
    assert aws.history.read_head("gateway-1", names) == HistoryHead.from_log(stored, "gateway-1")


def test_retired_records_leave_a_chain_that_verifies_from_its_checkpoint(aws: Aws) -> None:
    log = _history("pump-7", 10)
    aws.history.load(log)
    assert aws.history.checkpoint("pump-7") == (0, "")
    assert aws.history.retire("pump-7", 6) == (6, log[5].checksum)
    kept = aws.history.read("pump-7")
    assert kept.records == log.records[6:]
    assert aws.history.verify("pump-7").ok
    assert not kept.verify().ok  # the kept records chain to the checkpoint, not to nothing
    raw = aws.dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="thingName = :t AND #seq BETWEEN :a AND :b",
        ExpressionAttributeNames={"#seq": "sequence"},
        ExpressionAttributeValues={":t": {"S": "pump-7"}, ":a": {"N": "1"}, ":b": {"N": "10"}},
    )
    assert [int(item["sequence"]["N"]) for item in raw["Items"]] == [7, 8, 9, 10]
    # Decisions read heads: the chain goes on after a retire, and again verifies.
    following = HistoryRecord.create(
        "pump-7", SHADOW, previous=log.head, previous_state=log.last_state("pump-7", SHADOW),
        new_state={"desired": {"rate": 1}, "reported": {"rate": 1}}, version=2,
        timestamp=T0 + 50, change_type="update", decision="accept", reason="next")  # fmt: skip
    aws.history.append([following])
    assert aws.history.verify("pump-7").ok
    assert aws.history.retire("pump-7", 3) == (6, log[5].checksum)  # already retired
    assert aws.history.retire("pump-7", 9)[0] == 9
    assert aws.history.read("pump-7").records == (log[9], following)
    assert aws.history.verify("pump-7").ok
    with pytest.raises(InvalidArgumentError, match="leave the newest"):
        aws.history.retire("pump-7", 11)
    with pytest.raises(InvalidArgumentError, match="through must be an int"):
        aws.history.retire("pump-7", 0)
