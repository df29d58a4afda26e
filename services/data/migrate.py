"""Runs the Alembic migrations from code, on a connection of the caller's engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def alembic_config(database_url: str | None = None) -> Config:
    """The Alembic config of services/data, optionally pointed at `database_url`."""
    config = Config(str(ALEMBIC_INI))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _run(connection: Connection, revision: str, downgrade: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrates the database of `engine` up to `revision` (a no-op when already there)."""
    async with engine.begin() as connection:
        await connection.run_sync(_run, revision, False)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrates the database of `engine` down to `revision`."""
    async with engine.begin() as connection:
        await connection.run_sync(_run, revision, True)
