"""``python -m benchmarks [--smoke] [--json PATH] [--profile]``."""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import time
import traceback
from pathlib import Path

from benchmarks import delta, join, three_way, update
from benchmarks.documents import Case, make_cases
from benchmarks.import_time import ImportTiming, measure_imports
from benchmarks.report import TARGET_CASE, Row, render, to_json, write_json
from benchmarks.timing import FULL, SMOKE, Comparison, Measurement, TimingConfig, measure_pair


def _error(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename}:{frame.lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _check(comparison: Comparison) -> tuple[tuple[str, ...], str | None]:
    """Run both sides once on fresh inputs and compare what they return."""
    try:
        ours = comparison.ours.run(comparison.ours.prepare(1)[0])
        peer = comparison.peer.run(comparison.peer.prepare(1)[0])
        return tuple(comparison.check(ours, peer)), None
    except Exception as exc:
        return (), _error(exc)


def run_case(case: Case, config: TimingConfig, *, progress: bool = False) -> list[Row]:
    """Check, then time, every comparison of one case."""
    comparisons = [
        *delta.comparisons(case),
        *update.comparisons(case),
        *three_way.comparisons(case),
    ]
    return run_comparisons(case.label, comparisons, config, progress=progress)


def run_comparisons(
    label: str, comparisons: list[Comparison], config: TimingConfig, *, progress: bool = False
) -> list[Row]:
    """Check, then time, each comparison; ``label`` is the case or section of the rows."""
    rows: list[Row] = []
    for comparison in comparisons:
        problems, error = _check(comparison)
        ours: Measurement | None = None
        peer: Measurement | None = None
        if error is None:
            try:
                ours, peer = measure_pair(comparison.ours, comparison.peer, config)
            except Exception as exc:
                error = _error(exc)
        rows.append(
            Row(
                case=label,
                group=comparison.group,
                operation=comparison.operation,
                ours_timed=comparison.ours.name,
                peer_timed=comparison.peer.name,
                peer_label=comparison.peer_label,
                ours=ours,
                peer=peer,
                problems=problems,
                error=error,
                target=comparison.target,
            )
        )
        if progress:
            status = "ok" if not problems and error is None else "FAILED"
            print(
                f"  {label}: {comparison.operation} vs {comparison.peer_label}: {status}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def profile(case: Case) -> str:
    """cProfile of compute_delta and apply_update + accepted on one case (top functions)."""
    out = io.StringIO()
    for comparison in (delta.comparisons(case)[0], update.comparisons(case)[0]):
        bench = comparison.ours
        inputs = bench.prepare(2000 if comparison.group == "delta" else 500)
        profiler = cProfile.Profile()
        profiler.enable()
        for item in inputs:
            bench.run(item)
        profiler.disable()
        out.write(f"\n=== {bench.name} x {len(inputs)} ({case.label}) ===\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run every benchmark once or twice (timings meaningless), still checking results",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"print a cProfile of compute_delta and apply_update on the {TARGET_CASE} case",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = SMOKE if args.smoke else FULL
    cases = make_cases()
    joins = join.make_input()
    notes = {case.label: three_way.notes(case) for case in cases}
    notes[join.LABEL] = join.notes(joins)
    # Everything built so far lives for the whole run: keep it out of every collection, so a
    # collection costs the same whatever happened to be imported.
    gc.collect()
    gc.freeze()
    rows: list[Row] = []
    for case in cases:
        rows.extend(run_case(case, config, progress=not args.smoke))
    rows.extend(
        run_comparisons(join.LABEL, join.comparisons(joins), config, progress=not args.smoke)
    )
    imports: ImportTiming | None = None
    import_error: str | None = None
    try:
        imports = measure_imports(runs=3 if args.smoke else 11)
    except Exception as exc:
        import_error = _error(exc)
    print(render(cases, rows, imports, config, smoke=args.smoke, notes=notes))
    if args.profile:
        print(profile(next(case for case in cases if case.label == TARGET_CASE)))
    if args.json is not None:
        write_json(args.json, to_json(cases, rows, imports, config, smoke=args.smoke, notes=notes))
        print(f"\nresults written to {args.json}")
    failed = [row for row in rows if row.status != "ok"]
    if import_error is not None:
        print(f"\nimport timing failed: {import_error}")
    print(f"\ntotal time {time.perf_counter() - started:.1f} s")
    return 1 if failed or import_error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
