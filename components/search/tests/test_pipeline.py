"""The compiled training pipeline fans each family's search out over dsl.ParallelFor shards, collects them into
the family's training step, and caches none of it (every step writes to MLflow or feeds one that does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kfp import compiler

from components.search.families import FAMILIES
from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import build_pipeline


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("compiled") / "training-cpu.yaml"
    compiler.Compiler().compile(pipeline_func=build_pipeline(ComputeTarget(gpu=False)), package_path=str(path))
    return next(yaml.safe_load_all(Path(path).read_text()))


def test_each_family_searches_in_a_parallel_for_over_the_shards_and_trains_on_what_they_found(spec):
    tasks = spec["root"]["dag"]["tasks"]
    loops = {name: task for name, task in tasks.items() if "parameterIterator" in task}
    assert len(loops) == len(FAMILIES)
    searched = {}
    for name, loop in loops.items():
        iterated = loop["parameterIterator"]["items"]["inputParameter"]
        assert loop["inputs"]["parameters"][iterated]["taskOutputParameter"]["producerTask"] == "search-shards"
        [(_, task)] = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"].items()
        family = task["inputs"]["parameters"]["family"]["runtimeValue"]["constant"]
        searched[family] = name
    assert set(searched) == set(FAMILIES)
    for family, loop in searched.items():
        collected = tasks[f"train-{family}"]["inputs"]["parameters"]["search_results"]["taskOutputParameter"]
        assert collected["producerTask"] == loop  # dsl.Collected: every shard's output, as one list
    assert "validation" in tasks["train-sklearn"]["inputs"]["artifacts"]


def test_search_and_training_steps_are_never_cached(spec):
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    steps = [name for name in tasks if name.startswith(("search", "train-", "split"))]
    assert len(steps) == 1 + 1 + 2 * len(FAMILIES)  # split, search-shards, a search and a train per family
    for name in steps:
        assert not tasks[name].get("cachingOptions", {}).get("enableCache"), name
