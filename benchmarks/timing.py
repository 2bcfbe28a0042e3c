"""A small timeit-like harness: auto-ranged loops, several repeats, the median per call.

Every benchmark is a ``prepare``/``run`` pair. ``prepare(n)`` builds the ``n`` inputs of one
batch outside the timed region (for example fresh copies of a document that the peer mutates);
``run(item)`` is the timed call. A batch is timed with :func:`time.perf_counter_ns` around a
plain ``for`` loop. Unlike :mod:`timeit`, the garbage collector stays on while timing: some
peers (deepdiff) build reference cycles, and collecting them is part of what they cost. Each
batch starts after a full collection. A batch is timed in groups of at most `PREPARED_AT_ONCE`
calls, each group's inputs prepared just before it, and every object alive when a group starts
(the process's own, the prepared inputs) is frozen (`gc.freeze`) until it ends. Each side then
pays for collecting what its calls allocate, not for what the process happened to hold: a
collection scans every object it tracks, so with a whole batch of prepared 8 KB documents
alive, or a heap grown by earlier benchmarks, each collection cost more, more often for the side
that allocates more, and the same call measured 500 µs or 900 µs depending on what had run
before it.

The two sides of a comparison are timed in alternating batches (ours, peer, peer, ours, ...),
so a machine that gets busier or quieter during the run affects both sides alike.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bench:
    """One timed operation."""

    name: str
    """What is timed, exactly (shown in the report)."""
    run: Callable[[Any], object]
    """The timed call; its result is what the correctness checks compare."""
    prepare: Callable[[int], Sequence[Any]]
    """Builds the inputs of one batch of ``n`` calls, untimed."""
    cleanup: Callable[[], None] | None = None
    """Runs after each batch, untimed (moto keeps every model instance it creates)."""


def repeated(value: object) -> Callable[[int], Sequence[object]]:
    """A ``prepare`` that hands the same input to every call (for functions that do not mutate)."""

    def prepare(count: int) -> Sequence[object]:
        return [value] * count

    return prepare


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time each benchmark."""

    repeat: int = 7
    """Batches timed; the report uses the median."""
    min_batch_ns: int = 200_000_000
    """Auto-ranging grows the batch (1, 2, 5, 10, 20, ...) until one takes this long."""
    max_loops: int = 1_000_000
    fixed_loops: int | None = None
    """Skip auto-ranging and use this many calls per batch (the smoke mode uses 1)."""


SMOKE = TimingConfig(repeat=2, fixed_loops=1)
FULL = TimingConfig()


@dataclass(frozen=True)
class Measurement:
    """The timing of one benchmark."""

    per_call_ns: float
    """Median over the repeats of (batch time / loops)."""
    loops: int
    repeat: int
    batches_ns: tuple[int, ...]

    @property
    def per_call_us(self) -> float:
        return self.per_call_ns / 1000.0

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median of the per-call times: a noise indicator."""
        per_call = [batch / self.loops for batch in self.batches_ns]
        return (max(per_call) - min(per_call)) / self.per_call_ns if self.per_call_ns else 0.0


PREPARED_AT_ONCE = 20
"""The most inputs alive at once while a batch is timed (see the module's docstring)."""


def _time_batch(bench: Bench, loops: int) -> int:
    run = bench.run
    elapsed = 0
    gc.collect()
    for first in range(0, loops, PREPARED_AT_ONCE):
        inputs = bench.prepare(min(PREPARED_AT_ONCE, loops - first))
        gc.freeze()
        try:
            start = time.perf_counter_ns()
            for item in inputs:
                run(item)
            elapsed += time.perf_counter_ns() - start
        finally:
            gc.unfreeze()  # a failing call (reported as the row's error) leaves nothing frozen
        del inputs
        if bench.cleanup is not None:
            bench.cleanup()
    return elapsed


def _autorange(bench: Bench, config: TimingConfig) -> int:
    if config.fixed_loops is not None:
        return config.fixed_loops
    loops = 1
    while True:
        for factor in (1, 2, 5):
            count = loops * factor
            if count >= config.max_loops or _time_batch(bench, count) >= config.min_batch_ns:
                return min(count, config.max_loops)
        loops *= 10


def _measurement(batches: list[int], loops: int) -> Measurement:
    return Measurement(
        per_call_ns=statistics.median(batches) / loops,
        loops=loops,
        repeat=len(batches),
        batches_ns=tuple(batches),
    )


def measure_pair(ours: Bench, peer: Bench, config: TimingConfig) -> tuple[Measurement, Measurement]:
    """Time both sides of a comparison in alternating batches; each gets its own loop count."""
    ours_loops, peer_loops = _autorange(ours, config), _autorange(peer, config)
    ours_batches: list[int] = []
    peer_batches: list[int] = []
    for index in range(config.repeat):
        if index % 2 == 0:
            ours_batches.append(_time_batch(ours, ours_loops))
            peer_batches.append(_time_batch(peer, peer_loops))
        else:
            peer_batches.append(_time_batch(peer, peer_loops))
            ours_batches.append(_time_batch(ours, ours_loops))
    return _measurement(ours_batches, ours_loops), _measurement(peer_batches, peer_loops)


Check = Callable[[object, object], list[str]]
"""Compares our result with the peer's for the same input; returns the disagreements found."""


@dataclass(frozen=True)
class Comparison:
    """Our operation against a peer's on the same input, with a check that both agree."""

    group: str
    """``delta`` or ``update``."""
    operation: str
    """Short row label for the report."""
    ours: Bench
    peer: Bench
    peer_label: str
    check: Check
    target: str | None = None
    """Name of the project target this ratio is held against, if any."""
