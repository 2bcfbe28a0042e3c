"""The shadow document: desired, reported, per-leaf metadata, version, timestamp."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import attrs

from shadowsync._delta import compute_delta, delta_metadata
from shadowsync._json import (
    JSONObject,
    copy_object,
    decode_payload,
    describe,
    dumps_compact,
    encoded_size,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._validators import count, is_count
from shadowsync.errors import InvalidArgumentError, InvalidDocumentError, ShadowRejectedError

SECTIONS = ("desired", "reported")


def _object(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not dict:
        raise InvalidArgumentError(f"{attribute.name} must be a dict, got {type(value).__name__}")


@attrs.frozen(kw_only=True, eq=False)
class ShadowDocument:
    """One stored shadow, exactly as AWS IoT keeps it.

    ``desired`` and ``reported`` are the two state sections (``{}`` when absent);
    ``desired_metadata`` and ``reported_metadata`` mirror them with a ``{"timestamp": t}`` per
    leaf (a list of those for arrays). ``version`` starts at 1 and grows by one per accepted
    update; ``timestamp`` is the epoch second of the last accepted update.

    Documents are values: they are never changed in place, and `apply_update` returns a
    new one. The mappings they hold are shared between versions, so treat them as read-only;
    `to_dict` returns a copy you own. A document whose mappings are edited in place keeps what
    it knew when it was built (its delta, its size, and that its values were checked, which
    the cloud-side decisions rely on instead of checking them again): build a new document
    from the edited copy instead.

    ```pycon
    >>> doc = ShadowDocument.from_dict({
    ...     "state": {"desired": {"color": "red"}, "reported": {"color": "blue"}},
    ...     "metadata": {"desired": {"color": {"timestamp": 10}},
    ...                  "reported": {"color": {"timestamp": 12}}},
    ...     "version": 3, "timestamp": 12})
    >>> doc.delta
    {'color': 'red'}
    >>> doc.to_dict()["state"]["delta"]
    {'color': 'red'}

    ```
    """

    desired: JSONObject = attrs.field(factory=dict, validator=_object)
    reported: JSONObject = attrs.field(factory=dict, validator=_object)
    desired_metadata: JSONObject = attrs.field(factory=dict, validator=_object)
    reported_metadata: JSONObject = attrs.field(factory=dict, validator=_object)
    version: int = attrs.field(default=1, validator=count)
    timestamp: int = attrs.field(default=0, validator=count)
    # The exact `size`, when known from how the document was built (None: not known). An
    # update derives its document's size from this one without serialising it again.
    _known_size: int | None = attrs.field(init=False, default=None, eq=False, repr=False)
    # True when desired and reported are known to hold only plain JSON without null, nested at
    # most MAX_CONFIGURABLE_DEPTH levels, from how the document was built (`from_dict`, or
    # `apply_update` of a checked document): the constructor takes any dicts, so it cannot.
    _checked: bool = attrs.field(init=False, default=False, eq=False, repr=False)

    @functools.cached_property
    def delta(self) -> JSONObject | None:
        """The AWS delta of desired against reported, or ``None`` when they agree."""
        return compute_delta(self.desired, self.reported)

    @property
    def delta_metadata(self) -> JSONObject | None:
        """The desired metadata of the keys in `delta`."""
        delta = self.delta
        return None if delta is None else delta_metadata(delta, self.desired_metadata)

    def section(self, name: str) -> JSONObject:
        """``desired`` or ``reported`` by name."""
        return (self.desired, self.reported)[_section_index(name)]

    def section_metadata(self, name: str) -> JSONObject:
        """The metadata of ``desired`` or ``reported`` by name."""
        return (self.desired_metadata, self.reported_metadata)[_section_index(name)]

    @property
    def is_empty(self) -> bool:
        """True when neither desired nor reported holds anything."""
        return not self.desired and not self.reported

    @property
    def size(self) -> int:
        """Bytes counted against the size limit: compact UTF-8 JSON of desired + reported."""
        if self._known_size is None:
            remember_size(self, encoded_size(self._state(delta=False)))
        assert self._known_size is not None
        return self._known_size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShadowDocument):
            return NotImplemented
        return (
            self.version == other.version
            and self.timestamp == other.timestamp
            and self.desired == other.desired
            and self.reported == other.reported
            and self.desired_metadata == other.desired_metadata
            and self.reported_metadata == other.reported_metadata
        )

    __hash__ = None  # type: ignore[assignment]

    def _state(self, *, delta: bool) -> JSONObject:
        state: JSONObject = {}
        if self.desired:
            state["desired"] = self.desired
        if self.reported:
            state["reported"] = self.reported
        if delta and self.delta is not None:
            state["delta"] = self.delta
        return state

    def _metadata(self) -> JSONObject:
        metadata: JSONObject = {}
        if self.desired:
            metadata["desired"] = self.desired_metadata
        if self.reported:
            metadata["reported"] = self.reported_metadata
        return metadata

    def to_dict(self, *, timestamp: int | None = None) -> dict[str, Any]:
        """Render the GetThingShadow body, with ``state.delta`` when desired and reported differ.

        ``timestamp`` is the time the response is generated; it defaults to the document's.
        """
        return {
            "state": copy_object(self._state(delta=True)),
            "metadata": copy_object(self._metadata()),
            "version": self.version,
            "timestamp": self.timestamp if timestamp is None else timestamp,
        }

    def to_json(self, *, timestamp: int | None = None) -> str:
        """The GetThingShadow body as compact JSON text."""
        return dumps_compact(self.to_dict(timestamp=timestamp))

    def versioned_state(self) -> dict[str, Any]:
        """The ``previous``/``current`` form used in ``/update/documents`` (no delta)."""
        return {
            "state": copy_object(self._state(delta=False)),
            "metadata": copy_object(self._metadata()),
            "version": self.version,
        }

    @classmethod
    def from_dict(
        cls, body: Mapping[str, Any], *, limits: ShadowLimits = DEFAULT_LIMITS
    ) -> ShadowDocument:
        """Parse a GetThingShadow body (``state``, ``metadata``, ``version``, ``timestamp``).

        ``state.delta`` and ``metadata.delta`` are derived data and are ignored. Missing
        metadata for a leaf is tolerated (the leaf gets no timestamp). Raises
        `InvalidDocumentError` for anything that AWS would never
        return: non-object sections, nulls, non-finite numbers, too deep or too large.
        """
        if not isinstance(body, Mapping):
            raise InvalidDocumentError(
                f"a shadow document must be a JSON object, got {type(body).__name__}"
            )
        state = body.get("state", {})
        if state is None:
            state = {}
        if not isinstance(state, Mapping):
            raise InvalidDocumentError("state must be an object")
        unknown = set(state) - {"desired", "reported", "delta"}
        if unknown:
            raise InvalidDocumentError(f"state contains unknown nodes: {sorted(map(str, unknown))}")
        metadata = body.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            raise InvalidDocumentError("metadata must be an object")
        version = body.get("version", 1)
        if not is_count(version):
            raise InvalidDocumentError(
                f"version must be a non-negative integer, got {describe(version)}"
            )
        timestamp = body.get("timestamp", 0)
        if not is_count(timestamp):
            raise InvalidDocumentError(
                f"timestamp must be a non-negative integer, got {describe(timestamp)}"
            )
        sections: dict[str, JSONObject] = {}
        metas: dict[str, JSONObject] = {}
        try:
            for name in SECTIONS:
                value = state.get(name)
                sections[name] = (
                    {}
                    if value is None
                    else normalize_section(
                        value, section=name, max_depth=limits.max_depth, nulls=False
                    )
                )
                meta = metadata.get(name)
                metas[name] = (
                    _normalize_metadata(meta, section=f"metadata.{name}")
                    if sections[name] and meta is not None
                    else {}
                )
        except ShadowRejectedError as exc:
            raise InvalidDocumentError(f"{exc.message} ({exc.detail})") from None
        document = cls(
            desired=sections["desired"],
            reported=sections["reported"],
            desired_metadata=metas["desired"],
            reported_metadata=metas["reported"],
            version=version,
            timestamp=timestamp,
        )
        size = document.size
        if size > limits.max_document_bytes:
            raise InvalidDocumentError(
                f"desired + reported is {size} bytes, "
                f"over the {limits.max_document_bytes}-byte limit"
            )
        remember_size(document, size)
        mark_checked(document)
        return document

    @classmethod
    def from_json(
        cls, data: bytes | str, *, limits: ShadowLimits = DEFAULT_LIMITS
    ) -> ShadowDocument:
        """Parse a GetThingShadow body from JSON text or UTF-8 bytes."""
        try:
            body = decode_payload(data, max_depth=limits.max_depth)
        except ShadowRejectedError as exc:
            raise InvalidDocumentError(f"{exc.message} ({exc.detail})") from None
        return cls.from_dict(body, limits=limits)


def _section_index(name: str) -> int:
    if name == "desired":
        return 0
    if name == "reported":
        return 1
    raise InvalidArgumentError(f"section must be 'desired' or 'reported', got {describe(name)}")


def known_size(document: ShadowDocument) -> int | None:
    """The exact `ShadowDocument.size`, when known without serialising the document (else
    ``None``). Internal: for `apply_update`, which derives a new document's size from it."""
    return document._known_size


def remember_size(document: ShadowDocument, size: int) -> None:
    """Record the exact size of ``document``, known from how it was built (internal)."""
    object.__setattr__(document, "_known_size", size)


def _normalize_metadata(meta: object, *, section: str) -> JSONObject:
    # Metadata nests one level deeper than its section ({"timestamp": t} under each leaf).
    if not isinstance(meta, Mapping):
        raise InvalidDocumentError(f"{section} must be an object")
    return normalize_section(meta, section=section, max_depth=32, nulls=False)


def is_checked(document: ShadowDocument) -> bool:
    """Whether ``document``'s sections are known to hold only what `normalize_section` returns
    (plain JSON without ``null``, at most ``MAX_CONFIGURABLE_DEPTH`` levels), from how it was
    built. Internal: a decision then skips checking the values it takes from them again."""
    return document._checked


def mark_checked(document: ShadowDocument) -> None:
    """Record that ``document``'s sections were checked as `is_checked` says (internal)."""
    object.__setattr__(document, "_checked", True)
