"""What `make run` checks before it starts anything: one stack per data folder, free ports."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from services.stack.private import FILE_MODE, FOLDER_MODE, private_folder

LOCK_NAME = "stack.lock"


class Refused(Exception):
    """`make run` must not start; the message says why and what to do."""


@dataclass(frozen=True)
class Listener:
    """A TCP address a service of the stack listens on, and the variable that sets it."""

    variable: str
    host: str
    port: int


@dataclass
class DataFolderLock:
    """The lock on a data folder, held until `release()` or the end of the process."""

    path: Path
    fd: int
    # The stack id the previous holder wrote ("" for a new folder): its children may be left.
    previous_stack_id: str

    def release(self) -> None:
        os.close(self.fd)


def lock_data_folder(data_dir: Path, stack_id: str) -> DataFolderLock:
    """Locks `data_dir` for this process (creating it 0700) or raises Refused naming the holder.

    An flock on `<data_dir>/stack.lock`: the kernel drops it when its holder ends, however it
    ends, so a killed supervisor never blocks the next start. Before the lock is held nothing in
    the folder is changed (the lock file is only created if missing). The holder's pid and
    `stack_id` are written into the file for the next start to read.
    """
    data_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        os.close(fd)
        pid = holder[0] if holder else "unknown"
        raise Refused(
            f"another `make run` (pid {pid}) is already running on the data folder {data_dir}: "
            f"it holds {path}. Stop it first, or set DATA_DIR to another folder."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    previous = os.pread(fd, 200, 0).decode(errors="replace").split()
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {stack_id}\n".encode(), 0)
    os.fchmod(fd, FILE_MODE)
    private_folder(data_dir)
    return DataFolderLock(path, fd, previous[1] if len(previous) > 1 else "")


def unavailable(listeners: tuple[Listener, ...]) -> list[str]:
    """A line for each listener whose address cannot be bound now (taken, or not on this host)."""
    problems = []
    for listener in listeners:
        error = _bind_error(listener.host, listener.port)
        if error is None:
            continue
        problem = f"cannot listen on {listener.host}:{listener.port} (set by {listener.variable})"
        hint = ""
        if error.errno == errno.EADDRINUSE:
            hint = f"; stop what uses it, or set {listener.variable} to a free port"
        problems.append(f"{problem}: {error.strerror}{hint}")
    return problems


def _bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not bind `host:port` now, or None if it could.

    SO_REUSEADDR as servers set it, so a port that only has connections in TIME_WAIT left from a
    previous run counts as free; a listener, with or without SO_REUSEPORT, makes the bind fail.
    """
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        return error
    return None
