"""The serving benchmark's report: one Markdown table, the pyfunc path's cost, written where it is read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from serving.bench.load import LoadResult

MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class InProcess:
    """One-row latency (ms) of a model called in process: the raw estimator and `mlflow.pyfunc`."""

    model: str
    raw_p50_ms: float
    pyfunc_p50_ms: float


@dataclass(frozen=True)
class Sustained:
    """The long run on one server: load result plus server memory before and after."""

    load: LoadResult
    seconds: float
    rss_start_mib: float
    rss_end_mib: float


def _row(result: LoadResult) -> str:
    cells = [
        result.target,
        result.concurrency,
        f"{result.ok_per_s:.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
    ]
    return "| " + " | ".join(map(str, cells)) + f" | {result.errors} / {result.total} |"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator and not math.isnan(numerator) else "n/a"


def pyfunc_cost(results: list[LoadResult], fast: str, pyfunc: str) -> list[str]:
    """Return one line per concurrency: the pyfunc path's throughput and p99 against the fast path's."""
    by_key = {(r.target, r.concurrency): r for r in results}
    lines = []
    for level in sorted({r.concurrency for r in results}):
        quick, slow = by_key.get((fast, level)), by_key.get((pyfunc, level))
        if quick is None or slow is None:
            continue
        lines.append(
            f"- `{pyfunc}` at concurrency {level}: {_ratio(slow.ok_per_s, quick.ok_per_s)} the fast path's "
            f"requests per second ({slow.ok_per_s:.0f} vs {quick.ok_per_s:.0f}), p99 {slow.p99_ms:.1f} vs "
            f"{quick.p99_ms:.1f} ms."
        )
    return lines


def render(
    results: list[LoadResult],
    limits: list[InProcess],
    sustained: Sustained | None,
    context: str,
    pairs: list[tuple[str, str]],
) -> str:
    """Return the Markdown report: context, one row per server and level, pyfunc cost, in-process limits."""
    lines = [context, "", "| server | concurrency | ok req/s | p50 ms | p99 ms | errors / requests |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    lines += [_row(result) for result in results]
    lines += ["", "What the pyfunc path costs (the same fitted estimator, logged plinth's way and plainly):", ""]
    for fast, pyfunc in pairs:
        lines += pyfunc_cost(results, fast, pyfunc)
    lines += ["", "| model, in process, 1 row | raw estimator p50 ms | `mlflow.pyfunc` predict p50 ms |"]
    lines.append("|---|---:|---:|")
    lines += [f"| {limit.model} | {limit.raw_p50_ms:.2f} | {limit.pyfunc_p50_ms:.2f} |" for limit in limits]
    if sustained:
        run = sustained.load
        lines += [
            "",
            f"Sustained run, `{run.target}` at concurrency {run.concurrency} for {sustained.seconds:.0f} s: "
            f"{run.ok_per_s:.0f} ok req/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"{run.errors} errors of {run.total} requests; server memory (all processes) "
            f"{sustained.rss_start_mib:.0f} MiB at start, {sustained.rss_end_mib:.0f} MiB at end.",
        ]
    return "\n".join(lines) + "\n"


def write_readme(report: str, readme: Path) -> None:
    """Replace the benchmark section of the README (between the markers) with the new report."""
    text = readme.read_text()
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        readme.write_text(f"{head}{MARK_START}\n{report}{MARK_END}{rest.split(MARK_END, 1)[1]}")
