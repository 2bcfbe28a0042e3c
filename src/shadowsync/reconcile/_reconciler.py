"""The target-state loop as a sans-I/O state machine: `Reconciler` and `ReconcileConfig`.

Balena's supervisor, for any JSON state: compare the target with what was observed, hand out
only the steps that can run now, take each answer (and the state observed after it), and plan
again, until what is observed is the target. Failures back off per component with jitter; a
target that keeps failing is rolled back to the last target that converged, with an
`Acknowledgement` that names the paths and why. Nothing here reads a clock, draws a random
number or touches the device: time is the ``now`` argument, jitter comes from ``random``.

```pycon
>>> r = Reconciler([Component(name="db", path="db"),
...                 Component(name="web", path="web", depends_on=["db"])],
...                random=lambda: 0.0)
>>> r.observe({}, now=0)
>>> r.set_target({"db": "v1", "web": "v1"}, version=1, now=0)
True
>>> [(s.component, s.action.value) for s in r.plan(now=0)]  # web waits for db
[('db', 'prepare')]
>>> r.status().blocked_on
('web: waits for db',)

```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import attrs

from shadowsync import Backoff
from shadowsync._json import (
    JSONObject,
    JSONValue,
    copy_json,
    copy_object,
    describe,
    json_equal,
    json_pointer,
)
from shadowsync._json import json_type_name as _json_type
from shadowsync._tree import MISSING, Missing, Path, leaf_paths, lookup, nested, overlaps
from shadowsync._validators import check_now, count, is_count
from shadowsync.errors import InvalidArgumentError
from shadowsync.reconcile._components import (
    Action,
    Component,
    Step,
    change_actions,
    plain_copy,
)
from shadowsync.reconcile._errors import ComponentError, StepError, TargetError
from shadowsync.reconcile._state import ReconcilerState
from shadowsync.reconcile._status import Phase, ReconcileStatus
from shadowsync.rules import Acknowledgement, Rejection

__all__ = ["ReconcileConfig", "Reconciler"]


def _default_backoff() -> Backoff:
    # Balena: min(2^n x 0.5 s, cap); a quarter of jitter keeps a fleet from retrying in step.
    return Backoff(initial=0.5, multiplier=2.0, maximum=60.0, jitter=0.25)


def _backoff(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Backoff):
        raise InvalidArgumentError(f"backoff must be a Backoff, got {describe(value)}")


def _attempts(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    count(instance, attribute, value)
    if value == 0:
        raise InvalidArgumentError("max_attempts must be at least 1")


@attrs.frozen(kw_only=True)
class ReconcileConfig:
    """How a `Reconciler` retries.

    - ``max_attempts``: failures of one component on one target version before that target is
      rolled back (a permanent failure rolls back at once);
    - ``backoff``: the delay before retry ``n`` (from 0): min(``initial`` x 2^n, ``maximum``),
      less up to ``jitter`` of it at random.
    """

    max_attempts: int = attrs.field(default=3, validator=_attempts)
    backoff: Backoff = attrs.field(factory=_default_backoff, validator=_backoff)


@attrs.define(kw_only=True)
class _Change:
    """A component's change in progress: its actions, and how far it has gone."""

    actions: tuple[Action, ...]
    old: JSONValue | Missing
    new: JSONValue | Missing
    version: int | None
    index: int = 0
    wait_until: float | None = None
    signalled: bool = False

    @property
    def next(self) -> Action | None:
        return self.actions[self.index] if self.index < len(self.actions) else None

    @property
    def finished(self) -> bool:
        return self.index >= len(self.actions)

    @property
    def committed(self) -> bool:
        """A handover whose new value runs beside the old: it must finish stopping the old."""
        return Action.HANDOVER in self.actions and self.index > self.actions.index(Action.START)


def _order(components: Iterable[Component]) -> dict[str, Component]:
    """The components by name, dependencies first; refuses what cannot be planned."""
    if isinstance(components, (str, bytes, Mapping)) or not isinstance(components, Iterable):
        raise ComponentError(f"components must be a sequence of Component, got {components!r}")
    by_name: dict[str, Component] = {}
    owner: dict[Path, Component] = {}  # every owned path, and every path above one
    for component in components:
        if not isinstance(component, Component):
            raise ComponentError(f"expected a Component, got {describe(component)}")
        if component.name in by_name:
            raise ComponentError(f"two components are named {component.name!r}")
        path = component.path
        for other in (owner.get(path[:n]) for n in range(1, len(path) + 1)):
            if other is not None and overlaps(path, other.path):
                raise ComponentError(
                    f"components {other.name!r} ({other.pointer}) and {component.name!r} "
                    f"({component.pointer}) own overlapping paths"
                )
        for n in range(1, len(path) + 1):
            owner.setdefault(path[:n], component)
        by_name[component.name] = component
    for component in by_name.values():
        for dependency in component.depends_on:
            if dependency not in by_name:
                raise ComponentError(
                    f"component {component.name!r} depends on {dependency!r}, which is not a "
                    f"component"
                )
    ordered: dict[str, Component] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise ComponentError(f"the dependencies form a cycle: {' -> '.join(cycle)}")
        visiting.append(name)
        for dependency in by_name[name].depends_on:
            visit(dependency)
        visiting.pop()
        ordered[name] = by_name[name]

    for name in by_name:
        visit(name)
    return ordered


def _show(value: JSONValue | Missing) -> str:
    return "absent" if value is MISSING else describe(value, 60)


def _same(a: JSONValue | Missing, b: JSONValue | Missing) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return json_equal(a, b)


class Reconciler:
    """Turns a target state into ordered, retried, explainable steps (see the module docstring).

    Feed it the accepted target (`set_target`), what is observed (`observe`, and with every
    answer), and the answers to its steps (`done`, `failed`); ask it what to run now (`plan`)
    and when to ask again (`next_deadline`). `status` explains where it stands,
    `take_acknowledgements` hands over rollback acknowledgements for ``reported["$ack"]``, and
    `snapshot` / ``state=`` carry its durable part across a reboot.

    ``random`` returns floats in [0, 1) for the backoff jitter; nothing else is called.
    """

    def __init__(
        self,
        components: Iterable[Component],
        *,
        random: Callable[[], float],
        config: ReconcileConfig | None = None,
        state: ReconcilerState | None = None,
    ) -> None:
        if config is None:
            config = ReconcileConfig()
        if not isinstance(config, ReconcileConfig):
            raise InvalidArgumentError(f"config must be a ReconcileConfig, got {describe(config)}")
        if not callable(random):
            raise InvalidArgumentError("random must be a callable returning floats in [0, 1)")
        self._components = _order(components)
        # For the ownership check of a target: the owned paths, and every path above one (an
        # empty object there is a leaf that holds no component's value yet).
        self._owned = {c.path for c in self._components.values()}
        self._above = {c.path[:n] for c in self._components.values() for n in range(len(c.path))}
        self._config = config
        self._random = random
        self._observed: JSONObject | None = None
        self._changes: dict[str, _Change] = {}
        self._in_flight: dict[str, Step] = {}
        self._held: set[str] = set()
        self._next_id = 1
        self._restore(ReconcilerState() if state is None else state)

    # -- durable state ---------------------------------------------------------------------

    def _restore(self, state: ReconcilerState) -> None:
        if not isinstance(state, ReconcilerState):
            raise InvalidArgumentError(f"state must be a ReconcilerState, got {describe(state)}")
        for target in (state.target, state.last_good, state.baseline):
            if target is not None:
                self._check_target(target)
        unknown = sorted({*state.attempts, *state.retry_at, *state.errors} - set(self._components))
        if unknown:
            raise TargetError(f"the saved state names unknown components: {', '.join(unknown)}")
        self._target = None if state.target is None else copy_object(state.target)
        self._version = state.version
        self._last_good = None if state.last_good is None else copy_object(state.last_good)
        self._last_good_version = state.last_good_version
        self._baseline = None if state.baseline is None else copy_object(state.baseline)
        self._rolled_back_from = state.rolled_back_from
        self._rejected = (
            None if state.rejected_target is None else copy_object(state.rejected_target)
        )
        self._attempts = dict(state.attempts)
        self._retry_at = {name: float(at) for name, at in state.retry_at.items()}
        self._errors = dict(state.errors)
        self._last_error = state.last_error
        self._acks = list(state.acknowledgements)

    def snapshot(self) -> ReconcilerState:
        """The durable part, to save (`ReconcilerState.to_json`) after every call that changed
        it, and to pass back as ``state=`` after a reboot."""
        return ReconcilerState(
            target=None if self._target is None else copy_object(self._target),
            version=self._version,
            last_good=None if self._last_good is None else copy_object(self._last_good),
            last_good_version=self._last_good_version,
            baseline=None if self._baseline is None else copy_object(self._baseline),
            rolled_back_from=self._rolled_back_from,
            rejected_target=None if self._rejected is None else copy_object(self._rejected),
            attempts=self._attempts,
            retry_at=self._retry_at,
            errors=self._errors,
            last_error=self._last_error,
            acknowledgements=self._acks,
        )

    # -- introspection ---------------------------------------------------------------------

    @property
    def components(self) -> tuple[Component, ...]:
        """The components, dependencies before their dependents."""
        return tuple(self._components.values())

    @property
    def target(self) -> JSONObject | None:
        """The target in force (a copy), ``None`` before the first."""
        return None if self._target is None else copy_object(self._target)

    @property
    def version(self) -> int | None:
        """The version of the target in force."""
        return self._version

    @property
    def last_good(self) -> JSONObject | None:
        """The last target that converged (a copy), ``None`` if none did yet."""
        return None if self._last_good is None else copy_object(self._last_good)

    @property
    def in_flight(self) -> tuple[Step, ...]:
        """The steps handed out and not yet answered."""
        return tuple(self._in_flight.values())

    @property
    def held(self) -> frozenset[str]:
        """The locks the application holds."""
        return frozenset(self._held)

    def converged(self, name: str) -> bool:
        """Whether component ``name`` is observed at its target value, with nothing under way."""
        component = self._component(name)
        return self._converged(component)

    def _converged(self, component: Component) -> bool:
        if self._target is None or self._observed is None:
            return False
        name = component.name
        if name in self._changes or name in self._in_flight:
            return False
        return _same(lookup(self._observed, component.path), lookup(self._target, component.path))

    def _component(self, name: object) -> Component:
        if type(name) is not str or name not in self._components:
            raise InvalidArgumentError(f"there is no component named {describe(name)}")
        return self._components[name]

    # -- inputs ----------------------------------------------------------------------------

    def set_target(self, target: Mapping[str, Any], *, version: int, now: float) -> bool:
        """Take a new accepted target; whether it replaced the one in force.

        Raises `TargetError` naming what cannot be planned, and keeps the target it had. The
        same content again (a delta delivered twice, or at a later shadow version) changes
        nothing, and neither does the content of a target that was rolled back. A new target
        cancels every backoff and replaces the steps not yet handed out; a handover whose new
        value already runs finishes stopping the old one first.
        """
        check_now(now)
        if not is_count(version):
            raise TargetError(f"the target version must be a non-negative int, got {version!r}")
        if isinstance(target, Mapping) and type(target) is not dict:
            target = dict(target)
        fresh = self._check_target(target)
        unchanged = self._target is not None and json_equal(fresh, self._target)
        if unchanged and self._rolled_back_from is None:
            return False
        if self._rejected is not None and json_equal(fresh, self._rejected):
            return False
        self._target = fresh
        self._version = version
        self._rolled_back_from = None
        self._rejected = None
        self._reset_attempts()
        self._drop_changes()
        self._settle()
        return True

    def _check_target(self, target: object) -> JSONObject:
        if type(target) is not dict:
            raise TargetError(f"a target must be a JSON object, got {describe(target)}")
        try:
            fresh = cast("JSONObject", plain_copy(target))
        except ValueError as exc:
            raise TargetError(f"the target is not plain JSON: {exc}") from None
        for path in leaf_paths(fresh):
            owned = any(path[:n] in self._owned for n in range(1, len(path) + 1))
            if not owned and path not in self._above:
                raise TargetError(f"no component owns {json_pointer(path)} of the target")
        for component in self._components.values():
            value = lookup(fresh, component.path)
            if value is MISSING:
                continue
            if component.accepts is not None and _json_type(value) not in component.accepts:
                raise TargetError(
                    f"component {component.name!r} at {component.pointer} takes "
                    f"{' or '.join(sorted(component.accepts))}, got {_show(value)}"
                )
            for dependency in component.depends_on:
                if lookup(fresh, self._components[dependency].path) is MISSING:
                    raise TargetError(
                        f"component {component.name!r} depends on {dependency!r}, which the "
                        f"target does not hold ({self._components[dependency].pointer})"
                    )
        return fresh

    def observe(self, observed: Mapping[str, Any], now: float) -> None:
        """What the device is now (a fresh read); the next `plan` starts from it."""
        check_now(now)
        self._take_observed(observed)
        if self._baseline is None:
            # The rollback target of a device whose first target never converges: what ran.
            baseline = nested(
                (c.path, lookup(self._observed, c.path)) for c in self._components.values()
            )
            try:
                # Checked, for it is saved: a value json cannot write would make every later
                # save fail, or a key json turns into a str would come back changed.
                self._baseline = cast("JSONObject", plain_copy(baseline))
            except ValueError as exc:
                self._observed = None
                raise InvalidArgumentError(f"the observed state is not plain JSON: {exc}") from None
        self._settle()

    def _take_observed(self, observed: object) -> None:
        if isinstance(observed, Mapping) and type(observed) is not dict:
            observed = dict(observed)
        if type(observed) is not dict:
            raise InvalidArgumentError(
                f"the observed state must be a JSON object, got {describe(observed)}"
            )
        self._observed = copy_object(observed)

    def hold(self, lock: str) -> None:
        """The application holds ``lock``: no step of a component using it runs until
        `release`. Steps already in flight are not recalled."""
        if type(lock) is not str or not lock:
            raise InvalidArgumentError(f"a lock is a non-empty str, got {describe(lock)}")
        self._held.add(lock)

    def release(self, lock: str) -> None:
        """The application released ``lock`` (releasing a lock not held is harmless)."""
        if type(lock) is not str or not lock:
            raise InvalidArgumentError(f"a lock is a non-empty str, got {describe(lock)}")
        self._held.discard(lock)

    def signal(self, name: str, now: float) -> None:
        """Component ``name``'s new value is ready to take over: stop the old one now."""
        check_now(now)
        component = self._component(name)
        change = self._changes.get(component.name)
        if change is not None and change.next is Action.HANDOVER:
            change.signalled = True

    # -- planning --------------------------------------------------------------------------

    def plan(self, now: float) -> list[Step]:
        """The steps that can run now, each handed out once; run them and answer each."""
        now = check_now(now)
        if self._target is None or self._observed is None:
            return []
        steps: list[Step] = []
        # Whether each component has converged, worked out once: handing out a step never
        # changes it (a component that gets a step had not converged).
        converged: dict[str, bool] = {}
        for name, component in self._components.items():
            converged[name] = self._converged(component)
            if name in self._in_flight or not self._may_run(component, converged):
                continue
            change = self._changes.get(name)
            if change is None:
                if converged[name]:
                    continue
                retry = self._retry_at.get(name)
                if retry is not None:
                    if retry > now:
                        continue
                    del self._retry_at[name]
                change = self._begin(component)
            step = self._advance(component, change, now)
            if step is not None:
                steps.append(step)
        return steps

    def _may_run(self, component: Component, converged: Mapping[str, bool]) -> bool:
        if component.lock is not None and component.lock in self._held:
            return False
        return all(converged[d] for d in component.depends_on)

    def _begin(self, component: Component) -> _Change:
        assert self._target is not None
        assert self._observed is not None
        old = lookup(self._observed, component.path)
        new = lookup(self._target, component.path)
        change = _Change(
            actions=change_actions(component.strategy, old=old, new=new),
            old=copy_json(old) if old is not MISSING else MISSING,
            new=copy_json(new) if new is not MISSING else MISSING,
            version=self._version,
        )
        self._changes[component.name] = change
        return change

    def _advance(self, component: Component, change: _Change, now: float) -> Step | None:
        if change.next is Action.HANDOVER:
            if change.wait_until is None:
                change.wait_until = now + component.handover_timeout
            if not change.signalled and now < change.wait_until:
                return None
            change.index += 1
        action = change.next
        if action is None:
            return None
        value = change.new if action in (Action.PREPARE, Action.START) else change.old
        assert value is not MISSING
        step = Step(
            id=self._next_id,
            component=component.name,
            path=component.path,
            action=action,
            value=copy_json(value),
            version=change.version,
        )
        self._next_id += 1
        self._in_flight[component.name] = step
        return step

    def next_deadline(self) -> float | None:
        """When `plan` may have something new without any other input: a retry or the end of
        a handover wait; ``None`` if nothing is timed."""
        times = list(self._retry_at.values())
        times.extend(
            c.wait_until
            for c in self._changes.values()
            if c.wait_until is not None and not c.signalled and c.next is Action.HANDOVER
        )
        return min(times) if times else None

    # -- answers ---------------------------------------------------------------------------

    def done(self, step: Step, *, observed: Mapping[str, Any], now: float) -> None:
        """``step`` succeeded; ``observed`` is the device's state read after it."""
        now = check_now(now)
        self._take(step)
        self._take_observed(observed)
        component = self._components[step.component]
        change = self._changes.get(step.component)
        if change is None or change.next is not step.action or change.version != step.version:
            self._settle()  # a step of a change a new target replaced: only its observation
            return
        change.index += 1
        if step.action is Action.START and change.next is Action.HANDOVER:
            change.wait_until = now + component.handover_timeout
        if change.finished:
            del self._changes[step.component]
            seen = lookup(self._observed, component.path)
            if not _same(seen, change.new) and change.version == self._version:
                self._failure(
                    component,
                    f"after {step.action.value} {component.pointer} is {_show(seen)}, "
                    f"not {_show(change.new)}",
                    permanent=False,
                    now=now,
                )
        self._settle()

    def failed(
        self,
        step: Step,
        *,
        error: str,
        permanent: bool = False,
        observed: Mapping[str, Any] | None = None,
        now: float,
    ) -> None:
        """``step`` failed with ``error``; ``permanent`` says retrying cannot help (roll back now).

        Pass ``observed`` if the device was read after the failure. A failure of a step that
        served a replaced target is not counted against the new one.
        """
        now = check_now(now)
        if type(error) is not str or not error:
            raise InvalidArgumentError(f"error must be a non-empty str, got {describe(error)}")
        if type(permanent) is not bool:
            raise InvalidArgumentError(f"permanent must be a bool, got {describe(permanent)}")
        self._take(step)
        if observed is not None:
            self._take_observed(observed)
        change = self._changes.get(step.component)
        if change is not None and change.version == step.version:
            del self._changes[step.component]
            if step.version == self._version:
                self._failure(self._components[step.component], error, permanent=permanent, now=now)
        self._settle()

    def _take(self, step: object) -> None:
        if not isinstance(step, Step) or self._in_flight.get(step.component) != step:
            raise StepError(f"not a step in flight: {describe(step)}")
        del self._in_flight[step.component]

    def _failure(self, component: Component, error: str, *, permanent: bool, now: float) -> None:
        name = component.name
        attempts = self._attempts.get(name, 0) + 1
        self._attempts[name] = attempts
        self._errors[name] = error
        self._last_error = f"{name}: {error}"
        if self._rolled_back_from is None and (permanent or attempts >= self._config.max_attempts):
            self._roll_back(component, attempts, error, permanent=permanent, now=now)
            return
        delay = self._config.backoff.delay(attempts - 1, self._random)
        self._retry_at[name] = now + delay

    def _roll_back(
        self, failing: Component, attempts: int, error: str, *, permanent: bool, now: float
    ) -> None:
        assert self._target is not None
        given_up, version = self._target, self._version
        back = self._last_good if self._last_good is not None else self._baseline
        back = {} if back is None else back
        why = "failed permanently" if permanent else f"failed {attempts} times"
        rejected = [
            Rejection(path=failing.path, rule=f"reconcile:{failing.name}", reason=f"{why}: {error}")
        ]
        where = (
            "the state found at start"
            if self._last_good is None
            else (f"version {self._last_good_version}")
        )
        for other in self._components.values():
            if other is failing:
                continue
            if not _same(lookup(given_up, other.path), lookup(back, other.path)):
                rejected.append(
                    Rejection(
                        path=other.path,
                        rule=f"reconcile:{other.name}",
                        reason=f"rolled back to {where} because {failing.name} {why}",
                    )
                )
        self._acks.append(
            Acknowledgement(desired_version=version or 0, timestamp=int(now), rejected=rejected)
        )
        self._target = copy_object(back)
        self._version = self._last_good_version
        self._rolled_back_from = version
        self._rejected = given_up
        self._attempts.clear()
        self._retry_at.clear()
        self._errors.clear()
        self._drop_changes()

    def _reset_attempts(self) -> None:
        self._attempts.clear()
        self._retry_at.clear()
        self._errors.clear()
        self._last_error = None

    def _drop_changes(self) -> None:
        for name in list(self._changes):
            change = self._changes[name]
            step = self._in_flight.get(name)
            # A handover whose new value is starting is committed as well: once it runs, the
            # old one must still be stopped, or it would be left running beside it.
            starting = (
                step is not None
                and step.action is Action.START
                and Action.HANDOVER in change.actions
                and change.next is Action.START
            )
            if not (change.committed or starting):
                del self._changes[name]

    def _settle(self) -> None:
        """Remember a target that converged as the last good one."""
        if (
            self._target is not None
            and self._rolled_back_from is None
            and not self._changes
            and not self._in_flight
            and all(self._converged(c) for c in self._components.values())
        ):
            if self._last_good is None or not json_equal(self._last_good, self._target):
                self._last_good = copy_object(self._target)
            self._last_good_version = self._version
            self._reset_attempts()

    # -- reporting -------------------------------------------------------------------------

    def take_acknowledgements(self) -> list[Acknowledgement]:
        """The rollback acknowledgements made since the last call (for ``reported["$ack"]``)."""
        acks, self._acks = self._acks, []
        return acks

    def status(self) -> ReconcileStatus:
        """Where reconciliation stands, and why (see `ReconcileStatus`)."""
        converged = (
            self._target is not None
            and not self._changes
            and not self._in_flight
            and all(self._converged(c) for c in self._components.values())
        )
        blocked: list[str] = []
        runnable = bool(self._in_flight)
        for name, component in self._components.items():
            if self._converged(component) or name in self._in_flight:
                continue
            waits = [d for d in component.depends_on if not self._converged(self._components[d])]
            if component.lock is not None and component.lock in self._held:
                blocked.append(f"{name}: lock {component.lock!r} is held")
            elif waits:
                blocked.append(f"{name}: waits for {', '.join(waits)}")
            elif name not in self._retry_at:
                runnable = True
        if self._target is None:
            phase = Phase.IDLE
        elif self._rolled_back_from is not None:
            phase = Phase.ROLLED_BACK
        elif converged:
            phase = Phase.CONVERGED
        elif runnable:
            phase = Phase.APPLYING
        elif self._retry_at:
            phase = Phase.BACKING_OFF
        else:
            phase = Phase.BLOCKED
        return ReconcileStatus(
            phase=phase,
            version=self._version,
            converged=converged,
            blocked_on=tuple(blocked),
            attempts=dict(self._attempts),
            last_error=self._last_error,
            retry_at=min(self._retry_at.values()) if self._retry_at else None,
            rolled_back_from=self._rolled_back_from,
        )
