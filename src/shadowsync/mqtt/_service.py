"""`ServiceBridge`: an in-memory shadow service answering shadow requests on a broker."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shadowsync import topics
from shadowsync._json import describe, dumps_compact
from shadowsync.errors import InvalidArgumentError
from shadowsync.mqtt._transport import Bridge, publish, subscribe
from shadowsync.testing import InMemoryShadowService

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from paho.mqtt.client import Client, MQTTMessage
    from paho.mqtt.reasoncodes import ReasonCode

    from shadowsync._update import UpdateResult

_REQUEST_FILTERS = tuple(f"$aws/things/+/shadow/{op}" for op in topics.OPERATIONS) + tuple(
    f"$aws/things/+/shadow/name/+/{op}" for op in topics.OPERATIONS
)


class ServiceBridge(Bridge):
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
        super().__init__(client, on_error)
        if not isinstance(service, InMemoryShadowService):
            raise InvalidArgumentError(
                f"service must be an InMemoryShadowService, got {describe(service)}"
            )
        self._service = service
        self._lock = threading.Lock()
        # The service is not thread-safe: requests (on the network thread) and `update` (on the
        # caller's) go through it one at a time, each publishing its replies before the next.
        self._serving = threading.Lock()
        self._subscription: int | None = None
        self._ready = threading.Event()
        self._hold_client()

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
            if not self._install():
                return self
        if self._client.is_connected():
            self._errors.guard(self._subscribe)
        return self

    def close(self) -> None:
        """Unsubscribe and remove the callbacks; requests are no longer answered."""
        with self._lock:
            if not self._uninstall():
                return
            self._ready.clear()
        if self._client.is_connected():
            self._client.unsubscribe(list(_REQUEST_FILTERS))

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
            self._subscription = subscribe(self._client, _REQUEST_FILTERS, "the shadow requests")

    # -- on the client's network thread (see Bridge) ---------------------------------------

    def _connected(self) -> None:
        self._subscribe()

    def _disconnected(self) -> None:
        self._ready.clear()

    def _subscribed(self, mid: int, reason_codes: list[ReasonCode]) -> None:
        with self._lock:
            if mid != self._subscription:
                return
        if self._errors.subscribed(reason_codes, "request"):
            self._ready.set()

    def _received(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return  # not a shadow topic; AWS ignores it too
        with self._serving:
            for reply_topic, payload in self._service.handle(topic, bytes(message.payload)):
                self._publish(reply_topic, payload)
