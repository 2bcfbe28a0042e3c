"""DynamoDBHistoryStore: append, read back, verify; the conditional chain refuses forks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from shadowsync.audit import AuditLog, AuditLogError, HistoryRecord
from shadowsync.aws import DynamoDBHistoryStore, HistoryConflictError
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from tests.adapters.aws.conftest import Aws

T0 = 1_700_000_000


def _log() -> AuditLog:
    """Two shadows of one thing and one of another, interleaved, as the cloud side chains."""
    log = AuditLog()
    log.append("pump-7", "telemetry", previous_state=None,
               new_state={"reported": {"rpm": 900}}, version=1, timestamp=T0,
               change_type="update", decision="accept", reason="baseline")  # fmt: skip
    log.append("pump-7", None, previous_state=None,
               new_state={"desired": {"on": True}}, version=1, timestamp=T0 + 1,
               change_type="update", decision="accept", reason="baseline")  # fmt: skip
    log.append("pump-7", "telemetry", previous_state={"reported": {"rpm": 900}},
               new_state={"reported": {"rpm": 950}}, version=2, timestamp=T0 + 2,
               change_type="conflict_resolved", decision="merge", reason="device wins",
               details={"conflicts": [{"path": "rpm", "value": 950.5}]})  # fmt: skip
    return log


def _next(log: AuditLog, rpm: int, version: int) -> HistoryRecord:
    return HistoryRecord.create(
        "pump-7", "telemetry", previous=log.head, previous_state=log.last_state("pump-7",
        "telemetry"), new_state={"reported": {"rpm": rpm}}, version=version,
        timestamp=T0 + 10, change_type="update", decision="accept", reason="next")  # fmt: skip


def test_records_read_back_equal_and_verify(aws: Aws) -> None:
    log = _log()
    aws.history.append(log.records[:1])
    aws.history.append(log.records[1:])
    read = aws.history.read("pump-7")
    assert read.records == log.records
    assert read.verify().ok
    assert read.head == log.head
    assert read.replay("pump-7", "telemetry") == {"desired": {}, "reported": {"rpm": 950}}
    assert read[2].details == {"conflicts": [{"path": "rpm", "value": 950.5}]}
    assert aws.history.head("pump-7") == (3, log[2])
    assert aws.history.head("nobody") == (0, None)
    assert len(aws.history.read("nobody")) == 0


def test_reads_of_one_shadow_and_of_the_whole_table(aws: Aws) -> None:
    aws.history.append(_log().records)
    other = AuditLog()
    other.append("fan-1", None, previous_state=None, new_state={"reported": {"on": True}},
                 version=1, timestamp=T0, change_type="update", decision="accept",
                 reason="baseline")  # fmt: skip
    aws.history.append(other.records)
    telemetry = aws.history.read("pump-7", "telemetry")
    assert [r.version for r in telemetry] == [1, 2]
    classic = aws.history.read("pump-7", "$default")
    assert [(r.shadow_name, r.reason) for r in classic] == [(None, "baseline")]
    everything = aws.history.read(None)
    assert [(r.thing_name, r.version) for r in everything] == [
        ("fan-1", 1),
        ("pump-7", 1),
        ("pump-7", 1),
        ("pump-7", 2),
    ]


def test_a_forked_append_is_refused_and_leaves_the_chain_alone(aws: Aws) -> None:
    log = _log()
    aws.history.append(log.records)
    first = _next(log, 1000, 3)
    rival = _next(log, 1100, 3)  # claims the same predecessor
    aws.history.append([first])
    with pytest.raises(HistoryConflictError, match="read it again"):
        aws.history.append([rival])
    read = aws.history.read("pump-7")
    assert read.records == (*log.records, first)
    assert read.verify().ok


def test_a_concurrent_append_loses_on_the_conditional_write(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _log()
    aws.history.append(log.records)
    stale = aws.history.head("pump-7")
    winner = _next(log, 1000, 3)
    aws.history.append([winner])
    loser = _next(log, 1100, 3)
    # The loser read the head before the winner wrote: only the conditional write stops it.
    monkeypatch.setattr(DynamoDBHistoryStore, "head", lambda self, thing: stale)
    with pytest.raises(HistoryConflictError, match="same time"):
        aws.history.append([loser])
    monkeypatch.undo()
    assert aws.history.read("pump-7").records == (*log.records, winner)


def test_a_batch_is_all_or_nothing(aws: Aws) -> None:
    log = _log()
    aws.history.append(log.records[:1])
    with pytest.raises(HistoryConflictError):
        # The second record skips the third: it does not chain to the record before it.
        aws.history.append([log[1], _next(log, 1, 3)])
    assert aws.history.read("pump-7").records == log.records[:1]


def test_bad_arguments_and_bad_items(aws: Aws) -> None:
    with pytest.raises(InvalidArgumentError, match="HistoryRecord"):
        aws.history.append(["not a record"])  # type: ignore[list-item]
    aws.history.append([])
    item: dict[str, Any] = {
        "thingName": {"S": "pump-7"},
        "sequence": {"N": "1"},
        "record": {"S": '{"thingName": "pump-7"}'},
    }
    aws.dynamodb.put_item(TableName=aws.history.table_name, Item=item)
    with pytest.raises(AuditLogError, match="pump-7 #1"):
        aws.history.read("pump-7")
