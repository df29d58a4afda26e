"""Alembic: empty → head, no drift between the models and the migrations, down to base and up,
and a model stored before 0005 kept as a catalog model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.data import migrate
from services.data.schema import Base
from tests.conftest import database_url_for

TABLES = {
    "ai_models",
    "prompt_history",
    "model_attempts",
    "model_stats_hourly",
    "client_keys",
    "client_key_usage",
    "prompt_counts_minutely",
    "shared_budgets",
    "shared_budget_grants",
    "shared_signals",
    "shared_trials",
}


@pytest.fixture
async def empty_engine(postgres_admin_url: str) -> AsyncIterator[AsyncEngine]:
    name = f"aiselector_empty_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(
        postgres_admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(database_url_for(postgres_admin_url, name), poolclass=NullPool)
    yield engine
    await engine.dispose()
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_from_empty_then_down_and_up_again(empty_engine):
    assert await _tables(empty_engine) == set()
    await migrate.upgrade(empty_engine)
    assert await _tables(empty_engine) == TABLES | {"alembic_version"}
    await migrate.upgrade(empty_engine)
    await migrate.downgrade(empty_engine, "base")
    assert await _tables(empty_engine) == {"alembic_version"}
    await migrate.upgrade(empty_engine)
    assert await _tables(empty_engine) >= TABLES


async def test_autogenerate_finds_no_difference(empty_engine):
    await migrate.upgrade(empty_engine)

    def diff(connection) -> list:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with empty_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_migration_0005_keeps_existing_models_as_catalog_models(empty_engine):
    await migrate.upgrade(empty_engine, "0004")
    async with empty_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO ai_models (name, provider, api_endpoint, api_format, "
                "provider_model_id) VALUES ('acme/one', 'acme', 'http://127.0.0.1:9/v1', "
                "'openai', 'one')"
            )
        )
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT origin, unlisted_reason, unlisted_since, reasoning_effort "
                    "FROM ai_models WHERE name = 'acme/one'"
                )
            )
        ).one()
    assert tuple(row) == ("catalog", "", None, None)
    await migrate.downgrade(empty_engine, "0004")
    await migrate.upgrade(empty_engine)


async def test_migration_0006_counts_the_stored_history_per_minute(empty_engine):
    await migrate.upgrade(empty_engine, "0005")
    async with empty_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO prompt_history (record_id, user_id, prompt_text, response_time, "
                "success, fallback_used, created_at) VALUES "
                "('a', 'u', 'p', 1, true, false, '2026-05-01 12:00:10+00'), "
                "('b', 'u', 'p', 1, true, true, '2026-05-01 12:00:50+00'), "
                "('c', 'u', 'p', 1, false, false, '2026-05-01 12:00:59+00'), "
                "('d', 'u', 'p', 1, true, true, '2026-05-01 14:03:00+02')"
            )
        )
    await migrate.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT to_char(bucket_start AT TIME ZONE 'UTC', 'HH24:MI'), prompts, "
                    "answered, failovers FROM prompt_counts_minutely ORDER BY bucket_start"
                )
            )
        ).all()
    assert [tuple(row) for row in rows] == [("12:00", 3, 2, 1), ("12:03", 1, 1, 1)]
