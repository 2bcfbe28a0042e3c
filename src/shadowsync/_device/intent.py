"""Intents: what a device wants the cloud to know, one write to its reported state at a time.

An `Intent` is one write to a device's ``reported`` state (or an acknowledgement under
``reported["$ack"]``): a path, a value (``None`` deletes), the time it was made and the HLC
stamp of the write. An intent means exactly the update
``{"state": {"reported": {p1: {p2: ... value}}}}``, with the AWS merge rules: an object value
merges into what is there, anything else replaces it, ``null`` deletes. The offline queue
(`shadowsync._device.queue`) keeps intents; `shadowsync._device.replay` turns them into update
requests.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

import attrs

from shadowsync._conflict.clocks import HLCStamp
from shadowsync._json import (
    JSONObject,
    JSONValue,
    copy_json,
    describe,
    encoded_size,
    normalize_section,
)
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH
from shadowsync._tree import Path, leaves, nest
from shadowsync._validators import count
from shadowsync.errors import InvalidArgumentError, ShadowRejectedError

__all__ = [
    "ACK_PATH",
    "Intent",
    "IntentKind",
    "report_intent",
    "stored_intent",
    "written_leaves",
]

IntentKind = Literal["report", "ack"]
"""What an intent carries: a reported value, or an acknowledgement (``reported["$ack"]``)."""

ACK_PATH: tuple[str, ...] = ("$ack",)
"""The path of every acknowledgement intent (``shadowsync.rules.ACK_KEY``)."""


def _to_path(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise InvalidArgumentError(
            f"Intent.path must be a tuple of object keys, got {type(value).__name__} "
            f"{describe(value)}"
        )
    if not value:
        raise InvalidArgumentError("Intent.path must have at least one key")
    if len(value) > MAX_CONFIGURABLE_DEPTH:
        raise InvalidArgumentError(
            f"Intent.path has {len(value)} keys; at most {MAX_CONFIGURABLE_DEPTH} can ever fit"
        )
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentError(
                f"Intent.path keys must be strings, got {type(key).__name__} {describe(key)}"
            )
    return tuple(str(key) for key in value)


def _thing_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    DEFAULT_LIMITS.check_thing_name(value)


def _shadow_name(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None:
        DEFAULT_LIMITS.check_shadow_name(value)


def _kind(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in ("report", "ack"):
        raise InvalidArgumentError(f"Intent.kind must be 'report' or 'ack', got {describe(value)}")


def _stamp(instance: object, attribute: attrs.Attribute[HLCStamp], value: object) -> None:
    if not isinstance(value, HLCStamp):
        raise InvalidArgumentError(f"Intent.stamp must be an HLCStamp, got {type(value).__name__}")


def _container_depth(value: JSONValue) -> int:
    """Nesting levels of ``value`` itself: 0 for a scalar, 1 for a flat object or array."""
    kind = type(value)
    if kind is dict:
        items: Iterable[JSONValue] = cast("JSONObject", value).values()
    elif kind is list:
        items = cast("list[JSONValue]", value)
    else:
        return 0
    # Scalars cost no call: a report's values are mostly leaves.
    deepest = 0
    for item in items:
        if type(item) is dict or type(item) is list:
            depth = _container_depth(item)
            if depth > deepest:
                deepest = depth
    return deepest + 1


@attrs.frozen(kw_only=True)
class Intent:
    """One thing the device wants the cloud to know: a write to its reported state.

    The intent means the update ``{"state": {"reported": {path[0]: {...: value}}}}``: an object
    value merges, anything else replaces, ``None`` deletes. ``kind="ack"`` carries an
    acknowledgement (`shadowsync.rules.Acknowledgement.to_dict`) at ``ACK_PATH``;
    ``kind="report"`` may write anywhere else. ``created_at`` (epoch seconds) is when the device
    made the change, for expiry; ``stamp`` orders writes (the newest stamp wins); ``seq`` is
    assigned by the store when the intent is queued.

    The value is validated and copied here: JSON only, no ``null`` inside arrays, at most
    32 levels deep counting the ``reported`` object as level 1 (whether it fits the configured
    limits is checked when it is queued). Names follow the AWS rules.

    ```pycon
    >>> from shadowsync import HLCStamp
    >>> intent = Intent(thing_name="lamp", shadow_name=None, kind="report",
    ...                 path=("light", "level"), value=80, created_at=1700000000,
    ...                 stamp=HLCStamp(wall_ms=1700000000000, counter=0, node="lamp"))
    >>> intent.reported_patch()
    {'light': {'level': 80}}
    >>> intent.size, intent.depth
    (22, 2)

    ```
    """

    thing_name: str = attrs.field(validator=_thing_name)
    """The thing whose shadow this writes."""
    shadow_name: str | None = attrs.field(validator=_shadow_name)
    """The named shadow, or ``None`` for the classic shadow."""
    kind: IntentKind = attrs.field(validator=_kind)
    """``"report"`` for a reported value, ``"ack"`` for an acknowledgement."""
    path: tuple[str, ...] = attrs.field(converter=_to_path)
    """Object keys below ``reported`` (at least one); ``ACK_PATH`` for an acknowledgement."""
    value: JSONValue = attrs.field()
    """The value to write at ``path``: merged if an object, replaced otherwise; ``None`` deletes."""
    created_at: int = attrs.field(validator=count)
    """Epoch seconds when the device made the change (the queue expires intents by it)."""
    stamp: HLCStamp = attrs.field(validator=_stamp)
    """The HLC stamp of the write: among writes to the same place, the newest stamp wins."""
    seq: int = attrs.field(default=0, validator=count)
    """The store's sequence number: 0 until queued, then unique and increasing in put order."""
    size: int = attrs.field(init=False, eq=False, repr=False)
    """Bytes of the compact UTF-8 JSON of `reported_patch` (what the queue's byte bound counts)."""
    depth: int = attrs.field(init=False, eq=False, repr=False)
    """Nesting levels the intent needs, counting ``reported`` as level 1 (``max_depth`` rules)."""

    def __attrs_post_init__(self) -> None:
        if self.kind == "ack":
            if self.path != ACK_PATH:
                raise InvalidArgumentError(
                    f"an acknowledgement intent has path {ACK_PATH!r}, got {describe(self.path)}"
                )
            if self.value is not None and not isinstance(self.value, Mapping):
                raise InvalidArgumentError(
                    "an acknowledgement intent's value must be an object (Acknowledgement."
                    f"to_dict()) or None, got {type(self.value).__name__}"
                )
        elif self.path[0] == ACK_PATH[0]:
            raise InvalidArgumentError(
                f"reported[{ACK_PATH[0]!r}] holds acknowledgements: use kind='ack' to write it"
            )
        try:
            wrapped = normalize_section(
                nest(self.path, self.value),
                section="reported",
                max_depth=MAX_CONFIGURABLE_DEPTH,
                nulls=True,
            )
        except ShadowRejectedError as exc:
            raise InvalidArgumentError(
                f"Intent.value is not a valid reported value: {exc.message}"
                + (f" ({exc.detail})" if exc.detail else "")
            ) from None
        value: JSONValue = wrapped
        for key in self.path:
            value = cast("JSONObject", value)[key]
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "size", encoded_size(wrapped))
        object.__setattr__(self, "depth", len(self.path) + _container_depth(value))

    def reported_patch(self) -> JSONObject:
        """The ``reported`` fragment of the update this intent means, as a new object."""
        return nest(self.path, copy_json(self.value))


def written_leaves(intent: Intent) -> list[tuple[Path, JSONValue]]:
    """The leaves ``intent`` writes, with their paths: its own path and value, or each leaf
    of the object it carries (a report may carry a whole object)."""
    if type(intent.value) is dict and intent.value:
        return leaves(intent.value, intent.path)
    return [(intent.path, intent.value)]


_INTENT_FIELDS = tuple(field.name for field in attrs.fields(Intent))
# The slots of the fields, read and written directly: a queued report copies each of its
# intents a few times, and the frozen class's attribute machinery would dominate that.
_SLOTS: list[Any] = [getattr(Intent, name) for name in _INTENT_FIELDS]
_COPIED = [(slot.__get__, slot.__set__) for slot in _SLOTS if slot.__name__ not in ("seq", "value")]
_SET_SEQ = _SLOTS[_INTENT_FIELDS.index("seq")].__set__
_SET_VALUE = _SLOTS[_INTENT_FIELDS.index("value")].__set__


@functools.lru_cache(maxsize=4096)
def _path_bytes(path: tuple[str, ...]) -> int:
    """Bytes the objects around a value at ``path`` add to it in compact JSON: ``{"key":``
    and ``}`` per key (a device reports the same paths over and over)."""
    return sum(encoded_size(key) + 3 for key in path)


def report_intent(
    *,
    thing_name: str,
    shadow_name: str | None,
    path: tuple[str, ...],
    value: JSONValue,
    created_at: int,
    stamp: HLCStamp,
) -> Intent:
    """The report `Intent` of a value in a reported section that `normalize_section` made
    (with nulls, at most ``MAX_CONFIGURABLE_DEPTH`` deep), under names a session checked.

    That walk already checked and copied the value, so it is taken as it is: checking it again
    would cost more than the rest of queuing it. The caller must not change ``value``
    afterwards.
    """
    if path[0] == ACK_PATH[0]:
        raise InvalidArgumentError(
            f"reported[{ACK_PATH[0]!r}] holds acknowledgements: use kind='ack' to write it"
        )
    intent = object.__new__(Intent)
    fields = {
        "thing_name": thing_name,
        "shadow_name": shadow_name,
        "kind": "report",
        "path": path,
        "value": value,
        "created_at": created_at,
        "stamp": stamp,
        "seq": 0,
        "size": _path_bytes(path) + encoded_size(value),
        "depth": len(path) + _container_depth(value),
    }
    for slot in _SLOTS:
        slot.__set__(intent, fields[slot.__name__])
    return intent


def stored_intent(intent: Intent, seq: int) -> Intent:
    """A copy of ``intent`` carrying ``seq``, sharing nothing mutable with it.

    What a store keeps when it appends an intent and hands back when it lists them, and what
    the session reports as queued. Built field by field: the fields were validated when the
    intent was made, and a durable put should not pay for validating them again.
    """
    stored = object.__new__(Intent)
    for get, put in _COPIED:
        put(stored, get(intent))
    _SET_SEQ(stored, seq)
    _SET_VALUE(stored, copy_json(intent.value))
    return stored
