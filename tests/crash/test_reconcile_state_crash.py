"""Crash test of the reconciler's saved state: a writer killed with SIGKILL at random moments.

Each round starts ``state_writer.py`` on the same SQLite file, kills it at a random moment, and
reopens the store: it must open cleanly, and the saved state must read back whole (never torn)
as the last state the child acknowledged or the one it was saving when it died.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shadowsync.reconcile import ReconcilerState
from shadowsync.stores import SQLiteStore
from tests.crash.state_writer import state_for

WRITER = Path(__file__).with_name("state_writer.py")
KILLS = 40
SEED = 20_261_207
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _run_and_kill(database: Path, first_n: int, rng: random.Random) -> list[int]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    child = subprocess.Popen(
        [sys.executable, str(WRITER), str(database), str(first_n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready == "ready\n", child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.03))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return [int(line) for line in out.splitlines(keepends=True) if line.endswith("\n")]


def test_a_saved_state_is_never_torn_and_never_older_than_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    database = tmp_path / "state.db"
    next_n = 0
    for _ in range(KILLS):
        acknowledged = _run_and_kill(database, next_n, rng)
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
