"""Root conftest: plugins every test folder (components/, pipelines/, serving/, tests/) runs under.

tests.ci_skips: under CI=true a test that skips for a missing tool fails instead (tests/ci_skips.py).
tests.mlflow_stores: a new MLflow SQLite store in the test process is a copy of one migrated once per session.
"""

pytest_plugins = ["tests.ci_skips", "tests.mlflow_stores"]
