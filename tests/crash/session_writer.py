"""The child process of the session crash tests: reports or desires until it is killed.

Run as ``python session_writer.py report|desire DB_PATH FIRST_N``. It opens a `ShadowSession`
(offline) on a SQLite store, prints ``ready``, then calls ``report`` with `report_for` (or
``desire`` with `desire_for`) once per ``n`` and prints ``n`` only after the call returned,
that is, once the change is durable.
"""

from __future__ import annotations

import sys
from typing import Any

from shadowsync import ShadowSession
from shadowsync.stores import SQLiteStore

THING = "crash-session"
KEYS = 6


def report_for(n: int) -> dict[str, Any]:
    """One report writing ``n`` to every key: a report queued in part shows as mixed values."""
    return {f"k{key}": {"n": n, "pad": "x" * ((n + key) % 30)} for key in range(KEYS)}


def desire_for(n: int) -> dict[str, Any]:
    """Several keys per change, so that a half-written change shows."""
    return {"n": n, f"k{n % 5}": n, "pad": {"text": "x" * (n % 40), "n": n}}


def main(argv: list[str]) -> None:
    mode, path, n = argv[1], argv[2], int(argv[3])
    session = ShadowSession(THING, store=SQLiteStore(path), token=lambda: "t", random=lambda: 0.5)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        if mode == "report":
            session.report(report_for(n), 1_700_000_000.0 + n)
        else:
            session.desire(desire_for(n), 1_700_000_000.0 + n)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main(sys.argv)
