"""Crash test of the SQLite store: a writer process killed with SIGKILL at random moments.

Each round starts ``writer.py`` on the same database file, waits a random moment (mostly while
it appends, sometimes while it starts up and opens the file) and kills it with SIGKILL. The
parent then reopens the store, which must open cleanly (integrity check, schema), and checks:

* every intent the child acknowledged (printed after `append` returned) is there, unless an
  intent that is there says it removed it (append-with-remove is one transaction);
* no intent that is there had its removal half done;
* seqs keep increasing across reopens and crashes;
* intents kept from earlier rounds are all still there, unchanged.

Then it removes most of the round's intents, as a confirmed replay would, so the file stays
small and later rounds still start from a store that has seen deletes.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shadowsync.stores import SQLiteStore

WRITER = Path(__file__).with_name("writer.py")
KILLS = 200
SEED = 20_240_611

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _run_and_kill(database: Path, first_n: int, rng: random.Random) -> list[tuple[int, int]]:
    """Start a writer, kill it at a random moment, return the (seq, n) pairs it acknowledged."""
    # Unbuffered and binary: readline() then reads exactly one line. A buffered reader may take
    # more lines than the first into its buffer, and communicate() (which reads the raw pipe when
    # both stdout and stderr are pipes) would never see them: acknowledged lines would be lost.
    child = subprocess.Popen(
        [sys.executable, str(WRITER), str(database), str(first_n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    early = b""
    try:
        assert child.stdout is not None
        if rng.random() < 0.1:
            # Anywhere from interpreter start-up through opening the file to the first appends.
            time.sleep(rng.uniform(0.0, 0.15))
        else:
            ready = child.stdout.readline()
            assert ready == b"ready\n", child.stderr.read() if child.stderr else b""
            # Wait for the first acknowledged append, so that the kill lands among appends
            # however slowly a loaded machine starts the writer.
            early = child.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.02))
        child.send_signal(signal.SIGKILL)
        raw_out, raw_err = child.communicate(timeout=60)
        raw_out = early + raw_out
        out, err = raw_out.decode(), raw_err.decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, err
    acknowledged = []
    for line in out.splitlines(keepends=True):
        if line == "ready\n" or not line.endswith("\n"):
            continue
        seq, n = line.split()
        acknowledged.append((int(seq), int(n)))
    return acknowledged


def test_acknowledged_intents_survive_sigkill_and_the_store_always_opens_cleanly(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    database = tmp_path / "crash.db"
    kept: dict[int, int] = {}  # seq -> n of intents kept across rounds
    highest_seq = 0
    next_n = 0
    rounds_with_appends = 0
    for _ in range(KILLS):
        acknowledged = _run_and_kill(database, next_n, rng)
        seqs = [seq for seq, _ in acknowledged]
        assert seqs == sorted(seqs)
        assert all(seq > highest_seq for seq in seqs), "a seq was reused after a crash"
        rounds_with_appends += bool(acknowledged)

        with SQLiteStore(database) as store:  # integrity check and schema check on open
            stored = {intent.seq: intent for intent in store.intents()}
            values: dict[int, dict[str, Any]] = {}
            for seq, intent in stored.items():
                assert isinstance(intent.value, dict)
                values[seq] = intent.value
            removed = {value["removes"] for value in values.values() if value["removes"]}
            # Append-with-remove is atomic: nothing stored was removed by something stored.
            assert removed.isdisjoint(stored)
            for seq, n in acknowledged:
                if seq in stored:
                    assert values[seq]["n"] == n
                else:
                    assert seq in removed, f"acknowledged seq {seq} (n={n}) was lost"
            for seq, n in kept.items():
                assert seq in stored, f"seq {seq} from an earlier round was lost"
                assert values[seq]["n"] == n
            # At most the one append in flight at the kill committed without being printed.
            unacknowledged = set(stored) - set(kept) - set(seqs)
            assert len(unacknowledged) <= 1
            assert all(seq > max(seqs, default=highest_seq) for seq in unacknowledged)

            fresh = set(stored) - set(kept)
            for seq in fresh:
                if values[seq]["n"] % 10 == 0:
                    kept[seq] = values[seq]["n"]
            store.remove(sorted(fresh - set(kept)))
            highest_seq = max([highest_seq, *seqs, *stored])
            next_n = 1 + max([next_n - 1, *(n for _, n in acknowledged)])
            next_n = max([next_n, *(values[seq]["n"] + 1 for seq in fresh)])

    # The kills did land while the writer was appending, not only during start-up.
    assert rounds_with_appends >= KILLS // 2
    with SQLiteStore(database) as store:
        assert {intent.seq for intent in store.intents()} == set(kept)
