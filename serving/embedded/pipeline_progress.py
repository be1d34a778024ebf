"""A training pipeline run as a child process, its progress echoed one line per step.

kfp.local's own log is long; the demos and the CT loop show only its step starts and ends.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's progress lines: "Executing task 'split'" and "Task 'split' finished with status SUCCESS".
TASK_STATUS = re.compile(
    r"Executing task '(?P<started>[\w-]+)'|Task '(?P<task>[\w-]+)' finished with status (?P<status>\w+)"
)


def step_line(line: str) -> str | None:
    """Return "<step>: <status>" for a kfp.local progress line, else None."""
    step = TASK_STATUS.search(ANSI_ESCAPE.sub("", line))
    if step is None:
        return None
    return f"{step['started'] or step['task']}: {step['status'] or 'running'}"


def run_pipeline(argv: list[str], env: dict[str, str], say: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run the pipeline, echoing each step's start and end (kfp's own log is long); return code and lines."""
    lines = []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as child:
        assert child.stdout is not None
        for raw in child.stdout:
            line = ANSI_ESCAPE.sub("", raw).rstrip()
            lines.append(line)
            step = step_line(line)
            if step:
                say(f"  pipeline step {step}")
    return child.returncode, lines
