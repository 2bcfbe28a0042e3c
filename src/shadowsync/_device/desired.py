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
one patch, until an update carries them. That patch is durable: it is written to the store
(``put_state``) with the cloud's desired state it was made against (its base) and the time of
each path, so it survives a crash or a reboot. Every judgement first merges it three ways
(base, the base with the patch, the cloud's desired state) through the shadow's policy: a path
the cloud changed since the base is a conflict the policy settles (by default the cloud owns
desired, so the cloud's value wins and the local one is dropped, with a `ConflictResolved`);
a path the cloud did not change stays in the patch, and is judged as if the cloud held it
already, so the application is never told to apply a value the same reconciliation replaces.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

import attrs

from shadowsync._conflict.merge import merge, same, stamps_from_metadata
from shadowsync._delta import compute_delta
from shadowsync._device.messages import rejections
from shadowsync._device.plan import merge_desired, merge_patches
from shadowsync._device.view import apply_at
from shadowsync._json import copy_json, copy_object, json_equal
from shadowsync._tree import MISSING, leaves, lookup, place
from shadowsync.events import ConflictResolved, DeltaReceived, Event, ReviewNeeded
from shadowsync.rules import ACK_KEY, Acknowledgement

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shadowsync._conflict.policy import ResolutionPolicy
    from shadowsync._device.intent import Intent
    from shadowsync._device.store import Store
    from shadowsync._device.view import CloudView
    from shadowsync._json import JSONObject
    from shadowsync.rules import Rejection, RuleSet

__all__ = ["DesiredTracker", "Judgement", "Source", "patch_state_name"]

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
    local: tuple[Event, ...] = ()
    """What the merge of the local desired changes settled (`ConflictResolved`) or holds for
    review (`ReviewNeeded`)."""


_MAX_STATE_NAME = 128


def patch_state_name(thing_name: str, shadow_name: str | None) -> str:
    """The store's state name under which a shadow's local desired changes are kept."""
    name = f"desired/{thing_name}" + ("" if shadow_name is None else f"/{shadow_name}")
    if len(name) <= _MAX_STATE_NAME:
        return name
    # A long thing name and a long shadow name exceed the store's name length: hash them.
    digest = hashlib.sha256(f"{thing_name}\x00{shadow_name}".encode()).hexdigest()
    return f"desired#{digest}"


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
    _store: Store | None = None
    _announced: list[Any] = attrs.field(init=False, factory=list)
    _last_delta: tuple[int, JSONObject] | None = attrs.field(init=False, default=None)
    _delta_since: float | None = attrs.field(init=False, default=None)
    _patch: JSONObject = attrs.field(init=False, factory=dict)
    _patch_since: float | None = attrs.field(init=False, default=None)
    # The cloud's desired state the patch was made against, and when each path was changed.
    _base: JSONObject = attrs.field(init=False, factory=dict)
    _stamps: dict[tuple[str, ...], int] = attrs.field(init=False, factory=dict)
    _state_name: str = attrs.field(init=False, default="")

    def __attrs_post_init__(self) -> None:
        self._state_name = patch_state_name(self._thing_name, self._shadow_name)
        self._load()

    def _load(self) -> None:
        if self._store is None:
            return
        saved: Any = self._store.get_state(self._state_name)
        if not saved or type(saved.get("patch")) is not dict or not saved["patch"]:
            return
        self._patch = copy_object(saved["patch"])
        base = saved.get("base")
        self._base = copy_object(base) if type(base) is dict else {}
        since = saved.get("since")
        self._patch_since = float(since) if isinstance(since, (int, float)) else 0.0
        for item in saved.get("stamps") or ():
            if type(item) is list and len(item) == 2 and type(item[0]) is list:
                self._stamps[tuple(str(key) for key in item[0])] = int(item[1])

    def _save(self) -> None:
        # One put_state: the patch, its base and its stamps are written together or not at all.
        if self._store is None:
            return
        self._store.put_state(
            self._state_name,
            {
                "patch": copy_object(self._patch),
                "base": copy_object(self._base),
                "since": self._patch_since,
                "stamps": [[list(path), at] for path, at in sorted(self._stamps.items())],
            },
        )

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
        """Add the desired changes ``section`` (``None`` deletes a key) to `patch`, durably.

        The first change of a path records the cloud's desired state as known now as its base.
        """
        if not self._patch:
            self._base = copy_object(self._view.theirs_desired())
            self._stamps = {}
        merge_patches(self._patch, section)
        for path, _ in leaves(section):
            self._stamps[path] = int(now)
        if self._patch_since is None:
            self._patch_since = now
        self._save()

    def sent(self, state: JSONObject) -> None:
        """An update of ``state`` (``{"desired": patch}``) is settled: `patch` is done unless
        it changed since."""
        if json_equal(self._patch, state["desired"]):
            self._clear()

    def _clear(self) -> None:
        self._patch = {}
        self._patch_since = None
        self._base = {}
        self._stamps = {}
        self._save()

    def _settle_patch(
        self, theirs: JSONObject, version: int
    ) -> tuple[JSONObject, tuple[Event, ...]]:
        """Merge the local patch three ways against the cloud's desired state ``theirs``.

        Returns the desired state to judge (``theirs`` with what stays of the patch applied)
        and the events of the merge. Afterwards the patch holds only the paths the policy
        gave to the device, against ``theirs`` as the new base.
        """
        if not self._patch:
            return theirs, ()
        ours = copy_object(self._base)
        for path, value in leaves(self._patch):
            apply_at(ours, path, value)
        cloud = self._view.document
        result = merge(
            self._base,
            ours,
            theirs,
            policy=self._policy,
            section="desired",
            thing_name=self._thing_name,
            shadow_name=self._shadow_name,
            ours_source="device",
            theirs_source="cloud",
            ours_stamps=self._stamps,
            theirs_stamps={} if cloud is None else stamps_from_metadata(cloud.desired_metadata),
        )
        kept: JSONObject = {}
        stamps: dict[tuple[str, ...], int] = {}
        for path, value in leaves(self._patch):
            wanted = MISSING if value is None else value
            ours_won = same(lookup(result.merged, path), wanted)
            if ours_won and not same(lookup(theirs, path), wanted):
                place(kept, path, copy_json(value))
                stamps[path] = self._stamps.get(path, 0)
        events: list[Event] = []
        if result.report:
            events.append(
                ConflictResolved(report=result.report, section="desired", version=version)
            )
        if result.reviews:
            events.append(
                ReviewNeeded(
                    items=result.reviews,
                    reason="the resolution policy holds these local desired changes for review",
                )
            )
        if not kept:
            self._clear()
            return theirs, tuple(events)
        if kept != self._patch or self._base != theirs:
            self._patch, self._stamps = kept, stamps
            self._base = copy_object(theirs)
            self._save()
        combined = copy_object(theirs)
        for path, value in leaves(kept):
            apply_at(combined, path, value)
        return combined, tuple(events)

    def judge(self, now: float, pending: Callable[[], Sequence[Intent]]) -> Judgement:
        """Accept what the rules allow of the cloud's desired state into the view.

        ``pending`` gives the queued intents, whose last acknowledgement is compared with the
        new one: an unchanged acknowledgement is not queued again.
        """
        view = self._view
        version = view.desired_version()
        theirs, local = self._settle_patch(view.theirs_desired(), version)
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
            return Judgement(version=version, local=local)
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
        return Judgement(
            version=version, rejected=rejected, conflicts=conflicts, ack=ack, local=local
        )

    def _current_rejections(self, pending: Sequence[Intent]) -> list[Any]:
        for intent in reversed(pending):
            if intent.kind == "ack" and isinstance(intent.value, dict):
                return rejections(intent.value)
        return rejections(self._view.theirs_reported.get(ACK_KEY))

    def announce(
        self,
        judgement: Judgement,
        reported: Callable[[], JSONObject],
        now: float,
        *,
        source: Source,
    ) -> tuple[DeltaReceived | None, JSONObject]:
        """The delta between the accepted desired state and the device's reported state (that
        ``reported`` gives, when there is a desired state to compare it with): the event that
        announces it (``None`` if it is no news), and the part to report at once (all of it
        under ``auto_report``, else nothing)."""
        accepted = self._view.agreed.accepted_desired
        delta = compute_delta(accepted, reported()) if accepted else {}
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
