"""AWS update semantics: parse a request, merge it, check limits, render the service's replies."""

from __future__ import annotations

import functools
import marshal
import math
from collections.abc import Mapping
from typing import Any

import attrs

from shadowsync._delta import delta_metadata
from shadowsync._document import (
    ShadowDocument,
    is_checked,
    known_size,
    mark_checked,
    remember_size,
)
from shadowsync._json import (
    INVALID_JSON,
    JSONObject,
    JSONValue,
    copy_object,
    decode_payload,
    describe,
    encoded_size,
    kind_phrase,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._tree import MISSING
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidRequestError,
    PayloadTooLargeError,
    ShadowRejectedError,
    VersionConflictError,
)

Payload = bytes | bytearray | memoryview | str | Mapping[str, Any]
"""What an update request may be given as: UTF-8 JSON bytes, JSON text, or a parsed mapping."""


class _Absent:
    """Marks a section the request does not mention (distinct from ``null``, which clears it)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT = _Absent()
"""A section that is not in the request."""

SectionPatch = JSONObject | None | _Absent


@attrs.frozen(kw_only=True)
class UpdateRequest:
    """A validated update request document.

    Each section is ``ABSENT`` (not in the request), ``None`` (``"desired": null``: clear it) or an
    object to deep-merge, in which ``None`` members delete. ``clear`` is ``{"state": null}``.
    """

    desired: SectionPatch = ABSENT
    reported: SectionPatch = ABSENT
    clear: bool = False
    version: int | None = None
    client_token: str | None = None

    @classmethod
    def parse(cls, payload: Payload, *, limits: ShadowLimits = DEFAULT_LIMITS) -> UpdateRequest:
        """Validate an update request, raising the AWS rejection for the first problem found.

        The order of checks is: encoding (415), JSON syntax, clientToken, version, the
        ``state`` node, its members, then nesting depth and ``null`` inside arrays (all 400).

        ```pycon
        >>> UpdateRequest.parse(b'{"state": {"desired": {"on": true}}, "version": 4}').version
        4

        ```
        """
        if isinstance(payload, Mapping):
            body: Any = payload
        else:
            body = decode_payload(payload, max_depth=limits.max_depth)
        if not isinstance(body, Mapping):
            raise InvalidRequestError(
                INVALID_JSON,
                detail=f"the request must be a JSON object, got {kind_phrase(body)}",
            )
        client_token = _client_token(body, limits)
        try:
            return cls._parse_body(body, client_token, limits)
        except ShadowRejectedError as exc:
            raise exc.with_context(client_token=client_token) from None

    @classmethod
    def _parse_body(
        cls, body: Mapping[str, Any], client_token: str | None, limits: ShadowLimits
    ) -> UpdateRequest:
        version = body.get("version")
        # Versions are 64-bit on the service; anything larger cannot be a real version.
        if "version" in body and (type(version) is not int or not 0 <= version < 2**63):
            raise InvalidRequestError(
                "Invalid version",
                detail=f"version must be a non-negative integer, got {kind_phrase(version)}",
            )
        if "state" not in body:
            raise InvalidRequestError("Missing required node: state")
        state = body["state"]
        if state is None:
            return cls(clear=True, version=version, client_token=client_token)
        if not isinstance(state, Mapping):
            raise InvalidRequestError(
                "State node must be an object", detail=f"state is {kind_phrase(state)}"
            )
        for key in state:
            if key not in ("desired", "reported"):
                raise InvalidRequestError(f"State contains an invalid node: '{key}'")
        for name in ("desired", "reported"):
            value = state.get(name)
            if value is not None and not isinstance(value, Mapping):
                raise InvalidRequestError(
                    f"{name.capitalize()} node must be an object",
                    detail=f"{name} is {kind_phrase(value)}",
                )
        sections: dict[str, SectionPatch] = {}
        for name in ("desired", "reported"):
            if name not in state:
                sections[name] = ABSENT
            elif state[name] is None:
                sections[name] = None
            else:
                sections[name] = normalize_section(
                    state[name], section=name, max_depth=limits.max_depth, nulls=True
                )
        return cls(
            desired=sections["desired"],
            reported=sections["reported"],
            version=version,
            client_token=client_token,
        )

    def state(self) -> JSONObject | None:
        """The request's ``state`` node as AWS echoes it in ``/update/accepted``."""
        if self.clear:
            return None
        state: JSONObject = {}
        for name in ("desired", "reported"):
            patch = getattr(self, name)
            if patch is not ABSENT:
                state[name] = patch
        return state

    def to_dict(self) -> dict[str, Any]:
        """The request document, ready to publish on ``.../update``."""
        state = self.state()
        body: dict[str, Any] = {"state": None if state is None else copy_object(state)}
        if self.version is not None:
            body["version"] = self.version
        if self.client_token is not None:
            body["clientToken"] = self.client_token
        return body


def _client_token(body: Mapping[str, Any], limits: ShadowLimits) -> str | None:
    if "clientToken" not in body:
        return None
    token = body["clientToken"]
    if not isinstance(token, str):
        raise InvalidRequestError(
            "Invalid clientToken", detail=f"clientToken must be a string, got {kind_phrase(token)}"
        )
    problem = limits.client_token_problem(token)
    if problem is not None:
        raise InvalidRequestError("Invalid clientToken", detail=problem)
    return str(token)


@attrs.frozen(kw_only=True)
class UpdateResult:
    """The outcome of an accepted update: the new document and the service's messages.

    ``accepted`` is the ``/update/accepted`` body (also the REST UpdateThingShadow response),
    ``delta`` the ``/update/delta`` body or ``None`` when AWS publishes none, and ``documents``
    the ``/update/documents`` body. Each body is rendered on first access and is yours to keep.
    """

    document: ShadowDocument
    previous: ShadowDocument | None
    request: UpdateRequest
    timestamp: int

    def _stamp(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.request.client_token is not None:
            body["clientToken"] = self.request.client_token
        return body

    @functools.cached_property
    def accepted(self) -> dict[str, Any]:
        """The ``/update/accepted`` body: the request's state echoed with its metadata."""
        state, metadata = _echo(self.request.state(), self.timestamp)
        return self._stamp(
            {
                "state": state,
                "metadata": metadata,
                "version": self.document.version,
                "timestamp": self.timestamp,
            }
        )

    @functools.cached_property
    def delta(self) -> dict[str, Any] | None:
        """The ``/update/delta`` body, or ``None`` when desired and reported agree."""
        delta = self.document.delta
        if delta is None:
            return None
        return self._stamp(
            {
                "state": copy_object(delta),
                "metadata": copy_object(delta_metadata(delta, self.document.desired_metadata)),
                "version": self.document.version,
                "timestamp": self.timestamp,
            }
        )

    @functools.cached_property
    def documents(self) -> dict[str, Any]:
        """The ``/update/documents`` body; ``previous`` is left out when the update created it."""
        body: dict[str, Any] = {}
        if self.previous is not None:
            body["previous"] = self.previous.versioned_state()
        body["current"] = self.document.versioned_state()
        body["timestamp"] = self.timestamp
        return self._stamp(body)


class _Growth:
    """What a merge adds to and removes from a section's encoding, summed in a few C calls.

    The compact JSON of an object is ``{`` + members joined by ``,`` + ``}``, a member being
    ``"key":value``; so the size change of a merge follows from the values and keys it adds
    and removes, the colons, braces and commas, without encoding the whole document again.
    """

    __slots__ = ("added_keys", "fixed", "new_values", "old_values", "removed_keys")

    def __init__(self) -> None:
        self.added_keys: list[str] = []
        self.removed_keys: list[str] = []
        self.new_values: list[JSONValue] = []
        self.old_values: list[JSONValue] = []
        self.fixed = 0

    def total(self) -> int:
        # One encoding for what is added and one for what is removed (each costs a call).
        added: list[Any] = [*self.new_values, *self.added_keys]
        removed: list[Any] = [*self.old_values, *self.removed_keys]
        return self.fixed + _items_size(added) - _items_size(removed)


def _items_size(items: list[Any]) -> int:
    """Sum of the encoded sizes of ``items``: their list's encoding less brackets and commas."""
    if not items:
        return 0
    return encoded_size(items) - 2 - (len(items) - 1)


def _merge(
    value: JSONObject,
    metadata: JSONObject,
    patch: JSONObject,
    stamp: JSONObject,
    growth: _Growth,
) -> tuple[JSONObject, JSONObject]:
    """Deep-merge ``patch`` into ``value`` and keep ``metadata`` in step with it.

    Objects merge recursively, anything else replaces whole, ``None`` deletes. Untouched
    subtrees (and their timestamps) are shared with the previous version, not copied; every
    leaf the patch writes gets ``stamp``, one ``{"timestamp": t}`` shared by the whole update
    (stored metadata is read-only, and every body rendered from it is a copy). The size change
    of the encoding is recorded in ``growth``.
    """
    new_value = dict(value)
    new_metadata = dict(metadata)
    for key, item in patch.items():
        current = value.get(key, MISSING)
        if type(item) is dict:
            if type(current) is dict:
                if item == current and _sent_again(item, current):
                    # A whole object sent again as stored (a device that reports everything):
                    # it stays as it is, in size too, and every leaf in it is restamped.
                    new_metadata[key] = _stamps(item, stamp)
                    continue
                current_meta = metadata.get(key)
                new_value[key], new_metadata[key] = _merge(
                    current,
                    current_meta if type(current_meta) is dict else {},
                    item,
                    stamp,
                    growth,
                )
                continue
            if current is MISSING:
                growth.added_keys.append(key)
                growth.fixed += 3  # its colon and the braces of the new object
            else:
                growth.old_values.append(current)
                growth.fixed += 2  # the braces of the new object
            new_value[key], new_metadata[key] = _merge({}, {}, item, stamp, growth)
        elif item is None:
            if current is not MISSING:
                del new_value[key]
                growth.removed_keys.append(key)
                growth.old_values.append(current)
                growth.fixed -= 1  # its colon
            new_metadata.pop(key, None)
        else:
            kind = type(item)
            new_metadata[key] = _stamps(item, stamp) if kind is list else stamp
            if current is MISSING:
                growth.added_keys.append(key)
                growth.fixed += 1  # its colon
            elif (
                kind is type(current)
                and item == current
                and (
                    (kind is not list and (kind is not float or item))
                    or _encodes_alike(item, current)
                )
            ):
                # The same value again (a device reporting its whole state): its encoding, and
                # so the size, cannot change; only its timestamp does.
                continue
            else:
                growth.old_values.append(current)
            growth.new_values.append(item)
            new_value[key] = item
    # Commas: an object of n members has max(n - 1, 0) of them, that is (n or 1) - 1.
    growth.fixed += (len(new_value) or 1) - (len(value) or 1)
    return new_value, new_metadata


def _encodes_alike(new: JSONValue, old: JSONValue) -> bool:
    """Whether two equal values of one type (a zero float or an array) encode alike in JSON.

    ``0.0 == -0.0``, ``[1] == [1.0] == [True]`` and ``[{"a": 1, "b": 2}] == [{"b": 2, "a": 1}]``
    although their encodings differ; marshal writes types, float bits and key order exactly,
    and shares nothing (format 2), so equal bytes mean equal JSON text.
    """
    if type(new) is float:
        return math.copysign(1.0, new) == math.copysign(1.0, old)  # type: ignore[arg-type]
    try:
        return marshal.dumps(new, 2) == marshal.dumps(old, 2)
    except ValueError:  # not marshallable: count it as changed
        return False


def _sent_again(patch: JSONObject, stored: JSONObject) -> bool:
    """Whether a patch object equal to the stored one is that object again, exactly (see
    `_encodes_alike`) and with no ``null`` to delete (a stored document holds none, unless it
    was built by hand). marshal writes ``null`` as ``N``; a byte ``N`` elsewhere only sends the
    patch the long way."""
    try:
        written = marshal.dumps(patch, 2)
        return b"N" not in written and written == marshal.dumps(stored, 2)
    except ValueError:  # not marshallable: merge it key by key
        return False


def _stamps(value: JSONValue, stamp: JSONObject) -> JSONValue:
    """Metadata for a value written by this update: ``stamp`` per leaf, arrays per element."""
    kind = type(value)
    if kind is list:
        if _CONTAINERS.isdisjoint(map(type, value)):  # type: ignore[arg-type]
            return [stamp] * len(value)  # type: ignore[arg-type]
        return [_stamps(item, stamp) for item in value]  # type: ignore[union-attr]
    if kind is dict:
        return {
            key: _stamps(item, stamp) if type(item) in _CONTAINERS else stamp
            for key, item in value.items()  # type: ignore[union-attr]
        }
    return stamp


_CONTAINERS = frozenset((dict, list))


# Bytes of ``"desired":`` and ``"reported":`` in the state object's encoding.
_SECTION_KEY_SIZE = {"desired": 10, "reported": 11}


def _echo(value: JSONValue, timestamp: int) -> tuple[JSONValue, JSONValue]:
    """A copy of a request value and its metadata (``null`` too gets a timestamp), in one walk.

    The body is the caller's to keep, so it shares nothing: every leaf gets its own
    ``{"timestamp": t}``.
    """
    kind = type(value)
    if kind is dict:
        return _echo_object(value, timestamp)  # type: ignore[arg-type]
    if kind is list:
        return _echo_array(value, timestamp)  # type: ignore[arg-type]
    return value, {"timestamp": timestamp}


def _echo_object(value: JSONObject, timestamp: int) -> tuple[JSONObject, JSONObject]:
    copied: JSONObject = {}
    metadata: JSONObject = {}
    for key, item in value.items():
        kind = type(item)
        if kind is dict:
            copied[key], metadata[key] = _echo_object(item, timestamp)  # type: ignore[arg-type]
        elif kind is list:
            copied[key], metadata[key] = _echo_array(item, timestamp)  # type: ignore[arg-type]
        else:
            copied[key] = item
            metadata[key] = {"timestamp": timestamp}
    return copied, metadata


def _echo_array(value: list[JSONValue], timestamp: int) -> tuple[JSONValue, JSONValue]:
    if _CONTAINERS.isdisjoint(map(type, value)):
        return value[:], [{"timestamp": timestamp} for _ in value]
    pairs = [_echo(item, timestamp) for item in value]
    return [copy for copy, _ in pairs], [meta for _, meta in pairs]


def apply_update(
    document: ShadowDocument | None,
    request: Payload | UpdateRequest,
    *,
    timestamp: int,
    limits: ShadowLimits = DEFAULT_LIMITS,
    previous_version: int = 0,
) -> UpdateResult:
    """Apply an update request to a shadow exactly as AWS IoT does, or raise its rejection.

    ``document`` is the stored shadow, or ``None`` when it does not exist (the update then
    creates it at ``previous_version + 1``; pass the deleted shadow's version to continue its
    sequence). ``request`` is the request document as bytes, text or a mapping.

    Rejections are `ShadowRejectedError` subclasses carrying the AWS
    code and message (400, 409 ``Version conflict``, 413, 415) plus the request's clientToken and
    ``timestamp``; a rejected update changes nothing.

    ```pycon
    >>> result = apply_update(None, {"state": {"desired": {"on": True}}}, timestamp=100)
    >>> result.document.version, result.delta["state"]
    (1, {'on': True})
    >>> result = apply_update(result.document, {"state": {"reported": {"on": True}}}, timestamp=101)
    >>> result.document.version, result.delta
    (2, None)

    ```
    """
    if type(timestamp) is not int or timestamp < 0:
        raise InvalidArgumentError(
            f"timestamp must be a non-negative int, got {describe(timestamp)}"
        )
    if type(previous_version) is not int or previous_version < 0:
        raise InvalidArgumentError(
            f"previous_version must be a non-negative int, got {describe(previous_version)}"
        )
    if document is not None and not isinstance(document, ShadowDocument):
        raise InvalidArgumentError(
            f"document must be a ShadowDocument or None, got {type(document).__name__}"
        )
    try:
        parsed = (
            request
            if isinstance(request, UpdateRequest)
            else UpdateRequest.parse(request, limits=limits)
        )
        result = _apply(document, parsed, timestamp, limits, previous_version)
    except ShadowRejectedError as exc:
        raise exc.with_context(timestamp=timestamp) from None
    if parsed is not request and (document is None or is_checked(document)):
        # Checked values merged with a request validated here: checked values again. (An
        # `UpdateRequest` handed in was built who knows how.)
        mark_checked(result.document)
    return result


def _apply(
    document: ShadowDocument | None,
    request: UpdateRequest,
    timestamp: int,
    limits: ShadowLimits,
    previous_version: int,
) -> UpdateResult:
    if request.version is not None:
        current = None if document is None else document.version
        if request.version != current:
            raise VersionConflictError(
                client_token=request.client_token,
                detail=(
                    f"request version {request.version}, shadow does not exist"
                    if current is None
                    else f"request version {request.version}, shadow version {current}"
                ),
            )
    base = document if document is not None else ShadowDocument(version=previous_version)
    sections: dict[str, tuple[JSONObject, JSONObject]] = {}
    known = known_size(base)
    growth: dict[str, int] = {}
    stamp: JSONObject = {"timestamp": timestamp}
    for name in ("desired", "reported"):
        patch = getattr(request, name)
        value, metadata = base.section(name), base.section_metadata(name)
        if request.clear or patch is None:
            value, metadata = {}, {}
            known = None  # the removed section's own size is not known
        elif type(patch) is dict and patch:
            tally = _Growth()
            value, metadata = _merge(value, metadata, patch, stamp, tally)
            growth[name] = tally.total()
        sections[name] = (value, metadata)
    updated = ShadowDocument(
        desired=sections["desired"][0],
        reported=sections["reported"][0],
        desired_metadata=sections["desired"][1],
        reported_metadata=sections["reported"][1],
        version=base.version + 1,
        timestamp=timestamp,
    )
    if request.clear:
        remember_size(updated, 2)
    elif known is not None:
        remember_size(updated, _state_size(base, updated, known, growth))
    size = updated.size
    if size > limits.max_document_bytes:
        raise PayloadTooLargeError(
            client_token=request.client_token,
            detail=(
                f"the merged desired + reported state would be {size} bytes; "
                f"the limit is {limits.max_document_bytes}"
            ),
        )
    return UpdateResult(document=updated, previous=document, request=request, timestamp=timestamp)


def _state_size(
    base: ShadowDocument, updated: ShadowDocument, known: int, growth: dict[str, int]
) -> int:
    """The exact size of ``updated`` from ``base``'s and the sections' growth.

    The state encodes as ``{"desired":D,"reported":R}`` with empty sections left out; a section
    that is empty counts as ``{}`` (2 bytes) before and after.
    """
    before = [name for name in ("desired", "reported") if base.section(name)]
    after = [name for name in ("desired", "reported") if updated.section(name)]
    members = known - 2 - max(len(before) - 1, 0)  # the encoded sections with their keys
    for name in ("desired", "reported"):
        change = growth.get(name, 0)
        if name in before and name in after:
            members += change
        elif name in before:
            members -= _SECTION_KEY_SIZE[name] + 2 - change
        elif name in after:
            members += _SECTION_KEY_SIZE[name] + 2 + change
    return 2 + members + max(len(after) - 1, 0)
