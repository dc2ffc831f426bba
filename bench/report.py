"""Rows of a benchmark report, percentiles, and the Markdown table.

Every benchmark module returns `Row`s; `bench/__main__.py` collects them,
prints one table and writes it to bench/results/. Keeping one row shape for
all benchmarks is what lets a reader compare figures at a glance.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass
class Row:
    section: str  # e.g. "ipam", "cni"
    case: str  # what was measured, e.g. "Allocate, sqlite, 32 clients"
    p50_ms: float | None = None
    p99_ms: float | None = None
    rate: float | None = None  # throughput
    rate_unit: str = ""  # e.g. "alloc/s"
    baseline: str = ""  # the baseline case this row compares to (same run)
    ratio: float | None = None  # this row's p50 (or rate) over the baseline's
    goal: str = ""  # the goal from the issue, e.g. "p50 < 120 ms"
    met: bool | None = None
    note: str = ""


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of durations given in seconds."""
    return statistics.median(seconds) * 1000, percentile(seconds, 99) * 1000


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def to_markdown(rows: Iterable[Row], title: str = "kovn benchmark report") -> str:
    header = "| section | case | p50 ms | p99 ms | rate | baseline | ratio | goal | met | note |"
    lines = [f"# {title}", "", header, "|" + "---|" * 10]
    for r in rows:
        rate = f"{_fmt(r.rate)} {r.rate_unit}".strip() if r.rate is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        cells = [r.section, r.case, _fmt(r.p50_ms), _fmt(r.p99_ms), rate, r.baseline, ratio]
        cells += [r.goal, met, r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
