"""launch.py: a child started through it becomes the command and dies with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from services.stack.supervisor import LAUNCHER
from tests.fakes import eventually_blocking
from tests.stack.processes import marked_processes, new_marker

LAUNCH = [sys.executable, "-I", "-S", str(LAUNCHER)]


def launch(parent: int, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAUNCH, str(parent), *command], capture_output=True, text=True, timeout=30, check=False
    )


def test_the_launcher_becomes_the_command_with_the_same_pid():
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    with subprocess.Popen([*LAUNCH, str(os.getpid()), *command], stdout=subprocess.PIPE) as child:
        output, _ = child.communicate(timeout=30)

    assert child.returncode == 0
    assert int(output) == child.pid


def test_the_command_gets_sigterm_when_its_parent_is_killed():
    marker = new_marker()
    sleeper = f"import time; print('up', flush=True); time.sleep(600)  # {marker[1]}"
    parent_code = (
        "import os, subprocess, sys\n"
        f"child = subprocess.Popen({LAUNCH!r} + [str(os.getpid()), sys.executable, '-c', "
        f"{sleeper!r}])\n"
        "child.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        env={**os.environ, marker[0]: marker[1]},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "up\n"
        [child] = [pid for pid in marked_processes(marker) if pid != parent.pid]
        assert marker[1].encode() in Path(f"/proc/{child}/cmdline").read_bytes()

        parent.kill()
        parent.wait(timeout=10)

        eventually_blocking(
            lambda: not marked_processes(marker), 10, "the command to end with its parent"
        )
    finally:
        parent.kill()
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)


def test_nothing_starts_when_the_parent_is_already_gone():
    result = launch(1, sys.executable, "-c", "print('started')")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "the supervisor (pid 1) is gone" in result.stderr


def test_a_command_that_does_not_exist_is_named():
    result = launch(os.getpid(), "no-such-command-here")

    assert result.returncode == 127
    assert result.stderr.strip() == "cannot run no-such-command-here: No such file or directory"
