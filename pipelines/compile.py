"""Compile the pipelines: `python -m pipelines.compile` writes pipelines/compiled/*.yaml.

Training as training-{cpu,gpu}.yaml; batch scoring (pipelines/scoring) as scoring-cpu.yaml, CPU only.

Those committed files run the project's published component image. To run your own build instead,
`python -m pipelines.compile --registry ghcr.io/you` (`make compile IMAGE_REGISTRY=ghcr.io/you`) points every
step at `ghcr.io/you/plinth-components`, pinned by the digest and commit that `make images PUSH=1` recorded
in `.plinth-images.json` for that registry; `--image REF` names the image outright. Such builds go to
`build/pipelines/` (ignored by Git), so the committed YAML stays the project's default; `--out` overrides.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from kfp import compiler
from kfp.dsl.base_component import BaseComponent

from pipelines.images import RECORD_PATH, REPO_ROOT, ImageRecordError, component_image, load_record
from pipelines.scoring.pipeline import build_scoring_pipeline
from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import build_pipeline

COMPILED_DIR = Path(__file__).parent / "compiled"
CUSTOM_DIR = REPO_ROOT / "build" / "pipelines"


def compiled_path(variant: str, directory: Path = COMPILED_DIR, pipeline: str = "training") -> Path:
    """Return where the compiled YAML of a pipeline ("training" or "scoring") and variant ("cpu", "gpu") lives."""
    return directory / f"{pipeline}-{variant}.yaml"


def use_image(pipeline: BaseComponent, image: str) -> None:
    """Point every executor of the built pipeline at `image` (components fix theirs when decorated)."""
    executors = pipeline.pipeline_spec.deployment_spec["executors"]
    for name in executors:
        executors[name]["container"]["image"] = image


def compile_all(
    directory: Path = COMPILED_DIR, image: str | None = None, git_commit: str | None = None, **overrides: str
) -> list[Path]:
    """Compile both variants into `directory`; `overrides` replace ComputeTarget defaults.

    `image` replaces the component image in every step; `git_commit` becomes the `git_commit` parameter's
    default, the lineage tag of the versions the pipeline registers.
    """
    directory.mkdir(parents=True, exist_ok=True)
    parameters = {"git_commit": git_commit} if git_commit else None
    written = []
    for gpu in (False, True):
        target = ComputeTarget(gpu=gpu, **overrides)  # type: ignore[arg-type]
        path = compiled_path(target.name, directory)
        pipeline = build_pipeline(target)
        if image:
            use_image(pipeline, image)
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path), pipeline_parameters=parameters)
        written.append(path)
    scoring = build_scoring_pipeline(ComputeTarget(gpu=False, **overrides))  # type: ignore[arg-type]
    if image:
        use_image(scoring, image)
    path = compiled_path("cpu", directory, "scoring")
    compiler.Compiler().compile(pipeline_func=scoring, package_path=str(path), pipeline_parameters=parameters)
    return [*written, path]


def main(argv: list[str] | None = None) -> int:
    """Parse flags (image choice, then one per ComputeTarget string field), compile, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out", type=Path, help=f"output directory (default: {COMPILED_DIR}, or {CUSTOM_DIR} with --registry/--image)"
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--registry", help="run <registry>/plinth-components, by digest when recorded for it")
    choice.add_argument("--image", help="run this component image reference in every step")
    parser.add_argument("--record", type=Path, default=RECORD_PATH, help="digest record (default: %(default)s)")
    parser.add_argument("--git-commit", help="git_commit default (default: the recorded commit of the image)")
    defaults = ComputeTarget(gpu=False)
    for field in fields(ComputeTarget):
        if field.type == "str":
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, default=getattr(defaults, field.name), help="default: %(default)s")
    args = vars(parser.parse_args(argv))
    registry, image, record_path, git_commit = (args.pop(key) for key in ("registry", "image", "record", "git_commit"))
    out = args.pop("out")
    if registry:
        try:
            image, recorded_commit = component_image(registry, load_record(record_path))
        except ImageRecordError as error:
            print(f"compile: {error}", file=sys.stderr)
            return 2
        git_commit = git_commit or recorded_commit
    if out is None:
        out = CUSTOM_DIR if image else COMPILED_DIR
    for path in compile_all(out, image=image, git_commit=git_commit, **args):
        print(f"wrote {path}")
    if image:
        print(f"every step runs {image}; git_commit default: {git_commit or 'unknown'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
