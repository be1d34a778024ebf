"""KFP shell of the register step."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register(
    decision: Input[Artifact],
    test: Input[Dataset],
    tracking_uri: str,
    model_name: str,
    run_id: str,
    data_hash: str,
    git_commit: str,
    pipeline_name: str,
    pipeline_version: str,
    trigger: str,
) -> str:
    """Register the gate's winner as a new model version and move its alias (the last, atomic change).

    Args:
        decision: The gate's decision (JSON file).
        test: Held-out rows, on which the winner's global importance (mean |contribution|) is measured.
        tracking_uri: MLflow tracking URI.
        model_name: Registered model name.
        run_id: Parent MLflow run id.
        data_hash: sha256 of the training data, for lineage.
        git_commit: Commit of the code that built the pipeline, for lineage.
        pipeline_name: Pipeline name, for lineage.
        pipeline_version: Pipeline (plinth) version, for lineage.
        trigger: What started the run, as pipelines/triggers writes it (JSON; "" when a person did), copied
            to `plinth.trigger.*` tags on the version and the run.

    Returns:
        The new model version.
    """
    from components.register.core import run

    lineage = {
        "plinth.data_hash": data_hash,
        "plinth.git_commit": git_commit,
        "plinth.pipeline_name": pipeline_name,
        "plinth.pipeline_version": pipeline_version,
    }
    with open(decision.path, encoding="utf-8") as handle:
        decision_json = handle.read()
    return run(decision_json, tracking_uri, model_name, run_id, lineage, trigger, test.path).version
