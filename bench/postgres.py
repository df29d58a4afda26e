"""PostgreSQL for the database benchmarks: a server to make databases on, and their results file."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from services.data.db import async_url
from services.data.embedded import EmbeddedPostgres


@asynccontextmanager
async def admin_server(server_url: str | None = None) -> AsyncIterator[str]:
    """The admin URL of `server_url`, else of BENCH_DATABASE_URL, else of an embedded PostgreSQL
    started in a temporary folder (stopped and removed on exit)."""
    configured = server_url or os.environ.get("BENCH_DATABASE_URL")
    if configured:
        yield async_url(configured)
        return
    folder = Path(tempfile.mkdtemp(prefix="aiselector-bench-"))
    server = EmbeddedPostgres(folder / "data")
    try:
        yield await asyncio.to_thread(server.start)
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(folder, ignore_errors=True)


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` pointed at database `name`."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def write_json(out: Path, document: str) -> None:
    """Writes a results document, making its folder."""

    def write() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document, encoding="utf-8")

    await asyncio.to_thread(write)
