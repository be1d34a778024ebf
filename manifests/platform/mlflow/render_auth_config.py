"""Write MLflow's basic-auth config with the auth database URI taken from the environment.

MLflow reads the auth database only from its ini file (`database_uri`), and that URI holds a password, so the
committed ini (a ConfigMap) names no database and this script, the MLflow pod's init container, writes the
file the server reads into a memory-backed volume: `python render_auth_config.py IN OUT` with
MLFLOW_AUTH_DATABASE_URI set (from the Secret `mlflow-db`, key `auth-uri`). Nothing else in the file changes.
"""

from __future__ import annotations

import configparser
import os
import sys

ENV_DATABASE_URI = "MLFLOW_AUTH_DATABASE_URI"


def render(source: str, target: str, database_uri: str) -> None:
    """Copy the ini at `source` to `target` (mode 0600) with `database_uri` in its [mlflow] section."""
    config = configparser.ConfigParser(interpolation=None)
    if not config.read(source):
        raise OSError(f"cannot read {source}")
    config["mlflow"]["database_uri"] = database_uri
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        config.write(out)


def main(argv: list[str]) -> int:
    """Render argv[1] into argv[2]; one line and exit status 1 when the URI or the file is missing."""
    if len(argv) != 3:
        print("usage: render_auth_config.py IN OUT", file=sys.stderr)
        return 2
    database_uri = os.environ.get(ENV_DATABASE_URI, "")
    if not database_uri:
        print(f"render_auth_config: {ENV_DATABASE_URI} is not set (Secret mlflow-db, key auth-uri)", file=sys.stderr)
        return 1
    try:
        render(argv[1], argv[2], database_uri)
    except OSError as error:
        print(f"render_auth_config: {error}", file=sys.stderr)
        return 1
    print(f"render_auth_config: wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
