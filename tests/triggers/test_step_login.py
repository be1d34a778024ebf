"""The runs a cluster receiver starts get the MLflow login from a Secret, never inside a run parameter.

The receiver passes `tracking_uri` without `user:password@` (tests/triggers/test_receiver_attacks.py); here, the
compiled pipeline gives every step the optional MLflow Secret's keys as MLFLOW_TRACKING_USERNAME/PASSWORD,
which MLflow's client reads, so a registry with authentication still works.
"""

from pathlib import Path

import yaml

from pipelines.compile import compile_all
from pipelines.training.compute import MLFLOW_LOGIN_KEYS


def test_every_step_gets_the_mlflow_login_from_the_optional_secret(tmp_path: Path):
    [cpu, _, scoring] = compile_all(tmp_path)
    for compiled in (cpu, scoring):  # training, and batch scoring (it logs its run and reads the registry)
        spec, platform = yaml.safe_load_all(compiled.read_text())
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert set(executors) == set(spec["deploymentSpec"]["executors"])  # every step has Kubernetes settings
        for name, executor in executors.items():
            if name.startswith("exec-search"):  # the search steps never talk to MLflow: no login for them
                assert "secretAsEnv" not in executor, name
                continue
            [login] = [b for b in executor.get("secretAsEnv", []) if b["secretName"] == "plinth-mlflow-training"]
            assert login["optional"] is True, name
            assert {pair["secretKey"]: pair["envVar"] for pair in login["keyToEnv"]} == MLFLOW_LOGIN_KEYS, name
        default_uri = spec["root"]["inputDefinitions"]["parameters"]["tracking_uri"]["defaultValue"]
        assert "@" not in default_uri
