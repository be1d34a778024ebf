"""Warm steps: kfp.local steps forked from a pre-imported server behave as fresh interpreters would.

Each test runs real lightweight components through kfp.local's subprocess runner, inside `warm_steps()` with
a small preload (the executor only) so the mechanics are tested, not the import time.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl

from pipelines.warm_steps import EXECUTOR_MODULE, WARM_STEPS_ENV, WarmServer, warm_steps

pytestmark = pytest.mark.integration
LIGHT_PRELOAD = (EXECUTOR_MODULE,)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def where_am_i(variable: str) -> str:
    """Report the process's parent, working directory and one environment variable."""
    import json
    import os

    return json.dumps({"ppid": os.getppid(), "cwd": os.getcwd(), "value": os.environ.get(variable)})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fails() -> str:
    """Fail the way a step fails: an exception with a message."""
    raise ValueError("the step's own error message")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def leaves_an_idle_pool() -> str:
    """Use a thread pool and leave its (non-daemon) worker idle, as MLflow's artifact downloads do."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="idle-worker")
    sys.plinth_kept_pool = pool  # kept alive to the end, as MLflow's cached artifact repository keeps its pool
    return str(pool.submit(sum, [1, 2]).result())


@pytest.fixture
def server(kfp_local: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WarmServer]:
    monkeypatch.delenv(WARM_STEPS_ENV, raising=False)
    with warm_steps(LIGHT_PRELOAD) as warm:
        assert warm is not None
        yield warm


def test_a_step_runs_forked_from_the_server_with_the_callers_environment_and_directory(
    server: WarmServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLINTH_WARM_PROBE", "set-by-the-caller")
    monkeypatch.chdir(tmp_path)
    seen = json.loads(where_am_i(variable="PLINTH_WARM_PROBE").output)
    assert seen == {"ppid": server.pid, "cwd": str(tmp_path), "value": "set-by-the-caller"}


def test_a_failing_step_fails_the_task_and_its_error_reaches_the_log(
    server: WarmServer, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RuntimeError, match="fails"):
        fails()
    assert "ValueError: the step's own error message" in capfd.readouterr().out


def test_a_step_that_leaves_an_idle_executor_worker_ends(server: WarmServer) -> None:
    """The forked step ends as the interpreter would: executors' idle workers are told to stop, then joined."""
    task = leaves_an_idle_pool()
    assert task.output == "3"


def test_steps_run_cold_when_the_server_is_gone(server: WarmServer) -> None:
    os.kill(server.pid, signal.SIGKILL)
    seen = json.loads(where_am_i(variable="HOME").output)
    assert seen["ppid"] != server.pid
    assert seen["value"] == os.environ["HOME"]


def test_other_commands_run_in_the_real_interpreter(server: WarmServer) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; print(6 * 7)"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "42\n")


def test_off_switch_and_cleanup(kfp_local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = sys.executable
    monkeypatch.setenv(WARM_STEPS_ENV, "0")
    with warm_steps(LIGHT_PRELOAD) as warm:
        assert warm is None
        assert sys.executable == real
    monkeypatch.delenv(WARM_STEPS_ENV)
    with warm_steps(LIGHT_PRELOAD) as warm:
        assert warm is not None
        assert sys.executable != real
    assert sys.executable == real
    with pytest.raises(ProcessLookupError):
        os.kill(warm.pid, 0)


def test_termination_of_the_step_command_reaches_the_forked_step(server: WarmServer, tmp_path: Path) -> None:
    """kfp.local (or a user's Ctrl-C) signals the process it started; the forked step must stop with it."""
    module = tmp_path / "ephemeral_component.py"
    pid_file = tmp_path / "step.pid"
    module.write_text(
        "import os, time\n"
        "def sleeper():\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
    )
    executor_input = {"inputs": {}, "outputs": {"outputFile": str(tmp_path / "output.json")}}
    stand_in = subprocess.Popen(
        [
            sys.executable,
            "-m",
            EXECUTOR_MODULE,
            "--component_module_path",
            str(module),
            "--executor_input",
            json.dumps(executor_input),
            "--function_to_execute",
            "sleeper",
        ],
        env={**os.environ, "_KFP_RUNTIME": "true"},
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    step_pid = int(pid_file.read_text())
    assert step_pid != stand_in.pid
    stand_in.send_signal(signal.SIGTERM)
    assert stand_in.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(step_pid, 0)
