"""Plugin: a new MLflow SQLite store in the test process starts as a copy of one migrated once per session.

MLflow makes an empty SQLite store by creating its tables and running every alembic migration: about 2 s on a
quiet machine and over 10 s on a loaded one, paid by each test that opens a fresh `sqlite:///…/mlflow.db`
(hundreds of them). The result is the same schema every time, so the session's first new store is migrated for
real, by MLflow's own `_initialize_tables`, into a template file, and every new store after it receives that
template through SQLite's backup API: the same tables, indexes, alembic revision and rows the migration wrote.
Nothing else changes: MLflow still decides when a store is new, opens it and creates its default experiment.
Only this process is affected; the pipeline steps and servers a test starts migrate their stores as a user's do.
`tests/test_mlflow_stores.py` checks that a copied store equals one MLflow migrated in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_NAME = "mlflow-template.db"
# Modules that call _initialize_tables: db.utils through its global (and _safe_initialize_tables), the registry
# store through its own imported name.
PATCHED = ("mlflow.store.db.utils", "mlflow.store.model_registry.sqlalchemy_store")


def sqlite_file(engine: Any) -> str | None:
    """Return the file of an SQLite engine, or None for another database or an in-memory one."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or "mode=memory" in str(url):
        return None
    return str(url.database)


class TemplateStores:
    """Replaces `_initialize_tables` for SQLite files with a copy of a template migrated by the original."""

    def __init__(self, original: Callable[[Any], None], folder: Path) -> None:
        self.original = original
        self.template = folder / TEMPLATE_NAME
        self.lock = threading.Lock()

    def _ensure_template(self) -> None:
        from mlflow.store.db.utils import create_sqlalchemy_engine_with_retry

        with self.lock:
            if self.template.exists():
                return
            scratch = self.template.with_suffix(".partial")
            engine = create_sqlalchemy_engine_with_retry(f"sqlite:///{scratch}")
            try:
                self.original(engine)
            finally:
                engine.dispose()
            scratch.rename(self.template)  # complete or absent: a failed migration leaves no template

    def initialize(self, engine: Any) -> None:
        """Fill a new SQLite store from the template (migrated once, for real); anything else as MLflow does."""
        if sqlite_file(engine) is None:
            self.original(engine)
            return
        self._ensure_template()
        with contextlib.closing(sqlite3.connect(self.template)) as source, engine.connect() as target:
            source.backup(target.connection.driver_connection)


def install(folder: Path) -> Callable[[], None]:
    """Patch MLflow to copy new SQLite stores from a template in `folder`; return the function that undoes it."""
    import importlib

    modules = [importlib.import_module(name) for name in PATCHED]
    originals = [module._initialize_tables for module in modules]
    stores = TemplateStores(originals[0], folder)
    for module in modules:
        module._initialize_tables = stores.initialize

    def uninstall() -> None:
        for module, original in zip(modules, originals, strict=True):
            module._initialize_tables = original

    return uninstall


_installed: list[Callable[[], None]] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the template stores once the tests are collected, if any of them imported MLflow.

    A session of tests that never import MLflow (the chart's, say) does not pay for importing it here.
    """
    if "mlflow" not in sys.modules or _installed:
        return
    folder = Path(tempfile.mkdtemp(prefix="plinth-mlflow-template-"))
    uninstall = install(folder)
    _installed.append(lambda: (uninstall(), shutil.rmtree(folder, ignore_errors=True)))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put MLflow back and remove the template."""
    while _installed:
        _installed.pop()()
