"""Runs a planned stack: start in order, tell the user how to use it, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import shlex
import signal
import time
from collections.abc import Callable

from services.stack.plan import Stack
from services.stack.supervisor import StartupFailed, Supervisor

Say = Callable[[str], None]


def try_it(stack: Stack) -> list[str]:
    """The lines printed once everything is ready: the URL and commands to paste."""
    prompt = shlex.quote('{"prompt": "Say hello in one short sentence."}')
    admin = f'-H "authorization: Bearer {stack.admin.shell_expression}"'
    return [
        f"Free AI Selector is ready at {stack.url}",
        "Try:",
        f"  curl -s {stack.url}/api/v1/prompts/process "
        f"-H 'content-type: application/json' -d {prompt}",
        f"  curl -s {stack.url}/api/v1/models/stats",
        f"  curl -s -X POST {stack.url}/api/v1/providers/test {admin} -d '{{}}'   # admin",
        f"gRPC clients: {stack.url.removeprefix('http://')} (aiselector.v1.Selector, see proto/)",
        f"Logs: {stack.log_dir}/<service>.log. Press Ctrl-C to stop.",
    ]


def demo_banner() -> list[str]:
    """The notice shown when no provider key is set."""
    rule = "*" * 78
    return [
        rule,
        "DEMO MODE: no provider API key is set, so every answer comes from the local",
        "provider simulator. Answers are SIMULATED, not written by a real model.",
        "Set a key (e.g. GROQ_API_KEY) in .env or the environment to use real providers.",
        rule,
    ]


async def run_stack(stack: Stack, supervisor: Supervisor, say: Say = print) -> int:
    """Starts `stack`; returns 0 after a clean SIGINT/SIGTERM stop, 1 when a service failed."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    stop_wait = asyncio.ensure_future(stop.wait())
    started = time.monotonic()
    code = 0
    try:
        if stack.demo:
            for line in demo_banner():
                say(line)
        for spec in stack.services:
            say(f"starting {spec.name} ...")
            step = time.monotonic()
            starting = asyncio.ensure_future(supervisor.start(spec))
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                say("interrupted during start-up")
                return 0
            starting.result()
            say(f"{spec.name} ready in {time.monotonic() - step:.1f} s")
        say(f"all services ready in {time.monotonic() - started:.1f} s")
        for line in try_it(stack):
            say(line)
        exited = asyncio.ensure_future(supervisor.wait_for_exit())
        await asyncio.wait({exited, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            child = exited.result()
            say(
                f"{child.spec.name} exited unexpectedly with code {child.exited.result()}; "
                f"see {child.log_path}. Stopping everything."
            )
            code = 1
        else:
            exited.cancel()
    except StartupFailed as failure:
        say(str(failure))
        for line in failure.log_tail:
            say(f"  | {line}")
        code = 1
    finally:
        say("stopping ...")
        await supervisor.stop_all()
        stop_wait.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        say("stopped")
    return code
