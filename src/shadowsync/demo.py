"""A guided, in-process tour of shadowsync: run ``python -m shadowsync.demo``.

A thermostat and a cloud application share the thermostat's shadow through the AWS-faithful
`InMemoryShadowService`, over the same reserved MQTT topics and JSON
bodies AWS IoT uses. Nothing touches a network; the clock is a `ManualClock`.
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any, TextIO

from shadowsync import (
    ResolutionPolicy,
    SessionConfig,
    compute_delta,
    make_json_patch,
    merge,
    topics,
)
from shadowsync.audit import AuditLog
from shadowsync.cloud import HealthThresholds, handle_delta_event, health_report
from shadowsync.errors import ShadowRejectedError
from shadowsync.events import ConflictResolved, Dropped
from shadowsync.reconcile import Component, Reconciler
from shadowsync.rules import RuleSet
from shadowsync.strategies import LastWriterWins
from shadowsync.testing import Faults, InMemoryShadowService, LoopbackPair, ManualClock

THING = "thermostat-42"


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0

    def section(self, title: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {title}", file=self.out)
        print("-" * (len(title) + 4), file=self.out)

    def say(self, text: str) -> None:
        print(f"   {text}", file=self.out)

    def show(self, label: str, body: Any) -> None:
        text = f"{label}: {json.dumps(body)}"
        lines = textwrap.wrap(text, width=96, subsequent_indent="      ", break_on_hyphens=False)
        for line in lines:
            print(f"   {line}", file=self.out)

    def mqtt(self, messages: list[tuple[str, bytes]]) -> None:
        for topic, payload in messages:
            print(f"   <- {topic}", file=self.out)
            print(f"      {payload.decode('utf-8')}", file=self.out)


def run(out: TextIO = sys.stdout) -> None:
    """Run the tour, writing it to ``out``."""
    say = _Narrator(out)
    clock = ManualClock(1_700_000_000)
    service = InMemoryShadowService(clock=clock)
    update = topics.build(THING, "update")

    say.section("The cloud asks for 21.5 degrees (over MQTT, as a phone app would)")
    request = {"state": {"desired": {"target_c": 21.5, "mode": "heat"}}, "clientToken": "app-1"}
    say.show("publish to " + update, request)
    say.mqtt(service.handle(update, json.dumps(request).encode()))
    say.say("The service answers on accepted, then publishes the delta the device must act")
    say.say("on, then the full before/after documents. The shadow did not exist: version 1.")

    clock.advance(30)
    say.section("The thermostat comes online, reads its shadow and reports what it did")
    body = service.get(THING)
    delta = body["state"].get("delta", {})
    say.show("GET state.delta", delta)
    report = {"state": {"reported": {"target_c": 21.5, "mode": "heat", "temp_c": 19.0}}}
    result = service.update(THING, report)
    say.show("reported update accepted, version", result.document.version)
    say.say(f"delta published: {result.delta is not None} (desired and reported now agree)")
    say.show("metadata.desired (timestamps per leaf)", result.document.desired_metadata)

    clock.advance(60)
    say.section("Two writers race: optimistic locking with `version`")
    seen = result.document.version
    first = service.update(THING, {"state": {"desired": {"target_c": 23}}, "version": seen})
    say.say(f"writer A with version {seen}: accepted, now version {first.document.version}")
    try:
        service.update(
            THING, {"state": {"desired": {"target_c": 18}}, "version": seen, "clientToken": "B"}
        )
    except ShadowRejectedError as err:
        say.show(f"writer B with stale version {seen} gets update/rejected", err.to_rejected())
    say.say("B must re-read and merge; nothing B sent was applied.")

    clock.advance(5)
    say.section("Deep merge, null deletes, arrays replace whole")
    before = _sections(service.get(THING))
    step = {
        "state": {
            "desired": {"schedule": [{"at": "07:00", "c": 21}, {"at": "22:00", "c": 17}]},
            "reported": {"temp_c": None, "firmware": {"version": "1.4.2", "channel": "stable"}},
        }
    }
    result = service.update(THING, step)
    after = _sections(service.get(THING))
    say.show("request", step["state"])
    say.show("RFC 6902 patch, before -> after", make_json_patch(before, after))
    say.show("delta now", compute_delta(after["desired"], after["reported"]))

    say.section("Bad input is refused with the AWS code and text, and changes nothing")
    version = result.document.version
    cases: list[tuple[str, bytes | str]] = [
        ("not JSON", b"{state: oops}"),
        ("delta is not writable", b'{"state": {"delta": {"x": 1}}}'),
        ("too deep", b'{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}'),
        ("null inside an array", b'{"state": {"desired": {"rgb": [255, null, 0]}}}'),
        ("over 8 KB once merged", json.dumps({"state": {"reported": {"log": "x" * 9000}}})),
        ("not UTF-8", b'{"state": {"reported": {"name": "\xff"}}}'),
    ]
    for label, payload in cases:
        try:
            service.update(THING, payload)
        except ShadowRejectedError as err:
            say.say(f"{label:<24} -> {err.code} {err.message}")
    now = service.get(THING)["version"]
    say.say(f"version before: {version}, after all six rejections: {now}")

    say.section("Named shadows, delete, and the version sequence")
    service.update(THING, {"state": {"reported": {"fw": "1.4.2"}}}, shadow_name="firmware")
    service.update(THING, {"state": {"reported": {"rssi": -61}}}, shadow_name="telemetry")
    say.show("named shadows", service.list_named_shadows(THING)["results"])
    say.show("delete classic shadow", service.delete(THING))
    clock.advance(3600)
    recreated = service.update(THING, {"state": {"reported": {"temp_c": 20.0}}})
    say.say(f"re-created an hour later at version {recreated.document.version}: AWS keeps the")
    say.say("sequence for 48 hours, so stale readers can still tell old from new.")

    clock.advance(60)
    say.section("Offline edits on both sides, settled path by path")
    base = {"target_c": 21, "mode": "heat", "fan": "auto", "firmware": "1.4.2"}
    device = {"target_c": 19, "mode": "heat", "fan": "low", "firmware": "1.4.2"}
    cloud = {"target_c": 23, "mode": "eco", "fan": "auto", "firmware": "1.3.0"}
    say.show("last agreed", base)
    say.show("device (offline, edited at t=100)", device)
    say.show("cloud (edited at t=160)", cloud)
    guards = RuleSet.from_dict(
        {
            "rules": [
                {"type": "range", "path": "target_c", "min": 10, "max": 30},
                {"type": "no_firmware_downgrade", "path": "firmware"},
            ]
        }
    )
    settled = merge(
        base,
        device,
        cloud,
        policy=LastWriterWins(),
        ours_stamps={(key,): 100 for key in device},
        theirs_stamps={(key,): 160 for key in cloud},
        rules=guards,
        timestamp=int(clock()),
    )
    for change in settled.changes:
        say.say(f"{'.'.join(change.path):<10} {change.change.value}")
    for record in settled.report:
        say.say(f"{'.'.join(record.path):<10} {record.kind.value}: {record.reason}")
    say.show("merged", settled.merged)

    say.section("A device session offline for three hours, over a lossy network")
    pair = LoopbackPair(
        "thermostat-42",
        seed=7,
        faults=Faults(drop=0.1, duplicate=0.1, reorder=0.2),
        config=SessionConfig(auto_report=True),
        rules=guards,
    )
    pair.connect()
    pair.report({"mode": "heat", "temp_c": 20.0})
    pair.cloud_update({"state": {"desired": {"target_c": 21}}})
    pair.run_until_quiet()
    say.show("in sync, reported", pair.service.get("thermostat-42")["state"]["reported"])
    pair.disconnect()
    mark = len(pair.events)
    for hour in range(1, 4):
        pair.report({"temp_c": 20 + hour / 2})
        pair.advance(3600)
    pair.report({"mode": "eco"})
    say.say("offline: the device reported temp_c three times and mode=eco (queued durably);")
    pair.cloud_update({"state": {"reported": {"mode": "away"}}})
    pair.cloud_update({"state": {"desired": {"target_c": 35}}})
    say.say("meanwhile the cloud wrote reported.mode=away and desired.target_c=35.")
    pair.advance(3600)
    pair.heal()
    say.say(f"reconnected over faulty links; quiet again: {pair.run_until_quiet()}")
    for event in pair.events[mark:]:
        if isinstance(event, Dropped):
            for drop in event.records:
                why = " (a newer reading replaced it)" if drop.reason == "superseded" else ""
                say.say(f"queue: {'.'.join(drop.intent.path)} {drop.reason}{why}")
        if isinstance(event, ConflictResolved):
            for record in event.report:
                say.say(f"{'.'.join(record.path):<10} {record.strategy}: {record.reason}")
    reported = pair.service.get("thermostat-42")["state"]["reported"]
    say.show("reported now", {key: value for key, value in reported.items() if key != "$ack"})
    say.show("acknowledgement", reported["$ack"]["rejected"])
    say.say(f"device and cloud still differ on: {pair.differences() or 'nothing'}")

    say.section("The cloud's conflict resolver, and a fleet health report")
    _cloud_side(say, pair.service, pair.clock)

    say.section("Target-state reconciliation: steps in order, and a rollback")
    _reconcile(say)
    print("\nDone. See docs/ for the semantics behind each step.", file=out)


def _cloud_side(say: _Narrator, service: InMemoryShadowService, clock: ManualClock) -> None:
    log = AuditLog()
    settings = {"fan": "auto", "interval_s": 60, "mode": "heat"}
    created = service.update(
        THING, {"state": {"desired": settings, "reported": settings}}, shadow_name="configuration"
    )
    log.append(
        THING,
        "configuration",
        previous_state=None,
        new_state=created.document,
        version=created.document.version,
        timestamp=int(clock()),
        change_type="update",
        decision="accept",
        reason="baseline",
    )
    clock.advance(30)
    cloud = service.update(
        THING,
        {"state": {"desired": {"interval_s": 30, "fan": "high"}}},
        shadow_name="configuration",
    )
    clock.advance(5)
    service.update(
        THING,
        {"state": {"reported": {"interval_s": 120, "mode": "eco"}}},
        shadow_name="configuration",
    )
    say.say("desired interval_s 60 -> 30 and fan -> high, while the device reported")
    say.say("interval_s 120 and mode eco; the delta event reaches the resolver:")
    event = {**(cloud.delta or {}), "thingName": THING, "shadowName": "configuration"}
    decision = handle_delta_event(
        event,
        service.get(THING, shadow_name="configuration"),
        now=int(clock()),
        history=log,
        policy=ResolutionPolicy.recommended(),
    )
    say.say(f"decision: {decision.decision} ({decision.reason})")
    for item in decision.reviews:
        say.say(
            f"review {'.'.join(item.path)}: cloud {item.current} vs device {item.proposed};"
            f" approve -> {json.dumps(item.approve())}"
        )
    if decision.update is not None:
        say.show("update (desired follows the device's own change)", decision.update["state"])
        service.update(THING, decision.update, shadow_name="configuration")
    say.say("pending for the device: " + ", ".join(".".join(p) for p in decision.pending))
    say.say(
        "emit: "
        + ", ".join(entry["DetailType"] for entry in decision.events)
        + "; "
        + ", ".join(f"{m['MetricName']}={m['Value']}" for m in decision.metrics)
    )
    log.add(decision.record)
    fleet = {
        THING: {
            None: service.get(THING),
            "configuration": service.get(THING, shadow_name="configuration"),
        },
        "thermostat-43": {},
    }
    report = health_report(
        {"thingNames": [THING, "thermostat-43"]},
        fleet,
        now=int(clock()),
        history=log,
        thresholds=HealthThresholds(expected_shadows=(None, "configuration")),
    )
    for line in report.to_text().splitlines():
        say.say(line)
    say.say(f"audit log: {len(log)} records, chain intact: {log.verify().ok}")


def _reconcile(say: _Narrator) -> None:
    components = [
        Component(name="db", path=("apps", "db")),
        Component(name="web", path=("apps", "web"), depends_on=["db"], strategy="handover"),
    ]
    reconciler = Reconciler(components, random=lambda: 0.5)
    running: dict[str, str] = {}
    failing = {"w3"}

    def settle(now: float) -> float:
        while True:
            steps = reconciler.plan(now)
            if not steps:
                deadline = reconciler.next_deadline()
                if deadline is None:
                    return now
                now = deadline
                continue
            for step in steps:
                value = str(step.value)
                if step.action.value == "start" and value in failing:
                    say.say(f"{step.component}: start {value} failed")
                    reconciler.failed(step, error=f"{value} exited with status 1", now=now)
                    continue
                say.say(f"{step.component}: {step.action.value} {value}")
                if step.action.value == "start":
                    running[step.component] = value
                    reconciler.signal(step.component, now)
                elif step.action.value == "stop" and running.get(step.component) == value:
                    del running[step.component]
                reconciler.done(step, observed={"apps": dict(running)}, now=now)

    reconciler.observe({"apps": {}}, now=0)
    reconciler.set_target({"apps": {"db": "pg16", "web": "w2"}}, version=8, now=0)
    now = settle(0)
    say.say(f"status: {reconciler.status().phase.value}, running {running}")
    reconciler.set_target({"apps": {"db": "pg16", "web": "w3"}}, version=9, now=now)
    settle(now)
    status = reconciler.status()
    say.say(
        f"status: {status.phase.value} from version {status.rolled_back_from}, running {running}"
    )
    for ack in reconciler.take_acknowledgements():
        say.show("$ack", ack.to_dict()["rejected"])


def _sections(body: dict[str, Any]) -> dict[str, Any]:
    state = body["state"]
    return {"desired": state.get("desired", {}), "reported": state.get("reported", {})}


if __name__ == "__main__":
    run()
