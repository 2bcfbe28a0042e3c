"""Crash test of the reconciler's saved state: a writer killed with SIGKILL at random moments.

Each round starts ``state_writer.py`` on the same SQLite file, kills it at a random moment, and
reopens the store: it must open cleanly, and the saved state must read back whole (never torn)
as the last state the child acknowledged or the one it was saving when it died.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from shadowsync.reconcile import ReconcilerState
from shadowsync.stores import SQLiteStore
from tests.crash.child import run_and_kill
from tests.crash.state_writer import state_for

WRITER = Path(__file__).with_name("state_writer.py")
KILLS = 40
SEED = 20_261_207

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def test_a_saved_state_is_never_torn_and_never_older_than_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    database = tmp_path / "state.db"
    next_n = 0
    for _ in range(KILLS):
        acknowledged = run_and_kill(WRITER, [str(database), str(next_n)], rng)
        with SQLiteStore(database) as store:
            state = ReconcilerState.load(store)
        if not acknowledged:
            assert state is None or state == state_for(state.version or 0)
            continue
        assert state is not None
        last = acknowledged[-1]
        assert state.version in (last, last + 1)
        assert state == state_for(last if state.version == last else last + 1)
        next_n = (state.version or 0) + 1
