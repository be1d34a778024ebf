import numpy as np
import pandas as pd
import pytest

from components.common.task import BINARY, MULTICLASS, REGRESSION, Task, TaskError, encode_labels, infer_task


@pytest.mark.parametrize(
    ("values", "kind", "classes"),
    [
        ([0, 1, 1, 0], BINARY, (0, 1)),
        (["no", "yes", "no"], BINARY, ("no", "yes")),
        ([True, False, True], BINARY, (False, True)),
        ([2, 0, 1, 1], MULTICLASS, (0, 1, 2)),
        (["b", "c", "a"], MULTICLASS, ("a", "b", "c")),
        (list(range(50)), REGRESSION, ()),
        (list(np.linspace(0, 1, 40)), REGRESSION, ()),
    ],
)
def test_task_is_decided_from_the_target(values, kind, classes):
    task = infer_task(pd.Series(values, name="y"))
    assert (task.kind, task.classes) == (kind, classes)


def test_a_float_target_with_few_values_is_ambiguous_and_says_how_to_choose():
    with pytest.raises(TaskError) as failure:
        infer_task(pd.Series([0.0, 1.0, 1.0, 0.0], name="y"))
    message = str(failure.value)
    assert "'y' is a float column with only 2 distinct values (0, 1)" in message
    assert "--task classification" in message
    assert "np.float64" not in message


def test_overrides_apply_and_refuse_what_does_not_fit():
    floats = pd.Series([0.0, 1.0, 1.0, 0.0], name="y")
    assert infer_task(floats, "classification") == Task(BINARY, (0, 1))
    assert infer_task(floats, "regression") == Task(REGRESSION)
    with pytest.raises(TaskError, match="does not fit target 'y': it has 3 classes"):
        infer_task(pd.Series([0, 1, 2], name="y"), "binary")
    with pytest.raises(TaskError, match="needs a numeric target"):
        infer_task(pd.Series(["a", "b"], name="y"), "regression")
    with pytest.raises(TaskError, match="task must be one of"):
        infer_task(floats, "clustering")


def test_round_trip_keeps_label_types():
    for task in (Task(BINARY, (0, 1)), Task(MULTICLASS, ("a", "b", "c")), Task(REGRESSION), Task(BINARY, (0.5, 1.5))):
        assert Task.from_dict(task.to_dict()) == task


def test_inconsistent_tasks_are_refused():
    with pytest.raises(TaskError, match="exactly 2 classes"):
        Task(BINARY, (0, 1, 2))
    with pytest.raises(TaskError, match="no classes"):
        Task(REGRESSION, (0, 1))


def test_metrics_and_primary_metric_per_task():
    binary, regression = Task(BINARY, (0, 1)), Task(REGRESSION)
    assert binary.primary_metric() == "roc_auc"
    assert regression.primary_metric() == "r2"
    assert regression.primary_metric("rmse") == "rmse"
    with pytest.raises(TaskError, match="does not apply to a regression task"):
        regression.primary_metric("roc_auc")


def test_labels_encode_to_probability_columns():
    task = Task(MULTICLASS, ("a", "b", "c"))
    np.testing.assert_array_equal(encode_labels(task, pd.Series(["c", "a", "b"])), [2, 0, 1])
    with pytest.raises(TaskError, match="labels z are not classes"):
        encode_labels(task, ["a", "z"])
