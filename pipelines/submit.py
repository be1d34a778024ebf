"""Submit the compiled pipeline to Kubeflow: `python -m pipelines.submit --host https://kfp.example.com`.

Uploads the compiled YAML as a pipeline (a new version when the pipeline exists) and starts a run.
`--dir build/pipelines` (`make submit IMAGE_REGISTRY=…`) submits the pipeline compiled against your images;
its run's `git_commit` is the commit those images were built from, as compiled in, else this checkout's HEAD.
`--pipeline scoring` (`make submit PIPELINE=scoring PARAMS="source=s3://… out=s3://…"`) submits batch scoring.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests
import yaml

from components import __version__
from pipelines.compile import COMPILED_DIR, compiled_path
from pipelines.run_local import git_commit
from pipelines.scoring.pipeline import PIPELINE_NAME as SCORING_PIPELINE_NAME
from pipelines.training.pipeline import PIPELINE_NAME

# What `--pipeline` chooses: the compiled file's prefix -> the pipeline's name in KFP.
PIPELINES = {"training": PIPELINE_NAME, "scoring": SCORING_PIPELINE_NAME}
# Parameters a pipeline has no default for (the scoring pipeline's table and output).
REQUIRED_PARAMS = {"training": (), "scoring": ("source", "out")}

HEALTH_PATH = "/apis/v2beta1/healthz"


class SubmitError(RuntimeError):
    """Submission cannot proceed; the message is the one line the user sees."""


def parse_params(pairs: list[str]) -> dict[str, str]:
    """Turn repeated `--param key=value` flags into pipeline arguments."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--param expects key=value, got {pair!r}")
        params[key] = value
    return params


def lineage_commit(package: Path) -> str:
    """Return the `git_commit` default compiled into `package` (its image's commit), else this checkout's HEAD."""
    spec = next(yaml.safe_load_all(package.read_text()))
    compiled = spec["root"]["inputDefinitions"]["parameters"]["git_commit"].get("defaultValue", "unknown")
    return str(compiled) if compiled != "unknown" else git_commit()


def check_host(host: str) -> str:
    """Return the host without a trailing slash once its KFP API answers."""
    if not host:
        raise SubmitError("KFP_HOST is not set: make submit KFP_HOST=https://<your-kubeflow-pipelines-endpoint>")
    host = host.rstrip("/")
    try:
        requests.get(host + HEALTH_PATH, timeout=10).raise_for_status()
    except requests.RequestException as error:
        raise SubmitError(f"Kubeflow Pipelines API at {host} is unreachable: {type(error).__name__}") from error
    return host


def choose(pipeline: str, variant: str, directory: Path, params: dict[str, str]) -> Path:
    """Return the compiled package of `pipeline` (training or scoring) and `variant`, once it can run.

    Raises:
        SubmitError: no such variant or compiled file, or a parameter without a default is not given.
    """
    if pipeline == "scoring" and variant != "cpu":
        raise SubmitError("the scoring pipeline is compiled for CPU only: leave the variant at cpu")
    missing = [name for name in REQUIRED_PARAMS[pipeline] if not params.get(name)]
    if missing:
        given = " ".join(f"{name}=…" for name in missing)
        raise SubmitError(f'the {pipeline} pipeline needs --param {" --param ".join(missing)} (PARAMS="{given}")')
    package = compiled_path(variant, directory, pipeline)
    if not package.is_file():
        raise SubmitError(f"{package} not found: run `make compile`")
    return package


def submit(host: str, package: Path, experiment: str, params: dict[str, str], name: str = PIPELINE_NAME) -> str:
    """Upload `package` as pipeline `name` and start a run; return the run's id."""
    import kfp

    client = kfp.Client(host=host)
    version_name = f"{__version__}-{params.get('git_commit', 'unknown')[:12]}"
    existing = client.get_pipeline_id(name)
    if existing:
        client.upload_pipeline_version(str(package), pipeline_version_name=version_name, pipeline_id=existing)
    else:
        client.upload_pipeline(str(package), pipeline_name=name)
    result = client.create_run_from_pipeline_package(
        str(package), arguments=params, run_name=f"{name} {version_name}", experiment_name=experiment
    )
    return str(result.run_id)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, submit, and print where to watch the run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="", help="Kubeflow Pipelines endpoint (KFP_HOST)")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="training", help="which pipeline")
    parser.add_argument("--variant", choices=["cpu", "gpu"], default="cpu", help="compiled variant")
    parser.add_argument("--dir", type=Path, default=COMPILED_DIR, help="folder of the compiled YAML")
    parser.add_argument("--experiment", default="", help="KFP experiment name (default: the pipeline's name)")
    parser.add_argument("--param", action="append", default=[], help="pipeline argument key=value (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = parse_params(args.param)
        package = choose(args.pipeline, args.variant, args.dir, params)
        host = check_host(args.host)
        params = {"git_commit": lineage_commit(package), **params}
        name = PIPELINES[args.pipeline]
        run_id = submit(host, package, args.experiment or name, params, name)
    except SubmitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"submitted {package.name}: run {run_id}\nwatch it at {host}/#/runs/details/{run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
