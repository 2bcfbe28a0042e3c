"""The audit log: records in chain order, verification, replay and JSON Lines.

The public face is `shadowsync.audit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn, TypeAlias, get_args

import attrs

from shadowsync._audit.record import (
    AuditLogError,
    ChangeType,
    Decision,
    FailureReason,
    HistoryRecord,
    ShadowState,
    as_state,
    check_order,
    check_shadow_name,
    check_thing_name,
    empty_state,
    record_at,
    sealed_record,
    short,
    version_floor,
    where,
)
from shadowsync._json import (
    JSONObject,
    canonical_json,
    copy_object,
    describe,
    json_equal,
    kind_phrase,
)
from shadowsync._patch import apply_json_patch, make_json_patch
from shadowsync.errors import (
    InvalidArgumentError,
    PatchError,
)

# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VerificationResult:
    """The outcome of `AuditLog.verify`; true when the log is intact.

    On failure, ``index`` is the position of the first bad record (for ``truncated``, the
    position where the missing records should start: the log's length), ``reason`` says what is
    wrong with it and ``detail`` explains it for people. ``head`` is the checksum of the last
    record that passed every check (the head of the trusted prefix of the log).
    """

    ok: bool
    index: int | None = None
    reason: FailureReason | None = None
    detail: str = ""
    head: str = ""

    def __attrs_post_init__(self) -> None:
        if type(self.ok) is not bool:
            raise InvalidArgumentError(f"ok must be a bool, got {describe(self.ok)}")
        if self.ok != (self.index is None) or self.ok != (self.reason is None):
            raise InvalidArgumentError(
                "a verification result has an index and a reason exactly when it is not ok, "
                f"got ok={self.ok}, index={describe(self.index)}, reason={describe(self.reason)}"
            )
        if self.index is not None and (type(self.index) is not int or self.index < 0):
            raise InvalidArgumentError(
                f"index must be a non-negative int, got {describe(self.index)}"
            )
        if self.reason is not None and self.reason not in get_args(FailureReason):
            raise InvalidArgumentError(
                f"reason must be one of {', '.join(map(repr, get_args(FailureReason)))}, "
                f"got {describe(self.reason)}"
            )
        if type(self.detail) is not str or type(self.head) is not str:
            raise InvalidArgumentError("detail and head must be str")

    def __bool__(self) -> bool:
        return self.ok


# --------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------

_StreamKey: TypeAlias = tuple[str, "str | None"]


class AuditLog:
    """An append-only sequence of history records forming one hash chain.

    One log may hold the records of one shadow, of one thing, or of a whole fleet: records of
    any thing and shadow interleave in the order they were appended, and each is chained to the
    record before it whichever shadow that was. The log only grows: `append` adds a record and
    returns it (to store, send or index), and nothing removes or changes a record. The records
    themselves are frozen values.

    `append` keeps each shadow's history replayable: a change must start from the state the
    shadow's last record left (the empty state for a shadow new to the log), and its version and
    timestamp may not be lower than that record's. After a ``delete`` record the version may
    start again: AWS restarts a shadow re-created more than 48 hours after its deletion at 1.

    ```pycon
    >>> log = AuditLog()
    >>> _ = log.append("pump-7", "telemetry", previous_state=None,
    ...                new_state={"reported": {"rpm": 900}}, version=1, timestamp=100,
    ...                change_type="update", decision="accept", reason="no conflict")
    >>> _ = log.append("pump-7", "telemetry", previous_state={"reported": {"rpm": 900}},
    ...                new_state={"reported": {"rpm": 950}}, version=2, timestamp=160,
    ...                change_type="update", decision="accept", reason="no conflict")
    >>> len(log), log.head == log[1].checksum, log.verify().ok
    (2, True, True)
    >>> log.replay("pump-7", "telemetry", version=1)
    {'desired': {}, 'reported': {'rpm': 900}}

    ```
    """

    __slots__ = ("_heads", "_records", "_snapshot")

    def __init__(self, records: Iterable[HistoryRecord] = ()) -> None:
        """Hold ``records`` as they are, in order; nothing is checked until `verify`."""
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise InvalidArgumentError(
                f"records must be an iterable of HistoryRecord, got {type(records).__name__}; "
                "load JSON Lines text with AuditLog.from_jsonl"
            )
        items = list(records)
        for index, record in enumerate(items):
            if not isinstance(record, HistoryRecord):
                raise InvalidArgumentError(
                    f"records[{index}] must be a HistoryRecord, got {type(record).__name__}"
                )
        self._records: list[HistoryRecord] = items
        self._snapshot: tuple[HistoryRecord, ...] | None = None
        # Per shadow: the state, version and timestamp its last record left; built on first use.
        self._heads: dict[_StreamKey, tuple[JSONObject, int, int]] | None = None

    @property
    def records(self) -> tuple[HistoryRecord, ...]:
        """Every record, oldest first."""
        if self._snapshot is None:
            self._snapshot = tuple(self._records)
        return self._snapshot

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[HistoryRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> HistoryRecord:
        return self._records[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditLog):
            return NotImplemented
        return self._records == other._records

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AuditLog(<{len(self._records)} records>, head={short(self.head)!r})"

    @property
    def head(self) -> str:
        """The checksum of the last record (``""`` for an empty log): keep it somewhere safe to
        detect a truncated log later with ``verify(expected_head=...)``."""
        return self._records[-1].checksum if self._records else ""

    def shadows(self) -> tuple[tuple[str, str | None], ...]:
        """Every ``(thing_name, shadow_name)`` with records, in order of first appearance."""
        return tuple(dict.fromkeys((r.thing_name, r.shadow_name) for r in self._records))

    def records_for(self, thing_name: str, shadow_name: str | None) -> tuple[HistoryRecord, ...]:
        """The records of one shadow (``shadow_name=None``: the classic shadow), oldest first."""
        return tuple(
            r for r in self._records if r.thing_name == thing_name and r.shadow_name == shadow_name
        )

    def append(
        self,
        thing_name: str,
        shadow_name: str | None,
        *,
        previous_state: ShadowState,
        new_state: ShadowState,
        version: int,
        timestamp: int,
        change_type: ChangeType,
        decision: Decision,
        reason: str,
        details: Mapping[str, Any] | None = None,
    ) -> HistoryRecord:
        """Record a change of one shadow at the end of the log, and return the new record.

        The arguments are those of `HistoryRecord.create`. ``previous_state`` must be the
        state the shadow's last record left (``None`` or empty for a shadow new to the log), so
        that `replay` can rebuild every state; ``version`` and ``timestamp`` may not be lower
        than that record's. To start the history of a shadow that already holds state, first
        append its current state as a baseline (``previous_state=None``).
        """
        check_thing_name(thing_name)
        check_shadow_name(shadow_name)
        before = as_state(previous_state, "previous_state")
        heads = self._stream_heads()
        key = (thing_name, shadow_name)
        head = heads.get(key)
        if head is None:
            if not json_equal(before, empty_state()):
                raise InvalidArgumentError(
                    f"the log has no records for {where(*key)}, so its history starts from the "
                    "empty state, but previous_state is not empty; append its current state "
                    "first as a baseline (previous_state=None, change_type='update', "
                    "decision='accept')"
                )
        else:
            state, last_version, last_timestamp = head
            check_order(last_version, last_timestamp, version, timestamp)
            if not json_equal(before, state):
                raise InvalidArgumentError(
                    f"previous_state is not the state the last record of {where(*key)} "
                    f"(version {last_version}) left; append every change of a shadow, in order, "
                    "starting from the state the previous change left"
                )
        after = as_state(new_state, "new_state")
        record = sealed_record(
            HistoryRecord,
            thing_name=thing_name,
            shadow_name=shadow_name,
            version=version,
            timestamp=timestamp,
            change_type=change_type,
            patch=make_json_patch(before, after),
            decision=decision,
            reason=reason,
            details=details,
            previous_checksum=self.head,
        )
        self._records.append(record)
        self._snapshot = None
        heads[key] = (after, version_floor(record), record.timestamp)
        return record

    def last_state(self, thing_name: str, shadow_name: str | None) -> JSONObject | None:
        """The state the shadow's last record left (a copy), or None when it has no records.

        The same as `replay` without a version, but kept up to date as records are added, so
        asking again is cheap.
        """
        check_thing_name(thing_name)
        check_shadow_name(shadow_name)
        state = shared_last_state(self, thing_name, shadow_name)
        return None if state is None else copy_object(state)

    def add(self, record: HistoryRecord) -> HistoryRecord:
        """Append a record built elsewhere, such as the one a cloud-side decision returns.

        The record must be intact, chained to this log's `head`, and continue its shadow's
        history: its patch applies to the state the shadow's last record left, and its version
        and timestamp are not lower than that record's. Anything else raises and leaves the log
        as it was.

        ```pycon
        >>> log = AuditLog()
        >>> record = HistoryRecord.create("lamp", None, previous=log.head or None,
        ...     previous_state=None, new_state={"desired": {"on": True}}, version=1,
        ...     timestamp=1700000000, change_type="update", decision="accept", reason="new")
        >>> log.add(record) is record, log.verify().ok
        (True, True)

        ```
        """
        if not isinstance(record, HistoryRecord):
            raise InvalidArgumentError(f"expected a HistoryRecord, got {type(record).__name__}")
        if not record.intact:
            raise InvalidArgumentError(
                f"the record's checksum {short(record.checksum)} does not match its content; "
                "it was altered after it was built"
            )
        if record.previous_checksum != self.head:
            raise InvalidArgumentError(
                f"the record is chained to {short(record.previous_checksum) or 'nothing'}, "
                f"not to this log's head {short(self.head) or '(empty log)'}; build it with "
                "previous= the log's last record"
            )
        heads = self._stream_heads()
        key = (record.thing_name, record.shadow_name)
        head = heads.get(key)
        state = empty_state()
        if head is not None:
            state = head[0]
            check_order(head[1], head[2], record.version, record.timestamp)
        after = _replay_one(state, record, len(self._records))
        self._records.append(record)
        self._snapshot = None
        heads[key] = (after, version_floor(record), record.timestamp)
        return record

    def _stream_heads(self) -> dict[_StreamKey, tuple[JSONObject, int, int]]:
        if self._heads is None:
            heads: dict[_StreamKey, tuple[JSONObject, int, int]] = {}
            for index, record in enumerate(self._records):
                key = (record.thing_name, record.shadow_name)
                state = heads[key][0] if key in heads else empty_state()
                heads[key] = (
                    _replay_one(state, record, index),
                    version_floor(record),
                    record.timestamp,
                )
            self._heads = heads
        return self._heads

    def verify(
        self, *, expected_head: str | None = None, previous_checksum: str = ""
    ) -> VerificationResult:
        """Check the whole chain and report the first bad record.

        Record by record, oldest first, the first failed check is reported with its index:

        - ``checksum mismatch``: the record's content does not hash to its checksum (the record
          was altered);
        - ``chain broken``: its ``previous_checksum`` is not the checksum of the record before
          it: a record was removed before it, or it was moved or inserted here. The first record
          must chain to ``previous_checksum`` (``""`` for a log kept from its beginning). An
          inserted record that chains to its predecessor is named itself, since the record
          after it chains past it; a record altered and given a fresh checksum is found at the
          record after it, which still chains to the original;
        - ``version went backwards`` / ``timestamp out of order``: lower than those of the
          previous record of the same shadow.

        A chain that ends early is still a valid chain: pass ``expected_head``, the `head` you
        kept when the log was last written, and a log that no longer contains that record is
        reported as ``truncated`` at index ``len(log)``. Records after the expected head are
        fine (the log kept growing); compare the result's ``head`` with yours to refuse them.
        """
        if expected_head is not None and not isinstance(expected_head, str):
            raise InvalidArgumentError(
                f"expected_head must be a str or None, got {type(expected_head).__name__}"
            )
        if not isinstance(previous_checksum, str):
            raise InvalidArgumentError(
                f"previous_checksum must be a str, got {type(previous_checksum).__name__}"
            )

        def fail(index: int, reason: FailureReason, detail: str, head: str) -> VerificationResult:
            return VerificationResult(
                ok=False, index=index, reason=reason, detail=detail, head=head
            )

        link = previous_checksum
        reached = expected_head is None or expected_head == previous_checksum
        last: dict[_StreamKey, tuple[int, int]] = {}
        for index, record in enumerate(self._records):
            where = record_at(index, record)
            if record.checksum != record.content_checksum:
                return fail(
                    index,
                    "checksum mismatch",
                    f"{where}: its content hashes to {short(record.content_checksum)}, not to "
                    f"its checksum {short(record.checksum)}; the record was altered",
                    link,
                )
            if record.previous_checksum != link:
                if index and self._inserted_before(index, previous_checksum):
                    skipped = self._records[index - 2].checksum if index > 1 else previous_checksum
                    return fail(
                        index - 1,
                        "chain broken",
                        f"{record_at(index - 1, self._records[index - 1])}: the record after it "
                        "chains to the record before it, so this record is not part of the "
                        "chain; it was inserted",
                        skipped,
                    )
                expected = (
                    f"the checksum {short(link)} of record {index - 1}"
                    if index
                    else ("the empty checksum" if not link else f"the checksum {short(link)}")
                )
                found = short(record.previous_checksum) or "(empty)"
                return fail(
                    index,
                    "chain broken",
                    f"{where}: its previous checksum is {found}, not {expected}; records were "
                    "removed, inserted or reordered before it",
                    link,
                )
            key = (record.thing_name, record.shadow_name)
            prior = last.get(key)
            if prior is not None:
                if record.version < prior[0]:
                    return fail(
                        index,
                        "version went backwards",
                        f"{where}: the previous record of this shadow has version {prior[0]}",
                        link,
                    )
                if record.timestamp < prior[1]:
                    return fail(
                        index,
                        "timestamp out of order",
                        f"{where}: timestamp {record.timestamp} is earlier than {prior[1]}, the "
                        "timestamp of the previous record of this shadow",
                        link,
                    )
            last[key] = (version_floor(record), record.timestamp)
            link = record.checksum
            if not reached and link == expected_head:
                reached = True
        count = len(self._records)
        if not reached:
            return fail(
                count,
                "truncated",
                f"the chain is intact but its {count} records do not reach the expected head "
                f"{short(expected_head or '')}; records were cut off the end (or the last ones "
                "replaced)",
                link,
            )
        return VerificationResult(ok=True, detail=f"{count} records verified", head=link)

    def _inserted_before(self, index: int, previous_checksum: str) -> bool:
        """Whether the record before ``index`` is an insertion: this record chains past it to
        the one before, and the chain goes on from this record, not from the one skipped."""
        records = self._records
        record = records[index]
        skipped = records[index - 2].checksum if index > 1 else previous_checksum
        return (
            record.previous_checksum == skipped
            # A duplicate of the record before also chains past it; the duplicate is the intruder.
            and records[index - 1].checksum != record.checksum
            and (
                index + 1 == len(records) or records[index + 1].previous_checksum == record.checksum
            )
        )

    def to_jsonl(self) -> str:
        """The log as JSON Lines: one record per line, as canonical JSON, oldest first."""
        return "".join(canonical_json(record.to_json()) + "\n" for record in self._records)

    @classmethod
    def from_jsonl(cls, text: str | bytes) -> AuditLog:
        """Load a log written by `to_jsonl` (blank lines are skipped).

        Raises `AuditLogError` naming the line of the first line that is not a JSON object
        holding a well-formed history record. Checksums are kept as stored: call `verify` to
        check them.
        """
        if isinstance(text, (bytes, bytearray, memoryview)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AuditLogError(
                    f"the audit log is not UTF-8 text ({exc.reason} at byte {exc.start})"
                ) from None
        if not isinstance(text, str):
            raise InvalidArgumentError(
                f"text must be str or bytes of JSON Lines, got {type(text).__name__}"
            )
        records: list[HistoryRecord] = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            data = _parse_line(line, number)
            try:
                records.append(HistoryRecord.from_json(data))
            except AuditLogError as exc:
                raise AuditLogError(exc.problem, line=number) from None
        return cls(records)

    def replay(
        self, thing_name: str, shadow_name: str | None, *, version: int | None = None
    ) -> JSONObject:
        """Rebuild a shadow's state by applying its records' patches to the empty state.

        Returns ``{"desired": {...}, "reported": {...}}`` as the last record of the shadow left
        it, or with ``version``, as the last record at or below that version left it (the
        empty state when there is none); replay stops before the shadow's first record above
        ``version``, so for a shadow whose versions started again after a delete it selects
        within the first run of versions. Raises `AuditLogError` when a patch does not apply,
        which means the log was altered: `verify` says where.
        """
        check_thing_name(thing_name)
        check_shadow_name(shadow_name)
        if version is not None and (type(version) is not int or version < 0):
            raise InvalidArgumentError(
                f"version must be a non-negative int or None, got {describe(version)}"
            )
        state = empty_state()
        seen = False
        for index, record in enumerate(self._records):
            if record.thing_name != thing_name or record.shadow_name != shadow_name:
                continue
            seen = True
            if version is not None and record.version > version:
                break
            state = _replay_one(state, record, index)
        if not seen:
            raise InvalidArgumentError(
                f"the log holds no records for {where(thing_name, shadow_name)}"
            )
        return state


def shared_last_state(log: AuditLog, thing_name: str, shadow_name: str | None) -> JSONObject | None:
    """`AuditLog.last_state` without its copy: the log's own state, which adding a record
    replaces and never changes. Internal, for a decision that only reads the base of its merge
    (copying the whole state cost more than everything else it does with it)."""
    check_thing_name(thing_name)
    check_shadow_name(shadow_name)
    head = log._stream_heads().get((thing_name, shadow_name))
    return None if head is None else head[0]


def last_record(log: AuditLog, thing_name: str, shadow_name: str | None) -> HistoryRecord | None:
    """``log.records_for(thing_name, shadow_name)[-1]`` (None when the shadow has no records),
    looked for from the end of the log. Internal, for a decision, which needs only the shadow's
    last record: its records are usually the newest, so the rest of a long log is not read."""
    for record in reversed(log._records):
        if record.thing_name == thing_name and record.shadow_name == shadow_name:
            return record
    return None


def _replay_one(state: JSONObject, record: HistoryRecord, index: int) -> JSONObject:
    where = record_at(index, record)
    try:
        result = apply_json_patch(state, record.patch)
    except PatchError as exc:
        raise AuditLogError(
            f"{where} does not apply to the state before it ({exc}); the log was altered, "
            "run verify() to find where"
        ) from None
    if (
        type(result) is not dict
        or set(result) != {"desired", "reported"}
        or type(result["desired"]) is not dict
        or type(result["reported"]) is not dict
    ):
        raise AuditLogError(
            f"{where} leaves a state that is not {{'desired': {{...}}, 'reported': {{...}}}}; "
            "the log was altered, run verify() to find where"
        )
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _parse_line(line: str, number: int) -> Any:
    try:
        data = json.loads(line, parse_constant=_reject_constant)
    except RecursionError:
        raise AuditLogError("the JSON nests too deeply to parse", line=number) from None
    except json.JSONDecodeError as exc:
        raise AuditLogError(
            f"not valid JSON: {exc.msg} (column {exc.colno})", line=number
        ) from None
    except ValueError as exc:  # NaN/Infinity, or an integer beyond the digit limit
        raise AuditLogError(f"not valid JSON: {exc}", line=number) from None
    if not isinstance(data, dict):
        raise AuditLogError(
            f"expected a JSON object (one history record per line), got {kind_phrase(data)}",
            line=number,
        )
    return data
