"""Crash test of multi-key reports: a device reporting is killed with SIGKILL at random moments.

Each round starts ``session_writer.py report`` on the same SQLite file, kills it at a random moment,
and reopens the store: every key of the shadow must hold the value of one and the same report
(a report is queued whole or not at all, never in part), no older than the last acknowledged.
Then a rebooted device sends it to the (fake) cloud.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from shadowsync._tree import place
from shadowsync.stores import SQLiteStore
from shadowsync.testing import LoopbackPair
from tests.crash.child import run_and_kill
from tests.crash.session_writer import KEYS, THING, report_for

WRITER = Path(__file__).with_name("session_writer.py")
KILLS = 30
SEED = 20_261_209

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _queued_report(database: Path) -> int | None:
    """The ``n`` of the report the queue holds: every key must come from the same one."""
    with SQLiteStore(database) as store:
        intents = store.intents()
    if not intents:
        return None
    queued: dict[str, Any] = {}
    for intent in intents:  # in seq order: later writes win, as the replay applies them
        place(queued, intent.path, intent.value)
    assert sorted(queued) == [f"k{key}" for key in range(KEYS)]
    numbers = {value["n"] for value in queued.values()}
    assert len(numbers) == 1, f"a report was queued in part: {numbers}"
    (n,) = numbers
    assert isinstance(n, int)
    assert queued == report_for(n)
    return n


def test_a_multi_key_report_is_queued_whole_or_not_at_all(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    database = tmp_path / "device.db"
    next_n = 0
    for _ in range(KILLS):
        acknowledged = run_and_kill(WRITER, ["report", str(database), str(next_n)], rng)
        n = _queued_report(database)
        if acknowledged:
            assert n in (acknowledged[-1], acknowledged[-1] + 1)
        if n is not None:
            next_n = n + 1
    assert next_n > KILLS  # the rounds did report

    pair = LoopbackPair(THING, store_factory=lambda: SQLiteStore(database))
    pair.connect()
    assert pair.run_until_quiet()
    document = pair.service.document(THING)
    assert document is not None
    assert document.reported == report_for(next_n - 1)
    pair.store.close()


def test_a_confirmation_survives_a_crash_of_the_process(tmp_path: Path) -> None:
    """Confirmations are committed without waiting for the disk: a SIGKILL must not undo one.

    The child reports and has each report confirmed by a service in its own process, printing
    ``n`` once report ``n`` left the queue. After the kill, the queue holds at most the report
    that was in flight (whole), never one that was printed as confirmed.
    """
    rng = random.Random(SEED + 1)
    database = tmp_path / "device.db"
    next_n = 0
    confirmed_rounds = 0
    for _ in range(KILLS):
        confirmed = run_and_kill(WRITER, ["confirm", str(database), str(next_n)], rng)
        n = _queued_report(database)
        if confirmed:
            confirmed_rounds += 1
            assert n is None or n == confirmed[-1] + 1, (n, confirmed[-1])
            next_n = confirmed[-1] + 1
        if n is not None:
            next_n = max(next_n, n + 1)
            with SQLiteStore(database) as store:  # the next child starts with an empty queue
                store.remove(intent.seq for intent in store.intents())
    assert confirmed_rounds >= KILLS // 2  # the kills landed among round trips
