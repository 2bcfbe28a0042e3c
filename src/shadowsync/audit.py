"""The audit trail: hash-chained history records of shadow changes, verification, JSON Lines.

Every change the cloud side makes to a shadow (an accepted update, a merge, a rejection by a
business rule, a conflict held for review, a delete) becomes a `HistoryRecord`: who (thing and
shadow), when (version and timestamp), what (the RFC 6902 patch from the previous state to the
new one), and which decision was taken and why. Each record carries the sha256 of its own
canonical JSON, which covers the checksum of the record before it, so the records form a hash
chain: altering, removing, inserting or reordering any record breaks the chain at a place that
`AuditLog.verify` names. Logs travel as JSON Lines, and `AuditLog.replay` rebuilds any recorded
state from the patches alone.

```pycon
>>> from shadowsync import apply_update
>>> from shadowsync.audit import AuditLog
>>> log = AuditLog()
>>> result = apply_update(None, {"state": {"desired": {"on": True}}}, timestamp=1700000000)
>>> record = log.append("lamp", None, previous_state=result.previous, new_state=result.document,
...                     version=1, timestamp=1700000000, change_type="update",
...                     decision="accept", reason="no conflict")
>>> record.patch
[{'op': 'add', 'path': '/desired/on', 'value': True}]
>>> log.verify().ok
True
>>> AuditLog.from_jsonl(log.to_jsonl()).replay("lamp", None)
{'desired': {'on': True}, 'reported': {}}

```
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn, TypeAlias, get_args

import attrs

from shadowsync._document import ShadowDocument
from shadowsync._json import (
    JSONObject,
    JSONProblem,
    JSONValue,
    canonical_json,
    copy_json,
    copy_object,
    describe,
    json_equal,
    kind_phrase,
    normalize_section,
    plain_json,
)
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH
from shadowsync._patch import apply_json_patch, make_json_patch
from shadowsync._validators import count
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidNameError,
    InvalidRequestError,
    PatchError,
)

__all__ = [
    "CHANGE_TYPES",
    "DECISIONS",
    "AuditLog",
    "AuditLogError",
    "ChangeType",
    "Decision",
    "FailureReason",
    "HistoryRecord",
    "ShadowState",
    "VerificationResult",
]

ChangeType: TypeAlias = Literal[
    "update", "delete", "conflict_resolved", "manual_review", "rule_rejected"
]
"""What happened to the shadow: ``update`` (a change applied as sent), ``delete`` (the shadow
was deleted), ``conflict_resolved`` (a merge settled a conflict), ``manual_review`` (a change
held for a person) or ``rule_rejected`` (a business rule refused a change)."""

CHANGE_TYPES: tuple[ChangeType, ...] = get_args(ChangeType)
"""Every `ChangeType`, in the order listed there."""

Decision: TypeAlias = Literal["accept", "merge", "reject", "review"]
"""The decision taken on a change: ``accept`` it, ``merge`` it with the current state,
``reject`` it, or hold it for ``review``."""

DECISIONS: tuple[Decision, ...] = get_args(Decision)
"""Every `Decision`, in the order listed there."""

FailureReason: TypeAlias = Literal[
    "checksum mismatch",
    "chain broken",
    "version went backwards",
    "timestamp out of order",
    "truncated",
]
"""Why verification failed at a record; see `AuditLog.verify`."""


class AuditLogError(InvalidDocumentError):
    """A stored audit log or history record is malformed, or its patches do not replay.

    ``line`` is the 1-based line of the JSON Lines text at fault (``None`` when the record did
    not come from text) and ``problem`` the message without the line number.
    """

    def __init__(self, problem: str, *, line: int | None = None) -> None:
        self.problem = problem
        self.line = line
        super().__init__(problem if line is None else f"line {line}: {problem}")


# --------------------------------------------------------------------------------------------
# Field validation
# --------------------------------------------------------------------------------------------

_MAX_NESTING = 64  # bounds the recursion over patches and details
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


def _check_thing_name(value: object) -> None:
    try:
        DEFAULT_LIMITS.check_thing_name(value)
    except InvalidNameError as exc:
        raise InvalidArgumentError(f"thing_name is not a valid thing name: {exc.detail}") from None


def _check_shadow_name(value: object) -> None:
    if value is None:
        return
    try:
        DEFAULT_LIMITS.check_shadow_name(value)
    except InvalidNameError as exc:
        raise InvalidArgumentError(
            f"shadow_name is not a valid shadow name (use None for the classic shadow): "
            f"{exc.detail}"
        ) from None


def _thing_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_thing_name(value)


def _shadow_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_shadow_name(value)


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if type(value) is not str or value not in choices:
            raise InvalidArgumentError(
                f"{attribute.name} must be one of {', '.join(map(repr, choices))}, "
                f"got {describe(value)}"
            )

    return check


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not str:
        raise InvalidArgumentError(f"{attribute.name} must be a str, got {describe(value)}")


# How the audit trail words what `plain_json` finds wrong (the rest: its default wording).
_NOT_JSON = {
    "digits": "an integer has too many digits to write as JSON",
    "key": "the object key {value} is not a string",
    "depth": f"values nest deeper than {_MAX_NESTING} levels",
}


def _plain_json(value: object, name: str) -> JSONValue:
    """A private copy of ``value`` as plain JSON (lone surrogates kept: the log is ASCII)."""
    try:
        return plain_json(value, max_depth=_MAX_NESTING, utf8=False)
    except JSONProblem as bad:
        raise InvalidArgumentError(f"{bad.location(name)}: {bad.reason(_NOT_JSON)}") from None


def _patch_operations(value: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(
            f"patch must be a list of RFC 6902 operations, got {kind_phrase(value)}"
        )
    operations = _plain_json(value, "patch")
    assert isinstance(operations, list)
    for index, operation in enumerate(operations):
        if type(operation) is not dict:
            raise InvalidArgumentError(
                f"patch[{index}] must be an RFC 6902 operation object, got {kind_phrase(operation)}"
            )
        if operation.get("op") not in _OPERATIONS:
            raise InvalidArgumentError(
                f"patch[{index}].op must be one of {', '.join(map(repr, _OPERATIONS))}, "
                f"got {describe(operation.get('op'))}"
            )
        if type(operation.get("path")) is not str:
            raise InvalidArgumentError(
                f"patch[{index}].path must be a JSON Pointer string, "
                f"got {describe(operation.get('path'))}"
            )
    return operations  # type: ignore[return-value]


def _details(value: Mapping[str, Any] | None) -> JSONObject | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"details must be a JSON object or None, got {kind_phrase(value)}; "
            'wrap a list, as in {"conflicts": report.to_json()}'
        )
    details = _plain_json(value, "details")
    assert isinstance(details, dict)
    return details


# Set while loading a stored record: its checksum is kept as stored, so that verification can
# report a mismatch instead of the record failing to load.
_TRUST_STORED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "shadowsync_audit_trust_stored", default=False
)

# (attribute, JSON member) of every field the checksum covers, in a fixed order.
_CONTENT_FIELDS = (
    ("thing_name", "thingName"),
    ("shadow_name", "shadowName"),
    ("version", "version"),
    ("timestamp", "timestamp"),
    ("change_type", "changeType"),
    ("patch", "patch"),
    ("decision", "decision"),
    ("reason", "reason"),
    ("details", "details"),
    ("previous_checksum", "previousChecksum"),
)
_JSON_FIELDS = (*_CONTENT_FIELDS, ("checksum", "checksum"))


def _where(thing_name: str, shadow_name: str | None) -> str:
    if shadow_name is None:
        return f"thing {thing_name!r}, classic shadow"
    return f"thing {thing_name!r}, shadow {shadow_name!r}"


def _record_at(index: int, record: HistoryRecord) -> str:
    shadow = _where(record.thing_name, record.shadow_name)
    return f"record {index} ({shadow}, version {record.version})"


def _short(checksum: str) -> str:
    return describe(checksum, 20) if len(checksum) != 64 else checksum[:12] + "..."


# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------

ShadowState: TypeAlias = ShadowDocument | Mapping[str, Any] | None
"""A shadow's state for a record: a `ShadowDocument`, a ``{"desired", "reported"}`` mapping,
or ``None`` when the shadow does not exist."""


def _empty_state() -> JSONObject:
    return {"desired": {}, "reported": {}}


def as_state(value: object, name: str) -> JSONObject:
    """The ``{"desired": ..., "reported": ...}`` form of a `ShadowState` argument ``name``, as a
    private copy. Internal (for `shadowsync.cloud`), not part of the public API."""
    if value is None:
        return _empty_state()
    if isinstance(value, ShadowDocument):
        return {"desired": copy_object(value.desired), "reported": copy_object(value.reported)}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{name} must be a ShadowDocument, a mapping with 'desired' and 'reported', or None, "
            f"got {type(value).__name__}"
        )
    extra = [key for key in value if key not in ("desired", "reported")]
    if extra:
        raise InvalidArgumentError(
            f"{name} may only hold 'desired' and 'reported', got {describe(extra)}"
        )
    state: JSONObject = {}
    for section in ("desired", "reported"):
        part = value.get(section)
        if part is None:
            state[section] = {}
            continue
        try:
            state[section] = normalize_section(
                part, section=section, max_depth=MAX_CONFIGURABLE_DEPTH, nulls=False
            )
        except InvalidRequestError as exc:
            raise InvalidArgumentError(
                f"{name} is not a shadow state: {exc.detail or exc.message}"
            ) from None
    return state


def _previous_checksum(previous: object) -> str:
    if previous is None:
        return ""
    if isinstance(previous, HistoryRecord):
        return previous.checksum
    if isinstance(previous, str) and (previous == "" or _HEX64.fullmatch(previous)):
        return previous
    raise InvalidArgumentError(
        "previous must be the previous HistoryRecord, its checksum (64 lowercase hex digits), "
        f"or None for the first record, got {describe(previous)}"
    )


# --------------------------------------------------------------------------------------------
# History records
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HistoryRecord:
    """One change of one shadow, chained to the record before it by checksum.

    ``patch`` is the RFC 6902 JSON Patch from the shadow's previous state to its new one, where a
    state is ``{"desired": {...}, "reported": {...}}`` (both ``{}`` when the shadow does not
    exist); it is ``[]`` when nothing changed, as for a rejected change. ``decision`` and
    ``reason`` say what was decided and why (the strategy or rule, and its text); ``details`` is
    an optional JSON object for the rest, such as ``{"conflicts": report.to_json()}``.

    ``checksum`` is the sha256 (hex) of the canonical JSON (sorted keys, compact, ASCII) of every
    other field, ``previous_checksum`` included, and ``previous_checksum`` is the checksum of the
    record before this one in its log (``""`` for the first). Build records with
    `HistoryRecord.create` or `AuditLog.append`, which compute the checksum; the constructor
    refuses a checksum that does not match the content, so an altered record cannot be built by
    accident. `HistoryRecord.from_json` keeps a stored checksum as it is, so that
    `AuditLog.verify` can report a mismatch. Treat ``patch`` and ``details`` as read-only.

    ```pycon
    >>> first = HistoryRecord.create(
    ...     "lamp", "config", previous=None, previous_state=None,
    ...     new_state={"desired": {"level": 3}}, version=1, timestamp=1700000000,
    ...     change_type="update", decision="accept", reason="no conflict")
    >>> first.patch, first.previous_checksum
    ([{'op': 'add', 'path': '/desired/level', 'value': 3}], '')
    >>> second = HistoryRecord.create(
    ...     "lamp", "config", previous=first, previous_state={"desired": {"level": 3}},
    ...     new_state={"desired": {"level": 3}}, version=1, timestamp=1700000060,
    ...     change_type="rule_rejected", decision="reject", reason="range:level - 11 > 10")
    >>> second.patch, second.previous_checksum == first.checksum
    ([], True)

    ```
    """

    thing_name: str = attrs.field(validator=_thing_name)
    shadow_name: str | None = attrs.field(validator=_shadow_name)
    version: int = attrs.field(validator=count)
    timestamp: int = attrs.field(validator=count)
    change_type: ChangeType = attrs.field(validator=_one_of(CHANGE_TYPES))
    patch: list[dict[str, Any]] = attrs.field(converter=_patch_operations)
    decision: Decision = attrs.field(validator=_one_of(DECISIONS))
    reason: str = attrs.field(validator=_text)
    details: JSONObject | None = attrs.field(default=None, converter=_details)
    previous_checksum: str = attrs.field(validator=_text)
    checksum: str = attrs.field(validator=_text)

    def __attrs_post_init__(self) -> None:
        if _TRUST_STORED.get():
            return
        if self.previous_checksum and not _HEX64.fullmatch(self.previous_checksum):
            raise InvalidArgumentError(
                "previous_checksum must be '' or 64 lowercase hex digits, "
                f"got {describe(self.previous_checksum)}"
            )
        if self.checksum != self.content_checksum:
            raise InvalidArgumentError(
                f"checksum {_short(self.checksum)} does not match the record's content "
                f"(which hashes to {_short(self.content_checksum)}); build records with "
                "HistoryRecord.create or AuditLog.append, and load stored ones with "
                "HistoryRecord.from_json so that AuditLog.verify can report the mismatch"
            )

    def __hash__(self) -> int:
        return hash(self.checksum)

    @functools.cached_property
    def content_checksum(self) -> str:
        """The sha256 of the record's content as it is; equal to `checksum` unless altered."""
        content = {member: getattr(self, name) for name, member in _CONTENT_FIELDS}
        return hashlib.sha256(canonical_json(content).encode("ascii")).hexdigest()

    @property
    def intact(self) -> bool:
        """Whether `checksum` matches the content (the record itself was not altered)."""
        return self.checksum == self.content_checksum

    @classmethod
    def create(
        cls,
        thing_name: str,
        shadow_name: str | None,
        *,
        previous: HistoryRecord | str | None,
        previous_state: ShadowState,
        new_state: ShadowState,
        version: int,
        timestamp: int,
        change_type: ChangeType,
        decision: Decision,
        reason: str,
        details: Mapping[str, Any] | None = None,
    ) -> HistoryRecord:
        """Record a change, chained to ``previous`` (the record before, its checksum, or None).

        The patch is computed from ``previous_state`` to ``new_state``; each is a
        `ShadowDocument`, a ``{"desired", "reported"}`` mapping, or ``None`` when the shadow does
        not exist (before it is created, after it is deleted). When ``previous`` is a record of
        the same shadow, ``version`` and ``timestamp`` may not be lower than its own (after a
        ``delete`` record, the version may start again, as a re-created shadow's does).
        """
        return record_from_states(
            thing_name,
            shadow_name,
            previous=previous,
            before=as_state(previous_state, "previous_state"),
            after=as_state(new_state, "new_state"),
            version=version,
            timestamp=timestamp,
            change_type=change_type,
            decision=decision,
            reason=reason,
            details=details,
            record_type=cls,
        )

    @classmethod
    def _sealed(cls, **fields: Any) -> HistoryRecord:
        """A record from validated fields with its checksum computed."""
        token = _TRUST_STORED.set(True)
        try:
            record = cls(**fields, checksum="")
        finally:
            _TRUST_STORED.reset(token)
        # Sealing the record that was just built (and validated) saves hashing it twice.
        object.__setattr__(record, "checksum", record.content_checksum)
        return record

    def to_json(self) -> JSONObject:
        """The record as a JSON object (camelCase members), a copy that is yours to keep.

        ```pycon
        >>> record = HistoryRecord.create(
        ...     "lamp", None, previous=None, previous_state=None, new_state=None, version=0,
        ...     timestamp=5, change_type="manual_review", decision="review", reason="held")
        >>> sorted(record.to_json())  # doctest: +NORMALIZE_WHITESPACE
        ['changeType', 'checksum', 'decision', 'details', 'patch', 'previousChecksum',
         'reason', 'shadowName', 'thingName', 'timestamp', 'version']

        ```
        """
        return {member: copy_json(getattr(self, name)) for name, member in _JSON_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryRecord:
        """Load a record written by `to_json`, keeping its stored checksum unchecked.

        Raises `AuditLogError` naming the member when one is missing, unknown or of the wrong
        type. A checksum that does not match the content is not an error here: it is what
        `AuditLog.verify` reports.
        """
        if not isinstance(data, Mapping):
            raise AuditLogError(f"a history record is a JSON object, got {kind_phrase(data)}")
        members = dict(_JSON_FIELDS).values()
        unknown = [key for key in data if key not in members]
        if unknown:
            raise AuditLogError(
                f"unknown member {describe(unknown[0])} in a history record; "
                f"expected {', '.join(members)}"
            )
        missing = [member for member in members if member not in data]
        if missing:
            raise AuditLogError(f"a history record is missing {', '.join(missing)}")
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            member = dict(_JSON_FIELDS)[field.name]
            value = data[member]
            try:
                if field.converter is not None:
                    value = field.converter(value)
                if field.validator is not None:
                    field.validator(None, field, value)
            except InvalidArgumentError as exc:
                raise AuditLogError(f"member {member!r}: {exc}") from None
            values[field.name] = value
        token = _TRUST_STORED.set(True)
        try:
            return cls(**values)
        finally:
            _TRUST_STORED.reset(token)


def record_from_states(
    thing_name: str,
    shadow_name: str | None,
    *,
    previous: HistoryRecord | str | None,
    before: JSONObject,
    after: JSONObject,
    version: int,
    timestamp: int,
    change_type: ChangeType,
    decision: Decision,
    reason: str,
    details: Mapping[str, Any] | None = None,
    record_type: type[HistoryRecord] = HistoryRecord,
) -> HistoryRecord:
    """`HistoryRecord.create` from two states already in ``{"desired", "reported"}`` form and
    known valid, such as one `AuditLog.last_state` gave: only read, neither checked nor copied
    again. ``record_type`` is the class to build (a subclass's ``create`` builds its own).
    Internal (for `shadowsync.cloud`), not part of the public API."""
    previous_checksum = _previous_checksum(previous)
    _check_thing_name(thing_name)
    _check_shadow_name(shadow_name)
    if (
        isinstance(previous, HistoryRecord)
        and previous.thing_name == thing_name
        and previous.shadow_name == shadow_name
    ):
        _check_order(_version_floor(previous), previous.timestamp, version, timestamp)
    return record_type._sealed(
        thing_name=thing_name,
        shadow_name=shadow_name,
        version=version,
        timestamp=timestamp,
        change_type=change_type,
        patch=make_json_patch(before, after),
        decision=decision,
        reason=reason,
        details=details,
        previous_checksum=previous_checksum,
    )


def _version_floor(record: HistoryRecord) -> int:
    """The lowest version the next record of ``record``'s shadow may have.

    A deleted shadow may come back at any version: AWS keeps the version sequence for 48 hours
    after a delete and starts again at 1 after that.
    """
    return 0 if record.change_type == "delete" else record.version


def _check_order(
    last_version: int, last_timestamp: int, version: object, timestamp: object
) -> None:
    """Refuse a record that would sort before the last one of its shadow."""
    if type(version) is int and version < last_version:
        raise InvalidArgumentError(
            f"version {version} is lower than {last_version}, the version of the last record "
            "of this shadow; record changes of a shadow in the order they happened"
        )
    if type(timestamp) is int and timestamp < last_timestamp:
        raise InvalidArgumentError(
            f"timestamp {timestamp} is earlier than {last_timestamp}, the timestamp of the last "
            "record of this shadow; record changes of a shadow in the order they happened"
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
        return f"AuditLog(<{len(self._records)} records>, head={_short(self.head)!r})"

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
        _check_thing_name(thing_name)
        _check_shadow_name(shadow_name)
        before = as_state(previous_state, "previous_state")
        heads = self._stream_heads()
        key = (thing_name, shadow_name)
        head = heads.get(key)
        if head is None:
            if not json_equal(before, _empty_state()):
                raise InvalidArgumentError(
                    f"the log has no records for {_where(*key)}, so its history starts from the "
                    "empty state, but previous_state is not empty; append its current state "
                    "first as a baseline (previous_state=None, change_type='update', "
                    "decision='accept')"
                )
        else:
            state, last_version, last_timestamp = head
            _check_order(last_version, last_timestamp, version, timestamp)
            if not json_equal(before, state):
                raise InvalidArgumentError(
                    f"previous_state is not the state the last record of {_where(*key)} "
                    f"(version {last_version}) left; append every change of a shadow, in order, "
                    "starting from the state the previous change left"
                )
        after = as_state(new_state, "new_state")
        record = HistoryRecord._sealed(
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
        heads[key] = (after, _version_floor(record), record.timestamp)
        return record

    def last_state(self, thing_name: str, shadow_name: str | None) -> JSONObject | None:
        """The state the shadow's last record left (a copy), or None when it has no records.

        The same as `replay` without a version, but kept up to date as records are added, so
        asking again is cheap.
        """
        _check_thing_name(thing_name)
        _check_shadow_name(shadow_name)
        head = self._stream_heads().get((thing_name, shadow_name))
        return None if head is None else copy_object(head[0])

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
                f"the record's checksum {_short(record.checksum)} does not match its content; "
                "it was altered after it was built"
            )
        if record.previous_checksum != self.head:
            raise InvalidArgumentError(
                f"the record is chained to {_short(record.previous_checksum) or 'nothing'}, "
                f"not to this log's head {_short(self.head) or '(empty log)'}; build it with "
                "previous= the log's last record"
            )
        heads = self._stream_heads()
        key = (record.thing_name, record.shadow_name)
        head = heads.get(key)
        state = _empty_state()
        if head is not None:
            state = head[0]
            _check_order(head[1], head[2], record.version, record.timestamp)
        after = _replay_one(state, record, len(self._records))
        self._records.append(record)
        self._snapshot = None
        heads[key] = (after, _version_floor(record), record.timestamp)
        return record

    def _stream_heads(self) -> dict[_StreamKey, tuple[JSONObject, int, int]]:
        if self._heads is None:
            heads: dict[_StreamKey, tuple[JSONObject, int, int]] = {}
            for index, record in enumerate(self._records):
                key = (record.thing_name, record.shadow_name)
                state = heads[key][0] if key in heads else _empty_state()
                heads[key] = (
                    _replay_one(state, record, index),
                    _version_floor(record),
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
            where = _record_at(index, record)
            if record.checksum != record.content_checksum:
                return fail(
                    index,
                    "checksum mismatch",
                    f"{where}: its content hashes to {_short(record.content_checksum)}, not to "
                    f"its checksum {_short(record.checksum)}; the record was altered",
                    link,
                )
            if record.previous_checksum != link:
                if index and self._inserted_before(index, previous_checksum):
                    skipped = self._records[index - 2].checksum if index > 1 else previous_checksum
                    return fail(
                        index - 1,
                        "chain broken",
                        f"{_record_at(index - 1, self._records[index - 1])}: the record after it "
                        "chains to the record before it, so this record is not part of the "
                        "chain; it was inserted",
                        skipped,
                    )
                expected = (
                    f"the checksum {_short(link)} of record {index - 1}"
                    if index
                    else ("the empty checksum" if not link else f"the checksum {_short(link)}")
                )
                found = _short(record.previous_checksum) or "(empty)"
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
            last[key] = (_version_floor(record), record.timestamp)
            link = record.checksum
            if not reached and link == expected_head:
                reached = True
        count = len(self._records)
        if not reached:
            return fail(
                count,
                "truncated",
                f"the chain is intact but its {count} records do not reach the expected head "
                f"{_short(expected_head or '')}; records were cut off the end (or the last ones "
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
        _check_thing_name(thing_name)
        _check_shadow_name(shadow_name)
        if version is not None and (type(version) is not int or version < 0):
            raise InvalidArgumentError(
                f"version must be a non-negative int or None, got {describe(version)}"
            )
        state = _empty_state()
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
                f"the log holds no records for {_where(thing_name, shadow_name)}"
            )
        return state


def _replay_one(state: JSONObject, record: HistoryRecord, index: int) -> JSONObject:
    where = _record_at(index, record)
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
