"""The child process of the state crash test: saves reconciler states until it is killed.

Run as ``python state_writer.py DB_PATH FIRST_N``. It prints ``ready`` once the store is open,
then saves one `ReconcilerState` per ``n`` (version ``n``, a target and attempts that change
with it) and prints ``n`` only after the save returned, that is, once the state is durable.
"""

from __future__ import annotations

import sys

from shadowsync.reconcile import ReconcilerState
from shadowsync.stores import SQLiteStore


def state_for(n: int) -> ReconcilerState:
    """The state saved for ``n``: every field derives from it, so a torn write shows."""
    return ReconcilerState(
        target={"web": f"v{n}", "db": {"size": n % 13, "pad": "x" * (n % 40)}},
        version=n,
        last_good={"web": f"v{n - 1}"} if n else None,
        last_good_version=n - 1 if n else None,
        attempts={"web": 1 + n % 2},
        retry_at={"web": 1000.0 + n},
    )


def main(argv: list[str]) -> None:
    path, n = argv[1], int(argv[2])
    store = SQLiteStore(path)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        state_for(n).save(store)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main(sys.argv)
