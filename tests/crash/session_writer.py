"""The child process of the session crash tests: reports or desires until it is killed.

Run as ``python session_writer.py report|desire|confirm DB_PATH FIRST_N``. It opens a
`ShadowSession` (offline) on a SQLite store, prints ``ready``, then calls ``report`` with
`report_for` (or ``desire`` with `desire_for`) once per ``n`` and prints ``n`` only after the
call returned, that is, once the change is durable. With ``confirm`` the session is online to an
in-memory service in the same process, and ``n`` is printed once the service's answers to the
report were handled: its intents are confirmed and gone from the queue.
"""

from __future__ import annotations

import itertools
import sys
from typing import TYPE_CHECKING, Any

from shadowsync import ShadowSession
from shadowsync.events import Event, Publish
from shadowsync.stores import SQLiteStore
from shadowsync.testing import InMemoryShadowService

if TYPE_CHECKING:
    from collections.abc import Callable

THING = "crash-session"
KEYS = 6


def report_for(n: int) -> dict[str, Any]:
    """One report writing ``n`` to every key: a report queued in part shows as mixed values."""
    return {f"k{key}": {"n": n, "pad": "x" * ((n + key) % 30)} for key in range(KEYS)}


def desire_for(n: int) -> dict[str, Any]:
    """Several keys per change, so that a half-written change shows."""
    return {"n": n, f"k{n % 5}": n, "pad": {"text": "x" * (n % 40), "n": n}}


def _online(session: ShadowSession, now: float) -> Callable[[list[Event]], None]:
    """Connect ``session`` to a service in this process; the function that delivers what it
    publishes and the answers to that, until nothing is left."""
    service = InMemoryShadowService()

    def pump(outputs: list[Event]) -> None:
        waiting = list(outputs)
        while waiting:
            output = waiting.pop(0)
            if isinstance(output, Publish):
                for topic, payload in service.handle(output.topic, output.payload):
                    waiting += session.receive_message(topic, payload, now)

    pump(session.connected(now))
    return pump


def main(argv: list[str]) -> None:
    mode, path, n = argv[1], argv[2], int(argv[3])
    tokens = itertools.count()
    session = ShadowSession(
        THING, store=SQLiteStore(path), token=lambda: f"t{next(tokens)}", random=lambda: 0.5
    )
    pump = _online(session, 1_700_000_000.0) if mode == "confirm" else None
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        if pump is not None:
            pump(session.report(report_for(n), 1_700_000_000.0 + n))
            assert not session.queue.pending(), "the report was not confirmed"
        elif mode == "report":
            session.report(report_for(n), 1_700_000_000.0 + n)
        else:
            session.desire(desire_for(n), 1_700_000_000.0 + n)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main(sys.argv)
