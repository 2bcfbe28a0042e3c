"""Import cost: ``import shadowsync`` against ``import attrs, jsonpatch`` (its two dependencies).

Each sample is a fresh interpreter (``sys.executable -c ...``) that times its own import
statement with :func:`time.perf_counter_ns` and prints the nanoseconds. The two statements
alternate, after one untimed warm-up run of each. The difference of the medians is what
shadowsync adds on top of its dependencies.

Both sides import from bytecode caches, as they do after a normal install: the interpreters run
with ``PYTHONDONTWRITEBYTECODE`` removed and ``PYTHONPYCACHEPREFIX`` pointing at a temporary
directory, so the warm-up run writes the caches there (not into the source tree) and every
timed run reads them. Without this, an environment that sets ``PYTHONDONTWRITEBYTECODE`` would
compile shadowsync from source on every run while its installed dependencies load bytecode.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass

SHADOWSYNC = "import shadowsync"
BASELINE = "import attrs, jsonpatch"

_PROGRAM = (
    "import time\n"
    "start = time.perf_counter_ns()\n"
    "{statement}\n"
    "print(time.perf_counter_ns() - start)\n"
)


@dataclass(frozen=True)
class ImportTiming:
    """Median import times in fresh interpreters, in milliseconds."""

    runs: int
    shadowsync_ms: float
    baseline_ms: float
    shadowsync_samples_ms: tuple[float, ...]
    baseline_samples_ms: tuple[float, ...]

    @property
    def difference_ms(self) -> float:
        return self.shadowsync_ms - self.baseline_ms


def _environment(cache: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def _sample(statement: str, env: dict[str, str]) -> float:
    completed = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return int(completed.stdout.strip()) / 1e6


def measure_imports(runs: int) -> ImportTiming:
    """Time both statements ``runs`` times each, alternating, and take the medians."""
    ours: list[float] = []
    baseline: list[float] = []
    with tempfile.TemporaryDirectory(prefix="shadowsync-bench-pycache-") as cache:
        env = _environment(cache)
        _sample(SHADOWSYNC, env)
        _sample(BASELINE, env)
        for _ in range(runs):
            ours.append(_sample(SHADOWSYNC, env))
            baseline.append(_sample(BASELINE, env))
    return ImportTiming(
        runs=runs,
        shadowsync_ms=statistics.median(ours),
        baseline_ms=statistics.median(baseline),
        shadowsync_samples_ms=tuple(ours),
        baseline_samples_ms=tuple(baseline),
    )


def modules_imported(statement: str) -> list[str]:
    """Modules a fresh interpreter has after ``statement`` that it did not have before."""
    program = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.split()
