"""A real mosquitto broker on 127.0.0.1, paho clients, and the bridges joined through it."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from shadowsync import Backoff, SessionConfig, SessionState, ShadowSession
from shadowsync.events import Event
from shadowsync.mqtt import DeviceBridge, ServiceBridge
from shadowsync.stores import MemoryStore, Store
from shadowsync.testing import InMemoryShadowService

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

EventT = TypeVar("EventT", bound=Event)

HOST = "127.0.0.1"
DEADLINE = 5.0


def wait_for(condition: Callable[[], object], timeout: float = DEADLINE) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    end = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= end:
            return bool(condition())
        time.sleep(0.01)


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


class Broker:
    """A mosquitto process on a fixed port that can be stopped and started again."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.host = HOST
        self.port = _free_port()
        self._executable = executable
        self._config = workdir / "mosquitto.conf"
        self._config.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\npersistence false\n",
            encoding="utf-8",
        )
        self._log = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None, "the broker is running already"
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [self._executable, "-c", str(self._config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self._process
        if not wait_for(lambda: process.poll() is not None or _accepts(self.port)):
            self.stop()
            pytest.fail(f"mosquitto did not listen on {self.port}: {self._log.read_text()}")
        if process.poll() is not None:
            self._process = None
            pytest.fail(f"mosquitto exited with {process.returncode}: {self._log.read_text()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def _mosquitto() -> str:
    found = shutil.which("mosquitto", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if found is None:
        pytest.fail(
            "mosquitto is not installed; the MQTT adapter tests need a real broker: "
            "run `make services`"
        )
    return found


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker shared by a module's tests."""
    running = Broker(_mosquitto(), tmp_path_factory.mktemp("mosquitto"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker for one test, which may stop and restart it."""
    running = Broker(_mosquitto(), tmp_path_factory.mktemp("mosquitto"))
    running.start()
    yield running
    running.stop()


class Recorder:
    """Collects what a bridge hands back on its threads."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.errors: list[BaseException] = []

    def of(self, kind: type[EventT]) -> list[EventT]:
        return [event for event in list(self.events) if isinstance(event, kind)]


def fast_config(**changes: Any) -> SessionConfig:
    """Short timeouts and retries, so that a lost message costs a fraction of a second."""
    settings: dict[str, Any] = {
        "request_timeout": 0.5,
        "backoff": Backoff(initial=0.1, maximum=0.5, jitter=0.0),
    }
    settings.update(changes)
    return SessionConfig(**settings)


class Device:
    """A session, its bridge and its client, as a device agent runs them."""

    def __init__(self, session: ShadowSession, client: Client) -> None:
        self.session = session
        self.client = client
        self.recorder = Recorder()
        self.bridge = DeviceBridge(
            client,
            session,
            on_event=self.recorder.events.append,
            on_error=self.recorder.errors.append,
        )

    def in_sync(self) -> bool:
        return self.bridge.state is SessionState.IN_SYNC


class Rig:
    """Makes clients and bridges on a broker, and closes them all at the end of a test."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._clients: list[Client] = []
        self._bridges: list[DeviceBridge | ServiceBridge] = []

    def client(self, prefix: str = "client") -> Client:
        """A paho 2.x client, not connected yet, that reconnects itself within a second."""
        client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{next(_ids)}"
        )
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._clients.append(client)
        return client

    def run(self, client: Client) -> None:
        """Connect ``client`` and start its network thread."""
        client.connect(self.broker.host, self.broker.port, keepalive=30)
        client.loop_start()

    def device(
        self,
        thing: str = "lamp-1",
        shadow: str | None = None,
        *,
        store: Store | None = None,
        config: SessionConfig | None = None,
        connect: bool = True,
    ) -> Device:
        tokens = itertools.count(1)
        session = ShadowSession(
            thing,
            shadow,
            store=store if store is not None else MemoryStore(),
            token=lambda: f"{thing}-{next(tokens)}",
            random=lambda: 0.5,
            config=config if config is not None else fast_config(),
        )
        device = Device(session, self.client("device"))
        self._bridges.append(device.bridge)
        device.bridge.start()
        if connect:
            self.run(device.client)
        return device

    def service_bridge(
        self, service: InMemoryShadowService, errors: list[BaseException]
    ) -> ServiceBridge:
        client = self.client("service")
        bridge = ServiceBridge(client, service, on_error=errors.append).start()
        self._bridges.append(bridge)
        self.run(client)
        assert bridge.wait_ready(DEADLINE), "the service bridge was not subscribed in time"
        return bridge

    def close(self) -> None:
        for bridge in self._bridges:
            bridge.close()
        for client in self._clients:
            client.disconnect()
            client.loop_stop()


_ids = itertools.count(1)


@pytest.fixture
def rig(broker: Broker) -> Iterator[Rig]:
    made = Rig(broker)
    yield made
    made.close()


@pytest.fixture
def own_rig(own_broker: Broker) -> Iterator[Rig]:
    made = Rig(own_broker)
    yield made
    made.close()


@pytest.fixture
def service() -> InMemoryShadowService:
    return InMemoryShadowService()


@pytest.fixture
def service_errors() -> list[BaseException]:
    """Errors the service bridge reports; a test that expects none asserts it is empty."""
    return []
