"""Pipeline overhead benchmark: `make train` (kfp.local) vs the same steps in one plain Python process.

Runs both as fresh processes, alternating, each on its own empty $PLINTH_HOME, and prints wall times and the
ratio. `python -m pipelines.bench --repeats N`; results also go to pipelines/bench-results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "bench-results.md"
COMMANDS = {
    "kfp.local pipeline (make train)": [sys.executable, "-m", "pipelines.run_local"],
    "plain Python script": [sys.executable, "-m", "pipelines.run_plain"],
}


def timed(command: list[str], home: Path) -> float:
    """Run `command` with a fresh PLINTH_HOME; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, "PLINTH_HOME": str(home)}, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    args = parser.parse_args(argv)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as scratch:
        for repeat in range(args.repeats):
            for name, command in COMMANDS.items():
                seconds = timed(command, Path(scratch) / f"{repeat}-{len(samples[name])}-{name[:3]}")
                samples[name].append(seconds)
                print(f"run {repeat + 1}/{args.repeats}: {name}: {seconds:.1f}s", flush=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    pipeline, plain = medians.values()
    lines = [
        f"# Pipeline overhead ({platform.node()}, {os.cpu_count()} cores, {args.repeats} runs each, median)",
        "",
        "| how | wall time (s) | runs (s) |",
        "|---|---|---|",
        *(f"| {name} | {medians[name]:.1f} | {', '.join(f'{v:.1f}' for v in samples[name])} |" for name in COMMANDS),
        "",
        f"Ratio pipeline / plain: **{pipeline / plain:.2f}x** (command: `make bench`).",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
