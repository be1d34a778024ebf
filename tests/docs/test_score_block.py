"""`make score SOURCE=… OUT=… MODEL=…`, typed as the root README writes it, on a table the test puts where it reads.

The model the block names is registered in the shell's fresh PLINTH_HOME the way the pipeline registers one
(signed, plinth's metadata; `serving/bench/demo_model.py`, seconds instead of a training run), on the churn
table users bring (text, booleans, gaps); the table has an id column and two rows the contract refuses. Marked
`slow` (one kfp.local run): `make test` and CI run it.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from components.common.state import local_tracking_uri
from serving.bench.demo_model import register_plinth_model
from serving.embedded.train_drill import DrillData
from tests.docs.as_typed import UserShell
from tests.docs.readme import claim

SCORE = claim("score-table")
TIMEOUT_S = 600

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 120)]


def assignment(text: str, name: str) -> str:
    """Return the value of `NAME=value` in the block's command line."""
    found = re.search(rf"\b{name}=([^\s\"']+)", text)
    assert found, f"the documented command sets no {name}"
    return found[1]


def test_make_score_answers_or_rejects_every_row_of_the_table(tmp_path: Path, checkout: Path) -> None:
    block = SCORE.block()
    shell = UserShell(home=tmp_path / "home", plinth_home=tmp_path / "plinth-home", cwd=checkout)
    user_env = shell.environment({})
    source = Path(string.Template(assignment(block.text, "SOURCE")).substitute(user_env))
    out = Path(string.Template(assignment(block.text, "OUT")).substitute(user_env))
    model = assignment(block.text, "MODEL")
    kept = re.search(r"--keep\s+([\w,]+)", block.text)
    assert kept, "the documented command keeps an id column"
    shell.plinth_home.mkdir(parents=True)
    registered = register_plinth_model(
        local_tracking_uri(shell.plinth_home), model, DrillData("synthetic:churn", "churned")
    )
    table = registered.features.assign(**{kept[1]: np.arange(len(registered.features))})
    table.loc[[3, 4], "age"] = [np.inf, 1e12]
    source.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(source, index=False)

    typed = shell.run(block, timeout=TIMEOUT_S)

    assert typed.returncode == 0, typed.tail()
    predictions = ds.dataset(out / "predictions", partitioning="hive").to_table().to_pandas()
    rejects = ds.dataset(out / "rejects", partitioning="hive").to_table().to_pandas()
    assert len(predictions) + len(rejects) == len(table)
    assert sorted(rejects[kept[1]]) == [3, 4]
    assert rejects["reject_reason"].str.startswith("age: ").all()
    assert set(predictions["label"]) <= {"no", "yes"}
    assert f"{len(table)} in = {len(table) - 2} scored + 2 rejected" in typed.output
