"""``health_report``: per device healthy / warning / conflict / offline, with reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from shadowsync._conflict.merge import stamps_from_metadata
from shadowsync._json import describe
from shadowsync._tree import leaf_paths
from shadowsync.cloud._delta_event import shadow_document
from shadowsync.cloud._history import History, as_log, check_now, recent_conflicts
from shadowsync.cloud._requests import HealthReportRequest, shadow_label, sync_request
from shadowsync.cloud._signals import iso_time
from shadowsync.cloud._sync_check import newest_report
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shadowsync._document import ShadowDocument

HealthStatus: TypeAlias = Literal["healthy", "warning", "conflict", "offline"]
"""A device's health, from best to worst."""

_RANK: dict[str, int] = {"healthy": 0, "warning": 1, "conflict": 2, "offline": 3}


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value <= 0:
        raise InvalidArgumentError(
            f"{attribute.name} must be a positive number of seconds, got {describe(value)}"
        )


def _shadow_names(value: object) -> tuple[str | None, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise InvalidArgumentError(
            "expected_shadows must be a non-empty sequence of shadow names (None: classic)"
        )
    names = tuple(value)
    for name in names:
        if name is not None and not isinstance(name, str):
            raise InvalidArgumentError(f"expected_shadows holds {describe(name)}, not a name")
    return names


def _at_least_one(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 1:
        raise InvalidArgumentError(f"{attribute.name} must be an int >= 1, got {describe(value)}")


@attrs.frozen(kw_only=True)
class HealthThresholds:
    """When a device counts as offline, in conflict or worth a warning.

    A device is **offline** when none of its shadows got a reported value for
    ``offline_after_seconds`` (or it has none at all); in **conflict** when its history holds at
    least ``conflicts_for_conflict`` conflict records in the last ``conflict_window_seconds``;
    a **warning** when an expected shadow is missing, a desired value has been pending for more
    than ``pending_after_seconds``, or a conflict is recorded but fewer than the threshold.
    """

    expected_shadows: tuple[str | None, ...] = attrs.field(default=(None,), converter=_shadow_names)
    """The shadows every device should have (None: the classic shadow)."""
    offline_after_seconds: int = attrs.field(default=3600, validator=_seconds)
    pending_after_seconds: int = attrs.field(default=600, validator=_seconds)
    conflict_window_seconds: int = attrs.field(default=86400, validator=_seconds)
    conflicts_for_conflict: int = attrs.field(default=1, validator=_at_least_one)


@attrs.frozen(kw_only=True)
class DeviceHealth:
    """One device's health and the reasons for it (worst first)."""

    thing_name: str
    status: HealthStatus
    reasons: tuple[str, ...]
    shadows: int
    """How many of the expected shadows exist."""
    last_seen: int | None
    """When the device last reported anything, in any shadow."""
    pending: int
    """Desired values not yet reported, over all its shadows."""
    recent_conflicts: int

    def to_json(self) -> dict[str, Any]:
        """The seed's ``deviceHealth`` entry (``thingName``, ``status``, ``issues``, ...)."""
        return {
            "thingName": self.thing_name,
            "status": self.status,
            "shadowCount": self.shadows,
            "issues": list(self.reasons),
            "lastSeen": None if self.last_seen is None else iso_time(self.last_seen),
            "pendingChanges": self.pending,
            "recentConflicts": self.recent_conflicts,
        }


_TOTALS = (
    "totalDevices",
    "healthyDevices",
    "warningDevices",
    "devicesWithConflicts",
    "offlineDevices",
)


@attrs.frozen(kw_only=True)
class HealthReport:
    """The health of each requested device, and fleet totals."""

    generated_at: int
    devices: tuple[DeviceHealth, ...]

    def count(self, status: HealthStatus) -> int:
        """How many devices have ``status``."""
        return sum(1 for d in self.devices if d.status == status)

    def to_json(self) -> dict[str, Any]:
        """The response body: ``reportTimestamp``, ``deviceHealth``, ``overallMetrics``."""
        return {
            "reportTimestamp": iso_time(self.generated_at),
            "deviceHealth": [d.to_json() for d in self.devices],
            "overallMetrics": {
                "totalDevices": len(self.devices),
                "healthyDevices": self.count("healthy"),
                "warningDevices": self.count("warning"),
                "devicesWithConflicts": self.count("conflict"),
                "offlineDevices": self.count("offline"),
            },
        }

    @staticmethod
    def merge_totals(pages: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """The ``overallMetrics`` of a whole fleet from those of its pages.

        Each page is a `to_json` body (or its ``overallMetrics``), as the sync manager answers
        a ``health_report`` over one page of ``thingNames``; the counts add up.

        ```pycon
        >>> HealthReport.merge_totals([
        ...     {"overallMetrics": {"totalDevices": 2, "healthyDevices": 1, "warningDevices": 1,
        ...                         "devicesWithConflicts": 0, "offlineDevices": 0}},
        ...     {"totalDevices": 1, "healthyDevices": 0, "warningDevices": 0,
        ...      "devicesWithConflicts": 0, "offlineDevices": 1}])["offlineDevices"]
        1

        ```
        """
        totals = dict.fromkeys(_TOTALS, 0)
        for index, page in enumerate(pages):
            metrics = page.get("overallMetrics", page) if isinstance(page, Mapping) else None
            if not isinstance(metrics, Mapping):
                raise InvalidArgumentError(f"page {index} is {describe(page)}, not a report")
            for key in _TOTALS:
                value = metrics.get(key)
                if type(value) is not int or value < 0:
                    raise InvalidArgumentError(
                        f"page {index}: {key} must be a count, got {describe(value)}"
                    )
                totals[key] += value
        return totals

    def to_text(self) -> str:
        """A table for people: one line per device that is not healthy, then the totals."""
        lines = []
        for device in self.devices:
            if device.status != "healthy":
                lines.append(f"{device.thing_name}: {device.status} ({'; '.join(device.reasons)})")
        lines.append(
            f"{len(self.devices)} devices: {self.count('healthy')} healthy, "
            f"{self.count('warning')} warning, {self.count('conflict')} conflict, "
            f"{self.count('offline')} offline"
        )
        return "\n".join(lines)


def _device_health(
    thing: str,
    shadows: Mapping[str | None, ShadowDocument | Mapping[str, Any] | None],
    names: tuple[str | None, ...],
    records: Sequence[Any],
    thresholds: HealthThresholds,
    now: int,
) -> DeviceHealth:
    reasons: list[tuple[int, str]] = []
    last_seen: int | None = None
    present = 0
    pending = 0
    for name in names:
        document = shadow_document(shadows.get(name))
        label = shadow_label(name)
        if document is None:
            reasons.append((_RANK["warning"], f"shadow {label} not found"))
            continue
        present += 1
        seen = newest_report(document)
        if seen is not None and (last_seen is None or seen > last_seen):
            last_seen = seen
        paths = leaf_paths(document.delta or {})
        pending += len(paths)
        desired_stamps = stamps_from_metadata(document.section_metadata("desired"))
        overdue = [
            p
            for p in paths
            if (stamp := desired_stamps.get(p)) is not None
            and now - stamp > thresholds.pending_after_seconds
        ]
        if overdue:
            oldest = min(desired_stamps[p] for p in overdue)
            reasons.append(
                (
                    _RANK["warning"],
                    f"{len(overdue)} desired value(s) in {label} pending for {now - oldest} s",
                )
            )
    if last_seen is None:
        reasons.append((_RANK["offline"], "never reported"))
    elif now - last_seen > thresholds.offline_after_seconds:
        reasons.append((_RANK["offline"], f"no report for {now - last_seen} s"))
    since = now - thresholds.conflict_window_seconds
    conflicts = recent_conflicts(records, since=since, until=now)
    reviews = sum(1 for r in conflicts if r.change_type == "manual_review")
    if conflicts:
        rank = (
            _RANK["conflict"]
            if len(conflicts) >= thresholds.conflicts_for_conflict
            else _RANK["warning"]
        )
        text = f"{len(conflicts)} conflict(s) in the last {thresholds.conflict_window_seconds} s"
        if reviews:
            text += f", {reviews} held for review"
        reasons.append((rank, text))
    reasons.sort(key=lambda item: -item[0])
    worst = reasons[0][0] if reasons else 0
    status = next(name for name, rank in _RANK.items() if rank == worst)
    return DeviceHealth(
        thing_name=thing,
        status=status,  # type: ignore[arg-type]
        reasons=tuple(text for _, text in reasons),
        shadows=present,
        last_seen=last_seen,
        pending=pending,
        recent_conflicts=len(conflicts),
    )


def health_report(
    request: HealthReportRequest | Mapping[str, Any] | str | bytes,
    shadows: Mapping[str, Mapping[str | None, ShadowDocument | Mapping[str, Any] | None]],
    *,
    now: int,
    history: History = (),
    thresholds: HealthThresholds | None = None,
) -> HealthReport:
    """Assess each requested device: healthy, warning, conflict or offline, with the reasons.

    ``shadows`` maps each thing name to its shadows (shadow name -> document, None or left out
    when it does not exist); ``history`` holds the things' history records. The shadows looked
    at are the request's ``shadowNames``, else ``thresholds.expected_shadows``.

    ```pycon
    >>> from shadowsync import apply_update
    >>> doc = apply_update(None, {"state": {"reported": {"rssi": -60}}},
    ...                    timestamp=1700000000).document
    >>> report = health_report({"thingNames": ["pump-7", "pump-8"]},
    ...                        {"pump-7": {None: doc}, "pump-8": {}}, now=1700000060)
    >>> [(d.thing_name, d.status) for d in report.devices]
    [('pump-7', 'healthy'), ('pump-8', 'offline')]
    >>> report.devices[1].reasons
    ('never reported', 'shadow $default not found')

    ```
    """
    now = check_now(now)
    parsed: HealthReportRequest = sync_request(request, HealthReportRequest, "health_report")
    limits = thresholds if thresholds is not None else HealthThresholds()
    if not isinstance(limits, HealthThresholds):
        raise InvalidArgumentError(
            f"thresholds must be HealthThresholds, got {type(limits).__name__}"
        )
    if not isinstance(shadows, Mapping):
        raise InvalidArgumentError(
            f"shadows must map thing names to their shadows, got {type(shadows).__name__}"
        )
    names = parsed.shadow_names if parsed.shadow_names is not None else limits.expected_shadows
    log = as_log(history)
    by_thing: dict[str, list[Any]] = {}
    for record in log.records:
        by_thing.setdefault(record.thing_name, []).append(record)
    devices = []
    for thing in parsed.thing_names:
        own = shadows.get(thing, {})
        if not isinstance(own, Mapping):
            raise InvalidArgumentError(
                f"shadows[{thing!r}] must map shadow names to documents, got {type(own).__name__}"
            )
        devices.append(_device_health(thing, own, names, by_thing.get(thing, []), limits, now))
    return HealthReport(generated_at=now, devices=tuple(devices))
