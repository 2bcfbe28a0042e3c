"""The session's state table as data: complete, consistent, and the only way to move."""

from __future__ import annotations

import pytest

from shadowsync._device.state import (
    CONNECTED_STATES,
    TRANSITIONS,
    SessionState,
    SessionStateError,
    Trigger,
    diagram,
    transition,
)

S = SessionState
T = Trigger


def test_every_state_has_a_row_and_every_target_is_a_state() -> None:
    assert set(TRANSITIONS) == set(SessionState)
    for row in TRANSITIONS.values():
        assert all(isinstance(target, SessionState) for target in row.values())


def test_every_trigger_moves_some_state() -> None:
    used = {trigger for row in TRANSITIONS.values() for trigger in row}
    assert used == set(Trigger)


def test_a_disconnect_leads_offline_from_every_state() -> None:
    assert all(row[T.DISCONNECTED] is S.OFFLINE for row in TRANSITIONS.values())


def test_offline_is_left_only_by_connecting_which_fetches_first() -> None:
    assert TRANSITIONS[S.OFFLINE] == {T.CONNECTED: S.FETCHING, T.DISCONNECTED: S.OFFLINE}
    assert all(row.get(T.CONNECTED) in (None, S.FETCHING) for row in TRANSITIONS.values())


def test_connected_states_are_all_but_offline() -> None:
    assert frozenset(SessionState) - {S.OFFLINE} == CONNECTED_STATES


@pytest.mark.parametrize(
    ("state", "trigger"),
    [(state, trigger) for state in SessionState for trigger in Trigger],
)
def test_transition_follows_the_table_or_refuses(state: SessionState, trigger: Trigger) -> None:
    expected = TRANSITIONS[state].get(trigger)
    if expected is None:
        with pytest.raises(SessionStateError, match=f"no transition for {trigger.value}"):
            transition(state, trigger)
    else:
        assert transition(state, trigger) is expected


def test_the_diagram_draws_each_entry_once() -> None:
    lines = diagram().splitlines()
    assert lines[:2] == ["stateDiagram-v2", "    [*] --> offline"]
    entries = [
        f"    {state.value} --> {target.value}: {trigger.value}"
        for state, row in TRANSITIONS.items()
        for trigger, target in row.items()
    ]
    assert lines[2:] == entries
