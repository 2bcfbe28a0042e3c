"""Laws of the audit trail: replay reproduces history, JSON Lines round-trips, tampering shows."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from shadowsync import JSONObject, JSONValue, ShadowDocument, apply_update, errors
from shadowsync.audit import CHANGE_TYPES, DECISIONS, AuditLog, HistoryRecord
from tests.strategies import (
    FIRST_TIMESTAMP,
    ROOMY_LIMITS,
    capped_examples,
    json_values,
    shadow_keys,
    shadow_names,
    strict_equal,
    thing_names,
    update_bodies,
)

Key = tuple[str, "str | None"]

SHADOWS: tuple[Key, ...] = (("lamp", None), ("lamp", "config"), ("pump-7", "telemetry"))
"""A few shadows of two things, so that records of different shadows interleave in one chain."""


def _state(document: ShadowDocument | None) -> JSONObject:
    if document is None:
        return {"desired": {}, "reported": {}}
    return {"desired": document.desired, "reported": document.reported}


_LEAVES = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from((1.0, 2.5, True, False, "on", "été", "")),
)
_SECTIONS = st.dictionaries(
    st.sampled_from(("a", "b", "on", "mode")),
    st.one_of(
        _LEAVES,
        st.dictionaries(st.sampled_from(("x", "y")), _LEAVES, max_size=2),
        st.lists(st.integers(0, 3), max_size=2),
    ),
    max_size=3,
)
BODIES = update_bodies(sections=_SECTIONS)
"""Small, cheap update requests (nulls delete; objects merge): the laws are about the log, and
`apply_update` has laws of its own."""


EXPENSIVE = capped_examples(100)
"""Settings for laws beyond the central replay law: each example builds a whole history."""


@st.composite
def audited_histories(
    draw: st.DrawFn, max_steps: int = 8
) -> tuple[AuditLog, list[tuple[Key, int, JSONObject]]]:
    """A log recording real `apply_update` results (plus deletes and reviews) over a few
    shadows, and for each record its shadow, version and the state it left."""
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(SHADOWS),
                st.sampled_from(("update", "update", "update", "delete", "review")),
                BODIES,
            ),
            min_size=1,
            max_size=max_steps,
        )
    )
    log = AuditLog()
    documents: dict[Key, ShadowDocument | None] = {}
    deleted_at: dict[Key, int] = {}
    recorded: list[tuple[Key, int, JSONObject]] = []
    timestamp = FIRST_TIMESTAMP
    for key, kind, body in steps:
        thing, shadow = key
        timestamp += draw(st.integers(0, 30))
        document = documents.get(key)
        if kind == "delete" and document is not None:
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=None,
                version=document.version,
                timestamp=timestamp,
                change_type="delete",
                decision="accept",
                reason="deleted",
            )
            deleted_at[key] = document.version
            document = None
        elif kind == "review" and document is not None:
            log.append(
                thing,
                shadow,
                previous_state=document,
                new_state=document,
                version=document.version,
                timestamp=timestamp,
                change_type="manual_review",
                decision="review",
                reason="held for a person",
                details={"proposed": body},
            )
        else:
            try:
                result = apply_update(
                    document,
                    body,
                    timestamp=timestamp,
                    limits=ROOMY_LIMITS,
                    previous_version=deleted_at.get(key, 0),
                )
            except errors.PayloadTooLargeError:
                continue
            document = result.document
            log.append(
                thing,
                shadow,
                previous_state=result.previous,
                new_state=document,
                version=document.version,
                timestamp=timestamp,
                change_type="update",
                decision="accept",
                reason="no conflict",
            )
        documents[key] = document
        recorded.append((key, log[-1].version, _state(document)))
    assume(len(log) > 0)
    return log, recorded


@given(audited_histories())
def test_replaying_up_to_any_recorded_version_reproduces_the_state_at_that_version(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]],
) -> None:
    log, recorded = history
    # A version's state is the one its last record left (a delete keeps the deleted version).
    at_version = {(key, version): state for key, version, state in recorded}
    for (key, version), state in at_version.items():
        assert strict_equal(log.replay(*key, version=version), state)


@given(audited_histories())
def test_replaying_all_records_of_a_shadow_reproduces_its_current_state(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]],
) -> None:
    log, recorded = history
    current = {key: state for key, _, state in recorded}
    for key, state in current.items():
        assert strict_equal(log.replay(*key), state)


@EXPENSIVE
@given(audited_histories())
def test_a_log_built_by_appending_verifies_against_its_head(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]],
) -> None:
    log, _ = history
    result = log.verify(expected_head=log.head)
    assert result.ok
    assert result.head == log.head


@EXPENSIVE
@given(audited_histories())
def test_jsonl_export_then_import_gives_the_same_log(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]],
) -> None:
    log, _ = history
    text = log.to_jsonl()
    loaded = AuditLog.from_jsonl(text)
    assert loaded == log
    assert loaded.to_jsonl() == text
    assert [record.checksum for record in loaded] == [record.checksum for record in log]


@EXPENSIVE
@given(audited_histories())
def test_a_record_read_back_from_its_json_is_the_same_intact_record(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]],
) -> None:
    log, _ = history
    for record in log:
        loaded = HistoryRecord.from_json(json.loads(json.dumps(record.to_json())))
        assert loaded == record
        assert loaded.intact


HEX = "0123456789abcdef"

MEMBER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "thingName": thing_names(),
    "shadowName": st.one_of(st.none(), shadow_names()),
    "version": st.integers(0, 2**63 - 1),
    "timestamp": st.integers(0, 2**63 - 1),
    "changeType": st.sampled_from(CHANGE_TYPES),
    "patch": st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(("add", "remove", "replace", "move", "copy", "test")),
                "path": st.text(max_size=10),
            },
            optional={"value": json_values(2)},
        ),
        max_size=3,
    ),
    "decision": st.sampled_from(DECISIONS),
    "reason": st.text(max_size=20),
    "details": st.one_of(st.none(), st.dictionaries(shadow_keys(), json_values(2), max_size=3)),
    "previousChecksum": st.one_of(st.just(""), st.text(HEX, min_size=64, max_size=64)),
    "checksum": st.text(HEX, min_size=64, max_size=64),
}
"""For each member of a stored record, values a tamperer might write that still load."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@EXPENSIVE
@given(audited_histories(), st.data())
def test_changing_any_member_of_any_record_is_found_exactly_at_that_record(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]], data: st.DataObject
) -> None:
    log, _ = history
    lines = log.to_jsonl().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1), label="index")
    member = data.draw(st.sampled_from(sorted(MEMBER_VALUES)), label="member")
    stored: JSONObject = json.loads(lines[index])
    value: JSONValue = data.draw(MEMBER_VALUES[member], label="value")
    tampered = {**stored, member: value}
    assume(_canonical(tampered) != _canonical(stored))
    lines[index] = _canonical(tampered)
    result = AuditLog.from_jsonl("\n".join(lines)).verify(expected_head=log.head)
    assert (result.ok, result.index, result.reason) == (False, index, "checksum mismatch")


@EXPENSIVE
@given(audited_histories(), st.data())
def test_removing_any_record_is_found_at_its_place(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]], data: st.DataObject
) -> None:
    log, _ = history
    records = list(log)
    index = data.draw(st.integers(0, len(records) - 1), label="index")
    del records[index]
    result = AuditLog(records).verify(expected_head=log.head)
    reason = "truncated" if index == len(records) else "chain broken"
    assert (result.ok, result.index, result.reason) == (False, index, reason)


@EXPENSIVE
@given(audited_histories(), st.data())
def test_inserting_a_forged_record_is_found_at_its_place(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]], data: st.DataObject
) -> None:
    log, _ = history
    records = list(log)
    index = data.draw(st.integers(0, len(records) - 1), label="index")
    chained = data.draw(st.booleans(), label="chained to its predecessor")
    if chained:
        previous = records[index - 1].checksum if index else ""
    else:
        previous = data.draw(st.text(HEX, min_size=64, max_size=64), label="link")
    key = data.draw(st.sampled_from(SHADOWS), label="shadow")
    forged = HistoryRecord.create(
        *key,
        previous=previous,
        previous_state=None,
        new_state={"desired": {"unlocked": True}},
        version=data.draw(st.integers(0, 100), label="version"),
        timestamp=FIRST_TIMESTAMP,
        change_type="update",
        decision="accept",
        reason="no conflict",
    )
    records.insert(index, forged)
    result = AuditLog(records).verify(expected_head=log.head)
    assert (result.ok, result.index) == (False, index)
    assert result.reason in ("chain broken", "version went backwards", "timestamp out of order")


@EXPENSIVE
@given(audited_histories(), st.data())
def test_swapping_two_records_is_found_at_the_first_of_them(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]], data: st.DataObject
) -> None:
    log, _ = history
    records = list(log)
    assume(len(records) >= 2)
    first = data.draw(st.integers(0, len(records) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(records) - 1), label="second")
    records[first], records[second] = records[second], records[first]
    result = AuditLog(records).verify(expected_head=log.head)
    assert (result.ok, result.index, result.reason) == (False, first, "chain broken")


@EXPENSIVE
@given(audited_histories(), st.data())
def test_cutting_off_the_tail_is_found_against_the_expected_head(
    history: tuple[AuditLog, list[tuple[Key, int, JSONObject]]], data: st.DataObject
) -> None:
    log, _ = history
    kept = data.draw(st.integers(0, len(log) - 1), label="kept")
    result = AuditLog(list(log)[:kept]).verify(expected_head=log.head)
    assert (result.ok, result.index, result.reason) == (False, kept, "truncated")
