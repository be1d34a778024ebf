"""Compile the training pipeline: `python -m pipelines.compile` writes pipelines/compiled/training-{cpu,gpu}.yaml."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from kfp import compiler

from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import build_pipeline

COMPILED_DIR = Path(__file__).parent / "compiled"


def compiled_path(variant: str, directory: Path = COMPILED_DIR) -> Path:
    """Return where the compiled YAML of a variant ("cpu" or "gpu") lives."""
    return directory / f"training-{variant}.yaml"


def compile_all(directory: Path = COMPILED_DIR, **overrides: str) -> list[Path]:
    """Compile both variants into `directory`; `overrides` replace ComputeTarget defaults."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for gpu in (False, True):
        target = ComputeTarget(gpu=gpu, **overrides)  # type: ignore[arg-type]
        path = compiled_path(target.name, directory)
        compiler.Compiler().compile(pipeline_func=build_pipeline(target), package_path=str(path))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """Parse flags (one per ComputeTarget string field) and compile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=COMPILED_DIR, help="output directory")
    defaults = ComputeTarget(gpu=False)
    for field in fields(ComputeTarget):
        if field.type == "str":
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, default=getattr(defaults, field.name), help="default: %(default)s")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    for path in compile_all(out, **args):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
