"""KFP shell of the validate step."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate(
    dataset: Input[Dataset],
    target: str,
    tracking_uri: str,
    model_name: str,
    run_id: str,
    max_missing_share: float,
    min_class_share: float,
    max_psi: float,
    report: Output[Markdown],
    profile: Output[Artifact],
) -> None:
    """Check schema, ranges, missing values, class balance and drift; fail the pipeline with a report.

    Args:
        dataset: The ingested data.
        target: Name of the label column.
        tracking_uri: MLflow tracking URI.
        model_name: Registered model whose champion holds the reference profile.
        run_id: Parent MLflow run id.
        max_missing_share: Largest allowed share of missing values per feature (0-1).
        min_class_share: Smallest allowed share of any class (0-1).
        max_psi: Largest allowed population stability index per feature vs the reference.
        report: The validation report (Markdown).
        profile: The reference profile of this data (JSON), saved with the model.
    """
    from components.validate.core import Thresholds, run

    limits = Thresholds(max_missing_share=max_missing_share, min_class_share=min_class_share, max_psi=max_psi)
    run(dataset.path, target, tracking_uri, model_name, run_id, limits, report.path, profile.path)
