"""`ThingSession`: every shadow of a thing on one connection, against the in-memory service."""

from __future__ import annotations

from typing import Any

import pytest

from shadowsync import ShadowDocument, ThingSession, topics
from shadowsync._json import dumps_compact
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import (
    ConflictResolved,
    DeltaReceived,
    Event,
    FromShadow,
    MessageIgnored,
    Subscribe,
    Unsubscribe,
)
from shadowsync.rules import Range, RuleSet
from shadowsync.stores import MemoryStore
from shadowsync.strategies import LastWriterWins
from tests.thing_world import THING, ThingWorld

NAMED = ("configuration", "telemetry", "maintenance")


def _doc(world: ThingWorld, shadow: str | None) -> ShadowDocument:
    document = world.service.document(THING, shadow)
    assert document is not None
    return document


def _of(events: list[Event], shadow: str | None, kind: type[Event]) -> list[Any]:
    return [
        e.event
        for e in events
        if isinstance(e, FromShadow) and e.shadow_name == shadow and isinstance(e.event, kind)
    ]


def _four_shadows(world: ThingWorld) -> None:
    world.thing.add_shadow(None)
    world.thing.add_shadow(
        "configuration", rules=RuleSet(rules=[Range(path="target_c", minimum=5, maximum=30)])
    )
    world.thing.add_shadow("telemetry", policy=LastWriterWins())
    world.thing.add_shadow("maintenance")


def test_four_shadows_share_one_connection_and_converge() -> None:
    world = ThingWorld()
    _four_shadows(world)
    outputs = world.thing.connected(world.clock())
    # One subscription for all, before any publish: 4 x 8 topics, spelled out.
    assert isinstance(outputs[0], Subscribe)
    assert len(outputs[0].topics) == 32
    assert not any(isinstance(o, Subscribe) for o in outputs[1:])
    world.online = True
    world.run(outputs)
    assert world.thing.state.value == "in_sync"

    world.run(world.thing.report({"temp_c": 20.5}, world.clock(), shadow="telemetry"))
    world.run(world.thing.report({"firmware": "1.2.0"}, world.clock(), shadow=None))
    world.cloud("configuration", {"state": {"desired": {"target_c": 21, "fan": "auto"}}})
    world.cloud("configuration", {"state": {"desired": {"target_c": 45}}})  # refused by rule
    world.cloud("maintenance", {"state": {"desired": {"reboot": True}}})

    assert _doc(world, "telemetry").reported == {"temp_c": 20.5}
    assert _doc(world, None).reported == {"firmware": "1.2.0"}
    assert world.thing.session("configuration").accepted_desired == {
        "target_c": 21,
        "fan": "auto",
    }
    assert _of(world.events, "maintenance", DeltaReceived)[-1].state == {"reboot": True}
    health = world.thing.health(world.clock())
    assert health.subscriptions == 32
    assert set(health.shadows) == {None, *NAMED}
    assert health.pending_intents == 0
    assert health.to_json()["shadows"][""]["state"] == "in_sync"


def test_cloud_writes_while_offline_reach_every_shadow_after_a_reboot() -> None:
    world = ThingWorld()
    _four_shadows(world)
    world.connect()
    world.disconnect()
    for shadow in (None, *NAMED):
        world.cloud(shadow, {"state": {"desired": {"written": shadow or "classic"}}})
    world.run(world.thing.report({"temp_c": 19.0}, world.clock(), shadow="telemetry"))
    world.reboot()
    _four_shadows(world)
    assert world.thing.health(world.clock()).pending_intents == 1
    world.connect()
    for shadow in (None, *NAMED):
        (delta,) = _of(world.events, shadow, DeltaReceived)
        assert delta.state == {"written": shadow or "classic"}
    assert _doc(world, "telemetry").reported == {"temp_c": 19.0}


def test_beyond_the_budget_named_shadows_are_wildcards() -> None:
    world = ThingWorld()
    world.thing.add_shadow(None)
    for n in range(59):
        world.thing.add_shadow(f"s{n}")
    world.connect()
    subscribed = world.thing.subscriptions
    assert len(subscribed) == 16 <= 50
    assert f"$aws/things/{THING}/shadow/name/+/update/delta" in subscribed
    world.run(world.thing.report({"n": 7}, world.clock(), shadow="s42"))
    assert _doc(world, "s42").reported == {"n": 7}
    # A message for a shadow the device does not hold is ignored, and said so.
    before = len(world.events)
    world.cloud("other", {"state": {"desired": {"x": 1}}})
    ignored = world.events[before:]
    # update/accepted, update/delta and update/documents of "other" all reach the wildcards.
    assert [type(e) for e in ignored] == [MessageIgnored] * 3
    assert "shadow 'other' is not on this device" in ignored[0].reason  # type: ignore[attr-defined]


def test_adding_shadows_at_runtime_moves_to_wildcards_within_the_budget() -> None:
    world = ThingWorld(max_subscriptions=40)
    world.thing.add_shadow(None)
    world.connect()
    for n in range(4):
        out = world.thing.add_shadow(f"s{n}", world.clock())
        world.run(out)
        assert len(world.filters) <= 40
    # 5 x 8 = 40 fit spelled out; the sixth shadow moves the named ones to wildcards.
    assert len(world.thing.subscriptions) == 40
    out = world.thing.add_shadow("s4", world.clock())
    assert isinstance(out[0], Subscribe)
    assert isinstance(out[1], Unsubscribe)
    world.run(out)
    assert len(world.filters) == 16
    world.run(world.thing.report({"late": True}, world.clock(), shadow="s4"))
    assert _doc(world, "s4").reported == {"late": True}
    removed = world.thing.remove_shadow("s4", world.clock())
    world.run(removed)
    assert "s4" not in world.thing.shadow_names


def test_removing_a_shadow_unsubscribes_its_topics() -> None:
    world = ThingWorld()
    world.thing.add_shadow(None)
    world.thing.add_shadow("telemetry")
    world.connect()
    out = world.thing.remove_shadow("telemetry", world.clock())
    assert isinstance(out[0], Unsubscribe)
    assert set(out[0].topics) == set(topics.subscriptions(THING, "telemetry"))
    world.run(out)
    assert len(world.filters) == 8
    with pytest.raises(InvalidArgumentError, match="not on thing"):
        world.thing.report({"a": 1}, world.clock(), shadow="telemetry")


def test_a_conflict_storm_on_one_shadow_does_not_hold_back_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = ThingWorld()
    _four_shadows(world)
    world.connect()
    stormy = world.thing.session("maintenance")
    # Every update of maintenance meets a 409: another writer always gets there first.
    real_handle = world.service.handle

    def racing(topic: str, payload: bytes | str) -> list[tuple[str, bytes]]:
        if topic == topics.build(THING, "update", shadow_name="maintenance"):
            real_handle(topic, dumps_compact({"state": {"reported": {"race": 1}}}).encode())
        return real_handle(topic, payload)

    monkeypatch.setattr(world.service, "handle", racing)
    world.run(world.thing.report({"hours": 10}, world.clock(), shadow="maintenance"))
    world.run(world.thing.report({"temp_c": 22.0}, world.clock(), shadow="telemetry"))
    assert _doc(world, "telemetry").reported == {"temp_c": 22.0}
    assert stormy.health(world.clock()).consecutive_failures >= 1
    world.advance(30)
    world.run(world.thing.report({"temp_c": 23.0}, world.clock(), shadow="telemetry"))
    assert _doc(world, "telemetry").reported == {"temp_c": 23.0}
    assert world.thing.health(world.clock()).shadows["telemetry"].consecutive_failures == 0


def test_local_desired_changes_are_per_shadow() -> None:
    world = ThingWorld()
    _four_shadows(world)
    world.connect()
    world.cloud("configuration", {"state": {"desired": {"target_c": 21}}})
    world.disconnect()
    world.run(world.thing.desire({"target_c": 19}, world.clock(), shadow="configuration"))
    world.clock.advance(50)
    world.cloud("configuration", {"state": {"desired": {"target_c": 24}}})
    world.connect()
    (conflict,) = _of(world.events, "configuration", ConflictResolved)
    assert conflict.report.records[0].theirs == 24
    assert _doc(world, "configuration").desired == {"target_c": 24}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="max_subscriptions"):
        ThingSession(THING, store=MemoryStore(), token=str, random=float, max_subscriptions=10)
    thing = ThingSession(THING, store=MemoryStore(), token=lambda: "t", random=lambda: 0.5)
    thing.add_shadow("a")
    with pytest.raises(InvalidArgumentError, match="held already"):
        thing.add_shadow("a")
    thing.connected(1.0)
    with pytest.raises(InvalidArgumentError, match="needs now"):
        thing.add_shadow("b")
    assert [type(e) for e in thing.receive_message("not/a/shadow", b"{}", 2.0)] == [MessageIgnored]
    other = thing.receive_message("$aws/things/other/shadow/name/a/update/delta", b"{}", 2.0)
    assert "not for thing" in other[0].reason  # type: ignore[attr-defined]
