"""The serving benchmark's report: tables against the empty endpoint, the targets, the pyfunc path's cost."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from serving.bench.load import LoadResult

MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"
# The targets (issue 12): one row at the lowest level within this of the empty endpoint's p50, fresh and
# after a burst; at the top level at least this share of its requests per second, and a p99 within this.
P50_MARGIN_MS = 1.0
THROUGHPUT_SHARE = 0.9
TOP_P99_MS = 100.0


@dataclass(frozen=True)
class InProcess:
    """One-row latency (ms) of a model called in process, three ways.

    The fitted pipeline on a DataFrame, the same estimator through `mlflow.pyfunc`, and the service's fast path
    (the typed batch, then the path its warm-up chose: compiled preprocessing, the bare block or the frame).
    """

    model: str
    raw_p50_ms: float
    pyfunc_p50_ms: float
    served_p50_ms: float = math.nan
    path: str = "n/a"


@dataclass(frozen=True)
class Sustained:
    """The long run on one server: load result plus server memory before and after."""

    load: LoadResult
    seconds: float
    rss_start_mib: float
    rss_end_mib: float


@dataclass(frozen=True)
class AfterBurst:
    """One server at the lowest level, `idle_s` after a burst of `burst_s` at the top level (round medians)."""

    burst: LoadResult
    after: LoadResult
    burst_s: float
    idle_s: float


def _row(result: LoadResult, floor: LoadResult | None) -> str:
    cells = [
        result.target,
        result.concurrency,
        f"{result.ok_per_s:.0f}",
        _ratio(result.ok_per_s, floor.ok_per_s) if floor else "n/a",
        f"{result.p50_ms:.1f}",
        f"{result.p50_ms - floor.p50_ms:+.1f}" if floor else "n/a",
        f"{result.p99_ms:.1f}",
    ]
    return "| " + " | ".join(map(str, cells)) + f" | {result.errors} / {result.total} |"


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def targets(results: list[LoadResult], after: list[AfterBurst], fast: str, ceiling: str) -> list[str]:
    """Return one line per target of issue 12 for the server `fast`, each with the empty endpoint's figures."""
    by_key = {(r.target, r.concurrency): r for r in results}
    low, top = min(r.concurrency for r in results), max(r.concurrency for r in results)
    lines = []
    pairs = [("fresh", by_key.get((fast, low)), by_key.get((ceiling, low)))]
    by_server = {run.after.target: run for run in after}
    if fast in by_server and ceiling in by_server:
        run = by_server[fast]
        when = f"{run.idle_s:g} s after a {run.burst_s:g} s burst at {run.burst.concurrency}"
        pairs.append((when, run.after, by_server[ceiling].after))
    for when, served, floor in pairs:
        if served is None or floor is None:
            continue
        gap = served.p50_ms - floor.p50_ms
        lines.append(
            f"- `{fast}`, concurrency {low}, {when}: p50 {served.p50_ms:.1f} ms vs the empty endpoint's "
            f"{floor.p50_ms:.1f} ms ({gap:+.1f} ms; target at most +{P50_MARGIN_MS:g} ms): "
            f"{_verdict(gap <= P50_MARGIN_MS)}."
        )
    served, floor = by_key.get((fast, top)), by_key.get((ceiling, top))
    if served is not None and floor is not None:
        share = served.ok_per_s / floor.ok_per_s if floor.ok_per_s else math.nan
        lines.append(
            f"- `{fast}`, concurrency {top}: {served.ok_per_s:.0f} ok req/s, {_ratio(served.ok_per_s, floor.ok_per_s)} "
            f"the empty endpoint's {floor.ok_per_s:.0f} (target at least {THROUGHPUT_SHARE:.2f}x): "
            f"{_verdict(share >= THROUGHPUT_SHARE)}; p99 {served.p99_ms:.1f} ms (target at most "
            f"{TOP_P99_MS:g} ms): {_verdict(served.p99_ms <= TOP_P99_MS)}."
        )
    return lines


def after_burst_table(after: list[AfterBurst], ceiling: str) -> list[str]:
    """Return the after-burst table: each server's burst, then its low-level row against the empty endpoint's."""
    floor = next((run.after for run in after if run.after.target == ceiling), None)
    lines = [
        "| server | burst: concurrency, s | burst ok req/s | burst p99 ms | idle s | then: concurrency | "
        "ok req/s | p50 ms | p50 - empty ms | p99 ms | errors / requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in after:
        burst, then = run.burst, run.after
        gap = f"{then.p50_ms - floor.p50_ms:+.1f}" if floor else "n/a"
        lines.append(
            f"| {then.target} | {burst.concurrency}, {run.burst_s:g} | {burst.ok_per_s:.0f} | {burst.p99_ms:.1f} | "
            f"{run.idle_s:g} | {then.concurrency} | {then.ok_per_s:.0f} | {then.p50_ms:.1f} | {gap} | "
            f"{then.p99_ms:.1f} | {then.errors + burst.errors} / {then.total + burst.total} |"
        )
    return lines


def stage_table(stages: dict[str, dict[str, float]], gaps_ms: dict[str, float]) -> list[str]:
    """Return the per-stage cost of one row inside the service per server, and what is left of the HTTP gap."""
    servers = list(stages)
    names = list(dict.fromkeys(name for cost in stages.values() for name in cost))
    lines = [
        "| stage of one single-row request, in process, median µs | " + " | ".join(f"`{s}`" for s in servers) + " |",
        "|---|" + "---:|" * len(servers),
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{stages[s].get(name, math.nan):.0f}" for s in servers) + " |" for name in names
    ]
    inside = {server: sum(cost.values()) for server, cost in stages.items()}
    lines.append("| **sum of the stages** | " + " | ".join(f"**{inside[s]:.0f}**" for s in servers) + " |")
    gaps = [gaps_ms.get(server, math.nan) * 1000 for server in servers]
    if not all(math.isnan(gap) for gap in gaps):
        lines.append(
            "| HTTP p50 beyond the empty endpoint (concurrency 1, fresh) | "
            + " | ".join(f"{g:.0f}" for g in gaps)
            + " |"
        )
        left = [gap - inside[server] for gap, server in zip(gaps, servers, strict=True)]
        lines.append(
            "| left for BentoML's batcher, its thread hop and noise | " + " | ".join(f"{g:.0f}" for g in left) + " |"
        )
    return lines


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
    after: list[AfterBurst],
    stages: dict[str, dict[str, float]],
    ceiling: str,
) -> str:
    """Return the Markdown report: targets, rows against the empty endpoint, after-burst rows, stages, limits.

    `pairs` are (fast path, pyfunc path) per model; `stages` the breakdown per fast path.
    """
    floors = {r.concurrency: r for r in results if r.target == ceiling}
    lines = [context, "", "Targets (issues 12 and 24), each plinth fast path against the empty endpoint:", ""]
    for fast, _ in pairs:
        lines += targets(results, after, fast, ceiling)
    lines += ["", f"Every row against `{ceiling}` at the same concurrency (÷ empty: share of its ok req/s):", ""]
    lines.append("| server | concurrency | ok req/s | ÷ empty | p50 ms | p50 - empty ms | p99 ms | errors / requests |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    lines += [_row(result, floors.get(result.concurrency)) for result in results]
    lines += ["", "After a burst (the batcher's memory of load), rounds interleaved over the servers:", ""]
    lines += after_burst_table(after, ceiling)
    by_key = {(r.target, r.concurrency): r for r in results}
    low = min(floors, default=0)
    gaps = {
        server: by_key[(server, low)].p50_ms - floors[low].p50_ms
        for server in stages
        if (server, low) in by_key and low in floors
    }
    lines += ["", "Where one row's time goes in each fast path (`python -m serving.bench.breakdown`):", ""]
    lines += stage_table(stages, gaps)
    lines += ["", "What the pyfunc path costs (the same fitted estimator, logged plinth's way and plainly):", ""]
    for fast, pyfunc in pairs:
        lines += pyfunc_cost(results, fast, pyfunc)
    lines += [
        "",
        "| model, in process, 1 row | pipeline on a DataFrame p50 ms | `mlflow.pyfunc` predict p50 ms "
        "| served fast path p50 ms | its path |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {item.model} | {item.raw_p50_ms:.2f} | {item.pyfunc_p50_ms:.2f} | {item.served_p50_ms:.2f} | {item.path} |"
        for item in limits
    ]
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
