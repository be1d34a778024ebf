"""The loader allow-list decides from the MLmodel file alone, and only plinth's loader without code passes unlisted.

Each case writes the MLmodel a registered model could carry (YAML, as MLflow writes it) and asks the policy; no
model is loaded here, which is the point: the decision never needs the model's code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.common.loaders import ENV_ALLOWED_FOREIGN_MODELS, ENV_ALLOWED_LOADERS, Loader, LoaderPolicy
from components.common.signing import LOADER_REFUSED


def model_dir(tmp_path: Path, flavors: dict) -> Path:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    return tmp_path


PLINTH = {"python_function": {"loader_module": "mlflow.sklearn", "code": None}, "sklearn": {"code": None}}


def test_plinths_own_loader_passes_without_any_list(tmp_path: Path) -> None:
    assert LoaderPolicy().check(model_dir(tmp_path, PLINTH), "m", "1") is None


@pytest.mark.parametrize(
    ("flavors", "said"),
    [
        ({"python_function": {"loader_module": "mlflow.pyfunc.model"}}, "its loader module mlflow.pyfunc.model"),
        ({"python_function": {"loader_module": "evil"}, "custom": {}}, "its loader module evil is not plinth's"),
        # plinth's loader, but with a code/ directory that goes on the import path before anything is loaded
        ({**PLINTH, "sklearn": {"code": "code"}}, "it ships its own code (code/)"),
        ({"keras": {"data": "data"}}, "it has no python_function loader (flavors keras)"),
    ],
)
def test_anything_else_is_refused_naming_what_allows_it(tmp_path: Path, flavors: dict, said: str) -> None:
    verdict = LoaderPolicy().check(model_dir(tmp_path, flavors), "m", "1")
    assert verdict is not None
    assert verdict.result == LOADER_REFUSED
    assert verdict.refused
    assert verdict.message.startswith(f"m v1 refused: {said}")
    assert ENV_ALLOWED_FOREIGN_MODELS in verdict.message


@pytest.mark.parametrize("text", ["flavors: [", "just text", ""])
def test_an_mlmodel_that_cannot_be_read_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "MLmodel").write_text(text)
    verdict = LoaderPolicy().check(tmp_path, "m", "1")
    assert verdict is not None
    assert verdict.result == LOADER_REFUSED


def test_a_listed_loader_or_a_listed_name_passes_and_nothing_else(tmp_path: Path) -> None:
    files = model_dir(tmp_path, {"python_function": {"loader_module": "my_org.loader", "code": "code"}})
    assert (
        LoaderPolicy.from_env({ENV_ALLOWED_LOADERS: " mlflow.sklearn , my_org.loader "}).check(files, "m", "1") is None
    )
    assert LoaderPolicy.from_env({ENV_ALLOWED_FOREIGN_MODELS: "m"}).check(files, "m", "1") is None
    assert LoaderPolicy.from_env({ENV_ALLOWED_FOREIGN_MODELS: "m2,mm"}).check(files, "m", "1") is not None
    assert LoaderPolicy.from_env({ENV_ALLOWED_LOADERS: "my_org"}).check(files, "m", "1") is not None


def test_the_loader_is_read_without_importing_it(tmp_path: Path) -> None:
    files = model_dir(tmp_path, {"python_function": {"loader_module": "not_importable_anywhere", "code": "code"}})
    assert Loader.read(files) == Loader("not_importable_anywhere", ("python_function",), True)
