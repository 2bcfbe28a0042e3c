"""History records: what one change of a shadow was, checked and chained by checksum.

The public face is `shadowsync.audit`; `as_state` and `record_from_states` serve `shadowsync.cloud`.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, get_args

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
    kind_phrase,
    normalize_section,
    plain_json,
)
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH
from shadowsync._patch import make_json_patch
from shadowsync._validators import count
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidNameError,
    InvalidRequestError,
)

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


def check_thing_name(value: object) -> None:
    try:
        DEFAULT_LIMITS.check_thing_name(value)
    except InvalidNameError as exc:
        raise InvalidArgumentError(f"thing_name is not a valid thing name: {exc.detail}") from None


def check_shadow_name(value: object) -> None:
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
    check_thing_name(value)


def _shadow_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_shadow_name(value)


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


def where(thing_name: str, shadow_name: str | None) -> str:
    if shadow_name is None:
        return f"thing {thing_name!r}, classic shadow"
    return f"thing {thing_name!r}, shadow {shadow_name!r}"


def record_at(index: int, record: HistoryRecord) -> str:
    shadow = where(record.thing_name, record.shadow_name)
    return f"record {index} ({shadow}, version {record.version})"


def short(checksum: str) -> str:
    return describe(checksum, 20) if len(checksum) != 64 else checksum[:12] + "..."


# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------

ShadowState: TypeAlias = ShadowDocument | Mapping[str, Any] | None
"""A shadow's state for a record: a `ShadowDocument`, a ``{"desired", "reported"}`` mapping,
or ``None`` when the shadow does not exist."""


def empty_state() -> JSONObject:
    return {"desired": {}, "reported": {}}


def as_state(value: object, name: str) -> JSONObject:
    """The ``{"desired": ..., "reported": ...}`` form of a `ShadowState` argument ``name``, as a
    private copy. Internal (for `shadowsync.cloud`), not part of the public API."""
    if value is None:
        return empty_state()
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
                f"checksum {short(self.checksum)} does not match the record's content "
                f"(which hashes to {short(self.content_checksum)}); build records with "
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


def sealed_record(
    record_type: type[HistoryRecord],
    *,
    patch: list[dict[str, Any]],
    details: Mapping[str, Any] | None = None,
    plain_patch: bool = False,
    plain_details: bool = False,
    **fields: Any,
) -> HistoryRecord:
    """A record of ``record_type`` from validated fields, with its checksum computed.

    ``plain_patch`` and ``plain_details`` say that ``patch`` and ``details`` are already what
    their fields' checks would make of them (new plain JSON that nothing else holds): they are
    taken as they are.
    """
    token = _TRUST_STORED.set(True)
    try:
        record = record_type(
            **fields,
            patch=[] if plain_patch else patch,
            details=None if plain_details else details,
            checksum="",
        )
    finally:
        _TRUST_STORED.reset(token)
    # Set before anything reads the record (its checksum covers them).
    if plain_patch:
        object.__setattr__(record, "patch", patch)
    if plain_details:
        object.__setattr__(record, "details", details)
    # Sealing the record that was just built (and validated) saves hashing it twice.
    object.__setattr__(record, "checksum", record.content_checksum)
    return record


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
    checked_after: bool = False,
    plain_details: bool = False,
) -> HistoryRecord:
    """`HistoryRecord.create` from two states already in ``{"desired", "reported"}`` form and
    known valid, such as one `AuditLog.last_state` gave: only read, neither checked nor copied
    again. ``record_type`` is the class to build (a subclass's ``create`` builds its own).
    ``checked_after`` says that ``after`` holds only the values of checked documents
    (`is_checked`): every value in the patch is a copy of one of them, so the patch is plain
    JSON and is not checked again; ``plain_details`` that ``details`` is a new dict of plain
    JSON that nothing else will change, taken as it is. Internal (for `shadowsync.cloud`), not
    part of the public API."""
    previous_checksum = _previous_checksum(previous)
    check_thing_name(thing_name)
    check_shadow_name(shadow_name)
    if (
        isinstance(previous, HistoryRecord)
        and previous.thing_name == thing_name
        and previous.shadow_name == shadow_name
    ):
        check_order(version_floor(previous), previous.timestamp, version, timestamp)
    return sealed_record(
        record_type,
        thing_name=thing_name,
        shadow_name=shadow_name,
        version=version,
        timestamp=timestamp,
        change_type=change_type,
        patch=make_json_patch(before, after),
        plain_patch=checked_after,
        decision=decision,
        reason=reason,
        details=details,
        plain_details=plain_details,
        previous_checksum=previous_checksum,
    )


def version_floor(record: HistoryRecord) -> int:
    """The lowest version the next record of ``record``'s shadow may have.

    A deleted shadow may come back at any version: AWS keeps the version sequence for 48 hours
    after a delete and starts again at 1 after that.
    """
    return 0 if record.change_type == "delete" else record.version


def check_order(last_version: int, last_timestamp: int, version: object, timestamp: object) -> None:
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
