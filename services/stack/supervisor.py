"""Starts child processes in order, waits until each is ready, and stops them in reverse order.

Each child runs in its own process group (its own session), so Ctrl-C in the terminal reaches only
the supervisor, which then stops the children one by one: SIGTERM to the whole group, SIGKILL to
the group after a grace period. Every child also carries a `STACK_SERVICE_TAG` variable
(`<stack id>:<service>`) that its descendants inherit; what still carries it after the stop (a
daemon that left the group, such as PostgreSQL started by the data service) is terminated too:
SIGTERM to the topmost of those processes, so that a daemon stops its own children, then SIGKILL.
Children start through `launch.py`, so that on Linux they get SIGTERM if the supervisor is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from services.stack.private import open_private, private_folder
from services.stack.readiness import Readiness

LOG_TAIL_LINES = 20
TAG_VARIABLE = "STACK_SERVICE_TAG"
LAUNCHER = Path(__file__).with_name("launch.py")


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


class ServiceFailed(Exception):
    """A service the stack cannot do without failed; the message says which and why."""

    def __init__(self, child: Child, message: str) -> None:
        self.child = child
        self.service = child.spec.name
        self.log_path = child.log_path
        self.log_tail = tail(child.log_path)
        super().__init__(message)


class StartupFailed(ServiceFailed):
    """A child exited or did not become ready."""

    def __init__(self, child: Child, reason: str) -> None:
        self.reason = reason
        name = child.spec.name
        super().__init__(child, f"{name} failed to start: {reason} (log: {child.log_path})")


def exit_reason(code: int) -> str:
    """How a child ended, from its return code (negative: the signal that killed it)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


class _Process(NamedTuple):
    pid: int
    parent: int
    group: int
    folder: Path


def _live_processes() -> list[_Process]:
    """Every live process (zombies waiting for a reaper excluded); empty without /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            pid, parent, group = int(stat.parent.name), int(fields[1]), int(fields[2])
            found.append(_Process(pid, parent, group, stat.parent))
    return found


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for a reaper do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(process.group == pgid for process in _live_processes())


def _tagged(tag: str, *, prefix: bool = False) -> list[_Process]:
    """Live processes whose environment carries `TAG_VARIABLE=tag` (with `prefix`: `tag…`)."""
    needle = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for process in _live_processes():
        try:
            entries = (process.folder / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(entry == needle or (prefix and entry.startswith(needle)) for entry in entries):
            found.append(process)
    return found


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
        # The current child of each service, in start order (a restarted one keeps its place).
        self.children: dict[str, Child] = {}
        self.stack_id = uuid.uuid4().hex

    async def spawn(self, spec: ServiceSpec) -> Child:
        """Starts `spec` in a new process group, output appended to `<log_dir>/<name>.log`."""
        log_path = private_folder(self.log_dir) / f"{spec.name}.log"
        tag = f"{self.stack_id}:{spec.name}"
        log = open_private(log_path, os.O_WRONLY | os.O_APPEND)
        try:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-I", "-S", str(LAUNCHER), str(os.getpid()), *spec.argv),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**spec.env, TAG_VARIABLE: tag},
                cwd=spec.cwd,
                start_new_session=True,
            )
        finally:
            os.close(log)
        child = Child(spec, process, log_path, tag)
        self.children[spec.name] = child
        return child

    async def start(self, spec: ServiceSpec) -> Child:
        """Spawns `spec` and returns once it is ready; raises StartupFailed otherwise."""
        child = await self.spawn(spec)
        deadline = time.monotonic() + spec.ready_timeout_seconds
        while True:
            if child.exited.done():
                reason = exit_reason(child.exited.result())
                raise StartupFailed(child, f"{reason} before it was ready")
            if await spec.ready():
                return child
            if time.monotonic() > deadline:
                raise StartupFailed(
                    child,
                    f"not ready after {spec.ready_timeout_seconds:g} s "
                    f"(waited for {spec.ready.description})",
                )
            await asyncio.wait({child.exited}, timeout=self.poll_seconds)

    async def stop(self, child: Child) -> None:
        """SIGTERM to the child's group, SIGKILL to what is left of it after the grace period.

        Also for a child that already exited: what it left behind is stopped all the same.
        """
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
        # Not `await child.exited`: a cancelled caller (a restart) must not cancel that task.
        await asyncio.wait({child.exited})
        await self._sweep(child.tag)

    async def sweep_stack(self, stack_id: str) -> int:
        """Stops what the children of an earlier supervisor left running; returns how many."""
        return await self._sweep(f"{stack_id}:", prefix=True)

    async def _sweep(self, tag: str, *, prefix: bool = False) -> int:
        """Terminates what carries `tag` outside a stopped child's group; returns how many."""
        found = _tagged(tag, prefix=prefix)
        tagged = {process.pid for process in found}
        _signal_pids([p.pid for p in found if p.parent not in tagged], signal.SIGTERM)
        left = await self._still_tagged(tag, prefix)
        if left:
            _signal_pids(left, signal.SIGKILL)
            await self._still_tagged(tag, prefix)
        return len(found)

    async def _still_tagged(self, tag: str, prefix: bool) -> list[int]:
        """Pids still carrying `tag` once they are all gone or the grace period is over."""
        deadline = time.monotonic() + self.stop_grace_seconds
        while left := [process.pid for process in _tagged(tag, prefix=prefix)]:
            if time.monotonic() > deadline:
                return left
            await asyncio.sleep(self.poll_seconds)
        return []

    async def stop_all(self) -> None:
        """Stops every child, the last started first, then anything else of this stack."""
        while self.children:
            _, child = self.children.popitem()
            await self.stop(child)
        # A child whose start was interrupted may never have been registered.
        await self.sweep_stack(self.stack_id)
