"""Report pacing: how often a session sends updates, and which small changes may wait.

Greengrass caps outbound shadow updates (``maxOutboundSyncUpdatesPerSecond``) and Balena's
supervisor reports at most once per interval, skipping insignificant changes. A `ReportPolicy`
says the same for one shadow: a minimum interval between two updates, a maximum rate, and a
deadband per numeric path (a change smaller than it does not cause an update by itself). The
`ReportPacer` applies it: nothing it holds back is lost, since every change is queued durably
as usual; held changes ride along with the next update, or go out alone after ``max_hold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from shadowsync._device.intent import written_leaves
from shadowsync._json import describe
from shadowsync._tree import lookup
from shadowsync._validators import is_finite_number, non_negative, positive
from shadowsync.errors import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shadowsync._device.intent import Intent
    from shadowsync._json import JSONObject
    from shadowsync._tree import Path

__all__ = ["ReportPacer", "ReportPolicy"]


def _deadband(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"deadband must map dotted paths to numbers, got {describe(value)}"
        )
    out: dict[str, float] = {}
    for path, band in value.items():
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError(f"a deadband path must be a dotted string, got {path!r}")
        if not is_finite_number(band) or band < 0:
            raise InvalidArgumentError(
                f"the deadband of {path!r} must be a finite number >= 0, got {describe(band)}"
            )
        out[path] = float(band)
    return out


def _max_rate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        positive(instance, attribute, value)


@attrs.frozen(kw_only=True)
class ReportPolicy:
    """How often a session sends updates, and which small changes may wait.

    - ``min_interval``: seconds between the starts of two updates (0: no minimum);
    - ``max_rate``: updates per second at most (``None``: no cap);
    - ``deadband``: per dotted reported path (``"sensors.temp_c"``), the smallest numeric change
      that is worth an update; a smaller one is queued but waits for company;
    - ``max_hold``: seconds a change under its deadband waits before it goes out alone, so the
      last value always reaches the cloud.

    ```pycon
    >>> policy = ReportPolicy(min_interval=10, deadband={"temp_c": 0.5})
    >>> policy.gap
    10.0

    ```
    """

    min_interval: float = attrs.field(default=0.0, validator=non_negative)
    max_rate: float | None = attrs.field(default=None, validator=_max_rate)
    deadband: dict[str, float] = attrs.field(factory=dict, converter=_deadband)
    max_hold: float = attrs.field(default=60.0, validator=positive)

    @property
    def gap(self) -> float:
        """Seconds between the starts of two updates."""
        rate_gap = 0.0 if self.max_rate is None else 1.0 / self.max_rate
        return float(max(self.min_interval, rate_gap))


class ReportPacer:
    """Applies a `ReportPolicy` to one session: when it may send, and what it holds back."""

    def __init__(self, policy: ReportPolicy) -> None:
        if not isinstance(policy, ReportPolicy):
            raise InvalidArgumentError(f"report_policy must be a ReportPolicy, got {policy!r}")
        self._policy = policy
        self._last_sent: float | None = None
        self._held: set[int] = set()
        self._held_since: float | None = None
        self.held_total = 0
        """Changes held back under their deadband since the session started."""

    @property
    def has_deadband(self) -> bool:
        """Whether some path has a deadband (else no change is ever held back)."""
        return bool(self._policy.deadband)

    def hold_if_small(self, queued: Sequence[Intent], before: JSONObject, now: float) -> None:
        """Hold the intents a report ``queued`` when every one of them is a change under its
        deadband from the reported state ``before`` the report."""
        if queued and all(
            self.below_deadband(path, value, lookup(before, path))
            for intent in queued
            for path, value in written_leaves(intent)
        ):
            self.hold((intent.seq for intent in queued), now)

    def below_deadband(self, path: Path, value: object, current: object) -> bool:
        """Whether writing ``value`` where ``current`` is is a change under its deadband."""
        band = self._policy.deadband.get(".".join(path))
        if band is None or not is_finite_number(value) or not is_finite_number(current):
            return False
        return math.fabs(float(value) - float(current)) < band  # type: ignore[arg-type]

    def hold(self, seqs: Iterable[int], now: float) -> None:
        """The intents ``seqs`` are changes under their deadband: they wait for company."""
        fresh = set(seqs) - self._held
        if not fresh:
            return
        self._held |= fresh
        self.held_total += len(fresh)
        if self._held_since is None:
            self._held_since = now

    def held_back(self, pending: Iterable[int]) -> int:
        """How many of the ``pending`` intents are held back under their deadband."""
        return len(self._held & set(pending))

    def wait_until(self, pending: Iterable[int], now: float) -> float | None:
        """When the next update may go out (``None``: now). Held changes alone wait for
        ``max_hold``; every update waits for the gap since the previous one."""
        waiting = set(pending)
        self._held &= waiting
        if not self._held:
            self._held_since = None
        times: list[float] = []
        if waiting and waiting <= self._held and self._held_since is not None:
            times.append(self._held_since + self._policy.max_hold)
        gap = self._policy.gap
        if gap and self._last_sent is not None:
            times.append(self._last_sent + gap)
        until = max(times) if times else None
        return until if until is not None and until > now else None

    def sent(self, now: float) -> None:
        """An update went out at ``now``: whatever was held rides along with it."""
        self._last_sent = now
        self._held.clear()
        self._held_since = None
