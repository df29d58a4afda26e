"""Runs a planned stack: starts it in order, restarts what dies, stops it cleanly on a signal."""

from __future__ import annotations

import asyncio
import select
import shlex
import signal
import time

from services.stack.plan import Stack
from services.stack.restarts import RestartPolicy, Say, keep_running
from services.stack.supervisor import ServiceFailed, Supervisor

DEFAULT_POLICY = RestartPolicy()


def try_it(stack: Stack) -> list[str]:
    """The lines printed once everything is ready: the URL and commands to paste."""
    prompt = shlex.quote('{"prompt": "Say hello in one short sentence."}')
    admin = f'-H "authorization: Bearer {stack.admin.shell_expression}"'
    return [
        f"Free AI Selector is ready at {stack.url}",
        f"Status page: {stack.url}/",
        "Try:",
        f"  curl -s {stack.url}/api/v1/prompts/process "
        f"-H 'content-type: application/json' -d {prompt}",
        f"  curl -s {stack.url}/api/v1/models/stats",
        f"  curl -s -X POST {stack.url}/api/v1/providers/test {admin} -d '{{}}'   # admin",
        f"gRPC clients: {stack.url.removeprefix('http://')} (aiselector.v1.Selector, see proto/)",
        f"Logs: {stack.log_dir}/<service>.log. Press Ctrl-C to stop.",
    ]


def keys_banner(stack: Stack) -> list[str]:
    """What the stack says about client keys once it is ready (ADR 0012)."""
    mode, why = stack.client_keys
    create = "python -m services.selector keys create --name my-app --rpm 30"
    if mode == "anonymous":
        return [f"Client keys: NOT required ({why}); keys sent are still checked and counted."]
    if mode == "required":
        return [
            f"Client keys: REQUIRED ({why}): send 'authorization: Bearer <key>'.",
            f"  Create one: {create}",
        ]
    return [
        f"Client keys: the API is OPEN to anyone who reaches it ({why}) until the first key",
        f"  exists; from then every request needs one. Create one: {create}",
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


def output_closed(fd: int) -> bool:
    """Whether nobody can read `fd` any more (a pipe whose reader closed, a hung-up terminal)."""
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


async def _watch_output(fd: int, stop: asyncio.Event, poll_seconds: float) -> None:
    """Sets `stop` once nobody reads `fd`."""
    while True:
        if output_closed(fd):
            stop.set()
            return
        await asyncio.sleep(poll_seconds)


async def run_stack(
    stack: Stack,
    supervisor: Supervisor,
    say: Say = print,
    policy: RestartPolicy = DEFAULT_POLICY,
    *,
    output: int | None = None,
    output_poll_seconds: float = 1.0,
) -> int:
    """Starts `stack` and keeps it running until SIGINT/SIGTERM/SIGHUP or its output is gone.

    A service that dies is restarted (`policy`). Returns 0 after a clean stop, 1 when a service
    failed to start or kept dying. `say` may raise OSError once nobody reads (a closed pipe): that
    stops the stack like a lost terminal, and later lines are dropped; so does the file descriptor
    `output` being closed by its reader while the stack runs.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def tell(line: str) -> None:
        try:
            say(line)
        except OSError:
            stop.set()

    # A supervisor started with SIGHUP ignored (nohup) keeps running when the terminal goes.
    hangup = [] if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else [signal.SIGHUP]
    signals = [signal.SIGINT, signal.SIGTERM, *hangup]
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    stop_wait = asyncio.ensure_future(stop.wait())
    watching = [stop_wait]
    if output is not None:
        watching.append(asyncio.ensure_future(_watch_output(output, stop, output_poll_seconds)))
    keepers: list[asyncio.Task[None]] = []
    started = time.monotonic()
    code = 0
    try:
        if stack.demo:
            for line in demo_banner():
                tell(line)
        for spec in stack.services:
            tell(f"starting {spec.name} ...")
            step = time.monotonic()
            starting = asyncio.ensure_future(supervisor.start(spec))
            await asyncio.wait({starting, stop_wait, *keepers}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                _raise_failure(keepers)
                tell("interrupted during start-up")
                return 0
            starting.result()
            keepers.append(asyncio.ensure_future(keep_running(supervisor, spec.name, policy, tell)))
            tell(f"{spec.name} ready in {time.monotonic() - step:.1f} s")
        tell(f"all services ready in {time.monotonic() - started:.1f} s")
        for line in [*try_it(stack), *keys_banner(stack)]:
            tell(line)
        await asyncio.wait({stop_wait, *keepers}, return_when=asyncio.FIRST_COMPLETED)
        _raise_failure(keepers)
    except ServiceFailed as failure:
        tell(str(failure))
        for line in failure.log_tail:
            tell(f"  | {line}")
        code = 1
    finally:
        for task in [*keepers, *watching]:
            task.cancel()
        await asyncio.gather(*keepers, *watching, return_exceptions=True)
        tell("stopping ...")
        await supervisor.stop_all()
        for sig in signals:
            loop.remove_signal_handler(sig)
        tell("stopped")
    return code


def _raise_failure(keepers: list[asyncio.Task[None]]) -> None:
    """Raises what ended a keeper (KeepsDying); keepers end no other way."""
    for keeper in keepers:
        if keeper.done():
            keeper.result()
