"""The child process of the local-desired crash test: makes desired changes until it is killed.

Run as ``python desired_writer.py DB_PATH FIRST_N``. It opens a `ShadowSession` (offline) on a
SQLite store, prints ``ready``, then calls ``desire`` once per ``n`` with `changes_for` and
prints ``n`` only after ``desire`` returned, that is, once the change is durable.
"""

from __future__ import annotations

import sys
from typing import Any

from shadowsync import ShadowSession
from shadowsync.stores import SQLiteStore

THING = "crash-desired"


def changes_for(n: int) -> dict[str, Any]:
    """Several keys per change, so that a half-written change shows."""
    return {"n": n, f"k{n % 5}": n, "pad": {"text": "x" * (n % 40), "n": n}}


def main(argv: list[str]) -> None:
    path, n = argv[1], int(argv[2])
    session = ShadowSession(THING, store=SQLiteStore(path), token=lambda: "t", random=lambda: 0.5)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        session.desire(changes_for(n), 1_700_000_000.0 + n)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main(sys.argv)
