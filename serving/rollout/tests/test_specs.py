"""Every analysis spec an entry point names is there and valid (the one-machine stack names them by path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.embedded.bench import BENCH_SPEC
from serving.embedded.ct import CT_SPEC
from serving.embedded.demo import FAST_SPEC
from serving.rollout.cli import DEFAULT_SPEC
from serving.rollout.core.spec import load_spec


@pytest.mark.parametrize("path", [DEFAULT_SPEC, FAST_SPEC, CT_SPEC, BENCH_SPEC], ids=lambda path: path.name)
def test_each_entry_points_spec_loads(path: Path) -> None:
    assert path.is_file(), path
    assert load_spec(path).steps[-1] == 100
