"""Where reconciliation stands, as a value: `Phase` and `ReconcileStatus`."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shadowsync._json import JSONObject

__all__ = ["RECONCILE_KEY", "Phase", "ReconcileStatus"]

RECONCILE_KEY = "$reconcile"
"""The reported-state key the `ShadowReconciler` writes `ReconcileStatus.to_dict` under."""


class Phase(enum.Enum):
    """The one word that sums up a reconciler's state."""

    IDLE = "idle"
    """No target yet."""
    CONVERGED = "converged"
    """What was observed is the target: nothing to do."""
    APPLYING = "applying"
    """Steps are running or runnable."""
    BLOCKED = "blocked"
    """Nothing can run: every remaining component waits for a lock or a dependency."""
    BACKING_OFF = "backing_off"
    """A step failed; the component waits for its retry time."""
    ROLLED_BACK = "rolled_back"
    """The target failed too often; the last target that converged is back in force."""


@attrs.frozen(kw_only=True)
class ReconcileStatus:
    """What `Reconciler.status` tells: the phase and why.

    ``blocked_on`` says what each waiting component waits for (``"web: waits for db"``,
    ``"web: lock 'ota' is held"``); ``attempts`` counts failures per component on this target;
    ``last_error`` is the most recent failure (``"web: exit status 1"``); ``retry_at`` the
    earliest retry; ``rolled_back_from`` the version that was given up.
    """

    phase: Phase
    """The summary."""
    version: int | None
    """The version of the target in force (after a rollback: the last good one's)."""
    converged: bool = False
    """Whether what was observed is the target in force."""
    blocked_on: tuple[str, ...] = ()
    """What waiting components wait for."""
    attempts: Mapping[str, int] = attrs.field(factory=dict, hash=False)
    """Failed attempts per component on the target in force."""
    last_error: str | None = None
    """The most recent failure, prefixed with its component."""
    retry_at: float | None = None
    """When the earliest backing-off component retries."""
    rolled_back_from: int | None = None
    """The target version given up by a rollback, else ``None``."""

    def to_dict(self) -> JSONObject:
        """The JSON form for ``reported["$reconcile"]``: every key always present, arrays for
        lists, so that a new report replaces the previous one under the shadow's deep merge.

        ```pycon
        >>> ReconcileStatus(phase=Phase.CONVERGED, version=4, converged=True).to_dict()["status"]
        'converged'

        ```
        """
        return {
            "status": self.phase.value,
            "version": self.version,
            "blockedOn": list(self.blocked_on),
            "attempts": [[name, count] for name, count in sorted(self.attempts.items())],
            "lastError": self.last_error,
            "retryAt": self.retry_at,
            "rolledBackFrom": self.rolled_back_from,
        }
