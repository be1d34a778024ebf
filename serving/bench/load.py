"""Load generation and server lifecycle for the serving benchmark: `hey` runs, process start/stop, memory."""

from __future__ import annotations

import math
import re
import statistics
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from serving.embedded.processes import ManagedProcess


@dataclass(frozen=True)
class Target:
    """One server under test: how to start it, where it is healthy, what one-row request it takes."""

    name: str
    command: list[str]
    port: int
    health: str
    route: str
    body_key: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Return the prediction URL."""
        return f"http://127.0.0.1:{self.port}{self.route}"


@dataclass(frozen=True)
class LoadResult:
    """What `hey` measured for one target at one concurrency."""

    target: str
    concurrency: int
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    total: int


def combine(runs: list[LoadResult]) -> LoadResult:
    """Fold repeated runs of one server and level: medians of rate and latencies, summed counts."""

    def median(values: list[float]) -> float:
        known = [value for value in values if not math.isnan(value)]
        return statistics.median(known) if known else math.nan

    first = runs[0]
    return LoadResult(
        first.target,
        first.concurrency,
        median([r.ok_per_s for r in runs]),
        median([r.p50_ms for r in runs]),
        median([r.p99_ms for r in runs]),
        sum(r.errors for r in runs),
        sum(r.total for r in runs),
    )


@contextmanager
def serving(target: Target, env: dict[str, str], log: Path) -> Iterator[psutil.Process]:
    """Start a server (`env` plus the target's own variables), wait until it is healthy, always stop it after."""
    ready_url = f"http://127.0.0.1:{target.port}{target.health}"
    server = ManagedProcess(target.name, target.command, log, {**env, **target.env}, ready_url)
    try:
        server.start().wait_ready()
        assert server.popen is not None
        yield psutil.Process(server.popen.pid)
    finally:
        server.stop()


def rss_mib(process: psutil.Process) -> float:
    """Resident memory of a server and all its worker processes, in MiB."""
    members = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in members if p.is_running()) / 2**20


def hey(url: str, body: Path, concurrency: int, seconds: float, target: str) -> LoadResult:
    """Run `hey` for `seconds` and parse its summary (status codes, transport errors, percentiles)."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    out = subprocess.run([*command, "-D", str(body), url], capture_output=True, text=True, check=True).stdout
    summary, _, transport = out.partition("Error distribution:")
    total_s = float(re.findall(r"Total:\s+([\d.]+) secs", summary)[0])
    codes = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", summary)}
    failed = sum(int(count) for count in re.findall(r"^\s+\[(\d+)\]", transport, re.MULTILINE))
    ok = sum(count for code, count in codes.items() if 200 <= code < 300)
    percentiles = {int(p): float(v) * 1000 for p, v in re.findall(r"(\d+)% in ([\d.]+) secs", summary)}
    total = sum(codes.values()) + failed
    nan = float("nan")
    return LoadResult(
        target, concurrency, ok / total_s, percentiles.get(50, nan), percentiles.get(99, nan), total - ok, total
    )
