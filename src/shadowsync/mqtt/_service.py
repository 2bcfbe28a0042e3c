"""`ServiceBridge`: an in-memory shadow service answering shadow requests on a broker."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import error_string
from paho.mqtt.enums import MQTTErrorCode

from shadowsync import topics
from shadowsync._json import describe, dumps_compact
from shadowsync.errors import InvalidArgumentError
from shadowsync.mqtt._transport import QOS, ErrorRoute, TransportError, check_client, publish
from shadowsync.testing import InMemoryShadowService

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from shadowsync._update import UpdateResult

_REQUEST_FILTERS = tuple(f"$aws/things/+/shadow/{op}" for op in topics.OPERATIONS) + tuple(
    f"$aws/things/+/shadow/name/+/{op}" for op in topics.OPERATIONS
)


class ServiceBridge:
    """Serves an `InMemoryShadowService` over a broker, as AWS IoT serves shadows.

    It subscribes (QoS 1) to the request topics of every classic and named shadow
    (``$aws/things/+/shadow/update``, ``/get``, ``/delete`` and
    ``$aws/things/+/shadow/name/+/...``), answers each request with ``service.handle`` and
    publishes the replies at QoS 1. It subscribes again after every reconnect. `update` is the
    cloud side of a test writing to a shadow, with the delta published to the device.

    Like `DeviceBridge`, it owns the client's ``on_connect``, ``on_message`` and
    ``on_subscribe`` callbacks, and errors go to ``on_error`` or the log.

    ```pycon
    >>> from paho.mqtt.client import Client
    >>> from paho.mqtt.enums import CallbackAPIVersion
    >>> from shadowsync.testing import InMemoryShadowService
    >>> service = InMemoryShadowService()
    >>> client = Client(callback_api_version=CallbackAPIVersion.VERSION2)
    >>> with ServiceBridge(client, service) as bridge:  # then client.connect(...)
    ...     bridge.ready
    False

    ```
    """

    def __init__(
        self,
        client: Client,
        service: InMemoryShadowService,
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._client = check_client(client)
        if not isinstance(service, InMemoryShadowService):
            raise InvalidArgumentError(
                f"service must be an InMemoryShadowService, got {describe(service)}"
            )
        self._service = service
        self._errors = ErrorRoute(on_error)
        self._lock = threading.Lock()
        # The service is not thread-safe: requests (on the network thread) and `update` (on the
        # caller's) go through it one at a time, each publishing its replies before the next.
        self._serving = threading.Lock()
        self._subscription: int | None = None
        self._ready = threading.Event()
        self._started = False
        self._closed = False

    @property
    def service(self) -> InMemoryShadowService:
        """The service answering the requests."""
        return self._service

    @property
    def ready(self) -> bool:
        """Whether the broker acknowledged the subscriptions of the current connection."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for `ready`; return it."""
        return self._ready.wait(timeout)

    def start(self) -> ServiceBridge:
        """Install the callbacks; subscribe now if the client is connected, else on connect."""
        with self._lock:
            if self._closed:
                raise InvalidArgumentError("this bridge was closed; create a new one")
            if self._started:
                return self
            self._started = True
            client = self._client
            client.on_connect = self._on_connect
            client.on_message = self._on_message
            client.on_subscribe = self._on_subscribe
            client.on_disconnect = self._on_disconnect
        if client.is_connected():
            self._errors.guard(self._subscribe)
        return self

    def close(self) -> None:
        """Unsubscribe and remove the callbacks; requests are no longer answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ready.clear()
            client = self._client
            for name, ours in (
                ("on_connect", self._on_connect),
                ("on_message", self._on_message),
                ("on_subscribe", self._on_subscribe),
                ("on_disconnect", self._on_disconnect),
            ):
                if getattr(client, name) == ours:
                    setattr(client, name, None)
        if client.is_connected():
            client.unsubscribe(list(_REQUEST_FILTERS))

    def __enter__(self) -> ServiceBridge:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def update(
        self,
        thing_name: str,
        request: Mapping[str, Any] | bytes | str,
        shadow_name: str | None = None,
    ) -> UpdateResult:
        """Update a shadow from the cloud side and publish what AWS would publish.

        Publishes ``update/accepted``, ``update/delta`` (when there is a delta) and
        ``update/documents``; raises the AWS rejection (`shadowsync.errors.ShadowRejectedError`)
        and publishes nothing when the update is refused, as UpdateThingShadow over HTTP does.
        """
        with self._serving:
            result = self._service.update(thing_name, request, shadow_name)
            bodies: list[tuple[topics.Response, Mapping[str, Any] | None]] = [
                ("accepted", result.accepted),
                ("delta", result.delta),
                ("documents", result.documents),
            ]
            for response, body in bodies:
                if body is not None:
                    topic = topics.build(thing_name, "update", response, shadow_name=shadow_name)
                    self._publish(topic, dumps_compact(body).encode("utf-8"))
        return result

    def _publish(self, topic: str, payload: bytes) -> None:
        publish(self._client, topic, payload, self._errors)

    def _subscribe(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._ready.clear()
            result, mid = self._client.subscribe([(name, QOS) for name in _REQUEST_FILTERS])
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise TransportError(
                    f"cannot subscribe to the shadow requests: {error_string(result)}"
                )
            self._subscription = mid

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._errors.connected(reason_code, self._subscribe)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._ready.clear()

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            if mid != self._subscription:
                return
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self._errors.report(
                TransportError(f"the broker refused request subscriptions: {refused}")
            )
        else:
            self._ready.set()

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._errors.guard(lambda: self._answer(message))

    def _answer(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return  # not a shadow topic; AWS ignores it too
        with self._serving:
            for reply_topic, payload in self._service.handle(topic, bytes(message.payload)):
                self._publish(reply_topic, payload)
