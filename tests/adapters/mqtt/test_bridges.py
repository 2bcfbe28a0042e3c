"""The bridges' own contract: arguments, life cycle, manual polling, events, errors, imports."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from shadowsync import SessionState, ShadowSession
from shadowsync.errors import InvalidArgumentError, InvalidRequestError
from shadowsync.events import IntentsQueued, RequestFailed, StateChanged
from shadowsync.mqtt import DeviceBridge, ServiceBridge
from shadowsync.stores import MemoryStore
from shadowsync.testing import InMemoryShadowService, ManualClock
from tests.adapters.mqtt.conftest import fast_config, wait_for

if TYPE_CHECKING:
    from paho.mqtt.client import MQTTMessage

    from tests.adapters.mqtt.conftest import Rig


def _session(thing: str = "lamp-1") -> ShadowSession:
    return ShadowSession(
        thing, store=MemoryStore(), token=lambda: "t1", random=lambda: 0.5, config=fast_config()
    )


def _client() -> Client:
    return Client(callback_api_version=CallbackAPIVersion.VERSION2)


def test_without_paho_the_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "for name in ('paho', 'paho.mqtt', 'paho.mqtt.client', 'paho.mqtt.enums'):\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        "    import shadowsync.mqtt\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install "shadowsync[mqtt]"' in done.stdout
    assert "paho-mqtt 2.x" in done.stdout


def test_the_arguments_are_checked() -> None:
    with pytest.warns(DeprecationWarning, match="Callback API version 1"):
        old = Client(callback_api_version=CallbackAPIVersion.VERSION1)
    with pytest.raises(InvalidArgumentError, match="VERSION2"):
        DeviceBridge(old, _session())
    with pytest.raises(InvalidArgumentError, match=r"paho\.mqtt\.client\.Client"):
        DeviceBridge(object(), _session())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="ShadowSession"):
        DeviceBridge(_client(), "lamp-1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="clock"):
        DeviceBridge(_client(), _session(), clock=1700000000)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="on_event"):
        DeviceBridge(_client(), _session(), on_event="print")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_kept_events"):
        DeviceBridge(_client(), _session(), max_kept_events=0)
    with pytest.raises(InvalidArgumentError, match="on_error"):
        ServiceBridge(_client(), InMemoryShadowService(), on_error=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="InMemoryShadowService"):
        ServiceBridge(_client(), {})  # type: ignore[arg-type]


def test_a_closed_bridge_gives_back_the_client_and_refuses_commands() -> None:
    client = _client()
    bridge = DeviceBridge(client, _session())
    with bridge:
        assert client.on_message is not None
        assert [type(e) for e in bridge.report({"on": True})] == [IntentsQueued]
        assert [type(e) for e in bridge.take_events()] == [IntentsQueued]
        assert bridge.take_events() == []
    names = ("on_connect", "on_disconnect", "on_message", "on_subscribe")
    assert [getattr(client, name) for name in names] == [None, None, None, None]
    assert not any(t.name.startswith("shadowsync-mqtt") for t in threading.enumerate())
    with pytest.raises(InvalidArgumentError, match="closed"):
        bridge.report({"on": False})
    with pytest.raises(InvalidArgumentError, match="closed"):
        bridge.start()
    bridge.close()  # closing twice is harmless


def test_without_on_event_only_the_latest_events_are_kept() -> None:
    with DeviceBridge(_client(), _session(), max_kept_events=3) as bridge:
        for value in range(5):
            bridge.report({f"k{value}": value})  # distinct paths: nothing is superseded
        kept = bridge.take_events()
    assert [type(e) for e in kept] == [IntentsQueued] * 3
    assert [e.intents[0].value for e in kept if isinstance(e, IntentsQueued)] == [2, 3, 4]


def test_poll_drives_timeouts_on_the_injected_clock(rig: Rig) -> None:
    clock = ManualClock(1_700_000_000)
    session = _session()
    client = rig.client("device")
    bridge = DeviceBridge(client, session, clock=clock).start(scheduler=False)
    rig.run(client)  # no service answers: the GET stays in flight
    assert wait_for(lambda: bridge.state is SessionState.FETCHING)
    assert bridge.next_deadline() == 1_700_000_000.5

    assert bridge.poll() == []
    clock.advance(0.5)
    events = bridge.poll()

    assert [type(e) for e in events] == [RequestFailed, StateChanged]
    assert bridge.state is SessionState.BACKOFF
    assert bridge.next_deadline() == pytest.approx(1_700_000_000.55)  # 0.1 s less half jitter
    assert bridge.health().consecutive_failures == 1
    bridge.close()


def test_a_bridge_started_on_a_connected_client_syncs_at_once(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    rig.service_bridge(service, service_errors)
    service.update("lamp-1", {"state": {"reported": {"on": True}}})
    client = rig.client("device")
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    rig.run(client)
    assert connected.wait(5)

    with DeviceBridge(client, _session()) as bridge:
        assert wait_for(lambda: bridge.state is SessionState.IN_SYNC)
        assert bridge.health().last_seen_version == 1


def test_errors_are_logged_without_on_error(
    rig: Rig,
    service: InMemoryShadowService,
    service_errors: list[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig.service_bridge(service, service_errors)
    client = rig.client("device")

    def broken(event: object) -> None:
        raise RuntimeError("the application is broken")

    with DeviceBridge(client, _session(), on_event=broken) as bridge:
        with caplog.at_level(logging.ERROR, logger="shadowsync.mqtt"):
            rig.run(client)
            assert wait_for(lambda: bridge.state is SessionState.IN_SYNC)
            assert wait_for(lambda: "the application is broken" in caplog.text)
        assert all(r.name == "shadowsync.mqtt" for r in caplog.records)


def test_the_service_bridge_answers_bad_requests_as_aws_does(
    rig: Rig, service: InMemoryShadowService, service_errors: list[BaseException]
) -> None:
    cloud = rig.service_bridge(service, service_errors)
    answers: list[tuple[str, bytes]] = []
    watcher = rig.client("watcher")

    def collect(client: Client, userdata: object, message: MQTTMessage) -> None:
        answers.append((message.topic, bytes(message.payload)))

    watcher.on_message = collect
    rig.run(watcher)
    watcher.subscribe("$aws/things/+/shadow/#", qos=1)
    watcher.subscribe("$aws/things/+/shadow/name/+/#", qos=1)
    assert wait_for(lambda: watcher.is_connected())
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *args: subscribed.set()
    watcher.subscribe("sync/barrier", qos=1)
    assert subscribed.wait(5)

    watcher.publish("$aws/things/lamp-1/shadow/update", b"{not json", qos=1)
    watcher.publish("$aws/things/lamp-1/shadow/get", b'{"clientToken": "g1"}', qos=1)
    watcher.publish("$aws/things/lamp-1/shadow/name/cfg/delete", b"", qos=1)
    watcher.publish("$aws/things/lamp-1/shadow/update/accepted", b"{}", qos=1)  # not a request

    def replies() -> list[tuple[str, dict[str, object]]]:
        return [
            (topic, json.loads(payload))
            for topic, payload in list(answers)
            if topic.endswith(("accepted", "rejected"))
        ]

    assert wait_for(lambda: len(replies()) >= 4)
    got = {topic: (body.get("code"), body.get("message")) for topic, body in replies()}
    assert got == {
        "$aws/things/lamp-1/shadow/update/rejected": (400, "Invalid JSON"),
        "$aws/things/lamp-1/shadow/get/rejected": (404, "No shadow exists with name: 'lamp-1'"),
        "$aws/things/lamp-1/shadow/name/cfg/delete/rejected": (
            404,
            "No shadow exists with name: 'cfg'",
        ),
        "$aws/things/lamp-1/shadow/update/accepted": (None, None),  # the watcher's own publish
    }

    with pytest.raises(InvalidRequestError, match="Missing required node: state"):
        cloud.update("lamp-1", {"desired": {"on": True}})
    assert service.document("lamp-1") is None
    assert service_errors == []


def test_a_second_bridge_on_a_client_that_has_one_is_refused() -> None:
    client = _client()
    first = DeviceBridge(client, _session())
    with pytest.raises(InvalidArgumentError, match="already has a DeviceBridge") as refused:
        DeviceBridge(client, _session())
    assert "one connection per thing" in str(refused.value)
    with pytest.raises(InvalidArgumentError, match="already has a DeviceBridge"):
        ServiceBridge(client, InMemoryShadowService())
    with first:
        assert [type(e) for e in first.report({"on": True})] == [IntentsQueued]
    # Closed, the first gives the client back.
    with DeviceBridge(client, _session()) as second:
        assert client.on_message is not None
        assert [type(e) for e in second.report({"on": False})] == [IntentsQueued]


def test_a_bridge_refused_for_a_bad_argument_does_not_hold_the_client() -> None:
    client = _client()
    with pytest.raises(InvalidArgumentError, match="max_kept_events"):
        DeviceBridge(client, _session(), max_kept_events=0)
    DeviceBridge(client, _session()).close()
