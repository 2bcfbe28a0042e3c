"""MQTT bridges on paho-mqtt 2.x: a device's shadow session, and a fake shadow service.

`DeviceBridge` joins a `shadowsync.ShadowSession` to a paho ``Client`` that you create,
configure (TLS, credentials) and connect yourself: it feeds the session the connection
changes and the messages the client receives, sends what the session asks to send, calls
``tick`` when the session's deadline is due, and hands the application events to you.

`ServiceBridge` serves a `shadowsync.testing.InMemoryShadowService` over a broker, so a device
agent can be tested against a faithful fake of AWS IoT over a real local broker.

Both need the ``mqtt`` extra: ``pip install "shadowsync[mqtt]"``.
"""

from __future__ import annotations

try:
    import paho.mqtt.client
    import paho.mqtt.enums  # noqa: F401  (paho-mqtt 1.x has no enums: it is too old)
except ImportError as exc:
    raise ImportError(
        'shadowsync.mqtt needs paho-mqtt 2.x; install it with: pip install "shadowsync[mqtt]"'
    ) from exc

from shadowsync.mqtt._device import DeviceBridge
from shadowsync.mqtt._service import ServiceBridge
from shadowsync.mqtt._transport import TransportError

__all__ = ["DeviceBridge", "ServiceBridge", "TransportError"]
