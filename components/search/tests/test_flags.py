"""`make train`'s search flags: the pipeline parameters' defaults, and a bad value refused in one line naming it."""

import pytest

from pipelines.run_local import parse_args
from pipelines.training.compute import ComputeTarget
from pipelines.training.pipeline import DEFAULT_SEARCH_TRIALS, build_pipeline


def test_search_flags_default_to_the_pipeline_parameters():
    args = parse_args([])
    assert (args.search_trials, args.search_parallelism, args.validation_size) == (DEFAULT_SEARCH_TRIALS, 1, 0.2)
    assert parse_args(["--search-trials", "0"]).search_trials == 0  # the fixed settings
    parameters = build_pipeline(ComputeTarget(gpu=False)).component_spec.inputs
    assert parameters is not None
    assert args.refit_full is parameters["refit_full"].default is True  # refit on training + validation rows
    assert parse_args(["--no-refit"]).refit_full is False


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--search-trials", "-1", "must be at least 0"),
        ("--search-parallelism", "0", "must be at least 1"),
        ("--search-time-s", "0", "must be above 0 seconds"),
        ("--validation-size", "1", "must be between 0 and 1"),
        ("--refit=off", None, "ignored explicit argument 'off'"),
    ],
)
def test_a_bad_search_flag_is_refused_naming_it(capsys, flag, value, says):
    with pytest.raises(SystemExit) as exited:
        parse_args([flag] if value is None else [flag, value])
    assert exited.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert f"error: argument {flag.split('=')[0]}" in line
    assert says in line
