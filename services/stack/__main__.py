"""`python -m services.stack` (`make run`): the whole system on this machine, stopped by Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import sys
from functools import partial

from services.stack.app import run_stack
from services.stack.plan import build_stack
from services.stack.settings import StackSettings
from services.stack.supervisor import Supervisor


def main() -> int:
    settings = StackSettings()
    stack = build_stack(settings, os.environ)
    supervisor = Supervisor(stack.log_dir, stop_grace_seconds=settings.stack_stop_grace_seconds)
    say = partial(print, flush=True)
    return asyncio.run(run_stack(stack, supervisor, say))


if __name__ == "__main__":
    sys.exit(main())
