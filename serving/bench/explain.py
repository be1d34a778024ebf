"""Explanation benchmark: what one explanation costs per candidate, and what /explain traffic costs /predict.

Part 1, in process: `contributions` for 1 and 20 rows of the test split, per candidate (linear, XGBoost, MLP)
and table (breast cancer: 30 numbers; churn: 6 mixed columns with missing values), the median of 5 calls.
Part 2, a real server (the default worker count) serving the MLP on breast cancer, the costliest explanation:
`hey` loads /predict with one row per request, alone and while a client sends 20-row /explain requests back to
back, in alternating rounds; the report gives /predict's throughput and latencies both ways and what /explain
answered meanwhile.

Run: `python -m serving.bench.explain` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from components.common import modeling, tracking
from components.common.explain import contributions
from components.common.task import TAG_TASK
from components.conftest import make_table
from components.register.core import choose_signer, register
from components.train_sklearn.core import as_saved
from components.train_sklearn.core import build_model as build_sklearn
from components.train_torch.core import build_model as build_torch
from components.train_xgboost.core import build_model as build_xgboost
from components.train_xgboost.core import for_cpu_inference
from serving.bench.demo_model import log_as_gate_winner
from serving.bench.load import hey
from serving.embedded.processes import ManagedProcess, free_port
from serving.model_service import settings
from serving.rollout.edges.sample_rows import json_value

CANDIDATES = {
    "linear": lambda profile: as_saved(build_sklearn(profile, seed=0)),
    "xgboost": lambda profile: for_cpu_inference(build_xgboost(profile, 0, "cpu")),
    "mlp": lambda profile: build_torch(profile, 0, "cpu"),
}


def in_process(repeats: int = 5) -> list[dict[str, Any]]:
    """Return the median seconds of one `contributions` call per table, candidate and row count."""
    rows = []
    for table_name in ("binary", "mixed"):
        table = make_table(table_name)
        for name, build in CANDIDATES.items():
            model = build(table.profile).fit(table.x_train, table.y_train)
            for count in (1, 20):
                frame = table.x_test.head(count)
                timings = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    contributions(model, frame, table.profile)
                    timings.append(time.perf_counter() - started)
                rows.append(
                    {"table": table_name, "candidate": name, "rows": count, "ms": statistics.median(timings) * 1e3}
                )
    return rows


def register_mlp(tracking_uri: str) -> tuple[str, list[dict[str, Any]]]:
    """Fit and register the MLP on breast cancer as the pipeline does; return its name and 20 JSON rows."""
    table = make_table("binary")
    model = CANDIDATES["mlp"](table.profile).fit(table.x_train, table.y_train)
    client = tracking.connect(tracking_uri)
    experiment = tracking.ensure_experiment(client, "bench-explain", tracking_uri)
    uri = log_as_gate_winner(
        client, experiment, lambda: modeling.log_model(model, table.x_train, table.profile, "torch", ("torch",))
    )
    name = "bench-explain-mlp"
    register(client, uri, name, tracking.CHAMPION, {TAG_TASK: "binary"}, "bench", choose_signer(client, tracking_uri))
    records = table.x_test.head(20).to_dict(orient="records")
    return name, [{str(k): json_value(v) for k, v in row.items()} for row in records]


def explain_load(url: str, body: dict[str, Any], stop: threading.Event, seen: Counter[int], took: list[float]) -> None:
    """Send /explain requests back to back until `stop`, counting statuses and timing the answered ones."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            status = client.post(url, json=body).status_code
            seen[status] += 1
            if status == 200:
                took.append(time.perf_counter() - started)


def against_predict(work: Path, rounds: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """Return /predict under `hey` alone and beside back-to-back /explain requests, per round."""
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    name, rows = register_mlp(tracking_uri)
    port = free_port()
    env = {settings.ENV_TRACKING_URI: tracking_uri, settings.ENV_MODEL_NAME: name, "BENTOML_HOME": str(work / "bento")}
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.model_service.service:ModelService",
        "--port",
        str(port),
    ]
    server = ManagedProcess("bench explain", command, work / "server.log", env, f"http://127.0.0.1:{port}/readyz")
    body = work / "predict.json"
    body.write_text(json.dumps({"instances": rows[:1]}))
    results: dict[str, Any] = {"alone": [], "with_explain": [], "explain_statuses": Counter(), "explain_s": []}
    try:
        server.start().wait_ready()
        for _ in range(rounds):
            results["alone"].append(hey(f"http://127.0.0.1:{port}/predict", body, concurrency, seconds, "alone"))
            stop = threading.Event()
            args = (f"http://127.0.0.1:{port}/explain", {"instances": rows}, stop, results["explain_statuses"])
            thread = threading.Thread(target=explain_load, args=(*args, results["explain_s"]))
            thread.start()
            try:
                results["with_explain"].append(
                    hey(f"http://127.0.0.1:{port}/predict", body, concurrency, seconds, "with explain")
                )
            finally:
                stop.set()
                thread.join()
    finally:
        server.stop()
    return results


def main() -> int:
    """Run both parts and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of /predict alone and with /explain")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of `hey` load per round")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent /predict clients")
    parser.add_argument("--server-only", action="store_true", help="skip the in-process part")
    args = parser.parse_args()
    for row in [] if args.server_only else in_process():
        print(f"explain {row['table']:<6} {row['candidate']:<7} {row['rows']:>2} rows: {row['ms']:8.1f} ms")
    with tempfile.TemporaryDirectory(prefix="plinth-bench-explain-") as work:
        found = against_predict(Path(work), args.rounds, args.seconds, args.concurrency)
    for mode in ("alone", "with_explain"):
        for run in found[mode]:
            print(f"predict {mode:<12} {run.ok_per_s:7.1f} req/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms")
    took = sorted(found["explain_s"])
    median = statistics.median(took) * 1e3 if took else float("nan")
    print(f"explain meanwhile: {dict(found['explain_statuses'])}, median {median:.0f} ms per 20-row request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
