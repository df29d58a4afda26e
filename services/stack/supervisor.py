"""Starts child processes in order, waits until each is ready, and stops them in reverse order.

Each child runs in its own process group (its own session), so Ctrl-C in the terminal reaches only
the supervisor, which then stops the children one by one: SIGTERM to the whole group, SIGKILL to
the group after a grace period. Every child also carries a `STACK_SERVICE_TAG` variable that its
descendants inherit; what still carries it after the stop (a daemon that left the group, such as
PostgreSQL started by the data service) is terminated too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.stack.readiness import Readiness

LOG_TAIL_LINES = 20
TAG_VARIABLE = "STACK_SERVICE_TAG"


@dataclass(frozen=True)
class ServiceSpec:
    """One child: its command, environment, and how to tell that it is ready."""

    name: str
    argv: Sequence[str]
    ready: Readiness
    env: Mapping[str, str]
    cwd: Path | None = None
    ready_timeout_seconds: float = 120.0


@dataclass
class Child:
    """A started child process and its log file."""

    spec: ServiceSpec
    process: asyncio.subprocess.Process
    log_path: Path
    tag: str
    exited: asyncio.Task[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(self.process.wait())

    @property
    def pid(self) -> int:
        return self.process.pid


class StartupFailed(Exception):
    """A child exited or did not become ready; the message says which and why."""

    def __init__(self, child: Child, reason: str) -> None:
        self.service = child.spec.name
        self.reason = reason
        self.log_path = child.log_path
        self.log_tail = tail(child.log_path)
        super().__init__(f"{self.service} failed to start: {reason} (log: {self.log_path})")


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def _live_processes() -> list[tuple[int, int, Path]]:
    """(pid, process group, /proc folder) of every live process; empty without /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found.append((int(stat.parent.name), int(fields[2]), stat.parent))
    return found


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a reaper do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(group == pgid for _, group, _ in _live_processes())


def _tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment carries `TAG_VARIABLE=tag`."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    pids = []
    for pid, _, folder in _live_processes():
        try:
            if needle in (folder / "environ").read_bytes().split(b"\0"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def _signal_pids(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


class Supervisor:
    """Owns the children; `stop_all` leaves no process of theirs behind."""

    def __init__(
        self,
        log_dir: Path,
        *,
        stop_grace_seconds: float = 10.0,
        poll_seconds: float = 0.1,
    ) -> None:
        self.log_dir = log_dir
        self.stop_grace_seconds = stop_grace_seconds
        self.poll_seconds = poll_seconds
        self.children: list[Child] = []
        self.stack_id = uuid.uuid4().hex

    async def spawn(self, spec: ServiceSpec) -> Child:
        """Starts `spec` in a new process group, output appended to `<log_dir>/<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        tag = f"{self.stack_id}:{spec.name}"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**spec.env, TAG_VARIABLE: tag},
                cwd=spec.cwd,
                start_new_session=True,
            )
        child = Child(spec, process, log_path, tag)
        self.children.append(child)
        return child

    async def start(self, spec: ServiceSpec) -> Child:
        """Spawns `spec` and returns once it is ready; raises StartupFailed otherwise."""
        child = await self.spawn(spec)
        deadline = time.monotonic() + spec.ready_timeout_seconds
        while True:
            if child.exited.done():
                raise StartupFailed(
                    child, f"exited with code {child.exited.result()} before it was ready"
                )
            if await spec.ready():
                return child
            if time.monotonic() > deadline:
                raise StartupFailed(
                    child,
                    f"not ready after {spec.ready_timeout_seconds:g} s "
                    f"(waited for {spec.ready.description})",
                )
            await asyncio.wait({child.exited}, timeout=self.poll_seconds)

    async def wait_for_exit(self) -> Child:
        """Returns the first child that exits (a running stack should never see one)."""
        by_task = {child.exited: child for child in self.children}
        done, _ = await asyncio.wait(by_task, return_when=asyncio.FIRST_COMPLETED)
        return by_task[done.pop()]

    async def stop(self, child: Child) -> None:
        """SIGTERM to the child's group, SIGKILL to what is left of it after the grace period."""
        pgid = child.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        await asyncio.wait({child.exited}, timeout=self.stop_grace_seconds)
        polls = max(0, int((deadline - time.monotonic()) / self.poll_seconds))
        for _ in range(polls):
            if not _group_alive(pgid):
                break
            await asyncio.sleep(self.poll_seconds)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        await child.exited
        await self._sweep(child.tag)

    async def _sweep(self, tag: str) -> None:
        """Terminates what a stopped child left behind outside its group."""
        left = _tagged(tag)
        if not left:
            return
        _signal_pids(left, signal.SIGTERM)
        for _ in range(int(self.stop_grace_seconds / self.poll_seconds)):
            await asyncio.sleep(self.poll_seconds)
            left = _tagged(tag)
            if not left:
                return
        _signal_pids(left, signal.SIGKILL)

    async def stop_all(self) -> None:
        """Stops every child, the last started first."""
        while self.children:
            await self.stop(self.children.pop())
