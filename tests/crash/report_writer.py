"""The child process of the multi-key report crash test: reports until it is killed.

Run as ``python report_writer.py DB_PATH FIRST_N``. It opens a `ShadowSession` (offline) on a
SQLite store, prints ``ready``, then reports `report_for` once per ``n`` and prints ``n`` only
after ``report`` returned, that is, once the report is queued durably.
"""

from __future__ import annotations

import sys
from typing import Any

from shadowsync import ShadowSession
from shadowsync.stores import SQLiteStore

THING = "crash-report"
KEYS = 6


def report_for(n: int) -> dict[str, Any]:
    """One report writing ``n`` to every key: a report queued in part shows as mixed values."""
    return {f"k{key}": {"n": n, "pad": "x" * ((n + key) % 30)} for key in range(KEYS)}


def main(argv: list[str]) -> None:
    path, n = argv[1], int(argv[2])
    session = ShadowSession(THING, store=SQLiteStore(path), token=lambda: "t", random=lambda: 0.5)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        session.report(report_for(n), 1_700_000_000.0 + n)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main(sys.argv)
