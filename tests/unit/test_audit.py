"""The audit trail: records, the hash chain, tamper detection, JSON Lines and replay."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import shadowsync.audit
from shadowsync import JSONObject, JSONValue, ShadowDocument, apply_update, merge
from shadowsync.audit import (
    CHANGE_TYPES,
    DECISIONS,
    AuditLog,
    AuditLogError,
    HistoryRecord,
    VerificationResult,
)
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowSyncError

THINGS = ("thermostat-1", "thermostat-2", "pump-7")
SHADOWS: tuple[str | None, ...] = (None, "config", "telemetry")
STREAMS = [(thing, shadow) for thing in THINGS for shadow in SHADOWS]
CHAIN_LENGTH = 500
T0 = 1_700_000_000
EMPTY: JSONObject = {"desired": {}, "reported": {}}


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, ASCII only: the text the checksums are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# --------------------------------------------------------------------------------------------
# A long chain built from real updates
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Chain:
    log: AuditLog
    states: tuple[JSONObject, ...]
    """The state of the record's shadow after each record."""

    @property
    def records(self) -> list[HistoryRecord]:
        return list(self.log.records)


def _state_of(document: ShadowDocument | None) -> JSONObject:
    if document is None:
        return {"desired": {}, "reported": {}}
    return {"desired": dict(document.desired), "reported": dict(document.reported)}


def _random_section(rng: random.Random) -> JSONObject:
    section: JSONObject = {}
    for key in rng.sample(["target_c", "mode", "fan", "on", "schedule"], rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.15:
            section[key] = None
        elif roll < 0.4:
            section[key] = rng.randint(5, 35)
        elif roll < 0.6:
            section[key] = rng.choice(["heat", "cool", "off", "été"])
        elif roll < 0.8:
            section[key] = {"speed": rng.randint(0, 3), "swing": rng.random() < 0.5}
        else:
            section[key] = [f"{rng.randint(0, 23):02}:00" for _ in range(rng.randint(0, 3))]
    return section


def build_chain(length: int = CHAIN_LENGTH, seed: int = 5) -> Chain:
    """A fleet log: updates, merges, rule rejections, reviews and deletes over several shadows."""
    rng = random.Random(seed)
    log = AuditLog()
    documents: dict[tuple[str, str | None], ShadowDocument | None] = {}
    deleted_at: dict[tuple[str, str | None], int] = {}
    states: list[JSONObject] = []
    timestamp = T0
    while len(log) < length:
        key = rng.choice(STREAMS)
        thing, shadow = key
        timestamp += rng.randint(0, 20)
        document = documents.get(key)
        roll = rng.random()
        if document is not None and roll < 0.05:
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=None,
                version=document.version,
                timestamp=timestamp,
                change_type="delete",
                decision="accept",
                reason="deleted by its owner",
            )
            deleted_at[key] = document.version
            documents[key] = None
        elif document is not None and roll < 0.15:
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=document,
                version=document.version,
                timestamp=timestamp,
                change_type="rule_rejected",
                decision="reject",
                reason="range:target_c - 45 is greater than the maximum 30",
                details={"rejected": {"desired": {"target_c": 45}}},
            )
        elif document is not None and roll < 0.2:
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=document,
                version=document.version,
                timestamp=timestamp,
                change_type="manual_review",
                decision="review",
                reason="ManualReview: mode changed on both sides",
                details={"reviews": [{"path": "mode", "current": "heat", "proposed": "cool"}]},
            )
        elif document is not None and roll < 0.3:
            base = dict(document.desired)
            # Values no earlier record holds, so both sides really change target_c.
            ours = {**base, "target_c": 1000 + 2 * len(log)}
            theirs = {**base, "target_c": 1001 + 2 * len(log), "eco": True}
            merged = merge(base, ours, theirs, thing_name=thing, shadow_name=shadow)
            result = apply_update(
                document, {"state": {"desired": merged.merged}}, timestamp=timestamp
            )
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=result.document,
                version=result.document.version,
                timestamp=timestamp,
                change_type="conflict_resolved",
                decision="merge",
                reason="LastWriterWins",
                details={"conflicts": merged.report.to_json()},
            )
            documents[key] = result.document
        else:
            body: JSONObject = {"state": {}}
            sections = rng.sample(["desired", "reported"], rng.randint(1, 2))
            body["state"] = {name: _random_section(rng) for name in sections}
            result = apply_update(
                document, body, timestamp=timestamp, previous_version=deleted_at.get(key, 0)
            )
            log.append(
                thing,
                shadow,
                previous_state=result.previous,
                new_state=result.document,
                version=result.document.version,
                timestamp=timestamp,
                change_type="update",
                decision="accept",
                reason="no conflict",
            )
            documents[key] = result.document
        states.append(_state_of(documents[key]))
    return Chain(log=log, states=tuple(states))


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


def _verify(records: list[HistoryRecord], **kwargs: Any) -> VerificationResult:
    return AuditLog(records).verify(**kwargs)


def _reseal(data: JSONObject) -> JSONObject:
    """``data`` with a checksum recomputed for its content, as a forger would do."""
    content = {key: value for key, value in data.items() if key != "checksum"}
    digest = hashlib.sha256(canonical_json(content).encode("ascii")).hexdigest()
    return {**content, "checksum": digest}


# --------------------------------------------------------------------------------------------
# The chain as built
# --------------------------------------------------------------------------------------------


def test_the_chain_covers_several_shadows_and_every_change_type(chain: Chain) -> None:
    assert len(chain.log) == CHAIN_LENGTH
    assert len(chain.log.shadows()) == len(STREAMS)
    assert {record.change_type for record in chain.log} == set(CHANGE_TYPES)
    assert {record.decision for record in chain.log} == set(DECISIONS)


def test_an_appended_chain_verifies(chain: Chain) -> None:
    result = chain.log.verify(expected_head=chain.log.head)
    assert result.ok
    assert bool(result)
    assert result.index is None
    assert result.reason is None
    assert result.head == chain.log.head
    assert result.detail == f"{CHAIN_LENGTH} records verified"


def test_each_record_chains_to_the_one_before(chain: Chain) -> None:
    records = chain.records
    assert records[0].previous_checksum == ""
    for before, after in itertools.pairwise(records):
        assert after.previous_checksum == before.checksum
    assert chain.log.head == records[-1].checksum
    assert len({record.checksum for record in records}) == CHAIN_LENGTH


def test_the_checksum_is_the_sha256_of_the_canonical_json_of_the_other_members(
    chain: Chain,
) -> None:
    for record in chain.records[:50]:
        data = record.to_json()
        checksum = data.pop("checksum")
        assert checksum == hashlib.sha256(canonical_json(data).encode("ascii")).hexdigest()
        assert record.intact
        assert record.content_checksum == checksum


def test_replay_reproduces_the_state_after_every_record(chain: Chain) -> None:
    for index, record in enumerate(chain.records):
        key = (record.thing_name, record.shadow_name)
        # The state after record `index` is the state after the last record at its version.
        later = [
            other
            for other in chain.records[index + 1 :]
            if (other.thing_name, other.shadow_name) == key and other.version == record.version
        ]
        if not later:
            assert chain.log.replay(*key, version=record.version) == chain.states[index]


def test_replay_without_a_version_gives_the_last_state_of_each_shadow(chain: Chain) -> None:
    for key in chain.log.shadows():
        last = max(i for i, r in enumerate(chain.records) if (r.thing_name, r.shadow_name) == key)
        assert chain.log.replay(*key) == chain.states[last]


def test_delete_records_patch_the_state_to_empty(chain: Chain) -> None:
    deletes = [i for i, r in enumerate(chain.records) if r.change_type == "delete"]
    assert deletes
    for index in deletes:
        assert chain.states[index] == EMPTY


def test_records_that_change_nothing_carry_an_empty_patch(chain: Chain) -> None:
    for record in chain.records:
        if record.change_type in ("rule_rejected", "manual_review"):
            assert record.patch == []


def test_conflict_records_carry_the_conflict_report(chain: Chain) -> None:
    merges = [r for r in chain.records if r.change_type == "conflict_resolved"]
    assert merges
    for record in merges:
        assert record.details is not None
        conflicts = record.details["conflicts"]
        assert isinstance(conflicts, list)
        assert conflicts
        assert all(isinstance(c, dict) and c["path"] == "target_c" for c in conflicts)


# --------------------------------------------------------------------------------------------
# Tampering: the first bad record is named
# --------------------------------------------------------------------------------------------

Mutation = Callable[[JSONObject], None]


def _other(choices: tuple[str, ...], current: Any) -> str:
    return next(choice for choice in choices if choice != current)


def _change_patch(data: JSONObject) -> None:
    patch = data["patch"]
    assert isinstance(patch, list)
    if patch:
        patch.pop()
    else:
        patch.append({"op": "add", "path": "/desired/forged", "value": True})


MUTATIONS: dict[str, Mutation] = {
    "thingName": lambda d: d.update(thingName="thermostat-9"),
    "shadowName": lambda d: d.update(shadowName="config" if d["shadowName"] is None else None),
    "version": lambda d: d.update(version=d["version"] + 1),  # type: ignore[operator]
    "timestamp": lambda d: d.update(timestamp=d["timestamp"] - 1),  # type: ignore[operator]
    "changeType": lambda d: d.update(changeType=_other(CHANGE_TYPES, d["changeType"])),
    "patch": _change_patch,
    "decision": lambda d: d.update(decision=_other(DECISIONS, d["decision"])),
    "reason": lambda d: d.update(reason=f"{d['reason']}."),
    "details": lambda d: d.update(details={"forged": True} if d["details"] is None else None),
    "previousChecksum": lambda d: d.update(
        previousChecksum="0" * 64 if d["previousChecksum"] != "0" * 64 else "1" * 64
    ),
    "checksum": lambda d: d.update(checksum="f" * 64),
}


def _mutated(record: HistoryRecord, mutation: Mutation) -> HistoryRecord:
    data = record.to_json()
    mutation(data)
    return HistoryRecord.from_json(data)


@pytest.mark.parametrize("member", sorted(MUTATIONS))
@pytest.mark.parametrize("index", [0, 1, 2, 137, 250, 498, 499])
def test_changing_a_member_of_a_record_is_a_checksum_mismatch_at_that_record(
    chain: Chain, member: str, index: int
) -> None:
    records = chain.records
    records[index] = _mutated(records[index], MUTATIONS[member])
    result = _verify(records)
    assert (result.ok, result.index, result.reason) == (False, index, "checksum mismatch")
    assert f"record {index} (" in result.detail
    assert result.head == (records[index - 1].checksum if index else "")


def test_changing_any_record_is_found_at_that_record(chain: Chain) -> None:
    mutations = list(MUTATIONS.values())
    for index in range(CHAIN_LENGTH):
        records = chain.records
        records[index] = _mutated(records[index], mutations[index % len(mutations)])
        result = _verify(records)
        assert (result.index, result.reason) == (index, "checksum mismatch"), index


def test_a_record_altered_and_resealed_is_found_at_the_next_record(chain: Chain) -> None:
    for index in range(CHAIN_LENGTH - 1):
        records = chain.records
        data = records[index].to_json()
        data["reason"] = "approved by nobody"
        records[index] = HistoryRecord.from_json(_reseal(data))
        result = _verify(records)
        assert (result.index, result.reason) == (index + 1, "chain broken"), index


def test_resealing_the_last_record_is_found_against_the_expected_head(chain: Chain) -> None:
    records = chain.records
    data = records[-1].to_json()
    data["decision"] = _other(DECISIONS, data["decision"])
    records[-1] = HistoryRecord.from_json(_reseal(data))
    assert _verify(records).ok
    result = _verify(records, expected_head=chain.log.head)
    assert (result.index, result.reason) == (CHAIN_LENGTH, "truncated")


def test_deleting_any_record_is_found_where_it_was(chain: Chain) -> None:
    for index in range(CHAIN_LENGTH):
        records = chain.records
        del records[index]
        result = _verify(records, expected_head=chain.log.head)
        expected = "truncated" if index == CHAIN_LENGTH - 1 else "chain broken"
        assert (result.ok, result.index, result.reason) == (False, index, expected), index


def test_a_deleted_record_message_names_the_break(chain: Chain) -> None:
    records = chain.records
    del records[10]
    result = _verify(records)
    assert result.detail.startswith("record 10 (")
    assert f"not the checksum {records[9].checksum[:12]}... of record 9" in result.detail
    assert "removed, inserted or reordered" in result.detail
    assert result.head == records[9].checksum


def _forgery(previous: HistoryRecord | str | None, timestamp: int) -> HistoryRecord:
    return HistoryRecord.create(
        "intruder",
        None,
        previous=previous,
        previous_state=None,
        new_state={"desired": {"unlocked": True}},
        version=1,
        timestamp=timestamp,
        change_type="update",
        decision="accept",
        reason="no conflict",
    )


def test_inserting_a_forged_record_chained_to_its_predecessor_is_found_at_it(
    chain: Chain,
) -> None:
    for index in range(CHAIN_LENGTH):
        records = chain.records
        previous = records[index - 1] if index else None
        forged = _forgery(previous, T0)
        assert forged.intact
        records.insert(index, forged)
        result = _verify(records, expected_head=chain.log.head)
        assert (result.ok, result.index, result.reason) == (False, index, "chain broken"), index
        assert "it was inserted" in result.detail
        assert result.head == (previous.checksum if previous else "")


def test_inserting_a_forged_record_with_any_other_link_is_found_at_it(chain: Chain) -> None:
    for index in range(CHAIN_LENGTH):
        records = chain.records
        link = records[index - 2].checksum if index >= 2 else "a" * 64
        records.insert(index, _forgery(link, T0))
        result = _verify(records)
        assert (result.index, result.reason) == (index, "chain broken"), index


def test_inserting_a_copy_of_a_record_is_found_at_the_copy(chain: Chain) -> None:
    for source in (0, 1, 200, 499):
        for index in (0, 1, source, source + 1, 300, CHAIN_LENGTH):
            records = chain.records
            records.insert(index, records[source])
            result = _verify(records, expected_head=chain.log.head)
            # Of two identical records in a row, the second is the copy.
            expected = source + 1 if index == source else index
            assert (result.index, result.reason) == (expected, "chain broken"), (source, index)


def test_a_record_appended_after_the_expected_head_is_growth_not_tampering(
    chain: Chain,
) -> None:
    records = chain.records
    records.append(_forgery(records[-1], T0 + 10**6))
    result = _verify(records, expected_head=chain.log.head)
    assert result.ok
    assert result.head != chain.log.head  # refuse growth by comparing heads


def test_swapping_any_two_records_is_found_at_the_first(chain: Chain) -> None:
    rng = random.Random(11)
    pairs = [(i, i + 1) for i in range(CHAIN_LENGTH - 1)]
    pairs += [(i, rng.randrange(i + 1, CHAIN_LENGTH)) for i in range(CHAIN_LENGTH - 1)]
    for first, second in pairs:
        records = chain.records
        records[first], records[second] = records[second], records[first]
        result = _verify(records, expected_head=chain.log.head)
        assert (result.index, result.reason) == (first, "chain broken"), (first, second)


@pytest.mark.parametrize("kept", [0, 1, 250, CHAIN_LENGTH - 1])
def test_truncating_the_tail_is_found_against_the_expected_head(chain: Chain, kept: int) -> None:
    records = chain.records[:kept]
    assert _verify(records).ok  # a shorter chain is still a chain
    result = _verify(records, expected_head=chain.log.head)
    assert (result.ok, result.index, result.reason) == (False, kept, "truncated")
    assert result.head == (records[-1].checksum if records else "")
    assert "cut off the end" in result.detail


def test_an_expected_head_inside_the_log_is_reached(chain: Chain) -> None:
    assert chain.log.verify(expected_head=chain.records[123].checksum).ok
    assert chain.log.verify(expected_head="").ok


def test_a_segment_verifies_against_the_checksum_before_it(chain: Chain) -> None:
    records = chain.records
    segment = records[100:200]
    assert _verify(segment, previous_checksum=records[99].checksum).ok
    result = _verify(segment)
    assert (result.index, result.reason) == (0, "chain broken")
    assert "not the empty checksum" in result.detail


def _sealed_chain(specs: list[tuple[str, int, int]]) -> list[HistoryRecord]:
    """Records of ``(thing, version, timestamp)``, correctly chained, bypassing AuditLog."""
    records: list[HistoryRecord] = []
    for thing, version, timestamp in specs:
        records.append(
            HistoryRecord.create(
                thing,
                None,
                previous=records[-1] if records else None,
                previous_state=None,
                new_state=None,
                version=version,
                timestamp=timestamp,
                change_type="manual_review",
                decision="review",
                reason="held",
            )
        )
    return records


def test_a_version_going_backwards_within_a_shadow_is_found() -> None:
    records = _sealed_chain([("a", 5, 10), ("b", 1, 11), ("a", 4, 12)])
    result = _verify(records)
    assert (result.index, result.reason) == (2, "version went backwards")
    assert "has version 5" in result.detail
    assert result.head == records[1].checksum


def test_a_timestamp_going_backwards_within_a_shadow_is_found() -> None:
    records = _sealed_chain([("a", 5, 10), ("b", 1, 11), ("b", 1, 12), ("a", 5, 9)])
    result = _verify(records)
    assert (result.index, result.reason) == (3, "timestamp out of order")
    assert "earlier than 10" in result.detail


def test_other_shadows_may_interleave_at_any_version_and_time() -> None:
    assert _verify(_sealed_chain([("a", 5, 10), ("b", 1, 3), ("a", 5, 10), ("b", 2, 4)])).ok


def test_verification_survives_the_jsonl_round_trip_of_a_tampered_log(chain: Chain) -> None:
    lines = chain.log.to_jsonl().splitlines()
    data = json.loads(lines[321])
    data["patch"] = [{"op": "replace", "path": "/desired/target_c", "value": 99}]
    lines[321] = json.dumps(data)
    result = AuditLog.from_jsonl("\n".join(lines)).verify()
    assert (result.index, result.reason) == (321, "checksum mismatch")


# --------------------------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------------------------


def test_jsonl_round_trips_the_chain(chain: Chain) -> None:
    text = chain.log.to_jsonl()
    loaded = AuditLog.from_jsonl(text)
    assert loaded == chain.log
    assert loaded.to_jsonl() == text
    assert AuditLog.from_jsonl(text.encode("utf-8")) == chain.log
    assert loaded.verify(expected_head=chain.log.head).ok


def test_jsonl_is_one_canonical_ascii_object_per_line(chain: Chain) -> None:
    text = chain.log.to_jsonl()
    assert text.endswith("\n")
    assert text.isascii()
    lines = text.splitlines()
    assert len(lines) == CHAIN_LENGTH
    for line, record in zip(lines, chain.records, strict=True):
        assert line == canonical_json(record.to_json())


def test_an_empty_log_is_empty_jsonl() -> None:
    assert AuditLog().to_jsonl() == ""
    assert len(AuditLog.from_jsonl("")) == 0
    assert len(AuditLog.from_jsonl("\n \n\r\n")) == 0
    assert AuditLog().verify() == VerificationResult(ok=True, detail="0 records verified")


def test_blank_lines_and_crlf_are_accepted_and_counted(chain: Chain) -> None:
    lines = chain.log.to_jsonl().splitlines()[:3]
    text = "\r\n\r\n".join(lines) + "\r\n"
    assert AuditLog.from_jsonl(text).records == chain.log.records[:3]


def _line(chain: Chain, index: int = 0) -> JSONObject:
    data = json.loads(chain.log.to_jsonl().splitlines()[index])
    assert isinstance(data, dict)
    return data


def _with(data: JSONObject, **changes: Any) -> str:
    return json.dumps({**data, **changes})


BAD_LINES: list[tuple[Callable[[JSONObject], str], str]] = [
    (lambda d: "{", "not valid JSON: Expecting property name enclosed in double quotes (column 2)"),
    (lambda d: '{"a" 1}', "not valid JSON: Expecting ':' delimiter (column 6)"),
    (lambda d: "[1, 2]", "expected a JSON object (one history record per line), got an array"),
    (lambda d: '"record"', "expected a JSON object (one history record per line), got a string"),
    (lambda d: "null", "expected a JSON object (one history record per line), got null"),
    (lambda d: _with(d)[:-1], "not valid JSON: Expecting ',' delimiter"),
    (lambda d: _with(d).replace('"version":', '"version": NaN, "v":', 1), "NaN is not valid JSON"),
    (lambda d: "[" * 100_000 + "]" * 100_000, "nests too deeply"),
    (lambda d: _with(d, extra=1), "unknown member 'extra' in a history record"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "patch"}), "is missing patch"),
    (lambda d: _with(d, version="3"), "member 'version': version must be a non-negative int"),
    (lambda d: _with(d, version=-1), "member 'version': version must be a non-negative int"),
    (lambda d: _with(d, version=True), "member 'version'"),
    (lambda d: _with(d, timestamp=1.5), "member 'timestamp'"),
    (lambda d: _with(d, thingName="a/b"), "member 'thingName': thing_name is not a valid thing"),
    (lambda d: _with(d, thingName=None), "member 'thingName'"),
    (lambda d: _with(d, shadowName=""), "member 'shadowName'"),
    (lambda d: _with(d, changeType="upsert"), "member 'changeType': change_type must be one of"),
    (lambda d: _with(d, decision="maybe"), "member 'decision': decision must be one of"),
    (lambda d: _with(d, reason=None), "member 'reason': reason must be a str"),
    (lambda d: _with(d, patch={"op": "add"}), "member 'patch': patch must be a list"),
    (lambda d: _with(d, patch=[1]), "member 'patch': patch[0] must be an RFC 6902 operation"),
    (lambda d: _with(d, patch=[{"op": "poke", "path": "/a"}]), "patch[0].op must be one of"),
    (lambda d: _with(d, patch=[{"op": "add", "value": 1}]), "patch[0].path must be a JSON Pointer"),
    (lambda d: _with(d, details=[1]), "member 'details': details must be a JSON object or None"),
    (lambda d: _with(d, checksum=5), "member 'checksum': checksum must be a str"),
    (lambda d: _with(d, previousChecksum=None), "member 'previousChecksum'"),
]


@pytest.mark.parametrize(("make", "message"), BAD_LINES)
def test_a_bad_line_is_an_audit_log_error_naming_the_line(
    chain: Chain, make: Callable[[JSONObject], str], message: str
) -> None:
    good = chain.log.to_jsonl().splitlines()
    text = "\n".join([good[0], "", good[1], make(_line(chain, 2)), good[3]])
    with pytest.raises(AuditLogError) as caught:
        AuditLog.from_jsonl(text)
    error = caught.value
    assert not isinstance(error, json.JSONDecodeError)
    assert isinstance(error, InvalidDocumentError)
    assert error.line == 4
    assert str(error).startswith("line 4: ")
    assert message in str(error)
    assert error.problem == str(error).removeprefix("line 4: ")


def test_bytes_that_are_not_utf8_are_an_audit_log_error(chain: Chain) -> None:
    data = chain.log.to_jsonl().encode("utf-8")
    with pytest.raises(AuditLogError, match=r"not UTF-8 text \(invalid start byte at byte 20\)"):
        AuditLog.from_jsonl(data[:20] + b"\xff" + data[20:])


def test_from_jsonl_refuses_what_is_not_text() -> None:
    with pytest.raises(InvalidArgumentError, match="text must be str or bytes"):
        AuditLog.from_jsonl(["{}"])  # type: ignore[arg-type]


def test_from_json_refuses_what_is_not_an_object() -> None:
    with pytest.raises(AuditLogError, match="a history record is a JSON object, got an array"):
        HistoryRecord.from_json([])  # type: ignore[arg-type]


def test_from_json_keeps_a_wrong_checksum_for_verification(chain: Chain) -> None:
    data = _line(chain, 0)
    data["checksum"] = "not even hex"
    record = HistoryRecord.from_json(data)
    assert record.checksum == "not even hex"
    assert not record.intact
    result = AuditLog([record]).verify()
    assert (result.index, result.reason) == (0, "checksum mismatch")
    assert "'not even hex'" in result.detail


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def _create(**changes: Any) -> HistoryRecord:
    arguments: dict[str, Any] = {
        "previous": None,
        "previous_state": None,
        "new_state": {"desired": {"on": True}},
        "version": 1,
        "timestamp": T0,
        "change_type": "update",
        "decision": "accept",
        "reason": "no conflict",
        **changes,
    }
    thing = arguments.pop("thing_name", "lamp")
    shadow = arguments.pop("shadow_name", None)
    return HistoryRecord.create(thing, shadow, **arguments)


def test_the_module_exports_exactly_its_public_names() -> None:
    assert sorted(shadowsync.audit.__all__) == sorted(
        [
            "AuditLog",
            "AuditLogError",
            "CHANGE_TYPES",
            "ChangeType",
            "DECISIONS",
            "Decision",
            "FailureReason",
            "HistoryRecord",
            "ShadowState",
            "VerificationResult",
        ]
    )
    for name in shadowsync.audit.__all__:
        assert hasattr(shadowsync.audit, name)


def test_every_public_class_member_has_a_docstring() -> None:
    import inspect

    assert shadowsync.audit.__doc__
    for name in shadowsync.audit.__all__:
        value = getattr(shadowsync.audit, name)
        if not inspect.isclass(value):
            continue
        assert value.__doc__, name
        for member, attribute in vars(value).items():
            methods = (property, classmethod, staticmethod, functools.cached_property)
            if member.startswith("_"):
                continue
            if isinstance(attribute, methods) or inspect.isfunction(attribute):
                assert inspect.getdoc(getattr(value, member)), f"{name}.{member}"


def test_the_core_import_does_not_load_the_audit_module() -> None:
    import subprocess
    import sys

    code = "import sys, shadowsync; print('shadowsync.audit' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "False"


def test_a_record_built_with_a_wrong_checksum_is_refused() -> None:
    record = _create()
    with pytest.raises(InvalidArgumentError, match="does not match the record's content"):
        attrs.evolve(record, reason="edited")
    with pytest.raises(InvalidArgumentError, match="does not match the record's content"):
        attrs.evolve(record, checksum="0" * 64)
    assert attrs.evolve(record) == record


def test_a_record_built_by_hand_with_the_right_checksum_is_accepted() -> None:
    record = _create(details={"k": [1, 2.5, "x"]})
    fields = {field.name: getattr(record, field.name) for field in attrs.fields(HistoryRecord)}
    assert HistoryRecord(**fields) == record


def test_a_malformed_previous_checksum_is_refused() -> None:
    record = _create()
    data = record.to_json()
    data["previousChecksum"] = "xyz"
    resealed = _reseal(data)
    with pytest.raises(InvalidArgumentError, match="previous_checksum must be '' or 64"):
        attrs.evolve(record, previous_checksum="xyz", checksum=str(resealed["checksum"]))


def test_create_links_to_a_record_a_checksum_or_nothing() -> None:
    first = _create()
    assert first.previous_checksum == ""
    assert _create(previous=first, timestamp=T0 + 1).previous_checksum == first.checksum
    assert _create(previous=first.checksum).previous_checksum == first.checksum
    assert _create(previous="").previous_checksum == ""
    with pytest.raises(InvalidArgumentError, match="previous must be the previous HistoryRecord"):
        _create(previous="abc")
    with pytest.raises(InvalidArgumentError, match="previous must be"):
        _create(previous=5)


def test_create_refuses_to_go_back_within_a_shadow() -> None:
    first = _create(version=3, timestamp=T0)
    with pytest.raises(InvalidArgumentError, match="version 2 is lower than 3"):
        _create(previous=first, version=2, timestamp=T0)
    with pytest.raises(InvalidArgumentError, match="timestamp 1699999999 is earlier than"):
        _create(previous=first, version=3, timestamp=T0 - 1)
    assert _create(previous=first, thing_name="other", version=1, timestamp=T0 - 1).intact


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"thing_name": "a b"}, "thing_name is not a valid thing name"),
        ({"thing_name": ""}, "thing_name is not a valid thing name"),
        ({"thing_name": 7}, "thing_name is not a valid thing name: expected a string, got int"),
        ({"shadow_name": "x/y"}, "shadow_name is not a valid shadow name (use None"),
        ({"version": -1}, "version must be a non-negative int, got -1"),
        ({"version": 2**63}, "version must be a non-negative int"),
        ({"version": "1"}, "version must be a non-negative int, got '1'"),
        ({"timestamp": 1.0}, "timestamp must be a non-negative int, got 1.0"),
        ({"change_type": "upsert"}, "change_type must be one of 'update', 'delete'"),
        ({"decision": "Accept"}, "decision must be one of 'accept', 'merge', 'reject', 'review'"),
        ({"reason": None}, "reason must be a str, got None"),
        ({"details": [1]}, "details must be a JSON object or None, got an array"),
        ({"details": {"a": float("nan")}}, "details.a: nan is not a JSON number"),
        ({"details": {"a": [1, {2: 3}]}}, "details.a[1]: the object key 2 is not a string"),
        ({"details": {"a": {1, 2}}}, "details.a: set is not a JSON type"),
        ({"details": {"a": 10**5000}}, "details.a: an integer has too many digits"),
        ({"previous_state": 5}, "previous_state must be a ShadowDocument, a mapping"),
        ({"new_state": {"delta": {}}}, "new_state may only hold 'desired' and 'reported'"),
        ({"new_state": {"desired": {"a": None}}}, "new_state is not a shadow state"),
        ({"new_state": {"desired": [1]}}, "new_state is not a shadow state"),
        ({"new_state": {"reported": {"a": float("inf")}}}, "new_state is not a shadow state"),
    ],
)
def test_create_refuses_bad_arguments_with_a_message(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        _create(**changes)
    assert message in str(caught.value)


def test_deeply_nested_details_are_refused_not_a_recursion_error() -> None:
    deep: Any = 1
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(InvalidArgumentError, match="nest deeper than 64 levels"):
        _create(details={"deep": deep})


def test_details_and_patches_are_copied_as_plain_json() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    details: dict[str, Any] = {"levels": (Level.HIGH, True), "nested": {"x": [1]}}
    record = _create(details=details)
    details["nested"]["x"].append(2)
    assert record.details == {"levels": [3, True], "nested": {"x": [1]}}
    assert type(record.details["levels"][0]) is int  # type: ignore[index]


def test_to_json_returns_a_copy() -> None:
    record = _create(details={"a": {"b": 1}})
    data = record.to_json()
    data["patch"].append({"op": "remove", "path": "/desired"})  # type: ignore[union-attr]
    data["details"]["a"]["b"] = 2  # type: ignore[call-overload, index]
    assert record.intact
    assert record.details == {"a": {"b": 1}}
    assert HistoryRecord.from_json(record.to_json()) == record


def test_records_are_hashable_and_compare_by_content() -> None:
    record = _create()
    loaded = HistoryRecord.from_json(record.to_json())
    assert loaded == record
    assert hash(loaded) == hash(record)
    assert len({record, loaded, _create(reason="other")}) == 2


def test_states_may_be_documents_mappings_or_none() -> None:
    document = apply_update(None, {"state": {"reported": {"rpm": 5}}}, timestamp=T0).document
    from_document = _create(new_state=document)
    from_mapping = _create(new_state={"reported": {"rpm": 5}, "desired": None})
    assert (
        from_document.patch
        == from_mapping.patch
        == [{"op": "add", "path": "/reported/rpm", "value": 5}]
    )
    assert _create(previous_state=document, new_state=None).patch == [
        {"op": "remove", "path": "/reported/rpm"}
    ]


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------


def _append(log: AuditLog, **changes: Any) -> HistoryRecord:
    arguments: dict[str, Any] = {
        "previous_state": None,
        "new_state": {"desired": {"on": True}},
        "version": 1,
        "timestamp": T0,
        "change_type": "update",
        "decision": "accept",
        "reason": "no conflict",
        **changes,
    }
    thing = arguments.pop("thing_name", "lamp")
    shadow = arguments.pop("shadow_name", None)
    return log.append(thing, shadow, **arguments)


def test_append_returns_the_record_it_adds() -> None:
    log = AuditLog()
    first = _append(log)
    second = _append(
        log,
        previous_state={"desired": {"on": True}},
        new_state=None,
        version=1,
        change_type="delete",
    )
    assert log.records == (first, second)
    assert list(log) == [first, second]
    assert log[1] is second
    assert log[-1] is second
    assert log.head == second.checksum
    assert second.previous_checksum == first.checksum
    assert repr(log) == f"AuditLog(<2 records>, head='{second.checksum[:12]}...')"


def test_a_shadow_new_to_the_log_starts_from_the_empty_state() -> None:
    log = AuditLog()
    with pytest.raises(InvalidArgumentError, match="append its current state first as a baseline"):
        _append(log, previous_state={"desired": {"on": False}})
    assert len(log) == 0
    _append(log, previous_state={"desired": {}, "reported": {}})
    assert len(log) == 1


def test_append_refuses_a_change_that_does_not_start_where_the_last_left() -> None:
    log = AuditLog()
    _append(log)
    with pytest.raises(InvalidArgumentError, match="is not the state the last record of thing"):
        _append(log, previous_state={"desired": {"on": False}}, version=2)
    # JSON equality: 1 and 1.0 are the same value.
    _append(
        log, previous_state={"desired": {"on": True}}, new_state={"desired": {"n": 1}}, version=2
    )
    _append(log, previous_state={"desired": {"n": 1.0}}, new_state=None, version=2)
    assert len(log) == 3


def test_append_refuses_to_go_back_within_a_shadow() -> None:
    log = AuditLog()
    _append(log, version=4, timestamp=T0)
    state = {"desired": {"on": True}}
    with pytest.raises(InvalidArgumentError, match="version 3 is lower than 4"):
        _append(log, previous_state=state, version=3, timestamp=T0)
    with pytest.raises(InvalidArgumentError, match="is earlier than 1700000000"):
        _append(log, previous_state=state, version=4, timestamp=T0 - 1)
    _append(log, thing_name="other", version=1, timestamp=T0 - 100)
    assert log.verify().ok


def test_append_refuses_bad_arguments_and_adds_nothing() -> None:
    log = AuditLog()
    for changes in (
        {"thing_name": ["x"]},
        {"shadow_name": "a b"},
        {"change_type": "x"},
        {"version": None},
        {"details": 1},
        {"new_state": 1},
    ):
        with pytest.raises(InvalidArgumentError):
            _append(log, **changes)
    assert len(log) == 0
    _append(log)
    assert log.verify().ok


def test_appending_to_a_loaded_log_continues_its_chain_and_states(chain: Chain) -> None:
    loaded = AuditLog.from_jsonl(chain.log.to_jsonl())
    thing, shadow = chain.log.shadows()[0]
    state = loaded.replay(thing, shadow)
    last = loaded.records_for(thing, shadow)[-1]
    record = loaded.append(
        thing,
        shadow,
        previous_state=state,
        new_state={**state, "desired": {"x": 1}},
        version=last.version + 1,
        timestamp=last.timestamp + 100,
        change_type="update",
        decision="accept",
        reason="no conflict",
    )
    assert record.previous_checksum == chain.log.head
    assert loaded.verify(expected_head=chain.log.head).ok
    assert loaded.replay(thing, shadow)["desired"] == {"x": 1}
    assert len(chain.log) == CHAIN_LENGTH  # the original is untouched


def test_appending_to_a_log_whose_patches_do_not_replay_is_refused(chain: Chain) -> None:
    data = _line(chain, 0)
    data["patch"] = [{"op": "remove", "path": "/desired/nothing"}]
    log = AuditLog([HistoryRecord.from_json(data)])
    with pytest.raises(AuditLogError, match=r"record 0 \(thing .*\) does not apply"):
        _append(log, thing_name="new")


def test_the_log_constructor_checks_its_records() -> None:
    with pytest.raises(InvalidArgumentError, match=r"records\[1\] must be a HistoryRecord"):
        AuditLog([_create(), {"thingName": "x"}])  # type: ignore[list-item]
    with pytest.raises(
        InvalidArgumentError, match=r"load JSON Lines text with AuditLog\.from_jsonl"
    ):
        AuditLog("{}")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="records must be an iterable"):
        AuditLog(5)  # type: ignore[arg-type]


def test_logs_compare_by_their_records(chain: Chain) -> None:
    assert AuditLog(chain.records) == chain.log
    assert AuditLog(chain.records[:-1]) != chain.log
    assert AuditLog() != []


def test_shadows_and_records_for(chain: Chain) -> None:
    shadows = chain.log.shadows()
    assert set(shadows) == set(STREAMS)
    total = 0
    for thing, shadow in shadows:
        records = chain.log.records_for(thing, shadow)
        assert all((r.thing_name, r.shadow_name) == (thing, shadow) for r in records)
        total += len(records)
    assert total == CHAIN_LENGTH
    assert chain.log.records_for("nobody", None) == ()


def test_replay_of_an_unknown_shadow_is_an_error(chain: Chain) -> None:
    with pytest.raises(InvalidArgumentError, match="no records for thing 'nobody', classic"):
        chain.log.replay("nobody", None)
    with pytest.raises(InvalidArgumentError, match="version must be a non-negative int or None"):
        chain.log.replay(*STREAMS[0], version=-1)


def test_replay_before_the_first_version_is_the_empty_state() -> None:
    log = AuditLog()
    _append(log, version=7)
    assert log.replay("lamp", None, version=6) == EMPTY
    assert log.replay("lamp", None, version=7) == {"desired": {"on": True}, "reported": {}}


ALTERED_PATCHES: list[tuple[JSONValue, str]] = [
    ([{"op": "test", "path": "/desired", "value": 0}], "does not apply"),
    ([{"op": "replace", "path": "", "value": 1}], "leaves a state that is not"),
    ([{"op": "add", "path": "/delta", "value": {}}], "leaves a state that is not"),
]


@pytest.mark.parametrize(("patch", "message"), ALTERED_PATCHES)
def test_replay_of_an_altered_patch_is_an_audit_log_error(
    chain: Chain, patch: JSONValue, message: str
) -> None:
    data = _line(chain, 0)
    data["patch"] = patch
    record = HistoryRecord.from_json(data)
    log = AuditLog([record])
    with pytest.raises(AuditLogError, match=message) as caught:
        log.replay(record.thing_name, record.shadow_name)
    assert "run verify() to find where" in str(caught.value)
    assert caught.value.line is None


@pytest.mark.parametrize(
    "fields",
    [
        {"ok": 1},
        {"ok": True, "index": 0},
        {"ok": False, "index": 0},
        {"ok": False, "reason": "chain broken"},
        {"ok": False, "index": -1, "reason": "chain broken"},
        {"ok": False, "index": 0, "reason": "lost"},
        {"ok": True, "detail": None},
    ],
)
def test_a_verification_result_is_consistent(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        VerificationResult(**fields)


def test_verify_refuses_arguments_of_the_wrong_type() -> None:
    with pytest.raises(InvalidArgumentError, match="expected_head must be a str or None, got int"):
        AuditLog().verify(expected_head=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="previous_checksum must be a str"):
        AuditLog().verify(previous_checksum=None)  # type: ignore[arg-type]


def test_every_error_is_a_shadowsync_error() -> None:
    assert issubclass(AuditLogError, ShadowSyncError)
    assert issubclass(AuditLogError, InvalidDocumentError)


# --- adding records built elsewhere; the last state of a shadow ---


def _record(previous: HistoryRecord | str | None, **changes: Any) -> HistoryRecord:
    arguments: dict[str, Any] = {
        "previous_state": None,
        "new_state": {"desired": {"on": True}},
        "version": 1,
        "timestamp": 1700000000,
        "change_type": "update",
        "decision": "accept",
        "reason": "no conflict",
        **changes,
    }
    return HistoryRecord.create("lamp", None, previous=previous, **arguments)


def test_add_appends_a_record_chained_to_the_head() -> None:
    log = AuditLog()
    first = log.add(_record(None))
    second = log.add(
        _record(
            first,
            previous_state={"desired": {"on": True}},
            new_state={"desired": {"on": False}},
            version=2,
            timestamp=1700000060,
        )
    )
    assert log.records == (first, second)
    assert log.verify().ok
    assert log.last_state("lamp", None) == {"desired": {"on": False}, "reported": {}}
    assert log.replay("lamp", None, version=1) == {"desired": {"on": True}, "reported": {}}


def test_add_refuses_a_record_not_chained_to_the_head_and_keeps_the_log() -> None:
    log = AuditLog()
    first = log.add(_record(None))
    with pytest.raises(InvalidArgumentError, match="not to this log's head"):
        log.add(_record(None, version=2, timestamp=1700000060))
    assert log.records == (first,)


def test_add_refuses_an_altered_record() -> None:
    record = _record(None)
    altered = HistoryRecord.from_json({**record.to_json(), "reason": "forged"})
    with pytest.raises(InvalidArgumentError, match="was altered after it was built"):
        AuditLog().add(altered)


def test_add_refuses_going_back_within_a_shadow() -> None:
    log = AuditLog()
    first = log.add(_record(None, version=5))
    with pytest.raises(InvalidArgumentError, match="version 4 is lower than 5"):
        log.add(
            _record(
                first.checksum,
                previous_state={"desired": {"on": True}},
                new_state={"desired": {"on": False}},
                version=4,
            )
        )
    assert len(log) == 1


def test_add_refuses_a_patch_that_does_not_apply_to_the_shadows_last_state() -> None:
    log = AuditLog()
    first = log.add(_record(None))
    # Built against a state the log never had: removing a key the shadow does not hold.
    stray = _record(
        first,
        previous_state={"desired": {"on": True, "mode": "eco"}},
        new_state={"desired": {"on": True}},
        version=2,
    )
    with pytest.raises(AuditLogError, match="does not apply"):
        log.add(stray)
    assert log.records == (first,)


def test_add_refuses_what_is_not_a_record() -> None:
    with pytest.raises(InvalidArgumentError, match="expected a HistoryRecord"):
        AuditLog().add({"reason": "x"})  # type: ignore[arg-type]


def test_last_state_is_none_for_a_shadow_without_records_and_a_copy_otherwise(
    chain: Chain,
) -> None:
    log = AuditLog(chain.records)
    assert log.last_state("nobody", None) is None
    for thing, shadow in log.shadows():
        state = log.last_state(thing, shadow)
        assert state == log.replay(thing, shadow)
        assert state is not None
        state["desired"] = {"mutated": True}
        assert log.last_state(thing, shadow) == log.replay(thing, shadow)


def test_after_a_delete_record_the_versions_of_a_shadow_may_start_again() -> None:
    log = AuditLog()
    _append(log, version=7)
    _append(
        log,
        previous_state={"desired": {"on": True}},
        new_state=None,
        version=7,
        timestamp=1700000060,
        change_type="delete",
    )
    again = _append(log, version=1, timestamp=1700200000, new_state={"desired": {"on": False}})
    assert again.version == 1
    assert log.verify().ok
    assert log.last_state("lamp", None) == {"desired": {"on": False}, "reported": {}}
    record = HistoryRecord.create(
        "lamp",
        None,
        previous=log[-1],
        previous_state={"desired": {"on": False}},
        new_state={"desired": {"on": True}},
        version=2,
        timestamp=1700200060,
        change_type="update",
        decision="accept",
        reason="no conflict",
    )
    log.add(record)
    assert log.verify().ok


def test_without_a_delete_record_the_versions_may_not_go_back() -> None:
    log = AuditLog()
    first = _append(log, version=7)
    with pytest.raises(InvalidArgumentError, match="version 1 is lower than 7"):
        HistoryRecord.create(
            "lamp",
            None,
            previous=first,
            previous_state=None,
            new_state=None,
            version=1,
            timestamp=1700000060,
            change_type="update",
            decision="accept",
            reason="no conflict",
        )
    # A record that goes back, forged into a log with its chain intact, fails verification.
    forged = HistoryRecord.create(
        "lamp",
        None,
        previous=first.checksum,
        previous_state={"desired": {"on": True}},
        new_state={"desired": {"on": False}},
        version=1,
        timestamp=1700000060,
        change_type="update",
        decision="accept",
        reason="no conflict",
    )
    result = AuditLog([first, forged]).verify()
    assert (result.ok, result.index, result.reason) == (False, 1, "version went backwards")
