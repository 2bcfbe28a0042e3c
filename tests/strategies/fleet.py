"""A fleet of devices with realistic shadows and history, for the cloud-side tests.

`build_fleet` drives an `InMemoryShadowService` on a `ManualClock` the way a fleet lives: the
classic shadow, ``configuration``, ``telemetry`` and ``maintenance`` are created, a baseline
history record is made for each by the resolver, and then, per device and in time order,
conflicts are provoked and resolved (last writer wins, held for review, refused by a rule),
desired values are left pending and the device reports for the last time, recently or hours ago.

While it does so it keeps its own model of every shadow: flat desired and reported values with
the time each was written, the number of updates (the version), and each history record's time,
change type and conflict entries. All fleet states are flat objects of scalars, so the model is
a few dictionaries: the tests compute what the cloud-side reports should say from the model,
independently of the library, and compare.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._conflict.policy import ResolutionPolicy
from shadowsync.audit import AuditLog, HistoryRecord
from shadowsync.cloud import HealthThresholds, ShadowDecision, SyncManager, handle_delta_event
from shadowsync.rules import Range, RuleSet
from shadowsync.strategies import LastWriterWins, ManualReview
from shadowsync.testing import InMemoryShadowService, ManualClock

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync import JSONObject, ShadowDocument

SHADOWS: tuple[str | None, ...] = (None, "configuration", "telemetry", "maintenance")
"""The shadows every device of the fleet should have (None: the classic shadow)."""

NOW = 1_700_000_000 + 3 * 86_400
"""When the fleet is looked at: every write happened before."""

HOUR = 3600
THRESHOLDS = HealthThresholds(expected_shadows=SHADOWS, conflicts_for_conflict=2)
"""Offline after an hour, pending overdue after 10 minutes, two conflicts in a day: conflict."""

LWW = ResolutionPolicy(default=LastWriterWins())
REVIEW = ResolutionPolicy(default=ManualReview())
SAMPLING_RULES = RuleSet(rules=[Range(path="samplingRate", minimum=1, maximum=3600)])
SAMPLING_RULE = "rule:range:samplingRate"

CONFIGURATION: JSONObject = {
    "samplingRate": 30,
    "alertThreshold": 80,
    "operatingMode": "normal",
    "reportInterval": 300,
}
CONFLICT_PATHS = ("alertThreshold", "operatingMode", "reportInterval")


@attrs.define
class ShadowModel:
    """The test's own model of one flat shadow."""

    desired: dict[str, tuple[Any, int]] = attrs.Factory(dict)
    """Key -> (value, when it was written)."""
    reported: dict[str, tuple[Any, int]] = attrs.Factory(dict)
    version: int = 0
    records: list[RecordFacts] = attrs.Factory(list)

    def write(self, section: str, state: Mapping[str, Any], at: int) -> None:
        target = self.desired if section == "desired" else self.reported
        for key, value in state.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = (value, at)

    @property
    def pending(self) -> dict[str, int]:
        """Desired keys the device has not reported (yet), with their desired write time."""
        return {
            key: stamp
            for key, (value, stamp) in self.desired.items()
            if key not in self.reported or not _same(self.reported[key][0], value)
        }

    @property
    def last_report(self) -> int | None:
        return max((stamp for _, stamp in self.reported.values()), default=None)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@attrs.frozen
class RecordFacts:
    """What a history record was expected to hold when the builder provoked it."""

    timestamp: int
    change_type: str
    decision: str
    entries: tuple[tuple[str, str], ...] = ()
    """(conflict kind, strategy) of each conflict the record lists."""


@attrs.define
class DeviceModel:
    thing: str
    shadows: dict[str | None, ShadowModel] = attrs.Factory(dict)

    @property
    def last_seen(self) -> int | None:
        seen = [s.last_report for s in self.shadows.values() if s.last_report is not None]
        return max(seen) if seen else None

    def records(self) -> list[tuple[str | None, RecordFacts]]:
        return [(name, r) for name, shadow in self.shadows.items() for r in shadow.records]


@attrs.define
class Fleet:
    """The service, one audit log per device, and the model of every device."""

    service: InMemoryShadowService
    clock: ManualClock
    logs: dict[str, AuditLog]
    devices: dict[str, DeviceModel]

    @property
    def things(self) -> tuple[str, ...]:
        return tuple(self.devices)

    def read_shadow(self, thing: str, shadow: str | None) -> ShadowDocument | None:
        return self.service.document(thing, shadow)

    def read_history(self, thing: str | None) -> AuditLog | list[HistoryRecord]:
        if thing is not None:
            return self.logs.get(thing, AuditLog())
        return [record for log in self.logs.values() for record in log]

    def shadows_of(self, thing: str) -> dict[str | None, ShadowDocument | None]:
        return {name: self.read_shadow(thing, name) for name in SHADOWS}

    def manager(self) -> SyncManager:
        return SyncManager(
            read_shadow=self.read_shadow, read_history=self.read_history, thresholds=THRESHOLDS
        )


class _Device:
    """Writes one device's shadows through the service, resolving as the cloud side would."""

    def __init__(self, fleet: Fleet, thing: str) -> None:
        self.fleet = fleet
        self.thing = thing
        self.model = DeviceModel(thing=thing)
        self.log = AuditLog()
        fleet.logs[thing] = self.log
        fleet.devices[thing] = self.model
        self.counter = 0

    def write(self, shadow: str | None, at: int, section: str, state: JSONObject) -> None:
        self.fleet.clock.set(at)
        result = self.fleet.service.update(
            self.thing, {"state": {section: state}}, shadow_name=shadow
        )
        model = self.model.shadows.setdefault(shadow, ShadowModel())
        model.write(section, state, at)
        model.version += 1
        assert result.document.version == model.version

    def resolve(
        self,
        shadow: str | None,
        at: int,
        expected: RecordFacts,
        *,
        policy: ResolutionPolicy = LWW,
        rules: RuleSet | None = None,
    ) -> ShadowDecision:
        document = self.fleet.service.document(self.thing, shadow)
        assert document is not None
        event = {
            "thingName": self.thing,
            "shadowName": shadow,
            "state": document.delta or {},
            "version": document.version,
        }
        decision = handle_delta_event(
            event, document, now=at, history=self.log, policy=policy, rules=rules
        )
        if decision.update is not None:
            self.fleet.clock.set(at)
            self.fleet.service.update(self.thing, decision.update, shadow_name=shadow)
            model = self.model.shadows[shadow]
            update: Any = decision.update
            model.write("desired", update["state"]["desired"], at)
            model.version += 1
        self.log.add(decision.record)
        conflicts: Any = (decision.record.details or {}).get("conflicts", [])
        facts = RecordFacts(
            timestamp=decision.record.timestamp,
            change_type=decision.record.change_type,
            decision=decision.record.decision,
            entries=tuple((entry["kind"], entry["strategy"]) for entry in conflicts),
        )
        assert facts == expected, (facts, expected)
        self.model.shadows[shadow].records.append(facts)
        return decision

    # The device's life ----------------------------------------------------------------------

    def create(self, at: int, *, missing: tuple[str | None, ...] = (), silent: bool) -> None:
        """Create the shadows and make a baseline record of each.

        A silent device was provisioned (its configuration's desired state set) but never
        reported: it has only the configuration shadow, all of it pending.
        """
        states: dict[str | None, JSONObject] = {
            None: {"connected": True, "rssi": -60},
            "configuration": dict(CONFIGURATION),
            "telemetry": {"temperature": 21.5, "humidity": 40.0},
            "maintenance": {"firmwareVersion": "v1.0.0", "serviceDue": "2024-01"},
        }
        for name in SHADOWS:
            if name in missing or (silent and name != "configuration"):
                continue
            if name == "configuration":
                self.write(name, at, "desired", dict(CONFIGURATION))
            if not silent:
                self.write(name, at, "reported", states[name])
            self.resolve(
                name, at, RecordFacts(timestamp=at, change_type="update", decision="accept")
            )

    def conflict(self, at: int, *, review: bool, type_change: bool) -> None:
        """The cloud and the device change one configuration value differently."""
        self.counter += 1
        path = CONFLICT_PATHS[self.counter % len(CONFLICT_PATHS)]
        cloud: Any = f"cloud-{self.counter}" if path == "operatingMode" else 1000 + self.counter
        device: Any = f"device-{self.counter}" if path == "operatingMode" else 2000 + self.counter
        if type_change:
            device = [self.counter] if path != "operatingMode" else self.counter
        self.write("configuration", at - 20, "desired", {path: cloud})
        self.write("configuration", at - 10, "reported", {path: device})
        kind = "data_type_conflict" if type_change else "concurrent_modification"
        strategy = "manual_review" if review else "last_writer_wins"
        self.resolve(
            "configuration",
            at,
            RecordFacts(
                timestamp=at,
                change_type="manual_review" if review else "conflict_resolved",
                decision="review" if review else "merge",
                entries=((kind, strategy),),
            ),
            policy=REVIEW if review else LWW,
        )

    def refused(self, at: int) -> None:
        """The cloud asks for a sampling rate a business rule refuses."""
        self.write("configuration", at - 10, "desired", {"samplingRate": 5000})
        self.resolve(
            "configuration",
            at,
            RecordFacts(
                timestamp=at,
                change_type="rule_rejected",
                decision="reject",
                entries=(("business_rule_violation", SAMPLING_RULE),),
            ),
            rules=SAMPLING_RULES,
        )

    def leave_pending(self, shadow: str | None, at: int) -> None:
        """The cloud sets a desired value the device has not applied by ``NOW``."""
        self.counter += 1
        state: JSONObject
        if shadow == "maintenance":
            state = {"firmwareVersion": f"v1.{self.counter}.0"}
        elif shadow == "configuration":
            state = {"schedule": f"plan-{self.counter}"}
        else:
            state = {"ledColor": f"color-{self.counter}"}
        self.write(shadow, at, "desired", state)

    def report(self, at: int) -> None:
        """The device's last telemetry report."""
        self.counter += 1
        self.write("telemetry", at, "reported", {"temperature": 20 + self.counter / 10})


def build_fleet(size: int = 300, seed: int = 2024) -> Fleet:
    """A fleet of ``size`` devices; the same seed builds the same fleet."""
    rng = random.Random(seed)
    clock = ManualClock(NOW - 2 * 86_400)
    fleet = Fleet(service=InMemoryShadowService(clock=clock), clock=clock, logs={}, devices={})
    for index in range(size):
        device = _Device(fleet, f"sensor-{index:04d}")
        silent = rng.random() < 0.02
        offline = not silent and rng.random() < 0.15
        missing: tuple[str | None, ...] = ()
        if rng.random() < 0.05:
            missing = (rng.choice(("maintenance", "telemetry", None)),)
        device.create(NOW - 40 * HOUR - rng.randint(0, HOUR), missing=missing, silent=silent)
        if silent:
            continue
        # The latest the device is heard of: hours ago when offline, within the hour else.
        latest = NOW - rng.randint(2 * HOUR, 10 * HOUR) if offline else NOW - rng.randint(5, 3000)
        events: list[tuple[int, str]] = []
        if rng.random() < 0.1:
            events.append((NOW - rng.randint(25 * HOUR, 30 * HOUR), "conflict"))
        roll = rng.random()
        recent = 0 if roll < 0.7 else 1 if roll < 0.85 else rng.randint(2, 3)
        refused = rng.random() < 0.05
        # Conflicts and refusals in the last 20 hours, before the latest report, in slots of
        # 100 seconds so that one is settled before the next begins.
        first = NOW - 20 * HOUR
        slots = rng.sample(range((latest - 60 - first) // 100), recent + refused)
        for number, slot in enumerate(slots):
            events.append((first + 100 * slot + 30, "refused" if number == recent else "conflict"))
        if rng.random() < 0.25:
            # Overdue (more than 10 minutes) or not yet (10 minutes at most); the boundary
            # itself is drawn often.
            age = rng.choice((599, 600, 601, rng.randint(30, 599), rng.randint(601, 5 * HOUR)))
            shadows = [s for s in SHADOWS if s not in missing and s != "telemetry"]
            events.append((NOW - age, "pending:" + str(rng.choice(shadows))))
        events.sort()
        for at, kind in events:
            if kind == "conflict":
                device.conflict(at, review=rng.random() < 0.3, type_change=rng.random() < 0.2)
            elif kind == "refused":
                device.refused(at)
            else:
                pending = kind.split(":", 1)[1]
                device.leave_pending(None if pending == "None" else pending, at)
        if "telemetry" not in missing:
            device.report(latest)
    clock.set(NOW)
    for thing, model in fleet.devices.items():
        for name, shadow in model.shadows.items():
            document = fleet.service.document(thing, name)
            assert document is not None
            assert document.version == shadow.version
            assert document.desired == {k: v for k, (v, _) in shadow.desired.items()}
            assert document.reported == {k: v for k, (v, _) in shadow.reported.items()}
    return fleet
