"""How a device sync session behaves (`SessionConfig`, `Backoff`) and how it is doing
(`SessionHealth`), as values checked when they are made.

```pycon
>>> from shadowsync._device.config import Backoff, SessionConfig
>>> SessionConfig(request_timeout=10, backoff=Backoff(initial=2)).backoff.delay(1, lambda: 0.0)
4.0

```
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._device.pacing import ReportPolicy
from shadowsync._device.queue import QueueLimits
from shadowsync._device.state import SessionState
from shadowsync._json import describe
from shadowsync._limits import DEFAULT_LIMITS, ShadowLimits
from shadowsync._validators import count, flag, fraction, positive
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff", "SessionConfig", "SessionHealth"]


def _random_value(random: Callable[[], float]) -> float:
    value = random()
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 <= value < 1  # also refuses NaN
    ):
        raise InvalidArgumentError(
            f"the random source must return a float in [0, 1), got {describe(value)}"
        )
    return float(value)


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with jitter: the delay before retry number ``attempt`` (from 0).

    The delay grows from ``initial`` by ``multiplier`` per attempt up to ``maximum``; then a
    random fraction of up to ``jitter`` of it is taken off, so devices that failed together
    do not retry together (``jitter=1`` is AWS's "full jitter"). The random number comes from
    the caller, as a float in [0, 1).

    ```pycon
    >>> backoff = Backoff(initial=1, multiplier=2, maximum=60, jitter=0.5)
    >>> [backoff.delay(attempt, lambda: 0.0) for attempt in range(8)]
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    >>> backoff.delay(3, lambda: 0.5)
    6.0

    ```
    """

    initial: float = attrs.field(default=1.0, validator=positive)
    multiplier: float = attrs.field(default=2.0, validator=positive)
    maximum: float = attrs.field(default=300.0, validator=positive)
    jitter: float = attrs.field(default=0.5, validator=fraction)

    def __attrs_post_init__(self) -> None:
        if self.multiplier < 1:
            raise InvalidArgumentError(
                f"multiplier must be at least 1, got {describe(self.multiplier)}"
            )
        if self.maximum < self.initial:
            raise InvalidArgumentError("maximum must be at least initial")

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry)."""
        if type(attempt) is not int or attempt < 0:
            raise InvalidArgumentError(f"attempt must be a non-negative int, got {attempt!r}")
        multiplier = float(self.multiplier)
        if multiplier > 1:
            # The maximum is reached after this many steps; more would overflow a float.
            attempt = min(attempt, math.ceil(math.log(self.maximum / self.initial, multiplier)))
        base = min(float(self.maximum), self.initial * multiplier**attempt)
        return float(base * (1.0 - self.jitter * _random_value(random)))


def _default_queue_limits() -> QueueLimits:
    return QueueLimits()


@attrs.frozen(kw_only=True)
class SessionConfig:
    """How a `ShadowSession` behaves.

    - ``request_timeout``: seconds to wait for the answer to a get, update or delete;
    - ``max_conflict_retries``: 409s in a row to refetch, merge and retry before escalating to
      manual review;
    - ``backoff``: the delays between retries;
    - ``auto_report``: report applied desired values automatically ("sync on delta");
    - ``acknowledge``: report rule rejections of desired values as ``reported["$ack"]``;
    - ``compare_and_set``: send the known ``version`` with every update, so a concurrent change
      is met with 409 and merged instead of overwritten;
    - ``limits``: the shadow limits (size, depth, names, client tokens);
    - ``queue_limits``: the offline queue's bounds, when the session builds the queue;
    - ``max_payload_bytes``: bigger incoming messages are ignored unread;
    - ``node``: the node id of the session's hybrid logical clock (default: the thing name);
    - ``refresh_interval``: seconds in sync after which the session fetches the snapshot again,
      a safety net against subscriptions that die silently (``None``, the default: never);
    - ``report_policy``: how often updates go out and which small changes wait
      (`ReportPolicy`; the default sends at once).
    """

    request_timeout: float = attrs.field(default=30.0, validator=positive)
    max_conflict_retries: int = attrs.field(default=5, validator=count)
    backoff: Backoff = attrs.field(factory=Backoff)
    auto_report: bool = attrs.field(default=False, validator=flag)
    acknowledge: bool = attrs.field(default=True, validator=flag)
    compare_and_set: bool = attrs.field(default=True, validator=flag)
    limits: ShadowLimits = attrs.field(default=DEFAULT_LIMITS)
    queue_limits: QueueLimits = attrs.field(factory=_default_queue_limits)
    max_payload_bytes: int = attrs.field(default=256 * 1024, validator=count)
    node: str | None = None
    refresh_interval: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive)
    )
    report_policy: ReportPolicy = attrs.field(factory=ReportPolicy)

    @report_policy.validator
    def _check_report_policy(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, ReportPolicy):
            raise InvalidArgumentError(
                f"report_policy must be a ReportPolicy, got {describe(value)}"
            )

    @backoff.validator
    def _check_backoff(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Backoff):
            raise InvalidArgumentError(f"backoff must be a Backoff, got {describe(value)}")

    @limits.validator
    def _check_limits(self, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, ShadowLimits):
            raise InvalidArgumentError(f"limits must be ShadowLimits, got {describe(value)}")


@attrs.frozen(kw_only=True)
class SessionHealth:
    """How a session is doing, as data: what is pending, since when, and whether it is stuck.

    ``divergence_age`` is how long device and cloud have disagreed (the oldest unsent intent, a
    delta not yet applied, a desired change not yet sent); ``None`` when they agree.
    """

    state: SessionState
    connected: bool
    pending_intents: int
    oldest_pending_age: float | None
    last_sync_at: int | None
    consecutive_failures: int
    divergence_age: float | None
    next_retry_at: float | None
    last_seen_version: int | None
    held_back: int = 0
    """Queued changes the report policy holds back (under their deadband, or waiting for the
    minimum interval); they go out with the next update."""

    @property
    def in_review(self) -> bool:
        """True while syncing is suspended for manual review."""
        return self.state is SessionState.REVIEW

    def to_json(self) -> dict[str, Any]:
        """A JSON form for metrics and health reports."""
        return {
            "state": self.state.value,
            "connected": self.connected,
            "pendingIntents": self.pending_intents,
            "oldestPendingAge": self.oldest_pending_age,
            "lastSyncAt": self.last_sync_at,
            "consecutiveFailures": self.consecutive_failures,
            "divergenceAge": self.divergence_age,
            "nextRetryAt": self.next_retry_at,
            "lastSeenVersion": self.last_seen_version,
            "heldBack": self.held_back,
            "inReview": self.in_review,
        }
