"""Alembic environment: async engine for the CLI, or the caller's connection when given."""

from __future__ import annotations

import asyncio
import logging.config
import os

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from services.data.db import async_url
from services.data.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set DATABASE_URL to the PostgreSQL server to migrate")
    return async_url(url)


def _configure(**kwargs: object) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_offline() -> None:
    """Prints the SQL instead of running it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    """Runs the migrations on an open connection."""
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    """Opens a connection (CLI use) and runs the migrations on it."""
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


shared = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif shared is not None:
    run_on(shared)
else:
    if config.config_file_name is not None:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(run_with_own_engine())
