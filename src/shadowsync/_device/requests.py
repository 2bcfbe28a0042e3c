"""The request a device session has in flight, and the messages that carry its requests.

A session sends at most one request at a time (a get, an update or a delete), each with a
fresh client token and a deadline. `Requests` makes the messages (`Subscribe`, `Publish`),
remembers the request in flight, tells which request an answer is for (by operation and client
token), and which one timed out. When to send, and what to do with an answer, is the session's
business.

```pycon
>>> from shadowsync._limits import DEFAULT_LIMITS
>>> requests = Requests(
...     thing_name="lamp", shadow_name=None, limits=DEFAULT_LIMITS, token=lambda: "t1", timeout=30
... )
>>> requests.send("get", now=100.0).payload
b'{"clientToken":"t1"}'
>>> requests.answered("get", {"clientToken": "t1"}).deadline
130.0
>>> requests.answered("get", {"clientToken": "t0"}) is None
True

```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync import topics
from shadowsync._json import describe, dumps_compact
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import Publish, Subscribe

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shadowsync._device.plan import Planned
    from shadowsync._limits import ShadowLimits

__all__ = ["Request", "Requests"]


@attrs.frozen(kw_only=True)
class Request:
    """A request sent and not answered yet: an update carries its plan entry and body."""

    operation: Literal["get", "update", "delete"]
    token: str
    deadline: float
    planned: Planned | None = None
    body: dict[str, Any] | None = attrs.field(default=None, eq=False)


@attrs.define(kw_only=True, eq=False)
class Requests:
    """The requests of one shadow: the messages that carry them, and the one in flight.

    ``token`` makes the client tokens; an answer must come within ``timeout`` seconds.
    """

    _thing_name: str
    _shadow_name: str | None
    _limits: ShadowLimits
    _token: Callable[[], str]
    _timeout: float
    _in_flight: Request | None = attrs.field(init=False, default=None)

    @property
    def in_flight(self) -> Request | None:
        """The request waiting for its answer, if any."""
        return self._in_flight

    def subscribe(self) -> Subscribe:
        """Subscribe to every response and notification topic of the shadow."""
        names = topics.subscriptions(self._thing_name, self._shadow_name, limits=self._limits)
        return Subscribe(topics=tuple(names))

    def new_token(self) -> str:
        """A new client token; `InvalidArgumentError` if the factory returned a bad one."""
        token = self._token()
        if not isinstance(token, str) or not token:
            raise InvalidArgumentError(f"the token factory returned {describe(token)}")
        problem = self._limits.client_token_problem(token)
        if problem is not None:
            raise InvalidArgumentError(f"the token factory returned {describe(token)}: {problem}")
        return token

    def send(self, operation: Literal["get", "delete"], now: float) -> Publish:
        """Send a get or a delete with a new client token; it is in flight from ``now``."""
        token = self.new_token()
        self._in_flight = Request(operation=operation, token=token, deadline=now + self._timeout)
        return self._publish(operation, {"clientToken": token})

    def send_update(self, planned: Planned, body: dict[str, Any], now: float) -> Publish:
        """Send the update ``body`` of ``planned`` (its client token is the plan's)."""
        self._in_flight = Request(
            operation="update",
            token=planned.token,
            deadline=now + self._timeout,
            planned=planned,
            body=body,
        )
        return self._publish("update", body)

    def answered(self, operation: str, body: Mapping[str, Any]) -> Request | None:
        """The request in flight that ``body``, a response to ``operation``, answers; else
        ``None``. It stays in flight until `done`."""
        request = self._in_flight
        if request is None or request.operation != operation:
            return None
        return request if body.get("clientToken") == request.token else None

    def timed_out(self, now: float) -> Request | None:
        """The request in flight if its deadline passed at ``now`` (it is then done)."""
        request = self._in_flight
        if request is None or now < request.deadline:
            return None
        self._in_flight = None
        return request

    def done(self) -> None:
        """Nothing is in flight any more: answered, or forgotten on a disconnect."""
        self._in_flight = None

    def _publish(self, operation: topics.Operation, body: Mapping[str, Any]) -> Publish:
        topic = topics.build(
            self._thing_name, operation, shadow_name=self._shadow_name, limits=self._limits
        )
        return Publish(topic=topic, payload=dumps_compact(body).encode("utf-8"))
