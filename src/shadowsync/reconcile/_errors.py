"""The errors of target-state reconciliation, all under `shadowsync.errors.ShadowSyncError`."""

from __future__ import annotations

from shadowsync.errors import ShadowSyncError


class ReconcileError(ShadowSyncError):
    """Something about reconciliation was refused; the subclasses say what."""


class ComponentError(ReconcileError):
    """A component declaration cannot be planned: a dependency cycle, an unknown dependency,
    a duplicate name or two components owning overlapping paths."""


class TargetError(ReconcileError):
    """A target cannot be planned: not a JSON object, a value no component owns, a component
    whose dependency the target lacks, or a value of the wrong type. The reconciler keeps
    running the target it had."""


class StepError(ReconcileError):
    """An answer (`done` / `failed`) about a step that is not in flight."""


class ReconcileStateError(ReconcileError):
    """A saved reconciler state that cannot be read back (damaged, or from another layout)."""
