"""The target state over HTTP, sans-I/O: `TargetPoller` decides when to ask and reads answers.

Balena's devices poll their target with ``If-None-Match``: an unchanged target costs a 304 and
no body. `TargetPoller` keeps the ETag and the last target it saw (both durable through
`PollerState`, so a restarted device still sends its ETag and still knows the target a 304
refers to), waits a jittered interval between polls, and backs off on failures. It never
opens a socket: `next_request` says what to send, `response` and `failed` take what came back.
`shadowsync.reconcile.http.fetch_target` runs one poll with the standard library.

```pycon
>>> poller = TargetPoller(PollConfig(url="http://127.0.0.1:8080/target"), random=lambda: 0.0)
>>> request = poller.next_request(now=0)
>>> request.headers
{'Accept': 'application/json'}
>>> polled = poller.response(200, {"ETag": '"a1"'}, b'{"version": 3, "target": {"web": "v1"}}',
...                          now=0.2)
>>> polled.version, polled.target
(3, {'web': 'v1'})
>>> poller.next_request(now=1) is None, poller.next_deadline()
(True, 60.2)
>>> poller.next_request(now=60.2).headers["If-None-Match"]
'"a1"'

```
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync import Backoff
from shadowsync._json import JSONObject, copy_object, describe
from shadowsync._validators import check_now, fraction, is_count, positive
from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile._errors import ReconcileStateError, TargetError
from shadowsync.reconcile._state import StateStore, is_object, is_text, optional_field

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PollConfig", "PollRequest", "PolledTarget", "PollerState", "TargetPoller"]


def _default_backoff() -> Backoff:
    return Backoff(initial=0.5, multiplier=2.0, maximum=60.0, jitter=0.25)


def _url(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not str or not value.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"url must be an http(s) URL, got {describe(value)}")


def _backoff(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Backoff):
        raise InvalidArgumentError(f"backoff must be a Backoff, got {describe(value)}")


@attrs.frozen(kw_only=True)
class PollConfig:
    """Where and how often to poll.

    ``interval`` seconds pass between two good polls, less up to ``jitter`` of it at random;
    after a failure the wait is ``backoff``'s delay instead (Balena caps it at the interval).
    ``timeout`` is what an adapter gives one request.
    """

    url: str = attrs.field(validator=_url)
    interval: float = attrs.field(default=60.0, validator=positive)
    jitter: float = attrs.field(default=0.1, validator=fraction)
    backoff: Backoff = attrs.field(factory=_default_backoff, validator=_backoff)
    timeout: float = attrs.field(default=10.0, validator=positive)


@attrs.frozen(kw_only=True)
class PollRequest:
    """A GET to send: ``url`` with ``headers`` (``If-None-Match`` once an ETag is known)."""

    url: str
    """Where."""
    headers: Mapping[str, str] = attrs.field(hash=False)
    """The request headers."""
    timeout: float
    """Seconds the adapter should wait for the answer."""


@attrs.frozen(kw_only=True)
class PolledTarget:
    """A target read from the server (``changed`` is ``False`` when a 304 confirmed the one
    already known): pass ``target`` and ``version`` to `Reconciler.set_target`."""

    target: JSONObject = attrs.field(hash=False)
    """The target state."""
    version: int
    """Its version."""
    changed: bool
    """Whether the server sent a new body (200) rather than a 304."""


def _check_store(store: object) -> None:
    if not isinstance(store, StateStore):
        raise InvalidArgumentError(f"store must have put_state/get_state, got {describe(store)}")


_OWNER = "poller state"


@attrs.frozen(kw_only=True)
class PollerState:
    """The durable part of a `TargetPoller`: the ETag and the target it names."""

    etag: str | None = attrs.field(
        default=None, validator=optional_field(is_text, "a string", owner=_OWNER)
    )
    """The last ETag the server sent."""
    target: JSONObject | None = attrs.field(
        default=None, hash=False, validator=optional_field(is_object, "an object", owner=_OWNER)
    )
    """The last target read."""
    version: int | None = attrs.field(
        default=None, validator=optional_field(is_count, "a version", owner=_OWNER)
    )
    """Its version."""

    def to_dict(self) -> JSONObject:
        """The JSON form."""
        return {"etag": self.etag, "target": self.target, "version": self.version}

    @classmethod
    def from_dict(cls, data: object) -> PollerState:
        """Read the JSON form back; `ReconcileStateError` names what is wrong."""
        if type(data) is not dict or set(data) - {"etag", "target", "version"}:
            raise ReconcileStateError(
                f"poller state: expected etag, target, version, got {describe(data)}"
            )
        return cls(etag=data.get("etag"), target=data.get("target"), version=data.get("version"))

    def save(self, store: StateStore, name: str = "poller") -> None:
        """Keep this state in ``store`` under ``name``."""
        _check_store(store)
        store.put_state(name, self.to_dict())

    @classmethod
    def load(cls, store: StateStore, name: str = "poller") -> PollerState | None:
        """The state kept in ``store`` under ``name``, or ``None``."""
        _check_store(store)
        data = store.get_state(name)
        return None if data is None else cls.from_dict(data)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse_target(body: bytes) -> tuple[JSONObject, int]:
    try:
        # NaN and Infinity would be kept in the durable state and refused by every reconciler.
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise TargetError(f"the polled target is not JSON: {exc}") from None
    if type(data) is not dict or type(data.get("target")) is not dict:
        raise TargetError(
            f'the polled body must be {{"version": <int>, "target": {{...}}}}, got {describe(data)}'
        )
    if not is_count(data.get("version")):
        raise TargetError(
            f"the polled version must be a non-negative int, got {describe(data.get('version'))}"
        )
    return data["target"], data["version"]


class TargetPoller:
    """When to poll the target over HTTP and what the answers mean (see the module docstring).

    The body of a 200 is ``{"version": <int>, "target": {...}}``; a 304 means the target named
    by the ETag sent is still the one. Anything else, or a body that cannot be read, counts as a
    failure and backs off (`last_error` says why).
    """

    def __init__(
        self,
        config: PollConfig,
        *,
        random: Callable[[], float],
        state: PollerState | None = None,
    ) -> None:
        if not isinstance(config, PollConfig):
            raise InvalidArgumentError(f"config must be a PollConfig, got {describe(config)}")
        if not callable(random):
            raise InvalidArgumentError("random must be a callable returning floats in [0, 1)")
        state = PollerState() if state is None else state
        if not isinstance(state, PollerState):
            raise InvalidArgumentError(f"state must be a PollerState, got {describe(state)}")
        self._config = config
        self._random = random
        self._state = state
        self._due: float | None = None  # None: poll at once
        self._in_flight = False
        self._failures = 0
        self.last_error: str | None = None
        """Why the last poll failed, ``None`` after a good one."""

    @property
    def state(self) -> PollerState:
        """The durable part, to save after every poll that changed it."""
        return self._state

    def next_request(self, now: float) -> PollRequest | None:
        """The GET to send now, or ``None`` if it is not time yet (or one is in flight)."""
        now = check_now(now)
        if self._in_flight or (self._due is not None and now < self._due):
            return None
        self._in_flight = True
        headers = {"Accept": "application/json"}
        if self._state.etag is not None and self._state.target is not None:
            headers["If-None-Match"] = self._state.etag
        return PollRequest(url=self._config.url, headers=headers, timeout=self._config.timeout)

    def next_deadline(self) -> float | None:
        """When the next poll is due (``None``: now, or when the one in flight answers)."""
        return None if self._in_flight else self._due

    def response(
        self, status: int, headers: Mapping[str, str], body: bytes, now: float
    ) -> PolledTarget | None:
        """The answer to the request in flight: the target it names, or ``None`` (a failure)."""
        now = check_now(now)
        if type(status) is not int:
            raise InvalidArgumentError(f"status must be an int, got {describe(status)}")
        if not isinstance(headers, Mapping):
            raise InvalidArgumentError(f"headers must be a mapping, got {describe(headers)}")
        if not isinstance(body, (bytes, bytearray)):
            raise InvalidArgumentError(f"body must be bytes, got {describe(body)}")
        self._answered()
        etag = next((v for k, v in headers.items() if str(k).lower() == "etag"), None)
        if type(etag) is not str:
            etag = None  # not an ETag a later request could send back
        if status == 304 and self._state.target is not None and self._state.version is not None:
            self._succeeded(now)
            return PolledTarget(
                target=copy_object(self._state.target), version=self._state.version, changed=False
            )
        if status != 200:
            self._failed(f"HTTP {status}", now)
            return None
        try:
            target, version = _parse_target(body)
        except TargetError as exc:
            self._failed(str(exc), now)
            return None
        self._state = PollerState(etag=etag, target=target, version=version)
        self._succeeded(now)
        return PolledTarget(target=copy_object(target), version=version, changed=True)

    def failed(self, error: str, now: float) -> None:
        """The request in flight got no answer (refused, timed out): back off."""
        now = check_now(now)
        if type(error) is not str or not error:
            raise InvalidArgumentError(f"error must be a non-empty str, got {describe(error)}")
        self._answered()
        self._failed(error, now)

    def _answered(self) -> None:
        if not self._in_flight:
            raise InvalidArgumentError("no poll is in flight")
        self._in_flight = False

    def _succeeded(self, now: float) -> None:
        self._failures = 0
        self.last_error = None
        spread = self._config.jitter * self._config.interval * _draw(self._random)
        self._due = now + self._config.interval - spread

    def _failed(self, error: str, now: float) -> None:
        self.last_error = error
        delay = self._config.backoff.delay(self._failures, self._random)
        self._failures += 1
        self._due = now + min(delay, self._config.interval)


def _draw(random: Callable[[], float]) -> float:
    value = random()
    if not isinstance(value, float | int) or isinstance(value, bool) or not 0 <= value < 1:
        raise InvalidArgumentError(f"random must return a float in [0, 1), got {value!r}")
    return float(value)
