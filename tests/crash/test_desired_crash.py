"""Crash test of local desired changes: a device making them is killed with SIGKILL.

Each round starts ``session_writer.py desire`` on the same SQLite file, kills it at a random moment,
and reopens the store: the saved local desired changes must read back whole (every key of the
last change together, never a torn one) and never older than the last change acknowledged.
Then a rebooted device sends them to the (fake) cloud.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from shadowsync._device.desired import patch_state_name
from shadowsync.stores import SQLiteStore
from shadowsync.testing import LoopbackPair
from tests.crash.child import run_and_kill
from tests.crash.session_writer import THING, desire_for

WRITER = Path(__file__).with_name("session_writer.py")
KILLS = 30
SEED = 20_261_208

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _expected(last: int) -> dict[str, object]:
    """Every change from 0 to ``last`` merged, as the durable patch must hold it."""
    patch: dict[str, object] = {}
    for n in range(max(0, last - 4), last + 1):
        patch.update(desire_for(n))
    return patch


def test_local_desired_changes_survive_sigkill_whole(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    database = tmp_path / "device.db"
    next_n = 0
    for _ in range(KILLS):
        acknowledged = run_and_kill(WRITER, ["desire", str(database), str(next_n)], rng)
        with SQLiteStore(database) as store:
            saved = store.get_state(patch_state_name(THING, None))
        patch: Any = None if saved is None else saved["patch"]
        if not acknowledged:
            if patch is not None:
                assert patch == _expected(patch["n"])
                next_n = patch["n"] + 1
            continue
        assert patch is not None
        last = acknowledged[-1]
        assert patch["n"] in (last, last + 1)
        assert patch == _expected(patch["n"])
        next_n = patch["n"] + 1
    assert next_n > KILLS  # the rounds did make changes

    pair = LoopbackPair(THING, store_factory=lambda: SQLiteStore(database))
    pair.connect()
    assert pair.run_until_quiet()
    document = pair.service.document(THING)
    assert document is not None
    assert document.desired == _expected(next_n - 1)
    pair.store.close()
