"""The schedule trigger on a cluster: one KFP recurring run of the training pipeline, kept up to date.

`python -m pipelines.triggers.schedule --host … --cron "0 0 3 * * *"` (`make schedule KFP_HOST=… CRON=…`)
is idempotent: the KFP API cannot edit a recurring run, so a recurring run of the same name in the
experiment is replaced. The new one is created first and the old ones are deleted after it exists, so a
failed call never leaves the pipeline unscheduled (for a moment both exist; `max_concurrency=1` and the
trigger policy keep that from doubling a run). Scheduled runs carry a `schedule` trigger parameter.
`--pipeline scoring --param source=… --param out=…` (`make schedule PIPELINE=scoring PARAMS="…"`) schedules
batch scoring instead (pipelines/scoring), as a recurring run of its own name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.compile import COMPILED_DIR
from pipelines.submit import PIPELINES, SubmitError, check_host, choose, lineage_commit, parse_params
from pipelines.training.pipeline import PIPELINE_NAME

DEFAULT_NAME = f"{PIPELINE_NAME}-schedule"
PAGE_SIZE = 100


def schedule_trigger(cron: str) -> str:
    """Return the `trigger` parameter of every scheduled run (its time is the schedule's, not the run's)."""
    return json.dumps(
        {"kind": "schedule", "reason": f"cron {cron}", "values": {}, "time": "scheduled", "decision": "start"},
        sort_keys=True,
    )


def existing(client: Any, experiment_id: str, name: str) -> list[str]:
    """Return the ids of the experiment's recurring runs called `name` (every page)."""
    found, token = [], ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=PAGE_SIZE, experiment_id=experiment_id)
        found += [run.recurring_run_id for run in page.recurring_runs or [] if run.display_name == name]
        token = page.next_page_token or ""
        if not token:
            return found


def schedule(
    client: Any, package: Path, experiment: str, name: str, cron: str, params: dict[str, str]
) -> tuple[str, int]:
    """Create (or replace) the recurring run `name`; return the id of the one that now exists, and how many went."""
    experiment_id = client.create_experiment(experiment).experiment_id  # returns the existing one by name
    old = existing(client, experiment_id, name)
    created = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=name,
        description=f"{experiment} on cron {cron}, managed by `make schedule`",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params={**params, "trigger": schedule_trigger(cron)},
        pipeline_package_path=str(package),
        enable_caching=False,
    )
    for recurring_run_id in old:
        client.delete_recurring_run(recurring_run_id)
    return str(created.recurring_run_id), len(old)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, schedule, and say whether it was created or replaced."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="", help="Kubeflow Pipelines endpoint (KFP_HOST)")
    parser.add_argument("--cron", required=True, help="6-field cron (seconds first), e.g. '0 0 3 * * *' (CRON)")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="training", help="which pipeline")
    parser.add_argument("--name", default="", help="recurring run name (default: <pipeline name>-schedule)")
    parser.add_argument("--variant", choices=["cpu", "gpu"], default="cpu", help="compiled variant")
    parser.add_argument("--experiment", default="", help="KFP experiment name (default: the pipeline's name)")
    parser.add_argument("--param", action="append", default=[], help="pipeline argument key=value (repeatable)")
    args = parser.parse_args(argv)
    if len(args.cron.split()) != 6:
        print(f"error: CRON {args.cron!r}: KFP wants 6 fields, seconds first, e.g. '0 0 3 * * *'", file=sys.stderr)
        return 2
    if not args.host:
        print('error: KFP_HOST is not set: make schedule KFP_HOST=https://… CRON="0 0 3 * * *"', file=sys.stderr)
        return 1
    pipeline = PIPELINES[args.pipeline]
    name = args.name or f"{pipeline}-schedule"
    try:
        params = parse_params(args.param)
        package = choose(args.pipeline, args.variant, COMPILED_DIR, params)
        host = check_host(args.host)
        import kfp

        client = kfp.Client(host=host)
        params = {"git_commit": lineage_commit(package), **params}
        recurring_id, replaced = schedule(client, package, args.experiment or pipeline, name, args.cron, params)
    except SubmitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    verb = f"replaced {replaced} old" if replaced else "created"
    print(f"schedule {name} ({args.cron}): {verb}; recurring run {recurring_id} at {host}/#/recurringruns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
