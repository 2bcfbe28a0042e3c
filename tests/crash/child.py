"""Running a crash test's child process and killing it with SIGKILL at a random moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(writer: Path, args: list[str], rng: random.Random) -> list[int]:
    """Start ``writer`` with ``args``, wait for its ``ready``, kill it within 30 ms, and return
    the numbers it printed whole (each printed only once its write was durable)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    child = subprocess.Popen(
        [sys.executable, str(writer), *args],
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
