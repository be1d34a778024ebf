"""Pipeline overhead benchmark: `make train` (kfp.local) vs the same steps in one plain Python process.

Three ways, as fresh processes, alternating, each on its own empty $PLINTH_HOME: `make train` as shipped (warm
steps, `pipelines/warm_steps.py`), `make train` with `PLINTH_WARM_STEPS=0` (a fresh interpreter per step, as
kfp.local runs it by default and as a cluster does), and the plain script. Prints wall times, the ratios to
the plain script, and a per-step table: kfp.local's own task timestamps against the plain script's step
timer, so the difference is each step's interpreter start and imports. `python -m pipelines.bench --repeats N`;
results also go to pipelines/bench-results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipelines.run_plain import STEP_TIMES_PREFIX
from pipelines.warm_steps import WARM_STEPS_ENV

RESULTS = Path(__file__).parent / "bench-results.md"
WARM, COLD, PLAIN = "make train (warm steps)", "make train, fresh interpreter per step", "plain Python script"
COMMANDS = {
    WARM: ([sys.executable, "-m", "pipelines.run_local"], {}),
    COLD: ([sys.executable, "-m", "pipelines.run_local"], {WARM_STEPS_ENV: "0"}),
    PLAIN: ([sys.executable, "-m", "pipelines.run_plain"], {}),
}
# kfp.local's log lines: "16:05:34.916 - INFO - Executing task 'register'" and "... Task 'register' finished".
TASK_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Samples:
    """Wall times of one way of running, and each step's times across runs."""

    wall: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)

    def add(self, wall: float, steps: dict[str, float]) -> None:
        """Record one run."""
        self.wall.append(wall)
        for name, seconds in steps.items():
            self.steps.setdefault(name, []).append(seconds)


def task_seconds(output: str) -> dict[str, float]:
    """Per-task wall time from kfp.local's log: from 'Executing task' to 'finished'."""
    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for line in ANSI.sub("", output).splitlines():
        match = TASK_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%H:%M:%S.%f")
        if match.group(2):
            started[match.group(2)] = stamp
        elif match.group(3) in started:
            seconds[match.group(3)] = (stamp - started[match.group(3)]).total_seconds()
    return seconds


def plain_seconds(output: str) -> dict[str, float]:
    """Per-step wall time the plain script printed."""
    for line in output.splitlines():
        if line.startswith(STEP_TIMES_PREFIX):
            return {str(name): float(value) for name, value in json.loads(line[len(STEP_TIMES_PREFIX) :]).items()}
    raise ValueError("the plain script printed no per-step times")


def timed(command: list[str], env: dict[str, str], home: Path) -> tuple[float, str]:
    """Run `command` with a fresh PLINTH_HOME; return its wall time in seconds and its output."""
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env={**os.environ, **env, "PLINTH_HOME": str(home)},
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return time.perf_counter() - started, done.stdout


def median(values: list[float]) -> str:
    """Format the median of a sample, or a dash when there is none."""
    return f"{statistics.median(values):.1f}" if values else "-"


def step_row(samples: dict[str, Samples], step: str) -> str:
    """One row of the per-step table."""
    cold, warm, plain = (samples[name].steps.get(step, []) for name in (COLD, WARM, PLAIN))
    overhead = statistics.median(cold) - statistics.median(plain or [0.0])
    return f"| {step} | {median(cold)} | {median(warm)} | {median(plain)} | {overhead:.1f} |"


def render(samples: dict[str, Samples], repeats: int) -> list[str]:
    """The results file: wall times and ratios, then the per-step table."""
    medians = {name: statistics.median(sample.wall) for name, sample in samples.items()}
    steps = list(samples[COLD].steps)
    return [
        f"# Pipeline overhead ({platform.node()}, {os.cpu_count()} cores, {repeats} runs each, median)",
        "",
        "| how | wall time (s) | runs (s) | ratio to plain |",
        "|---|---|---|---|",
        *(
            f"| {name} | {medians[name]:.1f} | {', '.join(f'{v:.1f}' for v in samples[name].wall)} "
            f"| {medians[name] / medians[PLAIN]:.2f}x |"
            for name in COMMANDS
        ),
        "",
        f"`make train` / plain: **{medians[WARM] / medians[PLAIN]:.2f}x**; with a fresh interpreter per step: "
        f"**{medians[COLD] / medians[PLAIN]:.2f}x** (command: `make bench`).",
        "",
        "## Per step (median seconds)",
        "",
        "A fresh step pays interpreter start, the kfp executor and its imports before it works, and the",
        "interpreter's teardown of those modules (about 2 s) after; the plain script paid its imports once, before",
        "its first step (the rest of its wall time). Warm steps fork from a process that imported the stack once,",
        "and end without the teardown (pipelines/warm_steps.py).",
        "",
        "| step | fresh interpreter | warm | plain (work only) | fresh - plain (start, imports, teardown) |",
        "|---|---|---|---|---|",
        *(step_row(samples, step) for step in steps),
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args(argv)
    samples = {name: Samples() for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as scratch:
        for repeat in range(args.repeats):
            for number, (name, (command, env)) in enumerate(COMMANDS.items()):
                seconds, output = timed(command, env, Path(scratch) / f"{repeat}-{number}")
                samples[name].add(seconds, plain_seconds(output) if name == PLAIN else task_seconds(output))
                print(f"run {repeat + 1}/{args.repeats}: {name}: {seconds:.1f}s", flush=True)
    lines = render(samples, args.repeats)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
