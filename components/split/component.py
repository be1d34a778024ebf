"""KFP shell of the split step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def split(
    dataset: Input[Dataset],
    target: str,
    test_size: float,
    seed: int,
    train_fraction: float,
    tracking_uri: str,
    run_id: str,
    task: str,
    train: Output[Dataset],
    test: Output[Dataset],
    validation: Output[Dataset],
    validation_size: float = 0.2,
) -> None:
    """Split the data, seeded (and stratified by class), into training, validation and held-out test sets.

    Args:
        dataset: The validated data.
        target: Name of the label column.
        test_size: Share of rows held out for testing (0-1).
        seed: Random seed of the split and of every candidate.
        train_fraction: Share of the training rows to keep (0-1]; the test set does not change.
        tracking_uri: MLflow tracking URI.
        run_id: Parent MLflow run id.
        task: The task validation decided (binary, multiclass, regression); classification is stratified.
        train: Training rows (what every candidate is fitted on).
        test: Held-out rows (only the evaluate step and the gate read them).
        validation: Validation rows carved from the training share: the search scores its trials on them.
        validation_size: Share of the training rows that become validation rows (0-1).
    """
    from components.split.core import run

    run(
        dataset.path,
        target,
        test_size,
        seed,
        train_fraction,
        train.path,
        test.path,
        tracking_uri,
        run_id,
        task,
        validation.path,
        validation_size,
    )
