"""Target-state reconciliation: turn an accepted desired state into ordered, retried steps.

The shadow stops at the delta; this package is the loop that carries it out on the device, as
Balena's supervisor does for containers, for any JSON state. Declare the device's parts as
`Component` values (the path each owns, its dependencies, its `UpdateStrategy`, an optional
lock), give a `Reconciler` the accepted target and what you observe, and run the `Step` values
it hands out. It plans again after every answer, backs off per component, rolls a failing
target back to the last one that converged with an acknowledgement saying why, and explains
itself in `ReconcileStatus`. It is sans-I/O: time is an argument, jitter comes from a callable.

```pycon
>>> from shadowsync.reconcile import Component, Reconciler
>>> r = Reconciler([Component(name="web", path="web")], random=lambda: 0.0)
>>> r.observe({"web": "v1"}, now=0)
>>> r.set_target({"web": "v2"}, version=2, now=0)
True
>>> [step] = r.plan(now=0); step.action.value, step.value
('prepare', 'v2')
>>> r.done(step, observed={"web": "v1"}, now=1)
>>> [step] = r.plan(now=1); step.action.value, step.value
('stop', 'v1')
>>> r.done(step, observed={}, now=2)
>>> [step] = r.plan(now=2); step.action.value
'start'
>>> r.done(step, observed={"web": "v2"}, now=3)
>>> r.status().phase.value, r.plan(now=3)
('converged', [])

```
"""

from __future__ import annotations

# isort: off
# In the order the API reference shows them: it lists members in the order of their imports here.
from shadowsync.reconcile._components import UpdateStrategy, Action, Component, Step
from shadowsync.reconcile._components import JSON_TYPES, change_actions
from shadowsync.reconcile._reconciler import ReconcileConfig, Reconciler
from shadowsync.reconcile._status import RECONCILE_KEY, Phase, ReconcileStatus
from shadowsync.reconcile._state import STATE_FORMAT, ReconcilerState, StateStore
from shadowsync.reconcile._poller import PollConfig, PollRequest, PolledTarget, PollerState
from shadowsync.reconcile._poller import TargetPoller
from shadowsync.reconcile._shadow import ReportingSession, ShadowReconciler
from shadowsync.reconcile._errors import (
    ReconcileError,
    ComponentError,
    TargetError,
    StepError,
    ReconcileStateError,
)

# isort: on

__all__ = [
    "Action",
    "Component",
    "ComponentError",
    "JSON_TYPES",
    "Phase",
    "PollConfig",
    "PollRequest",
    "PolledTarget",
    "PollerState",
    "RECONCILE_KEY",
    "ReconcileConfig",
    "ReconcileError",
    "ReconcileStateError",
    "ReconcileStatus",
    "Reconciler",
    "ReconcilerState",
    "ReportingSession",
    "STATE_FORMAT",
    "ShadowReconciler",
    "StateStore",
    "Step",
    "StepError",
    "TargetError",
    "TargetPoller",
    "UpdateStrategy",
    "change_actions",
]
