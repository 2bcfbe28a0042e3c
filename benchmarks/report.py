"""Results: the rows of each comparison, the project targets, the text tables and the JSON."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from benchmarks.import_time import BASELINE, SHADOWSYNC, ImportTiming

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from benchmarks.documents import Case
    from benchmarks.timing import Measurement, TimingConfig

TARGET_CASE = "8 KB"
"""The case the project targets are held against."""


@dataclass(frozen=True)
class Row:
    """One comparison on one case."""

    case: str
    group: str
    operation: str
    ours_timed: str
    peer_timed: str
    peer_label: str
    ours: Measurement | None
    peer: Measurement | None
    problems: tuple[str, ...]
    error: str | None
    target: str | None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or not self.peer.per_call_ns:
            return None
        return self.ours.per_call_ns / self.peer.per_call_ns

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        return "DISAGREE" if self.problems else "ok"


@dataclass(frozen=True)
class Target:
    """A ratio or difference the project aims for; reported, never enforced."""

    name: str
    description: str
    value: float | None
    limit: float
    unit: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


def targets(rows: list[Row], imports: ImportTiming | None) -> list[Target]:
    """The project targets, on the 8 KB case."""

    def ratio_of(name: str) -> float | None:
        for row in rows:
            if row.case == TARGET_CASE and row.target == name:
                return row.ratio
        return None

    return [
        Target(
            "delta", "compute_delta / moto delta (separate JSON texts)", ratio_of("delta"), 1.0, "x"
        ),
        Target(
            "update", "apply_update + accepted / moto update path", ratio_of("update"), 0.5, "x"
        ),
        Target(
            "update-whole",
            "the same, whole reported section / moto",
            ratio_of("update-whole"),
            0.5,
            "x",
        ),
        Target(
            "import",
            f"`{SHADOWSYNC}` - `{BASELINE}`",
            None if imports is None else imports.difference_ms,
            15.0,
            " ms",
        ),
    ]


def _us(measurement: Measurement | None) -> str:
    return "-" if measurement is None else f"{measurement.per_call_us:,.1f}"


def case_heading(case: Case) -> str:
    return (
        f"{case.label} case: desired+reported = {case.size:,} bytes (ShadowDocument.size), "
        f"{case.desired_leaves} desired leaves, {case.differing_leaves} differ in reported;\n"
        f"  "
        f"update request {len(case.request_bytes):,} bytes setting {case.updated_leaves} leaves; "
        f"whole-section report {len(case.whole_report_bytes):,} bytes"
    )


def _other_labels(cases: list[Case], rows: list[Row]) -> list[str]:
    """Row labels that are not cases (benchmarks with inputs of their own), in row order."""
    known = {case.label for case in cases}
    return list(dict.fromkeys(row.case for row in rows if row.case not in known))


def render(
    cases: list[Case],
    rows: list[Row],
    imports: ImportTiming | None,
    config: TimingConfig,
    *,
    smoke: bool,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The human-readable report.

    Rows are grouped by case; rows whose label is not a case get a section of their own after
    the cases. ``notes`` holds lines printed under the heading of a case or section label.
    """
    lines: list[str] = []
    loops = "1 call" if config.fixed_loops == 1 else "auto-ranged calls"
    lines.append(
        f"shadowsync benchmarks ({'SMOKE: timings are not meaningful' if smoke else 'full'}); "
        f"median of {config.repeat} batches of {loops}, per call"
    )
    lines.append(f"Python {platform.python_version()} on {platform.platform(terse=True)}")
    op_width = max(len(row.operation) for row in rows) if rows else 20
    peer_width = max(len(row.peer_label) for row in rows) if rows else 12
    notes = notes or {}

    def table(label: str) -> None:
        lines.extend(f"  {note}" for note in notes.get(label, ()))
        lines.append(
            f"  {'operation':<{op_width}}  {'peer':<{peer_width}}  {'ours (µs)':>10}  "
            f"{'peer (µs)':>10}  {'ours/peer':>9}  check"
        )
        for row in rows:
            if row.case != label:
                continue
            ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
            lines.append(
                f"  {row.operation:<{op_width}}  {row.peer_label:<{peer_width}}  "
                f"{_us(row.ours):>10}  {_us(row.peer):>10}  {ratio:>9}  {row.status}"
            )

    for case in cases:
        lines.append("")
        lines.append(case_heading(case))
        table(case.label)
    for label in _other_labels(cases, rows):
        lines.append("")
        lines.append(f"{label}:")
        table(label)
    if imports is not None:
        lines.append("")
        lines.append(
            f"Import, fresh interpreter, median of {imports.runs}: `{SHADOWSYNC}` "
            f"{imports.shadowsync_ms:.1f} ms, `{BASELINE}` {imports.baseline_ms:.1f} ms, "
            f"difference {imports.difference_ms:+.1f} ms"
        )
    lines.append("")
    lines.append(f"Targets ({TARGET_CASE} case; reported, not enforced):")
    for target in targets(rows, imports):
        value = "-" if target.value is None else f"{target.value:.2f}{target.unit}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target.met]
        lines.append(
            f"  {target.description:<48} {value:>9}  (target <= {target.limit:g}{target.unit})"
            f"  {verdict}"
        )
    lines.append("")
    lines.append("What each side times:")
    seen: set[str] = set()
    for row in rows:
        for timed in (row.ours_timed, row.peer_timed):
            if timed not in seen:
                seen.add(timed)
                lines.append(f"  - {timed}")
    failures = [row for row in rows if row.status != "ok"]
    if failures:
        lines.append("")
        lines.append("FAILURES:")
        for row in failures:
            lines.append(f"  {row.case} {row.operation} vs {row.peer_label}: {row.status}")
            for problem in ([row.error] if row.error else []) + list(row.problems):
                lines.append(f"    {problem}")
    return "\n".join(lines)


def _measurement(measurement: Measurement | None) -> dict[str, Any] | None:
    if measurement is None:
        return None
    return {
        "per_call_ns": measurement.per_call_ns,
        "loops": measurement.loops,
        "repeat": measurement.repeat,
        "batches_ns": list(measurement.batches_ns),
        "spread": measurement.spread,
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def to_json(
    cases: list[Case],
    rows: list[Row],
    imports: ImportTiming | None,
    config: TimingConfig,
    *,
    smoke: bool,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Everything in the report, as plain JSON data."""
    return {
        "smoke": smoke,
        "python": sys.version,
        "platform": platform.platform(),
        "versions": {
            name: _version(name)
            for name in ("shadowsync", "moto", "deepdiff", "jsonpatch", "attrs", "pycrdt")
        },
        "timing": {
            "repeat": config.repeat,
            "min_batch_ns": config.min_batch_ns,
            "fixed_loops": config.fixed_loops,
            "statistic": "median of batch_ns / loops",
        },
        "cases": [
            {
                "label": case.label,
                "seed": case.seed,
                "target_bytes": case.target_bytes,
                "size": case.size,
                "desired_leaves": case.desired_leaves,
                "differing_desired_leaves": case.differing_leaves,
                "request_bytes": len(case.request_bytes),
                "whole_report_bytes": len(case.whole_report_bytes),
                "updated_leaves": case.updated_leaves,
            }
            for case in cases
        ],
        "notes": {label: list(lines) for label, lines in (notes or {}).items()},
        "rows": [
            {
                "case": row.case,
                "group": row.group,
                "operation": row.operation,
                "peer": row.peer_label,
                "ours_timed": row.ours_timed,
                "peer_timed": row.peer_timed,
                "ours": _measurement(row.ours),
                "peer_measurement": _measurement(row.peer),
                "ratio": row.ratio,
                "status": row.status,
                "problems": list(row.problems),
                "error": row.error,
            }
            for row in rows
        ],
        "imports": None
        if imports is None
        else {
            "runs": imports.runs,
            "shadowsync_ms": imports.shadowsync_ms,
            "baseline_ms": imports.baseline_ms,
            "difference_ms": imports.difference_ms,
            "shadowsync_samples_ms": list(imports.shadowsync_samples_ms),
            "baseline_samples_ms": list(imports.baseline_samples_ms),
        },
        "targets": [
            {
                "name": target.name,
                "description": target.description,
                "value": target.value,
                "limit": target.limit,
                "met": target.met,
            }
            for target in targets(rows, imports)
        ],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
