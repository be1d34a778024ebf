"""Two ways to start the training pipeline for a trigger, behind one interface.

`LocalStarter` runs the same entry point as `make train` (`python -m pipelines.run_local`) as a child
process with its output in a log file; `ClusterStarter` submits the compiled pipeline through
`kfp.Client.create_run_from_pipeline_package`. Both pass the trigger as the pipeline's `trigger` parameter,
which the register step copies onto the version it produces, and both answer how a run they started ended.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipelines.triggers.policy import Trigger

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
LOCAL_COMMAND = (sys.executable, "-m", "pipelines.run_local")
# KFP run states (v2beta1) that mean the run is over, and whether it went well.
KFP_ENDED = {"SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "CANCELED": FAILED, "SKIPPED": FAILED}


class StartError(RuntimeError):
    """The run could not be started; the message is the one line that is recorded."""


class Starter(Protocol):
    """Starts a training run for a trigger and reports how a run it started is doing."""

    def start(self, trigger: Trigger, decision: str) -> str:
        """Start a run for `trigger`; return its reference (recorded on the trigger and the lease)."""
        ...

    def state(self, run: str) -> str | None:
        """Return RUNNING, SUCCEEDED or FAILED for a run this starter knows, else None (unknown)."""
        ...


class LocalStarter:
    """Runs the local pipeline entry point as a child process; one log file per run."""

    def __init__(
        self,
        log_dir: Path,
        command: Sequence[str] = LOCAL_COMMAND,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_dir, self.command, self.args = log_dir, list(command), list(args)
        # The runs' environment (None: this process's); the CT demo points PLINTH_HOME at its own store.
        self.env = dict(env) if env is not None else None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, trigger: Trigger, decision: str) -> str:
        """Start `command … --trigger JSON` with output to `log_dir/<kind>-<time>.log`; return `local:<pid>`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{trigger.kind}-{trigger.at.strftime('%Y%m%dT%H%M%S')}.log"
        try:
            with log_path.open("ab") as log:
                child = subprocess.Popen(
                    [*self.command, *self.args, "--trigger", trigger.to_json(decision)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
        except OSError as error:
            raise StartError(f"local run not started: {error}") from error
        run = f"local:{child.pid}"
        self.children[run] = child
        self.logs[run] = log_path
        return run

    def state(self, run: str) -> str | None:
        """Return the child's state from its exit status (None for a run of another process)."""
        child = self.children.get(run)
        if child is None:
            return None
        code = child.poll()
        if code is None:
            return RUNNING
        return SUCCEEDED if code == 0 else FAILED

    def wait(self, run: str, timeout: float) -> int:
        """Wait for a child to end and return its exit status (for tests and `make ct`)."""
        return self.children[run].wait(timeout)


class ClusterStarter:
    """Submits the compiled pipeline to Kubeflow Pipelines through a `kfp.Client`."""

    def __init__(self, client: Any, package: Path, experiment: str, params: dict[str, Any]) -> None:
        self.client, self.package, self.experiment, self.params = client, package, experiment, dict(params)

    def start(self, trigger: Trigger, decision: str) -> str:
        """Create a run with the trigger as its `trigger` parameter; return `kfp:<run id>`."""
        try:
            result = self.client.create_run_from_pipeline_package(
                str(self.package),
                arguments={**self.params, "trigger": trigger.to_json(decision)},
                run_name=f"plinth-training {trigger.kind} {trigger.at.strftime('%Y-%m-%d %H:%M:%S')}",
                experiment_name=self.experiment,
                enable_caching=False,
            )
        except Exception as error:  # kfp_server_api's ApiException, a refused connection: one line either way
            raise StartError(
                f"KFP run not created: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            ) from error
        return f"kfp:{result.run_id}"

    def state(self, run: str) -> str | None:
        """Return the KFP run's state (None when it is not a KFP run or the API does not answer)."""
        if not run.startswith("kfp:"):
            return None
        try:
            state = str(self.client.get_run(run.removeprefix("kfp:")).state)
        except Exception:  # unknown: the lease's expiry still frees the model
            return None
        return KFP_ENDED.get(state, RUNNING)


def client_for(host: str) -> Any:
    """Return a `kfp.Client` for `host` (imported here: the local starter needs no kfp server client)."""
    import kfp

    return kfp.Client(host=host)
