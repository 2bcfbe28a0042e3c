"""The reserved MQTT topics of the AWS IoT Device Shadow service, built and parsed safely.

Classic shadows live under ``$aws/things/{thing}/shadow`` and named shadows under
``$aws/things/{thing}/shadow/name/{shadow}``. Names are checked against the AWS naming rules,
so a name can never smuggle a ``/``, ``+`` or ``#`` into a topic and change its meaning.

```pycon
>>> from shadowsync import topics
>>> topics.build("lamp-1", "update", "delta", shadow_name="config")
'$aws/things/lamp-1/shadow/name/config/update/delta'
>>> topics.parse("$aws/things/lamp-1/shadow/get/accepted")
ShadowTopic(thing_name='lamp-1', shadow_name=None, operation='get', response='accepted')

```
"""

from __future__ import annotations

from typing import Literal, get_args

import attrs

from shadowsync._json import describe
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync.errors import ShadowRejectedError, TopicError

__all__ = [
    "OPERATIONS",
    "RESPONSES",
    "Operation",
    "Response",
    "ShadowTopic",
    "build",
    "parse",
    "prefix",
    "subscriptions",
]

Operation = Literal["update", "get", "delete"]
"""A request a client publishes."""

Response = Literal["accepted", "rejected", "delta", "documents"]
"""A message the service publishes in answer (``delta`` and ``documents`` follow ``update``)."""

OPERATIONS: tuple[Operation, ...] = get_args(Operation)
"""Every operation, in the order AWS documents them."""

RESPONSES: tuple[Response, ...] = get_args(Response)
"""Every response suffix."""

_ROOT = "$aws/things/"


def _check_pair(operation: str, response: str | None) -> None:
    if operation not in OPERATIONS:
        raise TopicError(
            f"unknown shadow operation {describe(operation)}; expected one of {OPERATIONS}"
        )
    if response is not None:
        if response not in RESPONSES:
            raise TopicError(
                f"unknown shadow response {describe(response)}; expected one of {RESPONSES}"
            )
        if response in ("delta", "documents") and operation != "update":
            raise TopicError(f"{operation}/{response} is not a shadow topic; only update has it")


@attrs.frozen(kw_only=True)
class ShadowTopic:
    """A parsed shadow topic: whose shadow, which operation, which response (``None``: request)."""

    thing_name: str
    shadow_name: str | None = None
    operation: Operation
    response: Response | None = None

    def __attrs_post_init__(self) -> None:
        _check_pair(self.operation, self.response)

    @property
    def topic(self) -> str:
        """The topic string."""
        return build(self.thing_name, self.operation, self.response, shadow_name=self.shadow_name)

    @property
    def is_request(self) -> bool:
        """True for the topics a client publishes to (``update``, ``get``, ``delete``)."""
        return self.response is None


def prefix(
    thing_name: str, shadow_name: str | None = None, *, limits: ShadowLimits = DEFAULT_LIMITS
) -> str:
    """The topic prefix of a classic (``shadow_name=None``) or named shadow.

    Raises `TopicError` for a name that breaks the AWS naming rules.
    """
    try:
        thing = limits.check_thing_name(thing_name)
        if shadow_name is None:
            return f"{_ROOT}{thing}/shadow"
        shadow = limits.check_shadow_name(shadow_name)
    except ShadowRejectedError as exc:
        raise TopicError(f"{exc.message}: {exc.detail}") from None
    return f"{_ROOT}{thing}/shadow/name/{shadow}"


def build(
    thing_name: str,
    operation: Operation,
    response: Response | None = None,
    *,
    shadow_name: str | None = None,
    limits: ShadowLimits = DEFAULT_LIMITS,
) -> str:
    """Build a shadow topic, e.g. ``build("t", "update", "accepted")``."""
    _check_pair(operation, response)
    base = f"{prefix(thing_name, shadow_name, limits=limits)}/{operation}"
    return base if response is None else f"{base}/{response}"


def parse(topic: str, *, limits: ShadowLimits = DEFAULT_LIMITS) -> ShadowTopic:
    """Parse a reserved shadow topic; raise `TopicError` otherwise.

    Topics are case-sensitive, as in AWS IoT.
    """
    if not isinstance(topic, str):
        raise TopicError(f"a topic is a string, got {type(topic).__name__}")
    if not topic.startswith(_ROOT):
        raise TopicError(f"{topic[:80]!r} is not a shadow topic (it must start with {_ROOT!r})")
    parts = topic[len(_ROOT) :].split("/")
    # thing / "shadow" / ["name" / shadow /] operation [/ response]
    if len(parts) < 3 or parts[1] != "shadow":
        raise TopicError(f"{topic[:80]!r} is not a shadow topic")
    thing = parts[0]
    rest = parts[2:]
    shadow: str | None = None
    if rest[0] == "name":
        if len(rest) < 3:
            raise TopicError(f"{topic[:80]!r} names no shadow and operation")
        shadow = rest[1]
        rest = rest[2:]
    if len(rest) > 2:
        raise TopicError(f"{topic[:80]!r} has too many levels for a shadow topic")
    operation = rest[0]
    response = rest[1] if len(rest) == 2 else None
    _check_pair(operation, response)
    try:
        limits.check_thing_name(thing)
        if shadow is not None:
            limits.check_shadow_name(shadow)
    except ShadowRejectedError as exc:
        raise TopicError(f"{exc.message}: {exc.detail}") from None
    return ShadowTopic(
        thing_name=thing,
        shadow_name=shadow,
        operation=operation,  # type: ignore[arg-type]
        response=response,  # type: ignore[arg-type]
    )


def subscriptions(
    thing_name: str, shadow_name: str | None = None, *, limits: ShadowLimits = DEFAULT_LIMITS
) -> list[str]:
    """Every response topic a device should subscribe to, spelled out (AWS advises no wildcards).

    ```pycon
    >>> subscriptions("t")[:2]
    ['$aws/things/t/shadow/update/accepted', '$aws/things/t/shadow/update/rejected']

    ```
    """
    pairs: list[tuple[Operation, Response]] = [
        ("update", "accepted"),
        ("update", "rejected"),
        ("update", "delta"),
        ("update", "documents"),
        ("get", "accepted"),
        ("get", "rejected"),
        ("delete", "accepted"),
        ("delete", "rejected"),
    ]
    return [
        build(thing_name, op, resp, shadow_name=shadow_name, limits=limits) for op, resp in pairs
    ]
