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
    task: str,
    categorical_columns: str,
    max_missing_share: float,
    indicator_missing_share: float,
    min_class_share: float,
    min_class_rows: int,
    max_psi: float,
    max_categories: int,
    min_rows: int,
    max_out_of_range_share: float,
    range_tolerance: float,
    max_unseen_share: float,
    trigger: str,
    report: Output[Markdown],
    profile: Output[Artifact],
) -> str:
    """Decide the task; check schema, kinds, ranges, missing values, classes and drift; fail with a report.

    Args:
        dataset: The ingested data.
        target: Name of the target column.
        tracking_uri: MLflow tracking URI.
        model_name: Registered model whose champion holds the reference profile.
        run_id: Parent MLflow run id.
        task: `auto` (decide from the target), `classification`, `binary`, `multiclass` or `regression`.
        categorical_columns: Comma-separated feature names to treat as categorical (others are detected).
        max_missing_share: Missing share (0-1) above which a feature is dropped: reported, not a model input.
        indicator_missing_share: Missing share (0-1, at most max_missing_share) above which a numeric feature is
            kept with a missing indicator beside its imputed value.
        min_class_share: Smallest allowed share of any class (0-1), classification only; 0 checks none.
        min_class_rows: Fewest rows of any class, classification only (enough for stratified splits).
        max_psi: Largest allowed population stability index per feature vs the reference.
        max_categories: Distinct values above which a categorical feature is high-cardinality: target encoded
            for the linear and neural candidates instead of one-hot (XGBoost takes every category natively).
        min_rows: Fewest rows the table may have.
        max_out_of_range_share: Largest share (0-1) of a feature's values outside the champion's range.
        range_tolerance: How far (a share of the champion's range) beyond it a value still counts as within.
        max_unseen_share: Largest share (0-1) of a categorical feature's values in categories the champion never
            saw, beyond its own "other" share.
        trigger: What started the run (JSON, "" for a person): input_drift and new_data expect drift.
        report: The validation report (Markdown).
        profile: The reference profile of this data (JSON, with the task), saved with the model.

    Returns:
        The task kind: binary, multiclass or regression.
    """
    from components.validate.core import Thresholds, expects_drift, run

    limits = Thresholds(
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
        expect_drift=expects_drift(trigger),
    )
    declared = [name.strip() for name in categorical_columns.split(",") if name.strip()]
    decided = run(
        dataset.path, target, tracking_uri, model_name, run_id, limits, report.path, profile.path, task, declared
    )
    return decided.kind
