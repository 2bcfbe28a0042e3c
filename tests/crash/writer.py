"""The child process of the crash test: appends intents to a SQLite store until it is killed.

Run as ``python writer.py DB_PATH FIRST_N``. It prints ``ready`` once the store is open, then
one line ``<seq> <n>`` for each intent, written and flushed only after `append` returned (that
is, once the intent is acknowledged as durable). Every third append also removes the intent
appended just before it, in the same transaction; the intent's value records which seq it
removes, so the parent can check that the two happened together or not at all.
"""

from __future__ import annotations

import sys

from shadowsync import HLCStamp
from shadowsync._device.intent import Intent
from shadowsync.stores import SQLiteStore


def _intent(n: int, removes: int) -> Intent:
    return Intent(
        thing_name="crash-test",
        shadow_name="queue" if n % 2 else None,
        kind="report",
        path=("sensors", f"s{n % 7}"),
        value={"n": n, "removes": removes, "payload": "x" * (n % 50)},
        created_at=1_700_000_000 + n,
        stamp=HLCStamp(wall_ms=1_700_000_000_000 + n, counter=0, node="writer"),
    )


def main(argv: list[str]) -> None:
    path, n = argv[1], int(argv[2])
    store = SQLiteStore(path)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    previous = 0
    while True:
        removes = previous if n % 3 == 2 else 0
        seq = store.append(_intent(n, removes), remove=[removes] if removes else [])
        sys.stdout.write(f"{seq} {n}\n")
        sys.stdout.flush()
        previous = seq
        n += 1


if __name__ == "__main__":
    main(sys.argv)
