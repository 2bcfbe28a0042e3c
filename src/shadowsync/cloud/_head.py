"""`HistoryHead`: what a decision needs of a thing's history, without reading its records.

A decision on a shadow needs three things from the history: the checksum its record chains
to (the thing's newest record), the shadow's last record (its version and time) and the state
that record left (the base of the three-way merge). A `HistoryHead` holds exactly those, so a
store can keep them in a few items and a decision costs the same however long the history is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from shadowsync._json import JSONObject, copy_object, describe
from shadowsync._patch import apply_json_patch
from shadowsync.audit import HistoryRecord
from shadowsync.errors import InvalidArgumentError, PatchError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync.audit import AuditLog

__all__ = ["HistoryHead", "ShadowHead"]


@attrs.frozen(kw_only=True)
class ShadowHead:
    """The last record of one shadow and the state it left (``{"desired", "reported"}``)."""

    record: HistoryRecord
    state: JSONObject
    sequence: int = 0
    """The record's place in the thing's chain (1 for the first record; 0: not known)."""
    pending: JSONObject | None = None
    """The update the last record describes, when it was stored before the update was sent
    and the update is not known to have reached the shadow yet (None: nothing outstanding)."""
    before: JSONObject | None = None
    """With ``pending``: the state before the waiting record, where the shadow's history goes
    back to when its update is found not applied."""
    events: tuple[tuple[int, int], ...] = ()
    """``(event version, record sequence)`` of the latest delta events decided on the shadow,
    oldest first: a retried event is answered from its record."""
    answer_key: str | None = None
    """With ``pending``: the key of the keyed request (an ``offline_sync``) whose stored answer
    counts on this update. Going back on the update drops that answer, so that a retry of the
    request decides it again instead of answering that it was applied."""

    def event_record(self, version: int) -> int | None:
        """The sequence of the record that decided the delta event at ``version``, if kept."""
        for event, sequence in reversed(self.events):
            if event == version:
                return sequence
        return None


def _shadow_heads(value: Mapping[str | None, ShadowHead]) -> dict[str | None, ShadowHead]:
    heads = dict(value)
    for name, head in heads.items():
        if not isinstance(head, ShadowHead):
            raise InvalidArgumentError(
                f"the head of shadow {name!r} must be a ShadowHead, got {describe(head)}"
            )
    return heads


@attrs.frozen(kw_only=True)
class HistoryHead:
    """The end of one thing's history chain: its newest checksum and sequence, and the heads
    of the shadows a decision is about.

    `handle_delta_event` and `offline_sync` take it wherever they take a history: it answers
    `head`, `records_for` (the shadow's last record only) and `last_state` as the full
    `AuditLog` would. ``sequence`` counts the thing's records (the newest one's place, 1 for
    the first); ``shadows`` holds only the shadows that were asked for, and a shadow missing
    from it has no record yet.

    ```pycon
    >>> from shadowsync.audit import AuditLog
    >>> log = AuditLog()
    >>> _ = log.append("pump-7", "configuration", previous_state=None,
    ...                new_state={"reported": {"rate": 30}}, version=1, timestamp=100,
    ...                change_type="update", decision="accept", reason="baseline")
    >>> head = HistoryHead.from_log(log, "pump-7")
    >>> head.sequence, head.head == log.head, head.last_state("pump-7", "configuration")
    (1, True, {'desired': {}, 'reported': {'rate': 30}})

    ```
    """

    thing_name: str
    head: str = ""
    """The checksum of the thing's newest record (``""``: no record yet)."""
    sequence: int = 0
    shadows: dict[str | None, ShadowHead] = attrs.field(factory=dict, converter=_shadow_heads)

    @classmethod
    def from_log(cls, log: AuditLog, thing_name: str) -> HistoryHead:
        """The head of ``thing_name``'s records in ``log`` (a whole history, oldest first)."""
        records = [r for r in log.records if r.thing_name == thing_name]
        shadows: dict[str | None, ShadowHead] = {}
        for place, record in enumerate(records, start=1):
            shadows[record.shadow_name] = ShadowHead(record=record, state={}, sequence=place)
        for name, shadow in shadows.items():
            state = log.last_state(thing_name, name)
            assert state is not None  # the shadow has a record
            shadows[name] = attrs.evolve(shadow, state=state)
        return cls(
            thing_name=thing_name,
            head=records[-1].checksum if records else "",
            sequence=len(records),
            shadows=shadows,
        )

    def shadow(self, shadow_name: str | None) -> ShadowHead | None:
        """The head of one shadow (None: no record of it, or it was not read)."""
        return self.shadows.get(shadow_name)

    def records_for(self, thing_name: str, shadow_name: str | None) -> tuple[HistoryRecord, ...]:
        """The shadow's last record as a one-record tuple (``()`` when it has none)."""
        head = self.shadows.get(shadow_name) if thing_name == self.thing_name else None
        return () if head is None else (head.record,)

    def last_state(self, thing_name: str, shadow_name: str | None) -> JSONObject | None:
        """The state the shadow's last record left (a copy), or None when it has no records."""
        head = self.shadows.get(shadow_name) if thing_name == self.thing_name else None
        return None if head is None else copy_object(head.state)

    def followed_by(self, record: HistoryRecord) -> HistoryHead:
        """The head once ``record`` is stored after it (this head is left as it is).

        The record must be of this thing, intact and chained to `head`; its patch must apply to
        the state its shadow's last record left (the empty state for a shadow new here).
        """
        if not isinstance(record, HistoryRecord):
            raise InvalidArgumentError(f"expected a HistoryRecord, got {describe(record)}")
        if record.thing_name != self.thing_name:
            raise InvalidArgumentError(
                f"a record of {record.thing_name!r} cannot follow the history of "
                f"{self.thing_name!r}"
            )
        if not record.intact:
            raise InvalidArgumentError("a record's checksum does not match its content")
        if record.previous_checksum != self.head:
            raise InvalidArgumentError(
                f"the record is chained to {record.previous_checksum[:12] or 'nothing'}, not "
                f"to the history's head {self.head[:12] or '(none)'}"
            )
        before = self.shadows.get(record.shadow_name)
        state: JSONObject = before.state if before is not None else _empty()
        try:
            after = apply_json_patch(state, record.patch)
        except PatchError as exc:
            raise InvalidArgumentError(
                f"the record's patch does not apply to its shadow's last state: {exc}"
            ) from None
        if type(after) is not dict or set(after) != {"desired", "reported"}:
            raise InvalidArgumentError("the record's patch does not leave a shadow state")
        shadows = dict(self.shadows)
        kept = before.events if before is not None else ()
        shadows[record.shadow_name] = ShadowHead(
            record=record, state=after, sequence=self.sequence + 1, events=kept
        )
        return HistoryHead(
            thing_name=self.thing_name,
            head=record.checksum,
            sequence=self.sequence + 1,
            shadows=shadows,
        )


def _empty() -> JSONObject:
    return {"desired": {}, "reported": {}}
