"""`python -m services.stack` (`make run`): the whole system on this machine, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import sys

from services.stack.app import run_stack
from services.stack.instance import Refused, lock_data_folder, unavailable
from services.stack.plan import build_stack, data_folder
from services.stack.restarts import RestartPolicy
from services.stack.settings import StackSettings
from services.stack.supervisor import Supervisor


def say(line: str) -> None:
    """Prints a line for the user; once nobody reads stdout any more, output goes nowhere."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # The unwritten line, later ones and the flush at exit go to /dev/null instead of failing
        # again; run_stack notices the closed pipe on its own copy of stdout and stops the stack.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def run(settings: StackSettings) -> int:
    """Checks that this data folder and the ports are free, then runs the stack."""
    data_dir = data_folder(settings)
    supervisor = Supervisor(data_dir / "logs", stop_grace_seconds=settings.stack_stop_grace_seconds)
    output = os.dup(sys.stdout.fileno())
    try:
        lock = lock_data_folder(data_dir, supervisor.stack_id)
    except Refused as refusal:
        say(str(refusal))
        return 1
    try:
        if lock.previous_stack_id:
            left = await supervisor.sweep_stack(lock.previous_stack_id)
            if left:
                say(f"stopped {left} processes left running by an earlier `make run` here")
        stack = build_stack(settings, os.environ)
        problems = unavailable(stack.listeners)
        for problem in problems:
            say(problem)
        if problems:
            return 1
        policy = RestartPolicy(
            limit=settings.stack_restart_limit,
            window_seconds=settings.stack_restart_window_seconds,
        )
        return await run_stack(stack, supervisor, say, policy, output=output)
    finally:
        lock.release()


def main() -> int:
    return asyncio.run(run(StackSettings()))


if __name__ == "__main__":
    sys.exit(main())
