"""Where local state lives: one directory, `.plinth/` by default, overridable with PLINTH_HOME."""

from __future__ import annotations

import os
from pathlib import Path

ENV_PLINTH_HOME = "PLINTH_HOME"
DEFAULT_HOME = ".plinth"


def plinth_home() -> Path:
    """Return the local state directory (not created here: callers create what they write)."""
    return Path(os.environ.get(ENV_PLINTH_HOME) or DEFAULT_HOME).resolve()


def local_tracking_uri(home: Path | None = None) -> str:
    """Return the MLflow tracking URI of the embedded default: a SQLite file in the state directory."""
    return f"sqlite:///{(home or plinth_home()) / 'mlflow.db'}"
