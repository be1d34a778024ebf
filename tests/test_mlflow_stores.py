"""The template stores (tests/mlflow_stores.py) give a test the store MLflow itself would have migrated."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow.store.db.utils as db_utils
from mlflow import MlflowClient

from tests import mlflow_stores

# What any MLflow client does first with a new store; in a fresh interpreter MLflow migrates it, unpatched.
MIGRATE = (
    "import sys; from mlflow import MlflowClient; MlflowClient(sys.argv[1], sys.argv[1]).search_registered_models()"
)


def clauses(sql: str | None) -> list[str]:
    """Return a CREATE statement's clauses in a fixed order.

    Alembic rebuilds a SQLite table from a set of constraints, so their order in the statement differs from one
    interpreter to the next (hash seeds): `runs` comes out with its CHECKs in either order, the same table.
    """
    return sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())


def contents(path: Path) -> dict[str, list[tuple]]:
    """Return the schema (every table, index, trigger), the alembic revision and the experiments of a store."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        return {
            "schema": sorted((kind, name, table, clauses(sql)) for kind, name, table, sql in rows),
            "revision": list(connection.execute("SELECT version_num FROM alembic_version")),
            "experiments": connection.execute(
                "SELECT experiment_id, name, lifecycle_stage FROM experiments"
            ).fetchall(),
        }


def test_a_new_store_here_equals_one_mlflow_migrates_in_a_fresh_interpreter(tmp_path: Path) -> None:
    assert mlflow_stores._installed, "the plugin is active in a session that imports MLflow"
    assert isinstance(db_utils._initialize_tables.__self__, mlflow_stores.TemplateStores)
    migrated, copied, again = (tmp_path / name / "mlflow.db" for name in ("migrated", "copied", "again"))
    for path in (migrated, copied, again):
        path.parent.mkdir()
    uri = f"sqlite:///{migrated}"
    done = subprocess.run([sys.executable, "-c", MIGRATE, uri], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for path in (copied, again):  # the first may build the template, the second surely copies it
        MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_registered_models()
    expected = contents(migrated)
    assert expected["experiments"] == [(0, "Default", "active")]
    assert contents(copied) == expected
    assert contents(again) == expected


def test_another_database_is_left_to_mlflow() -> None:
    import sqlalchemy

    assert mlflow_stores.sqlite_file(sqlalchemy.create_engine("sqlite://")) is None
    assert mlflow_stores.sqlite_file(sqlalchemy.create_engine("postgresql://u@127.0.0.1/db")) is None
    assert mlflow_stores.sqlite_file(sqlalchemy.create_engine("sqlite:////tmp/x/mlflow.db")) == "/tmp/x/mlflow.db"
