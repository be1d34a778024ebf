"""Training at scale: `make train` against a five-line baseline on synthetic tables of growing size.

`python -m pipelines.bench_scale` (`make bench-scale`, `BENCH_ARGS=--rows 100000,1000000` to choose) writes,
per size, a seeded table of the shape real tables have (24 numeric and 3 text-categorical features, 3 % of
values missing, a binary label), then runs in the same sitting, each as a fresh process tree:

- `make train` on that file (a bare environment and an empty $PLINTH_HOME, the file as `--source`), and
- the baseline: pandas + `HistGradientBoostingClassifier` with native categoricals on the same file and split.

Each row reports wall time, peak resident memory of the process tree (`getrusage(RUSAGE_CHILDREN)` of a
small wrapper process: the largest single process that was waited for, not a sum over processes alive at
once), the table's in-memory size and the best ROC AUC on the held-out rows. Results go to
pipelines/bench-scale-results.md. The issue's targets: `make train` at most 3x the baseline's wall time at
1M rows, peak memory at most 4x the table, both growing no faster than linearly with rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "bench-scale-results.md"
DEFAULT_ROWS = (100_000, 1_000_000, 5_000_000)
TARGET = "label"
N_NUMERIC, MISSING_SHARE, SEED = 24, 0.03, 11
# Categorical features: name -> number of categories (all under validation's default max_categories).
CATEGORIES = {"region": 8, "channel": 24, "product": 90}
CHUNK_ROWS = 250_000
# Scale of the label's log-odds: the best models reach a ROC AUC near the table (about 0.86).
SIGNAL = 1.8
MEASURED = "PLINTH_BENCH_SCALE_MEASURED "
MAKE_TRAIN, BASELINE = "make train", "baseline (HistGradientBoosting)"


def table_chunk(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Return `rows` rows: the label depends on numbers (linearly and not) and on every categorical column."""
    numbers = rng.standard_normal((rows, N_NUMERIC)).astype(np.float64)
    weights = np.linspace(1.0, -0.6, N_NUMERIC) * (np.arange(N_NUMERIC) % 3 != 2)
    score = numbers @ weights * 0.35 + 0.5 * np.sin(2 * numbers[:, 0]) + 0.4 * numbers[:, 1] * numbers[:, 2]
    frame = pd.DataFrame({f"x{i:02d}": numbers[:, i] for i in range(N_NUMERIC)})
    for name, levels in CATEGORIES.items():
        codes = rng.integers(0, levels, rows)
        effect = np.random.default_rng(levels).normal(0.0, 0.6, levels)
        score += effect[codes]
        frame[name] = pd.Series(np.array([f"{name}_{i}" for i in range(levels)], dtype=object)[codes])
    for column in frame.columns:
        frame.loc[rng.random(rows) < MISSING_SHARE, column] = None
    frame[TARGET] = (rng.random(rows) < 1 / (1 + np.exp(-SIGNAL * score))).astype(np.int64)
    return frame


def write_table(rows: int, path: Path, seed: int = SEED) -> int:
    """Write the seeded table of `rows` rows as Parquet in chunks; return its in-memory size in bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    size, writer = 0, None
    for first in range(0, rows, CHUNK_ROWS):
        chunk = table_chunk(min(CHUNK_ROWS, rows - first), rng)
        size += int(chunk.memory_usage(deep=True, index=False).sum())
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return size


def baseline(path: str, seed: int) -> float:
    """The five lines: read, type categories, split, fit, score. Returns the held-out ROC AUC."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    frame = pd.read_parquet(path)
    features = frame.drop(columns=TARGET).astype({name: "category" for name in CATEGORIES})
    x_train, x_test, y_train, y_test = train_test_split(features, frame[TARGET], test_size=0.2, random_state=seed)
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed).fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


def best_candidate_auc(home: Path) -> float:
    """Return the best candidate's held-out ROC AUC that `make train` logged to MLflow in `home`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    scores = [
        run.data.metrics["test_roc_auc"]
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id])
        if "test_roc_auc" in run.data.metrics
    ]
    return max(scores) if scores else float("nan")


@dataclass(frozen=True)
class Measurement:
    """One command's wall time, the process tree's peak RSS, and the ROC AUC it reached."""

    wall_s: float
    peak_rss_mb: float
    roc_auc: float


def measure(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run `command` in a fresh wrapper process; return (wall seconds, peak RSS MB of its process tree)."""
    wrapper = [sys.executable, "-m", "pipelines.bench_scale", "--measure", json.dumps(command)]
    with log.open("w") as out:
        done = subprocess.run(wrapper, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({done.returncode}); last lines:\n{text[-3000:]}")
    line = next(line for line in text.splitlines() if line.startswith(MEASURED))
    numbers = json.loads(line.removeprefix(MEASURED))
    return float(numbers["wall_s"]), float(numbers["peak_rss_mb"])


def run_measured(command: list[str]) -> int:
    """Wrapper mode: run `command`, then print its wall time and the peak RSS of everything it waited for."""
    started = time.perf_counter()
    code = subprocess.run(command, check=False).returncode
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    print(MEASURED + json.dumps({"wall_s": wall, "peak_rss_mb": peak_kb / 1024}), flush=True)
    return code


def bare_env(home: Path) -> dict[str, str]:
    """Return a bare environment: PATH, HOME, a fresh PLINTH_HOME, no telemetry; nothing else inherited."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(home)),
        "PLINTH_HOME": str(home),
        "LANG": "C.UTF-8",
    }


def bench_size(rows: int, workdir: Path, seed: int, pipeline: str = "") -> tuple[int, dict[str, Measurement]]:
    """Write the table of `rows` rows; measure `make train` (on `pipeline`, a compiled YAML) and the baseline."""
    data = workdir / f"table-{rows}.parquet"
    table_bytes = write_table(rows, data, seed)
    home = workdir / f"home-{rows}"
    env = bare_env(home)
    train_args = f"--source {data} --target {TARGET} --seed {seed} --min-roc-auc 0.5 --min-accuracy 0.5"
    train_args += f" --pipeline {pipeline}" if pipeline else ""
    wall, peak = measure(["make", "--no-print-directory", "train", f"TRAIN_ARGS={train_args}"], env, workdir / "t.log")
    results = {MAKE_TRAIN: Measurement(wall, peak, best_candidate_auc(home))}
    command = [sys.executable, "-m", "pipelines.bench_scale", "--baseline", str(data), "--seed", str(seed)]
    wall, peak = measure(command, env, workdir / "b.log")
    auc = float((workdir / "b.log").read_text().split("AUC ", 1)[1].split()[0])
    results[BASELINE] = Measurement(wall, peak, auc)
    data.unlink()
    return table_bytes, results


def report(rows_results: list[tuple[int, int, dict[str, Measurement]]]) -> str:
    """Return the Markdown results: one row per size and command, then the ratios the targets name."""
    lines = [
        "# make bench-scale",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One run per size; other work may share the machine.",
        "",
        "| rows | command | wall s | peak RSS MB | table MB | RSS / table | ROC AUC | wall / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows, table_bytes, results in rows_results:
        table_mb = table_bytes / 2**20
        base = results[BASELINE].wall_s
        for name, m in results.items():
            lines.append(
                f"| {rows:,} | {name} | {m.wall_s:.1f} | {m.peak_rss_mb:.0f} | {table_mb:.1f} | "
                f"{m.peak_rss_mb / table_mb:.1f}x | {m.roc_auc:.4f} | {m.wall_s / base:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def parse_rows(text: str) -> list[int]:
    """Parse `--rows 100000,1000000`; exit with one line naming the flag on anything else."""
    try:
        rows = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--rows: comma-separated row counts, got {text!r}") from None
    if not rows or min(rows) < 500:
        raise SystemExit(f"--rows: each size must be at least 500 rows, got {text!r}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --measure, the wrapper that measures one command)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(map(str, DEFAULT_ROWS)), help="comma-separated table sizes")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the tables, the split and the models")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the Markdown results go")
    parser.add_argument("--pipeline", default="", help="compiled YAML for make train")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return run_measured(json.loads(args.measure))
    if args.baseline:
        print("AUC", baseline(args.baseline, args.seed), flush=True)
        return 0
    sizes = parse_rows(args.rows)
    rows_results = []
    with tempfile.TemporaryDirectory(prefix="plinth-bench-scale-") as tmp:
        for rows in sizes:
            print(f"bench-scale: {rows:,} rows (load average {os.getloadavg()[0]:.1f})", flush=True)
            table_bytes, results = bench_size(rows, Path(tmp), args.seed, args.pipeline)
            rows_results.append((rows, table_bytes, results))
            for name, m in results.items():
                print(f"  {name}: {m.wall_s:.1f}s, peak {m.peak_rss_mb:.0f} MB, ROC AUC {m.roc_auc:.4f}", flush=True)
            print(f"  load average {os.getloadavg()[0]:.1f}", flush=True)
    text = report(rows_results)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
