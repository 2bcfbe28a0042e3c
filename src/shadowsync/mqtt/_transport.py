"""What both bridges share: the client check, the QoS, where errors go, subscribing and
publishing, and the life cycle of the client callbacks they own (`Bridge`)."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from paho.mqtt.client import Client, error_string
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError, ShadowSyncError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from paho.mqtt.client import ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

_log = logging.getLogger("shadowsync.mqtt")

QOS = 1
"""Every subscription and publish of the bridges: AWS IoT supports QoS 0 and 1 only."""


class TransportError(ShadowSyncError):
    """The MQTT client or the broker refused what a bridge asked (connect, subscribe, publish)."""


def check_client(client: object) -> Client:
    if not isinstance(client, Client):
        raise InvalidArgumentError(
            f"client must be a paho.mqtt.client.Client, got {describe(client)}"
        )
    if client.callback_api_version is not CallbackAPIVersion.VERSION2:
        raise InvalidArgumentError(
            "the client must use the paho 2.x callbacks: "
            "Client(callback_api_version=CallbackAPIVersion.VERSION2, ...)"
        )
    return client


def check_callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise InvalidArgumentError(f"{name} must be callable or None, got {describe(value)}")


class ErrorRoute:
    """Where a bridge sends what went wrong on a thread the caller does not own."""

    def __init__(self, on_error: Callable[[BaseException], None] | None) -> None:
        check_callback("on_error", on_error)
        self._on_error = on_error

    def report(self, error: BaseException) -> None:
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                _log.exception("on_error raised while handling %r", error)
            else:
                return
        _log.error("shadowsync.mqtt: %s", error, exc_info=error)

    def guard(self, action: Callable[[], object]) -> None:
        # An exception escaping a paho callback ends the client's network loop; keep it alive.
        try:
            action()
        except Exception as exc:
            self.report(exc)

    def connected(self, reason_code: ReasonCode, action: Callable[[], object]) -> None:
        """After the broker's CONNACK: report a refusal, or run ``action`` guarded."""
        if reason_code.is_failure:
            self.report(TransportError(f"the broker refused the connection: {reason_code}"))
            return
        self.guard(action)

    def subscribed(self, reason_codes: list[ReasonCode], what: str) -> bool:
        """After the broker's SUBACK: report the subscriptions it refused; whether it granted
        them all. ``what`` names them in the report (``"shadow"``: shadow subscriptions)."""
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self.report(TransportError(f"the broker refused {what} subscriptions: {refused}"))
        return not refused


def subscribe(client: Client, filters: Iterable[str], what: str) -> int:
    """Subscribe to ``filters`` at `QOS`; the message id of the request. Raises
    `TransportError` when the client refuses (``what`` names the topics in its message)."""
    result, mid = client.subscribe([(topic, QOS) for topic in filters])
    if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
        raise TransportError(f"cannot subscribe to {what}: {error_string(result)}")
    return mid


def unsubscribe(client: Client, filters: Iterable[str]) -> None:
    """Unsubscribe from ``filters``; raises `TransportError` when the client refuses."""
    result, _ = client.unsubscribe(list(filters))
    if result not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
        raise TransportError(f"cannot unsubscribe: {error_string(result)}")


def publish(client: Client, topic: str, payload: bytes, errors: ErrorRoute) -> None:
    """Publish at `QOS`; a refusal other than "not connected" goes to ``errors``."""
    info = client.publish(topic, payload, qos=QOS)
    if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
        errors.report(TransportError(f"cannot publish to {topic}: {error_string(info.rc)}"))


_B = TypeVar("_B", bound="Bridge")

# Which bridge holds each client. Two bridges on one client would overwrite each other's
# callbacks: the first would go deaf without an error and its reports would queue forever.
_holders: weakref.WeakKeyDictionary[Client, weakref.ref[Bridge]] = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def _claim(client: Client, bridge: Bridge) -> None:
    with _holders_lock:
        holder = _holders.get(client)
        current = holder() if holder is not None else None
        if current is not None and not current._closed:
            raise InvalidArgumentError(
                f"this paho client already has a {type(current).__name__}; a bridge owns the "
                "client's callbacks, so a second one would silently disable the first. AWS IoT "
                "allows one connection per thing: serve every shadow of the device through one "
                "bridge on one client (see docs/mqtt.md), or close the first bridge before "
                "creating another"
            )
        _holders[client] = weakref.ref(bridge)


def _release(client: Client, bridge: Bridge) -> None:
    with _holders_lock:
        holder = _holders.get(client)
        if holder is not None and holder() is bridge:
            del _holders[client]


class Bridge:
    """The part of a bridge that is the same for both: the client, whose ``on_connect``,
    ``on_disconnect``, ``on_message`` and ``on_subscribe`` it owns while started, the
    `ErrorRoute`, and the life cycle (a closed bridge cannot start again).

    A bridge says what it does on the client's network thread in `_connected`,
    `_disconnected`, `_received` and `_subscribed`; each runs guarded, so an exception goes to
    the error route instead of ending the network loop.
    """

    def __init__(self, client: object, on_error: Callable[[BaseException], None] | None) -> None:
        self._client = check_client(client)
        self._errors = ErrorRoute(on_error)
        self._started = False
        self._closed = False

    def _hold_client(self) -> None:
        """Claim the client for this bridge, last in a constructor (after every argument check):
        raises `InvalidArgumentError` when another bridge that is not closed holds it."""
        _claim(self._client, self)

    def start(self: _B) -> _B:
        """Install the client callbacks and begin."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove the client callbacks and stop."""
        raise NotImplementedError

    def __enter__(self: _B) -> _B:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _install(self) -> bool:
        """Install the callbacks (with the bridge's lock held); False when started already."""
        if self._closed:
            raise InvalidArgumentError("this bridge was closed; create a new one")
        if self._started:
            return False
        self._started = True
        for name, ours in self._callbacks():
            setattr(self._client, name, ours)
        return True

    def _uninstall(self) -> bool:
        """Remove the callbacks that are still ours (with the bridge's lock held) and mark the
        bridge closed; False when it was closed already."""
        if self._closed:
            return False
        self._closed = True
        _release(self._client, self)
        for name, ours in self._callbacks():
            if getattr(self._client, name) == ours:
                setattr(self._client, name, None)
        return True

    def _callbacks(self) -> tuple[tuple[str, Callable[..., None]], ...]:
        return (
            ("on_connect", self._on_connect),
            ("on_disconnect", self._on_disconnect),
            ("on_message", self._on_message),
            ("on_subscribe", self._on_subscribe),
        )

    # -- paho callbacks (on the client's network thread) -----------------------------------

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._errors.connected(reason_code, self._connected)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._errors.guard(self._disconnected)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._errors.guard(lambda: self._received(message))

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._errors.guard(lambda: self._subscribed(mid, reason_codes))

    def _connected(self) -> None:
        """The broker accepted the connection."""
        raise NotImplementedError

    def _disconnected(self) -> None:
        """The connection is gone."""
        raise NotImplementedError

    def _received(self, message: MQTTMessage) -> None:
        """A message arrived on a subscribed topic."""
        raise NotImplementedError

    def _subscribed(self, mid: int, reason_codes: list[ReasonCode]) -> None:
        """The broker answered the subscribe request ``mid``."""
        raise NotImplementedError
