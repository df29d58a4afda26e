"""Shared fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), fresh databases, ModelStore.

- `postgres_admin_url` (session): URL of a server where tests may create databases.
- `database_url` (function): a fresh, migrated, empty database (a copy of a template migrated once).
- `model_store` (function): a running ModelStore on 127.0.0.1:0 over a fresh database with the
  repo's catalog.yaml applied; `model_store_stub` is a `ModelStoreStub` connected to it.
- `data_dir` (function): a DATA_DIR for embedded PostgreSQL outside pytest's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from aiselector.v1 import model_store_pb2_grpc
from services.data import migrate
from services.data.app import RunningModelStore, start_model_store
from services.data.db import async_url
from services.data.embedded import EmbeddedPostgres

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOG_PATH = REPO_ROOT / "catalog.yaml"
# Test-only server settings: durability is not needed for throw-away data.
_FAST_SETTINGS = ("fsync = off", "synchronous_commit = off", "full_page_writes = off")


def database_url_for(admin_url: str, database: str) -> str:
    """`admin_url` pointed at another database on the same server."""
    return make_url(async_url(admin_url)).set(database=database).render_as_string(False)


def _admin_engine(admin_url: str) -> AsyncEngine:
    return create_async_engine(
        async_url(admin_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )


@pytest.fixture(scope="session")
async def postgres_admin_url() -> AsyncIterator[str]:
    """TEST_DATABASE_URL, or an embedded PostgreSQL in a temporary folder for the whole session.

    The folder is not under pytest's basetemp: pytest keeps that 0700 and prunes it from other
    sessions, while the server (run as a separate user when tests run as root) must traverse it.
    """
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield async_url(configured)
        return
    folder = Path(tempfile.mkdtemp(prefix="aiselector-pg-"))
    server = EmbeddedPostgres(folder / "data")
    url = server.start()
    engine = _admin_engine(url)
    try:
        async with engine.connect() as connection:
            for setting in _FAST_SETTINGS:
                await connection.execute(text(f"ALTER SYSTEM SET {setting}"))
            await connection.execute(text("SELECT pg_reload_conf()"))
        await engine.dispose()
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def _template_database(postgres_admin_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per session; fresh test databases are copies of it."""
    name = f"aiselector_template_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(postgres_admin_url)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(database_url_for(postgres_admin_url, name), poolclass=NullPool)
    await migrate.upgrade(engine)
    await engine.dispose()
    yield name
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture
async def database_url(postgres_admin_url: str, _template_database: str) -> AsyncIterator[str]:
    """A fresh database at the head migration with no rows; dropped after the test."""
    name = f"aiselector_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_admin_url)
    async with admin.connect() as connection:
        await connection.execute(
            text(f'CREATE DATABASE "{name}" TEMPLATE "{_template_database}" STRATEGY FILE_COPY')
        )
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def model_store(database_url: str) -> AsyncIterator[RunningModelStore]:
    """A ModelStore on 127.0.0.1:0 over a fresh database, with the repo's catalog applied."""
    store = await start_model_store(database_url, "127.0.0.1:0", catalog_path=CATALOG_PATH)
    try:
        yield store
    finally:
        await store.stop(0)


@pytest.fixture
async def model_store_stub(
    model_store: RunningModelStore,
) -> AsyncIterator[model_store_pb2_grpc.ModelStoreStub]:
    """A ModelStore client stub over its own channel, closed after the test."""
    async with grpc.aio.insecure_channel(model_store.address) as channel:
        yield model_store_pb2_grpc.ModelStoreStub(channel)


@pytest.fixture(scope="session")
def catalog_path() -> Path:
    """The repo's catalog.yaml."""
    return CATALOG_PATH


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR for embedded PostgreSQL, outside pytest's temporary folder.

    Run as root, PostgreSQL runs as another user that must traverse every folder above its data;
    pytest makes its own folder 0700 again whenever a session starts (also another one on this
    machine), which would cut that user off halfway through a test.
    """
    folder = Path(tempfile.mkdtemp(prefix="aiselector-stack-"))
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
