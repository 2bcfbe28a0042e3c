"""The states of a device sync session and the one table of transitions between them.

As in h11's ``_state.py``, the table is data: `TRANSITIONS[state][trigger]` is the next state,
a trigger missing from a state's row cannot happen there, and `transition` refuses it with
`SessionStateError` instead of moving outside the table. `diagram` draws the table (the docs
show its output, and a test keeps the two equal).

```pycon
>>> from shadowsync._device.state import SessionState, Trigger, transition
>>> transition(SessionState.OFFLINE, Trigger.CONNECTED)
<SessionState.FETCHING: 'fetching'>
>>> transition(SessionState.OFFLINE, Trigger.DELETE)
Traceback (most recent call last):
...
shadowsync._device.state.SessionStateError: no transition for delete in state offline

```
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from shadowsync.errors import ShadowSyncError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONNECTED_STATES",
    "TRANSITIONS",
    "SessionState",
    "SessionStateError",
    "Trigger",
    "diagram",
    "transition",
]


class SessionStateError(ShadowSyncError):
    """A command that the session cannot carry out in its current state (e.g. delete offline)."""


class SessionState(enum.Enum):
    """Where a `ShadowSession` is. Only `TRANSITIONS` moves it from one to another."""

    OFFLINE = "offline"
    """Not connected. Reports are queued durably; nothing is sent."""
    FETCHING = "fetching"
    """Connected; the snapshot (GET) is in flight. Notifications are held until it arrives."""
    UPDATING = "updating"
    """An update is in flight (never more than one per shadow)."""
    IN_SYNC = "in_sync"
    """Connected, nothing queued and nothing in flight: device and cloud agree."""
    BACKOFF = "backoff"
    """A request failed or met a version conflict; waiting for the retry time."""
    REVIEW = "review"
    """The version-conflict budget is spent: syncing is suspended until resume or reconnect."""
    DELETING = "deleting"
    """A delete of the shadow is in flight."""


class Trigger(enum.Enum):
    """What moves a session from one state to another."""

    CONNECTED = "connected"
    """The transport connected: subscribe and fetch the snapshot."""
    DISCONNECTED = "disconnected"
    """The transport disconnected: whatever was in flight is forgotten (the queue keeps it)."""
    PUBLISH = "publish"
    """There is an update to send: queued intents after a merge, the next batch, a local change."""
    SYNCED = "synced"
    """Nothing is left to send."""
    REFRESH = "refresh"
    """Fetch the snapshot again: asked for, messages were missed, or the view is uncertain."""
    CONFLICT = "conflict"
    """A 409 within the budget: back off, then refetch, merge again and retry."""
    ESCALATE = "escalate"
    """A 409 beyond ``max_conflict_retries``: hold for review."""
    FAILED = "failed"
    """A request timed out or failed transiently."""
    RETRY = "retry"
    """The backoff delay is over."""
    RESUME = "resume"
    """The application resumes syncing (after review), or asks to retry now."""
    DELETE = "delete"
    """The application deletes the shadow."""


_S = SessionState
_T = Trigger

TRANSITIONS: Mapping[SessionState, Mapping[Trigger, SessionState]] = {
    _S.OFFLINE: {_T.CONNECTED: _S.FETCHING, _T.DISCONNECTED: _S.OFFLINE},
    _S.FETCHING: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.SYNCED: _S.IN_SYNC,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.UPDATING: {
        _T.PUBLISH: _S.UPDATING,
        _T.SYNCED: _S.IN_SYNC,
        _T.REFRESH: _S.FETCHING,
        _T.CONFLICT: _S.BACKOFF,
        _T.ESCALATE: _S.REVIEW,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.IN_SYNC: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.DELETE: _S.DELETING,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.BACKOFF: {
        _T.RETRY: _S.FETCHING,
        _T.RESUME: _S.FETCHING,
        _T.DELETE: _S.DELETING,
        _T.DISCONNECTED: _S.OFFLINE,
    },
    _S.REVIEW: {_T.RESUME: _S.FETCHING, _T.DELETE: _S.DELETING, _T.DISCONNECTED: _S.OFFLINE},
    _S.DELETING: {
        _T.PUBLISH: _S.UPDATING,
        _T.REFRESH: _S.FETCHING,
        _T.SYNCED: _S.IN_SYNC,
        _T.FAILED: _S.BACKOFF,
        _T.DISCONNECTED: _S.OFFLINE,
    },
}
"""Every allowed transition: ``TRANSITIONS[state][trigger]`` is the next state.

A trigger missing from a state's row cannot happen there; the session raises
`SessionStateError` rather than move outside the table.
"""

CONNECTED_STATES = frozenset(state for state in SessionState if state is not _S.OFFLINE)
"""The states in which the transport is connected."""


def transition(state: SessionState, trigger: Trigger) -> SessionState:
    """The state that ``trigger`` leads to from ``state``; `SessionStateError` if none."""
    target = TRANSITIONS[state].get(trigger)
    if target is None:
        raise SessionStateError(f"no transition for {trigger.value} in state {state.value}")
    return target


def diagram() -> str:
    """The state diagram of `TRANSITIONS` in Mermaid syntax (as shown in the docs)."""
    lines = ["stateDiagram-v2", f"    [*] --> {SessionState.OFFLINE.value}"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines) + "\n"
