"""Which MLflow registry a promotion reads its evidence from, and how to name it in a message.

Everything else in plinth defaults to the embedded registry (SQLite in `$PLINTH_HOME`), so `make promote`
does too: `--tracking-uri` wins, then `MLFLOW_TRACKING_URI`, then the embedded one. Every message names the
registry it read, so "no such version" is never ambiguous about *where* it was looked up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from components.common.redact import redact
from components.common.state import ENV_PLINTH_HOME, local_tracking_uri, plinth_home

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"


class RegistryMissingError(RuntimeError):
    """The embedded registry does not exist yet; reading it would create an empty one."""


@dataclass(frozen=True)
class Registry:
    """An MLflow registry URI and where it came from (flag, environment or the embedded default)."""

    uri: str
    origin: str

    def describe(self) -> str:
        """Return the registry for a message: origin and URI, with any password in the URI masked."""
        return f"{redact(self.uri)} ({self.origin})"


def resolve(given: str | None) -> Registry:
    """Return the registry to read: `--tracking-uri`, else $MLFLOW_TRACKING_URI, else the embedded one."""
    if given:
        return Registry(given, "--tracking-uri")
    from_env = os.environ.get(ENV_TRACKING_URI)
    if from_env:
        return Registry(from_env, f"${ENV_TRACKING_URI}")
    return Registry(local_tracking_uri(), f"embedded registry, ${ENV_PLINTH_HOME}")


def require_embedded_store(registry: Registry) -> None:
    """Refuse to open an embedded registry that does not exist (SQLAlchemy would create an empty one)."""
    if registry.uri != local_tracking_uri():
        return
    database = Path(registry.uri.removeprefix("sqlite:///"))
    if not database.is_file():
        raise RegistryMissingError(
            f"no registry at {database} ({ENV_PLINTH_HOME}={plinth_home()}): train there first (`make train`), "
            f"or point --tracking-uri / {ENV_TRACKING_URI} at the registry the rollout recorded to"
        )
