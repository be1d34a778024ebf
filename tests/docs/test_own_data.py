"""`make train TRAIN_ARGS="--source … --target …"` on a CSV file, typed as the root README writes it.

The test writes the file where the README's command reads it: the `--source` path is taken from the block
and expanded with the user's own environment (HOME), the label column and model name likewise. The table is
what users bring: numbers, text categories, a boolean, a small integer, missing values and text labels
(`synthetic:churn`), and the registered model must say so in its signature and take such rows raw. Marked
`slow` (one pipeline run): `make test` and CI run it.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from components.common import modeling, tracking
from components.common.features import prepare_features
from components.common.state import local_tracking_uri
from components.ingest.synthetic import CHURN_TARGET, churn_table
from tests.docs.as_typed import UserShell
from tests.docs.readme import Block, claim

OWN_DATA = claim("own-data-train")
TRAIN_TIMEOUT_S = 900

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TRAIN_TIMEOUT_S + 60)]


def flag(block: Block, name: str) -> str:
    """Return the value of `--<name>` in the block's command line."""
    found = re.search(rf"--{name}\s+([^\s\"']+)", block.text)
    assert found, f"{block.where}: the documented command has no --{name}"
    return found[1]


def test_make_train_on_a_csv_registers_a_champion_of_the_named_model(tmp_path: Path, checkout: Path) -> None:
    block = OWN_DATA.block()
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=checkout)
    user_env = shell.environment({})
    source = Path(string.Template(flag(block, "source")).substitute(user_env))
    target, model = flag(block, "target"), flag(block, "model-name")
    assert source.suffix == ".csv"
    source.parent.mkdir(parents=True, exist_ok=True)
    churn_table().rename(columns={CHURN_TARGET: target}).to_csv(source, index=False)

    typed = shell.run(block, timeout=TRAIN_TIMEOUT_S)

    assert typed.returncode == 0, typed.tail()
    uri = local_tracking_uri(shell.plinth_home)
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(model, "champion")
    assert str(champion.version) == "1", typed.tail()
    assert model in typed.output, "the summary names the model it registered"
    assert champion.tags["plinth.task"] == "binary"
    assert_takes_raw_rows(uri, model, str(champion.version))


def assert_takes_raw_rows(uri: str, model: str, version: str) -> None:
    """The registered version types every column from the data and scores rows with gaps and new categories."""
    tracking.connect(uri)
    info = mlflow.models.get_model_info(f"models:/{model}/{version}")
    inputs = {spec["name"]: spec for spec in json.loads(info.signature.to_dict()["inputs"])}
    assert inputs["plan"] == {"type": "string", "name": "plan", "required": False}
    assert inputs["region"]["required"] is False  # complete in the CSV, yet imputed: a served row may lack it
    assert (inputs["age"]["type"], inputs["age"]["required"]) == ("double", False)
    assert inputs["has_card"]["required"] is False
    profile = modeling.profile_from_metadata(info.metadata, model)
    assert profile.task.classes == ("no", "yes")
    assert profile.features["support_calls"].kind == "categorical"
    estimator = modeling.load_model(f"models:/{model}/{version}")
    odd = churn_table().drop(columns=CHURN_TARGET).head(1).assign(plan=None, region="atlantis", age=float("nan"))
    assert estimator.predict_proba(prepare_features(odd, profile)).shape == (1, 2)
