"""Reads and fills the ModelStore database directly: recorded rows, and a large loaded history."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.overhead.stack import MODEL_NAME

# Rows spread over the last 30 days, for the benchmark model; ids cannot collide with the
# Selector's own record ids (UUIDs).
_LOAD_HISTORY = """
INSERT INTO prompt_history
  (record_id, user_id, prompt_text, selected_model_id, response_text, response_time, success,
   created_at, caller, attempts)
SELECT 'loaded-' || g, 'user-' || g % 1000, 'loaded prompt ' || g, m.id, 'loaded answer ' || g,
       0.5, g % 20 <> 0, now() - (g::float8 / :rows * :span) * interval '1 second', 'bench', 1
FROM generate_series(1, :rows) AS g, (SELECT id FROM ai_models WHERE name = :model) AS m
"""
_LOAD_ATTEMPTS = """
INSERT INTO model_attempts
  (attempt_id, model_id, start_time, latency_ms, outcome, http_status, source, request_id, tokens)
SELECT 'loaded-' || g, m.id, now() - (g::float8 / :rows * :span) * interval '1 second',
       ((g::bigint * 7919) % 2000 + 50)::int,
       CASE WHEN g % 20 = 0 THEN 'transient' ELSE 'success' END,
       CASE WHEN g % 20 = 0 THEN 503 ELSE 200 END, 'user', 'loaded-' || g, 100 + g % 50
FROM generate_series(1, :rows) AS g, (SELECT id FROM ai_models WHERE name = :model) AS m
"""
SPAN_SECONDS = 30 * 86_400


async def count_rows(database_url: str) -> dict[str, int]:
    """Rows in prompt_history and model_attempts."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            history = await connection.scalar(text("SELECT count(*) FROM prompt_history"))
            attempts = await connection.scalar(text("SELECT count(*) FROM model_attempts"))
    finally:
        await engine.dispose()
    return {"prompt_history": int(history or 0), "model_attempts": int(attempts or 0)}


async def wait_for_rows(database_url: str, expected: int, timeout: float) -> dict[str, int]:
    """The row counts once both tables hold `expected` rows, or whatever they hold at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await count_rows(database_url)
        if min(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def load_history(database_url: str, rows: int) -> float:
    """Inserts `rows` history rows and as many attempts; the seconds taken."""
    began = time.perf_counter()
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        params = {"rows": rows, "span": SPAN_SECONDS, "model": MODEL_NAME}
        async with engine.begin() as connection:
            await connection.execute(text(_LOAD_HISTORY), params)
            await connection.execute(text(_LOAD_ATTEMPTS), params)
    finally:
        await engine.dispose()
    return time.perf_counter() - began


async def vacuum(database_url: str) -> None:
    """VACUUM ANALYZE of the recorded tables and a CHECKPOINT, so neither autovacuum nor the
    flushing of freshly loaded pages runs during timed requests."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE prompt_history, model_attempts"))
            await connection.execute(text("CHECKPOINT"))
    finally:
        await engine.dispose()
