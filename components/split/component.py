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
) -> None:
    """Split the data, seeded (and stratified by class), into training and held-out test sets.

    Args:
        dataset: The validated data.
        target: Name of the label column.
        test_size: Share of rows held out for testing (0-1).
        seed: Random seed of the split and of every candidate.
        train_fraction: Share of the training rows to keep (0-1]; the test set does not change.
        tracking_uri: MLflow tracking URI.
        run_id: Parent MLflow run id.
        task: The task validation decided (binary, multiclass, regression); classification is stratified.
        train: Training rows.
        test: Held-out rows.
    """
    from components.split.core import run

    run(dataset.path, target, test_size, seed, train_fraction, train.path, test.path, tracking_uri, run_id, task)
