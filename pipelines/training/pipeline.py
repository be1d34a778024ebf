"""The training pipeline: ingest → validate → split → search x4 (shards) → train x4 → evaluate x4 → gate → register."""

from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

from components import __version__
from components.evaluate.component import evaluate
from components.gate.component import gate
from components.ingest.component import ingest
from components.register.component import register
from components.search.component import search, search_shards
from components.split.component import split
from components.train_hgb.component import train_hgb
from components.train_sklearn.component import train_sklearn
from components.train_torch.component import train_torch
from components.train_xgboost.component import train_xgboost
from components.validate.component import validate
from pipelines.training.compute import (
    ComputeTarget,
    on_accelerator_pool,
    on_cpu_pool,
    on_xgboost_pool,
    with_data_credentials,
    with_mlflow_login,
    with_signer,
    without_pickles,
)

# Places a step on a node pool of the target (pipelines/training/compute.py).
Placement = Callable[[PipelineTask, ComputeTarget], PipelineTask]

PIPELINE_NAME = "plinth-training"
DEFAULT_MODEL_NAME = "plinth-classifier"
# In-cluster MLflow from manifests/; the local runner passes the SQLite URI of $PLINTH_HOME instead.
CLUSTER_TRACKING_URI = "http://mlflow.mlflow.svc.cluster.local:5000"


def _step(task: PipelineTask, name: str) -> PipelineTask:
    """Name a step for the dashboard and turn caching off: every step writes to MLflow."""
    return task.set_display_name(name).set_caching_options(False)


# Trials per family, and seconds per shard, in `make train` and a default run: on the built-in table they keep
# `make train` within about 30 s of the fixed settings (components/search/README.md); 0 trials: fixed settings.
DEFAULT_SEARCH_TRIALS = 8
DEFAULT_SEARCH_TIME_S = 15.0


def _search(
    family: str, shards: PipelineTask, inputs: dict[str, Any], place: Placement, target: ComputeTarget
) -> dsl.Collected:
    """Fan `family`'s search out over the shards (dsl.ParallelFor); return the shards' results, collected."""
    with dsl.ParallelFor(shards.output, name=f"search-{family}") as shard:
        step = place(_step(search(family=family, shard=shard, **inputs), f"search: {family}"), target)
    return dsl.Collected(step.outputs["Output"])


def build_pipeline(target: ComputeTarget) -> GraphComponent:
    """Return the training pipeline scheduled for `target` (CPU-only or with a GPU pool)."""

    @dsl.pipeline(name=PIPELINE_NAME, description=f"plinth training pipeline ({target.name} variant)")
    def training(
        tracking_uri: str = CLUSTER_TRACKING_URI,
        model_name: str = DEFAULT_MODEL_NAME,
        experiment: str = PIPELINE_NAME,
        source: str = "sklearn:breast_cancer",
        target_column: str = "target",
        task: str = "auto",
        categorical_columns: str = "",
        seed: int = 42,
        test_size: float = 0.2,
        train_fraction: float = 1.0,
        validation_size: float = 0.2,
        search_trials: int = DEFAULT_SEARCH_TRIALS,
        search_time_s: float = DEFAULT_SEARCH_TIME_S,
        search_parallelism: int = 1,
        decision_objective: str = "f1",
        refit_full: bool = True,
        max_missing_share: float = 0.9,
        indicator_missing_share: float = 0.5,
        min_class_share: float = 0.0,
        min_class_rows: int = 30,
        max_psi: float = 0.25,
        max_categories: int = 100,
        min_rows: int = 50,
        max_out_of_range_share: float = 0.01,
        range_tolerance: float = 0.1,
        max_unseen_share: float = 0.05,
        time_budget_s: float = 600.0,
        max_passes: int = 20,
        dask_scheduler: str = target.dask_scheduler,
        torch_processes: int = 1,
        primary_metric: str = "",
        min_roc_auc: str = "",
        min_accuracy: str = "",
        min_r2: str = "",
        margin: float = 0.002,
        git_commit: str = "unknown",
        trigger: str = "",
    ) -> None:
        common = {"target": target_column, "tracking_uri": tracking_uri}
        ingested = _step(
            ingest(
                source=source,
                target=target_column,
                tracking_uri=tracking_uri,
                experiment=experiment,
                job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                trigger=trigger,
            ),
            "ingest",
        )
        run_id = ingested.outputs["run_id"]
        checked = _step(
            validate(
                dataset=ingested.outputs["dataset"],
                model_name=model_name,
                run_id=run_id,
                task=task,
                categorical_columns=categorical_columns,
                max_missing_share=max_missing_share,
                indicator_missing_share=indicator_missing_share,
                min_class_share=min_class_share,
                min_class_rows=min_class_rows,
                max_psi=max_psi,
                max_categories=max_categories,
                min_rows=min_rows,
                max_out_of_range_share=max_out_of_range_share,
                range_tolerance=range_tolerance,
                max_unseen_share=max_unseen_share,
                trigger=trigger,
                **common,
            ),
            "validate",
        )
        splits = _step(
            split(
                dataset=ingested.outputs["dataset"],
                test_size=test_size,
                seed=seed,
                train_fraction=train_fraction,
                validation_size=validation_size,
                run_id=run_id,
                task=checked.outputs["Output"],
                **common,
            ),
            "split",
        )
        rows = {
            "train": splits.outputs["train"],
            "validation": splits.outputs["validation"],
            "profile": checked.outputs["profile"],
            "seed": seed,
            "time_budget_s": time_budget_s,
        }
        shards = on_cpu_pool(_step(search_shards(search_parallelism=search_parallelism), "search: shards"), target)
        search_inputs = {
            **rows,
            "shards": search_parallelism,
            "trials": search_trials,
            "time_s": search_time_s,
            "primary_metric": primary_metric,
            "max_passes": max_passes,
        }
        searched = {
            family: _search(family, shards, search_inputs, place, target)
            for family, place in {
                "sklearn": on_cpu_pool,
                "xgboost": on_xgboost_pool,
                "torch": on_accelerator_pool,
                "hgb": on_cpu_pool,
            }.items()
        }
        training_inputs = {
            **rows,
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "decision_objective": decision_objective,
            "refit_full": refit_full,
        }
        trained = {
            "sklearn": on_cpu_pool(
                _step(train_sklearn(**training_inputs, search_results=searched["sklearn"]), "train: scikit-learn"),
                target,
            ),
            "xgboost": on_xgboost_pool(
                _step(
                    train_xgboost(**training_inputs, search_results=searched["xgboost"], dask_scheduler=dask_scheduler),
                    "train: XGBoost",
                ),
                target,
            ),
            "torch": on_accelerator_pool(
                _step(
                    train_torch(
                        **training_inputs,
                        search_results=searched["torch"],
                        max_passes=max_passes,
                        torch_processes=torch_processes,
                    ),
                    "train: PyTorch",
                ),
                target,
            ),
            "hgb": on_cpu_pool(
                _step(train_hgb(**training_inputs, search_results=searched["hgb"]), "train: HistGradientBoosting"),
                target,
            ),
        }
        evaluated = {
            name: on_cpu_pool(
                _step(
                    evaluate(
                        model=step.outputs["model"],
                        test=splits.outputs["test"],
                        candidate=step.outputs["Output"],
                        tracking_uri=tracking_uri,
                    ),
                    f"evaluate: {name}",
                ),
                target,
            )
            for name, step in trained.items()
        }
        decided = on_cpu_pool(
            _step(
                gate(
                    sklearn_result=evaluated["sklearn"].outputs["Output"],
                    xgboost_result=evaluated["xgboost"].outputs["Output"],
                    torch_result=evaluated["torch"].outputs["Output"],
                    hgb_result=evaluated["hgb"].outputs["Output"],
                    test=splits.outputs["test"],
                    profile=checked.outputs["profile"],
                    tracking_uri=tracking_uri,
                    model_name=model_name,
                    run_id=run_id,
                    primary_metric=primary_metric,
                    min_roc_auc=min_roc_auc,
                    min_accuracy=min_accuracy,
                    min_r2=min_r2,
                    margin=margin,
                ),
                "gate",
            ),
            target,
        )
        with dsl.If(decided.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition)
            registered = with_signer(
                on_cpu_pool(
                    _step(
                        register(
                            decision=decided.outputs["decision"],
                            test=splits.outputs["test"],
                            tracking_uri=tracking_uri,
                            model_name=model_name,
                            run_id=run_id,
                            data_hash=ingested.outputs["data_hash"],
                            git_commit=git_commit,
                            pipeline_name=PIPELINE_NAME,
                            pipeline_version=__version__,
                            trigger=trigger,
                        ),
                        "register",
                    ),
                    target,
                ),
                target,
            )
        for step in (ingested, checked, splits):
            on_cpu_pool(step, target)
        with_data_credentials(ingested, target)
        for step in (ingested, checked, splits, *trained.values(), *evaluated.values(), decided, registered):
            with_mlflow_login(step, target)
        for step in (*evaluated.values(), decided, registered):  # the steps that load models
            without_pickles(step)

    return training
