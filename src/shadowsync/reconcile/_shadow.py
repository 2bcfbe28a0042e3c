"""A reconciler driven by a device shadow: `ShadowReconciler`.

It composes a `shadowsync.ShadowSession` and a `Reconciler` from the outside. The accepted
desired state (after the session's business rules) becomes the target whenever the session
announces a snapshot or a delta; what the device observes, never what was desired, goes to the
reported state, with a ``$reconcile`` section that says where reconciliation stands; a rollback
answers the cloud in ``reported["$ack"]``; and the reconciler's durable state is saved in the
device store after every change, so a reboot resumes. Reports go through `ShadowSession.report`
(queued durably, sent in order) and are throttled: a change of phase goes out at once, other
changes at most every ``report_interval`` seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shadowsync import make_merge_patch
from shadowsync._json import JSONObject, describe
from shadowsync._tree import MISSING, Path, lookup, nest, nested, place
from shadowsync._validators import check_now, is_finite_number
from shadowsync.errors import InvalidArgumentError
from shadowsync.events import DeltaReceived, Event, SnapshotReceived
from shadowsync.reconcile._errors import TargetError
from shadowsync.reconcile._reconciler import Reconciler
from shadowsync.reconcile._state import StateStore
from shadowsync.reconcile._status import RECONCILE_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from shadowsync.reconcile._components import Step
    from shadowsync.rules import Acknowledgement

__all__ = ["ReportingSession", "ShadowReconciler"]


@runtime_checkable
class ReportingSession(Protocol):
    """What `ShadowReconciler` needs of a session: `shadowsync.ShadowSession` has it, and so
    does `shadowsync.mqtt.DeviceBridge` behind a two-line wrapper that drops ``now``."""

    @property
    def accepted_desired(self) -> JSONObject:
        """The desired state the device accepted (after the business rules)."""
        ...

    def report(self, changes: Mapping[str, Any], now: float) -> list[Event]:
        """Report ``changes`` (``None`` deletes a key); the events of the call."""
        ...

    def acknowledge(self, acknowledgement: Acknowledgement, now: float) -> list[Event]:
        """Report ``acknowledgement`` as ``reported["$ack"]``; the events of the call."""
        ...


class ShadowReconciler:
    """Runs a `Reconciler` on what a `shadowsync.ShadowSession` (or any `ReportingSession`)
    accepts, reporting through it.

    Give it every event list the session returns (`handle`); it returns the session's events
    its own reports and acknowledgements caused (send their `Publish` values like any other).
    Run the steps `plan` hands out and answer with `done` / `failed`, passing what the device
    looks like afterwards; call `observe` after any other read of the device and `tick` at
    `next_deadline`.

    ``scope``: where in the desired state the reconciled part lives. With a scope, everything
    under it must belong to a component (anything else is refused as a `TargetError`); without
    one, the target is the desired state at the components' paths and other keys are left to
    the application. ``store`` (a device store) keeps the reconciler's state under
    ``state_name``.
    """

    def __init__(
        self,
        session: ReportingSession,
        reconciler: Reconciler,
        *,
        store: StateStore | None = None,
        state_name: str = "reconciler",
        scope: Path | None = None,
        report_interval: float = 10.0,
    ) -> None:
        if not isinstance(session, ReportingSession):
            raise InvalidArgumentError(
                f"session must have accepted_desired, report and acknowledge, got "
                f"{describe(session)}"
            )
        if not isinstance(reconciler, Reconciler):
            raise InvalidArgumentError(
                f"reconciler must be a Reconciler, got {describe(reconciler)}"
            )
        if store is not None and not isinstance(store, StateStore):
            raise InvalidArgumentError(
                f"store must have put_state/get_state, got {describe(store)}"
            )
        if scope is not None and (
            type(scope) is not tuple or not scope or not all(type(k) is str for k in scope)
        ):
            raise InvalidArgumentError(f"scope must be a non-empty tuple of keys, got {scope!r}")
        if not is_finite_number(report_interval) or report_interval < 0:
            raise InvalidArgumentError(
                f"report_interval must be seconds >= 0, got {describe(report_interval)}"
            )
        self._session = session
        self._reconciler = reconciler
        self._store = store
        self._state_name = state_name
        self._scope = scope
        self._interval = float(report_interval)
        self._observed: JSONObject | None = None
        self._reported: JSONObject | None = None
        self._reported_at: float | None = None
        self._reported_key: tuple[Any, ...] | None = None
        self._report_due: float | None = None
        self._saved: str | None = None
        self._refused: str | None = None

    @property
    def reconciler(self) -> Reconciler:
        """The reconciler being driven."""
        return self._reconciler

    @property
    def refused(self) -> str | None:
        """Why the last target was refused (``None`` if the last one was taken)."""
        return self._refused

    # -- inputs ----------------------------------------------------------------------------

    def handle(self, events: Iterable[Event], now: float) -> list[Event]:
        """Take the session's events: a snapshot or a delta brings the accepted desired state in
        as the target. Returns the session's events caused by reporting."""
        now = check_now(now)
        out: list[Event] = []
        for event in events:
            version = None
            if isinstance(event, (SnapshotReceived, DeltaReceived)):
                version = event.version
            if version is not None:
                self._take_target(version, now)
        self._after(now, out)
        return out

    def _take_target(self, version: int, now: float) -> None:
        accepted = self._session.accepted_desired
        if self._scope is not None:
            value = lookup(accepted, self._scope)
            target = {} if value is MISSING else nest(self._scope, value)
        else:
            target = nested((c.path, lookup(accepted, c.path)) for c in self._reconciler.components)
        try:
            self._reconciler.set_target(target, version=version, now=now)
        except TargetError as exc:
            self._refused = f"version {version}: {exc}"
        else:
            self._refused = None

    def observe(self, observed: Mapping[str, Any], now: float) -> list[Event]:
        """What the device is now; reports it (throttled) and returns the session's events."""
        now = check_now(now)
        self._reconciler.observe(observed, now)
        self._observed = self._project(observed)
        out: list[Event] = []
        self._after(now, out)
        return out

    def plan(self, now: float) -> list[Step]:
        """The steps to run now (see `Reconciler.plan`)."""
        return self._reconciler.plan(now)

    def done(self, step: Step, *, observed: Mapping[str, Any], now: float) -> list[Event]:
        """``step`` succeeded and ``observed`` is the device now; the session's events."""
        now = check_now(now)
        self._reconciler.done(step, observed=observed, now=now)
        self._observed = self._project(observed)
        out: list[Event] = []
        self._after(now, out)
        return out

    def failed(
        self,
        step: Step,
        *,
        error: str,
        permanent: bool = False,
        observed: Mapping[str, Any] | None = None,
        now: float,
    ) -> list[Event]:
        """``step`` failed (see `Reconciler.failed`); the session's events."""
        now = check_now(now)
        self._reconciler.failed(step, error=error, permanent=permanent, observed=observed, now=now)
        if observed is not None:
            self._observed = self._project(observed)
        out: list[Event] = []
        self._after(now, out)
        return out

    def tick(self, now: float) -> list[Event]:
        """Time passed: send a report held back by the throttle; the session's events."""
        now = check_now(now)
        out: list[Event] = []
        self._after(now, out)
        return out

    def next_deadline(self) -> float | None:
        """When `plan` or `tick` next has something to do without other input."""
        times = [t for t in (self._reconciler.next_deadline(), self._report_due) if t is not None]
        return min(times) if times else None

    # -- outputs ---------------------------------------------------------------------------

    def _project(self, observed: Mapping[str, Any]) -> JSONObject:
        return nested((c.path, lookup(dict(observed), c.path)) for c in self._reconciler.components)

    def _after(self, now: float, out: list[Event]) -> None:
        for ack in self._reconciler.take_acknowledgements():
            out.extend(self._session.acknowledge(ack, now))
        self._save()
        self._report(now, out)

    def _save(self) -> None:
        if self._store is None:
            return
        state = self._reconciler.snapshot()
        text = state.to_json()
        if text != self._saved:
            state.save(self._store, self._state_name)
            self._saved = text

    def _wanted(self) -> JSONObject:
        status = self._reconciler.status()
        section = status.to_dict()
        section["refused"] = self._refused
        wanted: JSONObject = {RECONCILE_KEY: section}
        observed = self._observed or {}
        for component in self._reconciler.components:
            found = lookup(observed, component.path)
            place(wanted, component.path, None if found is MISSING else found)
        return wanted

    def _report(self, now: float, out: list[Event]) -> None:
        if self._observed is None:
            return  # nothing observed yet: nothing true to report
        wanted = self._wanted()
        patch = wanted if self._reported is None else make_merge_patch(self._reported, wanted)
        if not patch:
            self._report_due = None
            return
        status = self._reconciler.status()
        key = (status.phase, status.version, status.rolled_back_from, self._refused)
        if (
            key == self._reported_key
            and self._reported_at is not None
            and now < self._reported_at + self._interval
        ):
            self._report_due = self._reported_at + self._interval
            return
        assert isinstance(patch, dict)
        out.extend(self._session.report(patch, now))
        self._reported = wanted
        self._reported_at = now
        self._reported_key = key
        self._report_due = None
