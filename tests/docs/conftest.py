from pathlib import Path

import pytest

from tests.docs.checkout import working_tree_copy


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean checkout of the working tree for the whole session: the README's commands run at its root."""
    return working_tree_copy(tmp_path_factory.mktemp("checkout") / "plinth")
