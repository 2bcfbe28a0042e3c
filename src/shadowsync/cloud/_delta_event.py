"""The conflict resolver: decide what to do about a shadow's ``/update/delta`` event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.merge import ConflictReport, newest_stamp
from shadowsync._document import ShadowDocument, is_checked
from shadowsync._json import JSONObject, copy_json, describe, kind_phrase, normalize_section
from shadowsync._limits import DEFAULT_LIMITS, MAX_CONFIGURABLE_DEPTH, ShadowLimits
from shadowsync._tree import MISSING, Path, Value
from shadowsync.audit import HistoryRecord
from shadowsync.cloud._decision import (
    ShadowDecision,
    conclude,
    history_position,
    settled_context,
)
from shadowsync.cloud._history import History, check_now, decision_history
from shadowsync.cloud._requests import (
    OperationError,
    decode_object,
    parse_count,
    parse_shadow_name,
    parse_thing_name,
    shadow_label,
)
from shadowsync.cloud._signals import metric_datum
from shadowsync.errors import (
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidRequestError,
)

if TYPE_CHECKING:
    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync.cloud._head import HistoryHead
    from shadowsync.rules import RuleSet
    from shadowsync.strategies import Strategy

__all__ = ["DeltaEvent", "handle_delta_event", "shadow_document"]


@attrs.frozen(kw_only=True)
class DeltaEvent:
    """A ``/update/delta`` message as an IoT rule hands it to the resolver.

    The message itself has ``state`` (the delta), ``metadata``, ``version``, ``timestamp`` and
    perhaps ``clientToken``; the rule adds ``thingName`` and ``shadowName`` (for example
    ``SELECT *, topic(3) AS thingName, topic(6) AS shadowName``). A missing, empty or
    ``"$default"`` ``shadowName`` is the classic shadow.
    """

    thing_name: str
    shadow_name: str | None
    state: JSONObject
    version: int
    timestamp: int

    @classmethod
    def from_dict(cls, event: object) -> DeltaEvent:
        """Parse an event (a mapping, or JSON text or bytes); raises `OperationError`."""
        data = decode_object(event, "the delta event")
        if "Records" in data:
            raise OperationError(
                f"received an event with Records ({_records_source(data['Records'])}), not a "
                "shadow delta message; the conflict resolver takes the /update/delta message an "
                "IoT rule forwards (SELECT *, topic(3) AS thingName, topic(6) AS shadowName ...): "
                "point the stream at a function of its own"
            )
        if "operation" in data:
            raise OperationError(
                f"received a request for operation {describe(data['operation'])}, not a shadow "
                "delta message; the conflict resolver takes the /update/delta message an IoT "
                "rule forwards; send operations to the sync manager (sync_device_shadows there "
                "is offline_sync)"
            )
        if "thingName" not in data:
            raise OperationError(
                "the delta event has no thingName; select it in the IoT rule "
                "(SELECT *, topic(3) AS thingName, topic(6) AS shadowName ...)"
            )
        state = data.get("state")
        if not isinstance(state, Mapping):
            raise OperationError(
                f"the delta event's state must be an object, got {kind_phrase(state)}"
            )
        try:
            delta = normalize_section(
                state, section="delta", max_depth=MAX_CONFIGURABLE_DEPTH, nulls=False
            )
        except InvalidRequestError as exc:
            raise OperationError(
                f"the delta event's state is not a delta: {exc.detail or exc.message}"
            ) from None
        return cls(
            thing_name=parse_thing_name(data["thingName"], "thingName", None),
            shadow_name=parse_shadow_name(data.get("shadowName"), "shadowName", None),
            state=delta,
            version=parse_count(data.get("version", 0), "version", None),
            timestamp=parse_count(data.get("timestamp", 0), "timestamp", None),
        )


def _records_source(records: object) -> str:
    """Where a ``Records`` event came from, as far as its first record says."""
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if isinstance(source, str):
            return f"from {source}"
    return "a stream or queue batch"


def shadow_document(shadow: object) -> ShadowDocument | None:
    """A shadow argument (document, GetThingShadow body or None) as a `ShadowDocument`."""
    if shadow is None or isinstance(shadow, ShadowDocument):
        return shadow
    if isinstance(shadow, Mapping):
        try:
            return ShadowDocument.from_dict(shadow)
        except InvalidDocumentError as exc:
            raise InvalidDocumentError(f"the current shadow: {exc}") from None
    raise InvalidArgumentError(
        f"shadow must be a ShadowDocument, a GetThingShadow body or None, got {describe(shadow)}"
    )


def _first_base(path: Path, reported: Value, cloud: int | None, device: int | None) -> Value:
    """The base of ``path`` when the shadow has no record yet (the first event it sees);
    ``cloud`` and ``device`` are the path's stamps (`stamps_at`), None where it has none.

    Without a record, the shadow's metadata is the only witness of the order of writes. A
    reported value written after the desired one (a strictly later timestamp) is the device's
    own change, made while the cloud's value was pending: both sides moved and there is no
    common base, so the two clash (as in a fresh deployment where the cloud's and the device's
    updates both land before the first delta event is handled). Otherwise the desired value is
    the newer write, and the device has yet to apply it: the reported value is the base.
    """
    if reported is not MISSING and device is not None and cloud is not None and device > cloud:
        return MISSING
    return reported


@attrs.frozen(kw_only=True)
class DeltaEntries:
    """What a delta-event decision settles, gathered in one walk of the shadow's delta
    (`delta_entries`)."""

    entries: list[tuple[Path, Value, Value, Value]]
    """``(path, base, cloud, device)`` of each leaf path of the delta, in its order."""
    sides: tuple[JSONObject, JSONObject, JSONObject]
    """The base's, the cloud's and the device's values as three objects, each as `nested`
    makes it of its side of ``entries`` (as `settle` nests them)."""
    cloud_stamps: dict[Path, int]
    device_stamps: dict[Path, int]


def delta_entries(
    document: ShadowDocument, agreed: JSONObject | None, *, copy_sides: bool
) -> DeltaEntries:
    """The entries of every leaf path of ``document``'s delta, the three sides nested, and the
    cloud's and the device's stamps of those paths, in one walk.

    The paths are `leaf_paths` of the delta, in its order; the cloud's and the device's values
    are what `lookup` finds in desired and reported, and the base what it finds in ``agreed``
    (the reported state at the shadow's last record), or `_first_base` without a record; the
    stamps are what `stamps_at` gives for the paths in each section's metadata. The entries
    hold the document's own values; with ``copy_sides`` the nested cloud's and device's values
    are copies (`settle`'s ``checked_sides``).
    """
    walk = _DeltaWalk(first=agreed is None, copy_sides=copy_sides)
    sides: tuple[JSONObject, JSONObject, JSONObject] = ({}, {}, {})
    walk.run(
        document.delta or {},
        (),
        document.desired,
        document.reported,
        MISSING if agreed is None else agreed,
        document.section_metadata("desired"),
        document.section_metadata("reported"),
        sides,
    )
    return DeltaEntries(
        entries=walk.entries,
        sides=sides,
        cloud_stamps=walk.cloud_stamps,
        device_stamps=walk.device_stamps,
    )


class _DeltaWalk:
    """One `delta_entries` walk: its settings, and what it collects."""

    __slots__ = ("cloud_stamps", "copy_sides", "device_stamps", "entries", "first")

    def __init__(self, *, first: bool, copy_sides: bool) -> None:
        self.first = first
        self.copy_sides = copy_sides
        self.entries: list[tuple[Path, Value, Value, Value]] = []
        self.cloud_stamps: dict[Path, int] = {}
        self.device_stamps: dict[Path, int] = {}

    def run(
        self,
        delta: JSONObject,
        prefix: Path,
        desired: Any,
        reported: Any,
        agreed: Any,
        cloud_meta: Any,
        device_meta: Any,
        sides: tuple[JSONObject, JSONObject, JSONObject],
    ) -> None:
        """The walk below ``prefix``: ``desired``, ``reported`` and ``agreed`` are the values
        there (`MISSING` where absent), ``cloud_meta`` and ``device_meta`` the metadata nodes
        `stamps_at` has reached there (None: no stamp below), ``sides`` the nested sides'
        objects there (each placed in its parent once it holds a value, as `holder` would)."""
        entries, first, copy_sides = self.entries, self.first, self.copy_sides
        desired_object = type(desired) is dict
        reported_object = type(reported) is dict
        agreed_object = type(agreed) is dict
        # Metadata is descended as `stamps_at` descends it: a stamped leaf's node (a replaced
        # leaf's stamped ancestor) is kept for every path below it.
        cloud_node = cloud_kept = device_node = device_kept = None
        if isinstance(cloud_meta, dict):
            if len(cloud_meta) == 1 and type(cloud_meta.get("timestamp")) is int:
                cloud_kept = cloud_meta
            else:
                cloud_node = cloud_meta
        if isinstance(device_meta, dict):
            if len(device_meta) == 1 and type(device_meta.get("timestamp")) is int:
                device_kept = device_meta
            else:
                device_node = device_meta
        agreed_side, ours_side, theirs_side = sides
        for key, value in delta.items():
            ours = desired[key] if desired_object and key in desired else MISSING
            theirs = reported[key] if reported_object and key in reported else MISSING
            base = agreed[key] if agreed_object and key in agreed else MISSING
            cloud = cloud_node.get(key) if cloud_node is not None else cloud_kept
            device = device_node.get(key) if device_node is not None else device_kept
            path = (*prefix, key)
            if type(value) is dict and value:
                below: tuple[JSONObject, JSONObject, JSONObject] = ({}, {}, {})
                self.run(value, path, ours, theirs, base, cloud, device, below)
                if below[0]:
                    agreed_side[key] = below[0]
                if below[1]:
                    ours_side[key] = below[1]
                if below[2]:
                    theirs_side[key] = below[2]
                continue
            cloud_stamp = newest_stamp(cloud)
            device_stamp = newest_stamp(device)
            if cloud_stamp is not None:
                self.cloud_stamps[path] = cloud_stamp
            if device_stamp is not None:
                self.device_stamps[path] = device_stamp
            if first:
                base = _first_base(path, theirs, cloud_stamp, device_stamp)
            entries.append((path, base, ours, theirs))
            if base is not MISSING:
                agreed_side[key] = base
            if ours is not MISSING:
                ours_side[key] = copy_json(ours) if copy_sides else ours
            if theirs is not MISSING:
                theirs_side[key] = copy_json(theirs) if copy_sides else theirs


def handle_delta_event(
    event: object,
    shadow: ShadowDocument | Mapping[str, Any] | None,
    *,
    now: int,
    history: History | HistoryHead = (),
    policy: ResolutionPolicy | Strategy | None = None,
    rules: RuleSet | None = None,
    event_bus: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
) -> ShadowDecision:
    """Decide what to do about a delta event: accept, merge, reject (a rule) or hold for review.

    ``shadow`` is the shadow as read now (None when it no longer exists) and ``history`` the
    shadow's history records (from its first one: their replay is the base of the three-way
    merge). The event is always judged against the current shadow, so an event that arrives
    late or twice is re-evaluated, never applied blindly.

    For each path of the current delta the desired value (the cloud's side, "ours") and the
    reported one (the device's side, "theirs") are compared with the base, the value the device
    had reported when the last record was made (a desired value pending then was never agreed):
    a path only the cloud changed is pending (the device will apply it), a path only the device
    changed is a fast-forward (desired follows the device, so the delta does not undo a local
    change), and a path both changed differently is a conflict for the ``policy``'s strategy,
    with per-leaf metadata timestamps as stamps. ``rules`` then judge every desired value still
    pending against the reported value in force; a refused one is replaced by the reported
    value. With no history a delta path counts as pending, unless the shadow's metadata shows
    the device reported its value after the desired one was written: then both sides changed
    it and the two clash. The returned record becomes the base for the next event.

    ```pycon
    >>> from shadowsync import apply_update
    >>> from shadowsync.rules import Range, RuleSet
    >>> shadow = apply_update(None, {"state": {"desired": {"rate": 600},
    ...                                        "reported": {"rate": 30}}},
    ...                       timestamp=1700000000).document
    >>> decision = handle_delta_event(
    ...     {"thingName": "pump-7", "state": {"rate": 600}, "version": 1}, shadow,
    ...     now=1700000005, rules=RuleSet(rules=[Range(path="rate", maximum=300)]))
    >>> decision.decision, decision.update["state"]
    ('reject', {'desired': {'rate': 30}})
    >>> decision.record.change_type, decision.record.version
    ('rule_rejected', 2)

    ```
    """
    now = check_now(now)
    parsed = event if isinstance(event, DeltaEvent) else DeltaEvent.from_dict(event)
    document = shadow_document(shadow)
    thing, shadow_name = parsed.thing_name, parsed.shadow_name
    label = shadow_label(shadow_name)
    log, previous = decision_history(history)
    # The chain continues from the newest record given, whichever shadow it belongs to.
    position = history_position(log, thing, shadow_name, document, previous=previous, now=now)
    if document is None:
        last = position.last
        version = max(parsed.version, last.version if last else 0)
        record = HistoryRecord.create(
            thing,
            shadow_name,
            previous=previous,
            previous_state=position.base,
            new_state=None,
            version=version,
            timestamp=max(now, last.timestamp if last else 0),
            change_type="delete",
            decision="accept",
            reason="the shadow no longer exists",
            details={"eventVersion": parsed.version},
        )
        return ShadowDecision(
            thing_name=thing,
            shadow_name=shadow_name,
            decision="accept",
            reason=record.reason,
            update=None,
            record=record,
            report=ConflictReport(),
            reviews=(),
            acknowledgement=None,
            pending=(),
            stale_event=True,
            events=(),
            metrics=(metric_datum("SyncCompleted", 1, timestamp=now, shadow_label=label),),
        )

    stale_event = parsed.version < document.version
    base = position.base
    # The last value both sides agreed on is what the device had reported at the base: a
    # desired value that was still pending there was never agreed. Not copied: settling
    # copies every value it keeps (see `settle`).
    checked = is_checked(document)
    walked = delta_entries(document, None if base is None else base["reported"], copy_sides=checked)
    context = settled_context(
        walked.entries,
        section="desired",
        document=document,
        thing_name=thing,
        shadow_name=shadow_name,
        history=position,
        details={
            "eventVersion": parsed.version,
            "shadowVersion": document.version,
            "staleEvent": stale_event,
        },
        fast_forward="desired follows the device's own change",
        stale_event=stale_event,
        policy=policy,
        rules=rules,
        now=now,
        event_bus=event_bus,
        limits=limits,
        cloud_stamps=walked.cloud_stamps,
        device_stamps=walked.device_stamps,
        # The cloud's and device's values are the document's own.
        checked_sides=checked,
        sides=walked.sides,
    )
    return conclude(context)
