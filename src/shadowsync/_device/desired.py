"""What a device session does with the desired state: the cloud's, and its own changes.

Every time the cloud's desired state may have changed (a snapshot, a delta, a documents
message), the session asks its `DesiredTracker` two things, in order:

1. `DesiredTracker.judge`: the cloud's desired state (as the `CloudView` knows it) goes through
   the resolution policy and the business rules into the view's accepted desired state; the
   result says which conflicts to announce and which acknowledgement to queue, if any;
2. `DesiredTracker.announce`, once that acknowledgement is queued: the delta the device still
   has to apply, announced when it is news, and what to report at once under ``auto_report``.

The tracker remembers what it announced, so that the application hears of a change once.
It also holds the desired changes made on the device (`ShadowSession.desire`), merged into
one patch, until an update carries them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._delta import compute_delta
from shadowsync._device.messages import rejections
from shadowsync._device.plan import merge_desired, merge_patches
from shadowsync._json import copy_object, json_equal
from shadowsync.events import ConflictResolved, DeltaReceived
from shadowsync.rules import ACK_KEY, Acknowledgement

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._device.intent import Intent
    from shadowsync._device.view import CloudView
    from shadowsync._json import JSONObject
    from shadowsync.rules import Rejection, RuleSet

__all__ = ["DesiredTracker", "Judgement", "Source"]

Source = Literal["snapshot", "delta", "other"]
"""What made the session judge the desired state again."""


@attrs.frozen(kw_only=True)
class Judgement:
    """The outcome of `DesiredTracker.judge`."""

    version: int
    """The desired version judged."""
    rejected: tuple[Rejection, ...] = ()
    """The paths the rules refused."""
    conflicts: ConflictResolved | None = None
    """The conflicts to announce, when they are news."""
    ack: Acknowledgement | None = None
    """The acknowledgement to queue as ``reported["$ack"]``, when it changed."""


@attrs.define(kw_only=True, eq=False)
class DesiredTracker:
    """The desired state as one session deals with it (see the module's description).

    ``acknowledge`` and ``auto_report`` are the settings of `SessionConfig`.
    """

    _view: CloudView
    _policy: ResolutionPolicy
    _rules: RuleSet | None
    _acknowledge: bool
    _auto_report: bool
    _thing_name: str
    _shadow_name: str | None
    _announced: list[Any] = attrs.field(init=False, factory=list)
    _last_delta: tuple[int, JSONObject] | None = attrs.field(init=False, default=None)
    _delta_since: float | None = attrs.field(init=False, default=None)
    _patch: JSONObject = attrs.field(init=False, factory=dict)
    _patch_since: float | None = attrs.field(init=False, default=None)

    @property
    def patch(self) -> JSONObject:
        """The desired changes made on the device and not sent yet (``{}`` if none)."""
        return self._patch

    def behind_since(self) -> float | None:
        """Since when the desired state differs between device and cloud: the older of a
        delta the device still owes and a `patch` not sent yet (``None`` while neither)."""
        times = [t for t in (self._delta_since, self._patch_since) if t is not None]
        return min(times, default=None)

    def change(self, section: JSONObject, now: float) -> None:
        """Add the desired changes ``section`` (``None`` deletes a key) to `patch`."""
        merge_patches(self._patch, section)
        if self._patch_since is None:
            self._patch_since = now

    def sent(self, state: JSONObject) -> None:
        """An update of ``state`` (``{"desired": patch}``) is settled: `patch` is done unless
        it changed since."""
        if json_equal(self._patch, state["desired"]):
            self._patch = {}
            self._patch_since = None

    def judge(self, now: float, pending: Callable[[], Sequence[Intent]]) -> Judgement:
        """Accept what the rules allow of the cloud's desired state into the view.

        ``pending`` gives the queued intents, whose last acknowledgement is compared with the
        new one: an unchanged acknowledgement is not queued again.
        """
        view = self._view
        theirs = view.theirs_desired()
        version = view.desired_version()
        result = merge_desired(
            accepted=view.agreed.accepted_desired,
            metadata=view.agreed.accepted_metadata,
            theirs=theirs,
            version=version,
            policy=self._policy,
            rules=self._rules,
            now=now,
            thing_name=self._thing_name,
            shadow_name=self._shadow_name,
        )
        view.accept_desired(result.merged, theirs)
        outcome = result.rule_outcome
        if outcome is None:
            return Judgement(version=version)
        rejected = outcome.acknowledgement.rejected
        conflicts: ConflictResolved | None = None
        ack: Acknowledgement | None = None
        wanted = [{"path": r.pointer, "rule": r.rule, "reason": r.reason} for r in rejected]
        if result.report and wanted != self._announced:
            conflicts = ConflictResolved(report=result.report, section="desired", version=version)
        self._announced = wanted
        if self._acknowledge and wanted != self._current_rejections(pending()):
            ack = Acknowledgement(
                desired_version=version,
                timestamp=int(now),
                applied=outcome.acknowledgement.applied,
                rejected=rejected,
            )
        return Judgement(version=version, rejected=rejected, conflicts=conflicts, ack=ack)

    def _current_rejections(self, pending: Sequence[Intent]) -> list[Any]:
        for intent in reversed(pending):
            if intent.kind == "ack" and isinstance(intent.value, dict):
                return rejections(intent.value)
        return rejections(self._view.theirs_reported.get(ACK_KEY))

    def announce(
        self, judgement: Judgement, reported: JSONObject, now: float, *, source: Source
    ) -> tuple[DeltaReceived | None, JSONObject]:
        """The delta between the accepted desired state and the device's ``reported`` state:
        the event that announces it (``None`` if it is no news), and the part to report at
        once (all of it under ``auto_report``, else nothing)."""
        delta = compute_delta(self._view.agreed.accepted_desired, reported)
        if not delta:
            self._delta_since = None
            return None, {}
        version = judgement.version
        event: DeltaReceived | None = None
        # Announce what the device has to apply when it changed; on every snapshot (a reconnect:
        # the application may have lost it); and when a delta comes again at a version already
        # announced (re-evaluated, never dropped as a duplicate).
        last = self._last_delta
        if (
            last is None
            or last[1] != delta
            or source == "snapshot"
            or (source == "delta" and version <= last[0])
        ):
            self._last_delta = (version, copy_object(delta))
            event = DeltaReceived(
                state=delta,
                version=version,
                rejected=judgement.rejected,
                auto_reported=self._auto_report,
            )
        if self._auto_report:
            self._delta_since = None
            return event, delta
        if self._delta_since is None:
            self._delta_since = now
        return event, {}

    def forget(self) -> None:
        """The shadow was deleted: nothing was announced and nothing is owed (the local
        changes stay, to be sent to the new shadow)."""
        self._last_delta = None
        self._delta_since = None
