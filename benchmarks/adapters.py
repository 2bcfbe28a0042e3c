"""The adapters against the raw clients they wrap: MQTT through mosquitto, AWS against moto.

``python -m benchmarks.adapters [--smoke] [--json PATH]``

Everything runs in this process against servers it starts on 127.0.0.1 and stops at the end:
a mosquitto broker (``/usr/sbin/mosquitto``, installed by ``make services``) and a moto server
(``ThreadedMotoServer``, fake credentials). Every row is a ratio ``ours / peer`` timed with the
shared harness of ``benchmarks.timing`` (interleaved batches, medians):

* **MQTT round trip**: `DeviceBridge.report` of a ~1 KB reported change until the device's
  `IntentsConfirmed`, against a bare paho client publishing the same update request (with a
  ``clientToken`` and the ``version``) until it receives the matching ``update/accepted``. One
  `ServiceBridge` answers both, one request in flight at a time.
* **MQTT offline flush**: 1,000 reports (50 in the smoke mode) queued while the device is
  offline, then connect and wait until every one is confirmed; the raw client publishes the
  same 1,000 changes one request each, each awaited.
* **AWS data plane**: `IotShadowClient.get` of the 8 KB benchmark shadow against
  ``get_thing_shadow`` + ``json.loads``, and `IotShadowClient.update` of the 8 KB update
  request against ``update_thing_shadow`` + ``json.loads``.

Results are checked before timing (same accepted versions, same final shadows, the parsed
document equal to the raw JSON) and after it; any disagreement or error exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import boto3
from moto.server import ThreadedMotoServer
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from benchmarks.documents import make_case
from benchmarks.report import Row, _measurement, write_json
from benchmarks.timing import FULL, SMOKE, Bench, TimingConfig, measure_pair, repeated
from shadowsync import (
    SessionConfig,
    SessionState,
    ShadowSession,
    ThingSession,
    json_equal,
    topics,
)
from shadowsync._json import dumps_compact
from shadowsync.aws import IotShadowClient
from shadowsync.events import (
    Event,
    FromShadow,
    IntentsConfirmed,
    UpdateAccepted,
    UpdateRejected,
)
from shadowsync.mqtt import DeviceBridge, ServiceBridge
from shadowsync.stores import MemoryStore, SQLiteStore
from shadowsync.testing import InMemoryShadowService

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from paho.mqtt.client import MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from benchmarks.documents import Case
    from shadowsync import JSONObject
    from shadowsync.stores import Store

HOST = "127.0.0.1"
DEADLINE = 10.0
"""Seconds to wait for any answer; a request unanswered by then is an error, not a timing."""
REGION = "us-east-1"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
SENSORS = 40
"""The offline flush writes the readings of this many sensors, over and over."""
MQTT = "MQTT through mosquitto"
AWS = "AWS data plane against moto server"


class SetupError(Exception):
    """A server could not be started; the message says what to do."""


def wait_for(condition: Callable[[], object], timeout: float = DEADLINE) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= end:
            return bool(condition())
        time.sleep(0.005)
    return True


# -- servers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def find_mosquitto() -> str:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if found is None:
        raise SetupError(
            "mosquitto is not installed; the MQTT benchmarks need a real broker: run "
            "`make services` (it installs Debian's mosquitto)"
        )
    return found


@contextlib.contextmanager
def mosquitto(executable: str, workdir: Path) -> Iterator[int]:
    """A broker listening on a free port of 127.0.0.1 only; yields the port."""
    port = _free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
        # The broker's side of every connection, for the reason given in _connect.
        "set_tcp_nodelay true\n",
        encoding="utf-8",
    )
    log = workdir / "mosquitto.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [executable, "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        listening = wait_for(lambda: process.poll() is not None or _accepts(port))
        if not listening or process.poll() is not None:
            raise SetupError(f"mosquitto did not listen on {HOST}:{port}: {log.read_text()}")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fake_aws_environment() -> Iterator[None]:
    """Fake credentials and no AWS config files, restored afterwards: never the real account."""
    empty = os.devnull
    changes: dict[str, str | None] = {
        **FAKE_AWS,
        "AWS_CONFIG_FILE": empty,
        "AWS_SHARED_CREDENTIALS_FILE": empty,
        "AWS_PROFILE": None,
    }
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 with fake credentials; yields its endpoint URL."""
    # werkzeug logs every request at INFO on stderr, whatever ``verbose`` says.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with fake_aws_environment():
        server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


# -- MQTT clients ------------------------------------------------------------------------------

_client_ids = itertools.count(1)


def _client(role: str) -> Client:
    return Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-{role}-{os.getpid()}-{next(_client_ids)}",
    )


def _connect(client: Client, port: int) -> None:
    client.connect(HOST, port, keepalive=60)
    # Without TCP_NODELAY (paho never sets it), Nagle's algorithm meets the peer's delayed ACK
    # and a request/answer exchange stalls for about 40 ms: that would time the kernel.
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()


def _stop(client: Client) -> None:
    client.disconnect()
    client.loop_stop()


Shadow = tuple[str, str | None]
"""A thing and one of its shadows (``None``: the classic shadow)."""


class RawShadowClient:
    """The peer: a bare paho client that speaks the shadow protocol by hand.

    It publishes update requests (``state``, ``clientToken``, and the ``version`` of the last
    accepted answer, as the session sends with compare-and-set) and waits for the
    ``update/accepted`` carrying each token. It parses every answer on its topics, as any client
    must to find its own.
    """

    def __init__(self, port: int) -> None:
        self.client = _client("raw")
        self.versions: dict[Shadow, int] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._answers: dict[str, tuple[bool, dict[str, Any]]] = {}
        # SUBACKs by message id: one may arrive before subscribe() has returned its id.
        self._acked: set[int] = set()
        self._suback = threading.Condition()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        _connect(self.client, port)
        if not wait_for(self.client.is_connected):
            raise SetupError(f"the raw paho client could not connect to {HOST}:{port}")

    def _answer_topics(self, thing: str, shadow: str | None) -> list[str]:
        return [
            topics.build(thing, "update", "accepted", shadow_name=shadow),
            topics.build(thing, "update", "rejected", shadow_name=shadow),
        ]

    def follow(self, thing: str, version: int, shadow: str | None = None) -> None:
        """Subscribe to the answers about a shadow, at ``version`` now; wait for the SUBACK."""
        self.versions[thing, shadow] = version
        with self._suback:
            result, mid = self.client.subscribe(
                [(name, 1) for name in self._answer_topics(thing, shadow)]
            )
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SetupError(f"the raw client cannot subscribe: {result}")
            if not self._suback.wait_for(lambda: mid in self._acked, DEADLINE):
                raise SetupError(f"no SUBACK for the answers about {thing} within {DEADLINE} s")
            self._acked.discard(mid)

    def unfollow(self, thing: str, shadow: str | None = None) -> None:
        self.client.unsubscribe(self._answer_topics(thing, shadow))
        self.versions.pop((thing, shadow), None)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._suback:
            self._acked.add(mid)
            self._suback.notify_all()

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        body = json.loads(message.payload)
        if not isinstance(body, dict):
            return
        with self._lock:
            waiting = self._waiting.get(body.get("clientToken"))  # type: ignore[arg-type]
            if waiting is not None:
                self._answers[body["clientToken"]] = (message.topic.endswith("/accepted"), body)
                waiting.set()

    def update(self, thing: str, reported: JSONObject, shadow: str | None = None) -> dict[str, Any]:
        """Publish one update of the reported state and return its accepted body."""
        (body,) = self.update_all([(thing, shadow, reported)])
        return body

    def update_all(
        self, requests: list[tuple[str, str | None, JSONObject]]
    ) -> list[dict[str, Any]]:
        """Publish one update per ``(thing, shadow, reported)`` at once, then wait for every
        answer; the accepted bodies in order."""
        sent: list[tuple[str, threading.Event, Shadow]] = []
        for thing, shadow, reported in requests:
            token = f"raw-{next(self._tokens)}"
            request: dict[str, Any] = {
                "state": {"reported": reported},
                "clientToken": token,
                "version": self.versions[thing, shadow],
            }
            answered = threading.Event()
            with self._lock:
                self._waiting[token] = answered
            self.client.publish(
                topics.build(thing, "update", shadow_name=shadow),
                json.dumps(request, separators=(",", ":")),
                qos=1,
            )
            sent.append((token, answered, (thing, shadow)))
        bodies = []
        for token, answered, key in sent:
            if not answered.wait(DEADLINE):
                raise TimeoutError(f"no answer to the raw update {token} of {key} in {DEADLINE} s")
            with self._lock:
                del self._waiting[token]
                accepted, body = self._answers.pop(token)
            if not accepted:
                raise RuntimeError(f"the raw update {token} of {key} was rejected: {body}")
            self.versions[key] = body["version"]
            bodies.append(body)
        return bodies

    def close(self) -> None:
        _stop(self.client)


def sqlite_store(directory: Path, name: str) -> Callable[[], Store]:
    """Opens a `SQLiteStore` (WAL, ``synchronous=FULL``) in ``directory``, on the disk."""
    return lambda: SQLiteStore(directory / f"{name}.db")


class Device:
    """A device agent: a `ShadowSession` (or, given ``shadows``, a `ThingSession` holding those
    shadows) on a `DeviceBridge` over its own paho client, as a device agent runs it.

    ``done`` is set when the shadows a report went to (`expect`) are all confirmed and the
    offline queue is empty: everything the device reported is in the cloud.
    """

    def __init__(
        self,
        thing: str,
        port: int,
        *,
        store: Callable[[], Store] = MemoryStore,
        shadows: tuple[str | None, ...] | None = None,
    ) -> None:
        tokens = itertools.count(1)
        self.thing = thing
        self.port = port
        self.store = store()
        config = SessionConfig(request_timeout=DEADLINE)
        self.session: ShadowSession | ThingSession
        if shadows is None:
            self.session = ShadowSession(
                thing,
                store=self.store,
                token=lambda: f"{thing}-{next(tokens)}",
                random=lambda: 0.5,
                config=config,
            )
        else:
            self.session = ThingSession(
                thing, store=self.store, token=lambda: f"{thing}-{next(tokens)}", random=lambda: 0.5
            )
            for shadow in shadows:
                self.session.add_shadow(shadow, config=config)
        self.client = _client("device")
        self.confirmed: dict[str | None, list[tuple[str | None, int | None]]] = {}
        self.updates = 0
        self.rejections: list[UpdateRejected] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._unconfirmed: set[str | None] = set()
        self.bridge = DeviceBridge(
            self.client, self.session, on_event=self._on_event, on_error=self.errors.append
        ).start()

    def _on_event(self, event: Event) -> None:
        # Runs with the bridge's lock held, so reading the session's queue here is safe.
        shadow = None
        if isinstance(event, FromShadow):
            shadow, event = event.shadow_name, event.event
        if isinstance(event, UpdateAccepted):
            self.updates += 1
        elif isinstance(event, UpdateRejected):
            self.rejections.append(event)
        elif isinstance(event, IntentsConfirmed):
            self.confirmed.setdefault(shadow, []).append((event.client_token, event.version))
            queue = self.session.queue
            if not queue.pending(self.thing, shadow):
                self._unconfirmed.discard(shadow)
            if not self._unconfirmed and not queue.pending():
                self.done.set()

    def connect(self) -> None:
        _connect(self.client, self.port)

    def wait_in_sync(self) -> None:
        if not wait_for(lambda: self.bridge.state is SessionState.IN_SYNC):
            raise SetupError(f"{self.thing} was not in sync {DEADLINE} s after connecting")

    def expect(self, shadows: set[str | None]) -> None:
        """The next ``done`` waits until every one of ``shadows`` is confirmed."""
        self.done.clear()
        self._unconfirmed = set(shadows)

    def report(self, changes: JSONObject) -> None:
        """Report and wait until the cloud confirmed it (one round trip when online)."""
        self.expect({None})
        self.bridge.report(changes)
        if not self.done.wait(DEADLINE):
            raise TimeoutError(f"{self.thing}: report not confirmed within {DEADLINE} s")

    def report_all(self, changes: dict[str | None, JSONObject]) -> None:
        """Report to every shadow of ``changes`` and wait until all of them are confirmed."""
        self.expect(set(changes))
        for shadow, change in changes.items():
            self.bridge.report(change, shadow=shadow)
        if not self.done.wait(DEADLINE):
            raise TimeoutError(f"{self.thing}: reports not confirmed within {DEADLINE} s")

    def problems(self) -> list[str]:
        found = [f"{self.thing}: {error!r}" for error in self.errors]
        found += [f"{self.thing}: update rejected: {event}" for event in self.rejections]
        return found

    def close(self) -> None:
        self.bridge.close()
        _stop(self.client)
        self.store.close()


class Mqtt:
    """The broker's port, the service with its bridge, and the raw client."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        """Where the devices' SQLite files go (a directory on the disk, not in memory)."""
        self.service = InMemoryShadowService()
        self.service_errors: list[BaseException] = []
        self._service_client = _client("service")
        self.service_bridge = ServiceBridge(
            self._service_client, self.service, on_error=self.service_errors.append
        ).start()
        _connect(self._service_client, port)
        if not self.service_bridge.wait_ready(DEADLINE):
            raise SetupError("the service bridge was not subscribed in time")
        self.raw = RawShadowClient(port)

    def seed(self, thing: str, reported: JSONObject, shadow: str | None = None) -> int:
        """Create a shadow of ``thing`` with this reported state; return its version."""
        body = {"state": {"reported": reported}}
        return self.service.update(thing, body, shadow_name=shadow).document.version

    def reported(
        self, thing: str, shadow: str | None = None
    ) -> tuple[JSONObject | None, int | None]:
        document = self.service.document(thing, shadow)
        return (None, None) if document is None else (document.reported, document.version)

    def close(self) -> None:
        self.raw.close()
        self.service_bridge.close()
        _stop(self._service_client)


# -- MQTT round trip ---------------------------------------------------------------------------


def _changed(value: Any) -> Any:
    """The same shape with every leaf different, so a report of it changes every leaf."""
    if isinstance(value, dict):
        return {key: _changed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_changed(item) for item in value] if value else [0]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "~"
    return 0


def round_trip_changes(case: Case) -> tuple[JSONObject, JSONObject]:
    """Two ~1 KB reported states (the first groups of the 8 KB case) differing in every leaf."""
    first: JSONObject = {}
    for group, value in case.reported.items():
        first[group] = value
        if len(dumps_compact(first)) >= 1000:
            break
    return first, _changed(first)


_State = TypeVar("_State")


class Alternating(Generic[_State]):
    """Hands out the two states in turn across batches, so that every report changes all."""

    def __init__(self, states: tuple[_State, _State]) -> None:
        self.states = states
        self.sent = 1
        """Updates of the shadow so far: its seed wrote ``states[0]`` as version 1."""

    def prepare(self, count: int) -> list[_State]:
        items = [self.states[(self.sent + index) % 2] for index in range(count)]
        self.sent += count
        return items

    @property
    def last(self) -> _State:
        return self.states[(self.sent - 1) % 2]


def shadow_problems(
    mqtt: Mqtt, thing: str, shadow: str | None, last: JSONObject, updates: int
) -> list[str]:
    """What is wrong with a shadow that should hold ``last`` after ``updates`` updates."""
    reported, version = mqtt.reported(thing, shadow)
    name = thing if shadow is None else f"{thing}/{shadow}"
    found = []
    if reported is None or not json_equal(reported, last):
        found.append(f"{name}: the shadow does not hold the last report")
    if version != updates:
        found.append(f"{name}: version {version} after {updates} updates")
    return found


def online(
    device: Device,
    cleanup: Callable[[], None],
    labels: tuple[str, str],
    timed: tuple[Bench, Bench, TimingConfig],
    *,
    check_first: Callable[[], list[str]],
    check_after: Callable[[], list[str]],
) -> Row:
    """Connect ``device`` and `compare` the two sides (``labels``: the operation and the
    peer); close the device and run ``cleanup`` whatever happens."""
    operation, peer_label = labels
    ours, peer, config = timed
    try:
        device.connect()
        device.wait_in_sync()
        return compare(
            MQTT,
            operation,
            peer_label,
            ours,
            peer,
            config,
            check_first=check_first,
            check_after=check_after,
        )
    finally:
        device.close()
        cleanup()


def round_trip(mqtt: Mqtt, case: Case, config: TimingConfig, *, sqlite: bool = True) -> Row:
    """`DeviceBridge.report` until `IntentsConfirmed` vs raw paho publish until accepted."""
    states = round_trip_changes(case)
    kind = "sqlite" if sqlite else "memory"
    bridged, raw_thing = f"rt-bridge-{kind}", f"rt-raw-{kind}"
    mqtt.raw.follow(raw_thing, mqtt.seed(raw_thing, states[0]))
    mqtt.seed(bridged, states[0])
    store = sqlite_store(mqtt.workdir, bridged) if sqlite else MemoryStore
    device = Device(bridged, mqtt.port, store=store)
    ours_states, peer_states = Alternating(states), Alternating(states)
    size = len(dumps_compact(states[1]))
    where = "a SQLiteStore (WAL, synchronous=FULL) on disk" if sqlite else "a MemoryStore"

    def peer_run(changes: JSONObject) -> None:
        mqtt.raw.update(raw_thing, changes)

    ours = Bench(
        name=f"DeviceBridge.report of a {size:,}-byte reported change until IntentsConfirmed, "
        f"the session's queue and cache in {where}",
        run=device.report,
        prepare=ours_states.prepare,
    )
    peer = Bench(
        name="raw paho publish of the same update request until its update/accepted",
        run=peer_run,
        prepare=peer_states.prepare,
    )

    def check_first() -> list[str]:
        checked = 4
        before = len(device.confirmed.get(None, []))
        for changes in ours_states.prepare(checked):
            device.report(changes)
        ours_versions = [version for _, version in device.confirmed[None][before:]]
        peer_versions = [
            mqtt.raw.update(raw_thing, c)["version"] for c in peer_states.prepare(checked)
        ]
        found = []
        if ours_versions != peer_versions:
            found.append(f"accepted versions differ: bridge {ours_versions}, raw {peer_versions}")
        if any(token is None for token, _ in device.confirmed[None]):
            found.append("a report was confirmed without an update being sent")
        return found + check_shadows()

    def check_shadows() -> list[str]:
        return device.problems() + [
            problem
            for thing, side in ((bridged, ours_states), (raw_thing, peer_states))
            for problem in shadow_problems(mqtt, thing, None, side.last, side.sent)
        ]

    return online(
        device,
        lambda: mqtt.raw.unfollow(raw_thing),
        (f"report {size:,} B until confirmed ({kind})", "raw paho round trip"),
        (ours, peer, config),
        check_first=check_first,
        check_after=check_shadows,
    )


# -- MQTT: four shadows on one connection ------------------------------------------------------

THING_SHADOWS: dict[str | None, tuple[str, ...]] = {
    None: ("network", "wifi"),
    "configuration": ("thermostat", "lighting", "hvac"),
    "telemetry": ("power", "battery", "sensors", "cellular"),
    "maintenance": ("firmware", "schedule", "alarms", "display", "audio"),
}
"""The groups of the 8 KB case each shadow of the four-shadow device reports."""


def thing_changes(case: Case) -> tuple[dict[str | None, JSONObject], dict[str | None, JSONObject]]:
    """Two reports per shadow (its groups of the 8 KB case) differing in every leaf."""
    first = {
        shadow: {group: case.reported[group] for group in groups}
        for shadow, groups in THING_SHADOWS.items()
    }
    return first, {shadow: _changed(state) for shadow, state in first.items()}


def thing_round_trip(mqtt: Mqtt, case: Case, config: TimingConfig) -> Row:
    """A `ThingSession` with four shadows reporting to all four until all are confirmed, vs
    the raw client publishing the same four updates and awaiting the four answers."""
    states = thing_changes(case)
    bridged, raw_thing = "rt4-bridge", "rt4-raw"
    for shadow in THING_SHADOWS:
        mqtt.seed(bridged, states[0][shadow], shadow)
        mqtt.raw.follow(raw_thing, mqtt.seed(raw_thing, states[0][shadow], shadow), shadow)
    device = Device(
        bridged,
        mqtt.port,
        store=sqlite_store(mqtt.workdir, bridged),
        shadows=tuple(THING_SHADOWS),
    )
    ours_states, peer_states = Alternating(states), Alternating(states)
    sizes = "/".join(f"{len(dumps_compact(state)):,}" for state in states[1].values())

    def peer_run(changes: dict[str | None, JSONObject]) -> None:
        mqtt.raw.update_all([(raw_thing, shadow, state) for shadow, state in changes.items()])

    ours = Bench(
        name="a ThingSession of 4 shadows (classic, configuration, telemetry, maintenance) on one "
        f"DeviceBridge and one SQLiteStore (WAL, synchronous=FULL): DeviceBridge.report to each "
        f"shadow ({sizes} bytes), until all four are confirmed",
        run=device.report_all,
        prepare=ours_states.prepare,
    )
    peer = Bench(
        name="one raw paho client publishes the same four update requests (one per shadow, "
        "each with its version) at once, then awaits the four update/accepted",
        run=peer_run,
        prepare=peer_states.prepare,
    )

    def check_first() -> list[str]:
        checked = 3
        before = {shadow: len(device.confirmed.get(shadow, [])) for shadow in THING_SHADOWS}
        for changes in ours_states.prepare(checked):
            device.report_all(changes)
        ours_versions = {
            shadow: [version for _, version in device.confirmed[shadow][before[shadow] :]]
            for shadow in THING_SHADOWS
        }
        peer_versions: dict[str | None, list[int]] = {shadow: [] for shadow in THING_SHADOWS}
        for changes in peer_states.prepare(checked):
            requests = [(raw_thing, shadow, state) for shadow, state in changes.items()]
            for (_, shadow, _), body in zip(requests, mqtt.raw.update_all(requests), strict=True):
                peer_versions[shadow].append(body["version"])
        found = []
        if ours_versions != peer_versions:
            found.append(f"accepted versions differ: bridge {ours_versions}, raw {peer_versions}")
        return found + check_shadows()

    def check_shadows() -> list[str]:
        return device.problems() + [
            problem
            for thing, side in ((bridged, ours_states), (raw_thing, peer_states))
            for shadow in THING_SHADOWS
            for problem in shadow_problems(mqtt, thing, shadow, side.last[shadow], side.sent)
        ]

    def unfollow() -> None:
        for shadow in THING_SHADOWS:
            mqtt.raw.unfollow(raw_thing, shadow)

    return online(
        device,
        unfollow,
        ("report to 4 shadows until all confirmed", "4 raw paho round trips"),
        (ours, peer, config),
        check_first=check_first,
        check_after=check_shadows,
    )


# -- MQTT offline flush ------------------------------------------------------------------------

FLUSH_INITIAL: JSONObject = {"online": True, "sample": -1}


def flush_changes(count: int) -> list[JSONObject]:
    """Telemetry: each report is one sensor's reading and the sample counter.

    The readings go to ``SENSORS`` paths over and over, so the queue coalesces the reports to
    at most ``SENSORS + 1`` leaves; that is what a device offline for a while has to send.
    """
    rng = random.Random(17)
    return [
        {
            "telemetry": {f"sensor{rng.randrange(SENSORS):02d}": round(rng.uniform(-20, 60), 2)},
            "sample": index,
        }
        for index in range(count)
    ]


def flush_expected(changes: list[JSONObject]) -> JSONObject:
    """The reported state after every change, applied in order (two levels deep)."""
    expected: dict[str, Any] = dict(FLUSH_INITIAL)
    for change in changes:
        for key, value in change.items():
            if isinstance(value, dict):
                expected.setdefault(key, {}).update(value)
            else:
                expected[key] = value
    return expected


class BridgeFlush:
    """Devices that queued every change offline; the timed call connects one and waits."""

    def __init__(self, mqtt: Mqtt, changes: list[JSONObject]) -> None:
        self.mqtt = mqtt
        self.changes = changes
        self.expected = flush_expected(changes)
        self.problems: list[str] = []
        self.updates: list[int] = []
        self._things = itertools.count(1)
        self._batch: list[Device] = []

    def prepare(self, count: int) -> list[Device]:
        self._batch = []
        for _ in range(count):
            thing = f"flush-bridge-{next(self._things)}"
            self.mqtt.seed(thing, FLUSH_INITIAL)
            device = Device(thing, self.mqtt.port)
            self._batch.append(device)
            for change in self.changes:
                device.bridge.report(change)
        return list(self._batch)

    @staticmethod
    def run(device: Device) -> None:
        device.connect()
        if not device.done.wait(DEADLINE):
            raise TimeoutError(f"{device.thing}: the queue was not flushed within {DEADLINE} s")

    def cleanup(self) -> None:
        for device in self._batch:
            device.close()
            reported, version = self.mqtt.reported(device.thing)
            self.problems += device.problems()
            if reported is None or not json_equal(reported, self.expected):
                self.problems.append(f"{device.thing}: the shadow lacks changes after the flush")
            if version != 1 + device.updates:
                self.problems.append(f"{device.thing}: version {version}, {device.updates} updates")
            self.updates.append(device.updates)
        self._batch = []


class RawFlush:
    """The same changes published by the raw client one request each, each awaited."""

    def __init__(self, mqtt: Mqtt, changes: list[JSONObject]) -> None:
        self.mqtt = mqtt
        self.changes = changes
        self.expected = flush_expected(changes)
        self.problems: list[str] = []
        self._things = itertools.count(1)
        self._batch: list[str] = []

    def prepare(self, count: int) -> list[str]:
        self._batch = []
        for _ in range(count):
            thing = f"flush-raw-{next(self._things)}"
            self.mqtt.raw.follow(thing, self.mqtt.seed(thing, FLUSH_INITIAL))
            self._batch.append(thing)
        return list(self._batch)

    def run(self, thing: str) -> None:
        for change in self.changes:
            self.mqtt.raw.update(thing, change)

    def cleanup(self) -> None:
        for thing in self._batch:
            self.mqtt.raw.unfollow(thing)
            reported, version = self.mqtt.reported(thing)
            if reported is None or not json_equal(reported, self.expected):
                self.problems.append(f"{thing}: the shadow lacks changes after the raw updates")
            if version != 1 + len(self.changes):
                self.problems.append(f"{thing}: version {version} after {len(self.changes)}")
        self._batch = []


def offline_flush(mqtt: Mqtt, count: int, config: TimingConfig) -> tuple[Row, list[int]]:
    """Connect a device with ``count`` queued reports until all are confirmed, vs raw paho."""
    changes = flush_changes(count)
    ours_side, peer_side = BridgeFlush(mqtt, changes), RawFlush(mqtt, changes)
    ours = Bench(
        name=f"connect a DeviceBridge with {count:,} reports queued offline ({SENSORS} sensors "
        "and a counter) until the queue is empty",
        run=ours_side.run,
        prepare=ours_side.prepare,
        cleanup=ours_side.cleanup,
    )
    peer = Bench(
        name=f"the same {count:,} changes as raw paho update requests, each awaited",
        run=peer_side.run,
        prepare=peer_side.prepare,
        cleanup=peer_side.cleanup,
    )

    def check_first() -> list[str]:
        for device in ours_side.prepare(1):
            ours_side.run(device)
        ours_side.cleanup()
        for thing in peer_side.prepare(1):
            peer_side.run(thing)
        peer_side.cleanup()
        return check_after()

    def check_after() -> list[str]:
        return ours_side.problems + peer_side.problems

    row = compare(
        MQTT,
        f"flush {count:,} queued reports",
        f"{count:,} raw round trips",
        ours,
        peer,
        config,
        check_first=check_first,
        check_after=check_after,
    )
    return row, ours_side.updates


# -- AWS data plane ----------------------------------------------------------------------------


class Aws:
    """boto3 clients on the moto server, and our client over the same iot-data client."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.iot = session.client("iot", endpoint_url=endpoint)
        self.data = session.client("iot-data", endpoint_url=endpoint)
        self.shadows = IotShadowClient(client=self.data)

    def create(self, thing: str, case: Case) -> None:
        """Register ``thing`` (moto serves shadows of registered things only) and write the case."""
        self.iot.create_thing(thingName=thing)
        state = {"state": {"desired": case.desired, "reported": case.reported}}
        self.data.update_thing_shadow(thingName=thing, payload=json.dumps(state))

    def raw_get(self, thing: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(
            self.data.get_thing_shadow(thingName=thing)["payload"].read()
        )
        return body

    def raw_update(self, thing: str, request: JSONObject) -> dict[str, Any]:
        response = self.data.update_thing_shadow(thingName=thing, payload=json.dumps(request))
        body: dict[str, Any] = json.loads(response["payload"].read())
        return body

    def close(self) -> None:
        self.iot.close()
        self.data.close()


def aws_get(aws: Aws, case: Case, config: TimingConfig) -> Row:
    thing = "bench-get"
    aws.create(thing, case)
    ours = Bench(
        name=f"IotShadowClient.get of the {case.label} shadow (a ShadowDocument)",
        run=aws.shadows.get,
        prepare=repeated(thing),
    )
    peer = Bench(
        name="get_thing_shadow + json.loads(payload.read())",
        run=aws.raw_get,
        prepare=repeated(thing),
    )

    def check() -> list[str]:
        document, raw = aws.shadows.get(thing), aws.raw_get(thing)
        if document is None:
            return ["IotShadowClient.get found no shadow"]
        state = raw.get("state", {})
        found = []
        for section, value in (("desired", document.desired), ("reported", document.reported)):
            if not json_equal(value, state.get(section)):
                found.append(f"the parsed {section} section differs from the raw JSON's")
            if not json_equal(value, getattr(case, section)):
                found.append(f"the {section} section read back differs from the one written")
        if document.version != raw.get("version"):
            found.append(f"versions differ: parsed {document.version}, raw {raw.get('version')}")
        return found

    return compare(
        AWS,
        f"get {case.label} shadow",
        "get_thing_shadow + loads",
        ours,
        peer,
        config,
        check_first=check,
        check_after=check,
    )


def aws_update(aws: Aws, case: Case, config: TimingConfig) -> Row:
    ours_thing, peer_thing = "bench-update-ours", "bench-update-raw"
    aws.create(ours_thing, case)
    aws.create(peer_thing, case)
    request = case.request

    def ours_run(thing: str) -> object:
        return aws.shadows.update(thing, request)

    def peer_run(thing: str) -> object:
        return aws.raw_update(thing, request)

    ours = Bench(
        name=f"IotShadowClient.update of the {case.label} update request "
        f"({len(case.request_bytes):,} bytes; validated, then sent)",
        run=ours_run,
        prepare=repeated(ours_thing),
    )
    peer = Bench(
        name="update_thing_shadow(payload=json.dumps(request)) + json.loads(payload.read())",
        run=peer_run,
        prepare=repeated(peer_thing),
    )

    def check_first() -> list[str]:
        mine, theirs = aws.shadows.update(ours_thing, request), aws.raw_update(peer_thing, request)
        found = []
        if not json_equal(mine.get("state"), theirs.get("state")):
            found.append("the accepted states differ")
        if mine.get("version") != theirs.get("version"):
            found.append(
                f"accepted versions differ: {mine.get('version')}, {theirs.get('version')}"
            )
        return found + check_after()

    def check_after() -> list[str]:
        mine, theirs = aws.raw_get(ours_thing)["state"], aws.raw_get(peer_thing)["state"]
        found = []
        for section in ("desired", "reported"):
            if not json_equal(mine.get(section), theirs.get(section)):
                found.append(f"the {section} sections differ after the updates")
        return found

    return compare(
        AWS,
        f"update {case.label} request",
        "update_thing_shadow + loads",
        ours,
        peer,
        config,
        check_first=check_first,
        check_after=check_after,
    )


# -- running and reporting ---------------------------------------------------------------------


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def compare(
    section: str,
    operation: str,
    peer_label: str,
    ours: Bench,
    peer: Bench,
    config: TimingConfig,
    *,
    check_first: Callable[[], list[str]],
    check_after: Callable[[], list[str]],
) -> Row:
    """Check both sides, time them in interleaved batches if they agree, then check again."""
    problems: list[str] = []
    error: str | None = None
    measured = None
    try:
        problems = check_first()
        if not problems:
            measured = measure_pair(ours, peer, config)
            problems = check_after()
    except Exception as exc:
        error = _error(exc)
    return Row(
        case=section,
        group=section,
        operation=operation,
        ours_timed=ours.name,
        peer_timed=peer.name,
        peer_label=peer_label,
        ours=None if measured is None else measured[0],
        peer=None if measured is None else measured[1],
        problems=tuple(dict.fromkeys(problems)),
        error=error,
        target=None,
    )


def _us(row: Row, ours: bool) -> str:
    measurement = row.ours if ours else row.peer
    return "-" if measurement is None else f"{measurement.per_call_us:,.1f}"


def render(
    rows: list[Row], notes: dict[str, list[str]], *, smoke: bool, config: TimingConfig
) -> str:
    """The report: one table per section, ratios ours / peer, then what each side times."""
    loops = "1 call" if config.fixed_loops == 1 else "auto-ranged calls"
    lines = [
        f"shadowsync adapters ({'SMOKE: timings are not meaningful' if smoke else 'full'}); "
        f"median of {config.repeat} batches of {loops}, per call",
        f"Python {platform.python_version()} on {platform.platform(terse=True)}",
    ]
    op_width = max((len(row.operation) for row in rows), default=20)
    peer_width = max((len(row.peer_label) for row in rows), default=12)
    for section in dict.fromkeys(row.case for row in rows):
        lines += ["", f"{section}:"]
        lines += [f"  {note}" for note in notes.get(section, [])]
        lines.append(
            f"  {'operation':<{op_width}}  {'peer':<{peer_width}}  {'ours (µs)':>12}  "
            f"{'peer (µs)':>12}  {'ours/peer':>9}  check"
        )
        for row in rows:
            if row.case == section:
                ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
                lines.append(
                    f"  {row.operation:<{op_width}}  {row.peer_label:<{peer_width}}  "
                    f"{_us(row, True):>12}  {_us(row, False):>12}  {ratio:>9}  {row.status}"
                )
    lines += ["", "What each side times:"]
    for row in rows:
        lines += [f"  - {row.ours_timed}", f"  - {row.peer_timed}"]
    failures = [row for row in rows if row.status != "ok"]
    if failures:
        lines += ["", "FAILURES:"]
        for row in failures:
            lines.append(f"  {row.case}: {row.operation} vs {row.peer_label}: {row.status}")
            lines += [f"    {problem}" for problem in ([row.error] if row.error else [])]
            lines += [f"    {problem}" for problem in row.problems]
    return "\n".join(lines)


def flush_notes(row: Row, count: int, updates: list[int]) -> list[str]:
    """Reports per second on both sides, and the update requests the bridge sent."""
    notes = [
        f"flush: {count:,} reports of {SENSORS} sensors' readings and a sample counter "
        f"(they coalesce to at most {SENSORS + 1} leaves)"
    ]
    if row.ours is not None and row.peer is not None:
        per_second = [count / (m.per_call_ns / 1e9) for m in (row.ours, row.peer)]
        notes.append(
            f"flush: bridge {per_second[0]:,.0f} reports/s (connect, subscribe, get, then the "
            f"queued updates), raw paho {per_second[1]:,.0f} reports/s"
        )
    if updates:
        counts = sorted(set(updates))
        notes.append(
            f"flush: the bridge sent {'/'.join(map(str, counts))} update request(s) per flush, "
            f"the raw client {count:,}"
        )
    return notes


def to_json(
    rows: list[Row], notes: dict[str, list[str]], *, smoke: bool, config: TimingConfig
) -> dict[str, Any]:
    """Every number of the report as plain JSON data."""
    return {
        "smoke": smoke,
        "python": sys.version,
        "platform": platform.platform(),
        "timing": {
            "repeat": config.repeat,
            "min_batch_ns": config.min_batch_ns,
            "fixed_loops": config.fixed_loops,
            "statistic": "median of batch_ns / loops",
        },
        "notes": notes,
        "rows": [
            {
                "section": row.case,
                "operation": row.operation,
                "peer": row.peer_label,
                "ours_timed": row.ours_timed,
                "peer_timed": row.peer_timed,
                "ours": _measurement(row.ours),
                "peer_measurement": _measurement(row.peer),
                "ratio": row.ratio,
                "status": row.status,
                "problems": list(row.problems),
                "error": row.error,
            }
            for row in rows
        ],
    }


def run_mqtt(config: TimingConfig, flush_count: int, notes: dict[str, list[str]]) -> list[Row]:
    """The MQTT rows, on a broker started for them."""
    executable = find_mosquitto()
    case = make_case("8 KB", 8000, seed=7919 + 8000)
    with (
        tempfile.TemporaryDirectory(prefix="shadowsync-bench-") as workdir,
        mosquitto(executable, Path(workdir)) as port,
    ):
        mqtt = Mqtt(port, Path(workdir))
        try:
            trips = [
                round_trip(mqtt, case, config),
                round_trip(mqtt, case, config, sqlite=False),
                thing_round_trip(mqtt, case, config),
            ]
            flush, updates = offline_flush(mqtt, flush_count, config)
        finally:
            mqtt.close()
    if mqtt.service_errors:
        flush = dataclasses.replace(
            flush, problems=(*flush.problems, *map(repr, mqtt.service_errors))
        )
    notes[MQTT] = [
        f"broker: mosquitto on {HOST}; one ServiceBridge (InMemoryShadowService) answers both",
        *flush_notes(flush, flush_count, updates),
    ]
    return [*trips, flush]


def run_aws(config: TimingConfig, notes: dict[str, list[str]]) -> list[Row]:
    """The AWS rows, on a moto server started for them."""
    case = make_case("8 KB", 8000, seed=7919 + 8000)
    with moto_server() as endpoint:
        aws = Aws(endpoint)
        try:
            rows = [aws_get(aws, case, config), aws_update(aws, case, config)]
        finally:
            aws.close()
    notes[AWS] = [
        f"moto server on {HOST}, {case.label} case ({case.size:,} bytes of desired + reported); "
        "the HTTP call and moto's own work dominate both sides",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if a check fails or a server cannot start."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapters", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a short run that checks results")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = SMOKE if args.smoke else FULL
    notes: dict[str, list[str]] = {}
    try:
        rows = run_mqtt(config, 50 if args.smoke else 1000, notes)
        rows += run_aws(config, notes)
    except SetupError as exc:
        print(f"cannot run the adapter benchmarks: {exc}", file=sys.stderr)
        return 1
    print(render(rows, notes, smoke=args.smoke, config=config))
    if args.json is not None:
        write_json(args.json, to_json(rows, notes, smoke=args.smoke, config=config))
        print(f"\nresults written to {args.json}")
    print(f"\ntotal time {time.perf_counter() - started:.1f} s")
    return 0 if all(row.status == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
