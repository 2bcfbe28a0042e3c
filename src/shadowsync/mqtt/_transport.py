"""What both bridges share: the client check, the QoS, and where errors go."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from paho.mqtt.client import Client, error_string
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from shadowsync._json import describe
from shadowsync.errors import InvalidArgumentError, ShadowSyncError

if TYPE_CHECKING:
    from collections.abc import Callable

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


def publish(client: Client, topic: str, payload: bytes, errors: ErrorRoute) -> None:
    """Publish at `QOS`; a refusal other than "not connected" goes to ``errors``."""
    info = client.publish(topic, payload, qos=QOS)
    if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
        errors.report(TransportError(f"cannot publish to {topic}: {error_string(info.rc)}"))
