"""The hourly retention delete at 1,000 prompts/s: how long `history.purge` takes for one hour.

    python -m bench.retention [--rows-per-hour 3600000] [--hours 2] [--cycles 1] [--out FILE]

Starts an embedded PostgreSQL in a temporary folder (or uses BENCH_DATABASE_URL), makes a fresh
database migrated to head with the catalog's models, and loads `hours` hours of history at
`rows-per-hour` (3.6 million = 1,000 prompts/s): as many prompt_history rows as model_attempts
rows, evenly spaced in time and inserted oldest first, as the Selectors write them (INSERT …
SELECT generate_series, then VACUUM ANALYZE as autovacuum would have done by then). It then calls
`services.data.history.purge(session, older_than, keep_latest=0)` in one transaction, as
ModelStore's PurgeHistory does, with `older_than` one hour after the oldest row: exactly the
oldest hour goes. It reports the load time, the purge (rows deleted, seconds of each DELETE and of
the whole call with its commit, rows/s, WAL written), table and index sizes before and after, and
the VACUUM that follows; then projects the hourly purge at 1,000 and 10,000 prompts/s from the
measured rows/s, against an hour and against the health worker's deadline for the call.
With `--cycles N` it goes on for N hours of the steady state (purge the oldest hour, VACUUM, load
the next) and prints the sizes after each, to show whether they stop growing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bench.postgres import admin_server, database_url, write_json
from services.data import history, migrate
from services.data.catalog import apply_catalog, load_catalog
from services.data.db import session_factory, transaction
from services.health.scheduler import RETENTION_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "retention.json"
TABLES = ("prompt_history", "model_attempts")
_SETTINGS = (
    "server_version",
    "shared_buffers",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "max_wal_size",
)

# Row `g` (0-based) is `g / rows_per_hour` hours after `base`; each INSERT loads one hour.
_OFFSET = "make_interval(secs => g::float8 * 3600 / CAST(:per_hour AS float8))"
_SERIES = "generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g"
_MODELS = "(SELECT array_agg(id ORDER BY id) AS arr FROM ai_models) ids"
_LOAD_HISTORY = f"""
INSERT INTO prompt_history
  (record_id, user_id, prompt_text, selected_model_id, response_text, response_time, success,
   created_at, caller, attempts, fallback_used)
SELECT 'bench-' || g, 'user-' || g % 100, 'prompt ' || g, ids.arr[1 + g % cardinality(ids.arr)],
       'answer ' || g, 1.5, g % 10 <> 0, CAST(:base AS timestamptz) + {_OFFSET}, 'bench', 1,
       g % 7 = 0
FROM {_SERIES}, {_MODELS}
"""
_LOAD_ATTEMPTS = f"""
INSERT INTO model_attempts
  (attempt_id, model_id, start_time, latency_ms, outcome, http_status, source, request_id, tokens)
SELECT md5(g::text), ids.arr[1 + g % cardinality(ids.arr)], CAST(:base AS timestamptz) + {_OFFSET},
       ((g::bigint * 7919) % 9000 + 50)::int,
       (ARRAY['success','success','success','success','rate_limited','transient','timeout',
              'bad_answer'])[1 + g % 8],
       200, 'user', 'bench-' || g, 100 + g % 50
FROM {_SERIES}, {_MODELS}
"""
_SIZES = """
SELECT pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,
       pg_total_relation_size(c.oid) AS total, (SELECT count(*) FROM {table}) AS rows
FROM pg_class c WHERE c.oid = '{table}'::regclass
"""


async def _autocommit(engine: AsyncEngine, sql: str) -> float:
    """Runs `sql` outside a transaction (VACUUM, CHECKPOINT); returns its seconds."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        began = time.perf_counter()
        await connection.execute(text(sql))
        return time.perf_counter() - began


async def _sizes(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    async with engine.connect() as connection:
        sizes = {}
        for table in TABLES:
            row = (await connection.execute(text(_SIZES.format(table=table)))).one()
            sizes[table] = {
                "rows": row.rows,
                "heap_bytes": row.heap,
                "index_bytes": row.indexes,
                "total_bytes": row.total,
            }
        return sizes


async def _wal_position(engine: AsyncEngine) -> int:
    """Bytes of WAL written since the server's start of time (differences are what count)."""
    async with engine.connect() as connection:
        sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        return (await connection.execute(text(sql))).scalar_one()


async def _prepare(url: str) -> None:
    """Migrations to head and the catalog's models (attempts reference them)."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await migrate.upgrade(engine)
        async with transaction(session_factory(engine)) as session:
            await apply_catalog(session, load_catalog(ROOT / "catalog.yaml").models)
    finally:
        await engine.dispose()


async def _load(
    engine: AsyncEngine, base: datetime, per_hour: int, hours: range
) -> dict[str, float]:
    """Loads the `hours` (0 = the oldest) of both tables, one INSERT per table and hour; returns
    seconds per table."""
    seconds = {table: 0.0 for table in TABLES}
    for hour in hours:
        params = {
            "base": base,
            "per_hour": per_hour,
            "first": hour * per_hour,
            "last": (hour + 1) * per_hour - 1,
        }
        for table, sql in (("prompt_history", _LOAD_HISTORY), ("model_attempts", _LOAD_ATTEMPTS)):
            began = time.perf_counter()
            async with engine.begin() as connection:
                await connection.execute(text(sql), params)
            seconds[table] += time.perf_counter() - began
        total = sum(seconds.values())
        print(f"  loaded hour {hour + 1} ({total:.0f} s so far)", flush=True)
    return seconds


async def _server(engine: AsyncEngine, older_than: datetime) -> dict[str, Any]:
    """The server's version and the settings that bear on a big DELETE, and the plans of the two
    DELETEs the purge runs (EXPLAIN, not executed)."""
    facts: dict[str, Any] = {}
    async with engine.connect() as connection:
        for setting in _SETTINGS:
            facts[setting] = (await connection.execute(text(f"SHOW {setting}"))).scalar_one()
        for table, column in (("prompt_history", "created_at"), ("model_attempts", "start_time")):
            sql = f"EXPLAIN DELETE FROM {table} WHERE {column} < CAST(:older_than AS timestamptz)"
            rows = await connection.execute(text(sql), {"older_than": older_than})
            facts[f"plan_{table}"] = [row[0] for row in rows]
    return facts


def _statement_timer(engine: AsyncEngine) -> dict[str, float]:
    """Seconds of each DELETE the engine runs, by table (SQLAlchemy cursor events)."""
    spent: dict[str, float] = {}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_began"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM"):
            table = statement.split()[2]
            spent[table] = spent.get(table, 0.0) + time.perf_counter() - conn.info["bench_began"]

    return spent


def _projection(rows_per_second: float, prompts_per_second: int) -> dict[str, float]:
    """One hour's history and attempts at `prompts_per_second`, deleted at the measured rate."""
    rows = 2 * prompts_per_second * 3600
    seconds = rows / rows_per_second
    return {
        "prompts_per_second": prompts_per_second,
        "rows_per_hour_deleted": rows,
        "purge_seconds": round(seconds, 1),
        "share_of_the_hour": round(seconds / 3600, 4),
        "within_worker_deadline": seconds < RETENTION_TIMEOUT_SECONDS,
    }


def _cycle(
    cycle: int, purge_seconds: float, vacuum: dict[str, float], sizes: dict[str, dict[str, int]]
) -> dict[str, Any]:
    return {
        "cycle": cycle,
        "purge_seconds": round(purge_seconds, 4),
        "vacuum_seconds": round(sum(vacuum.values()), 4),
        "total_bytes": {table: size["total_bytes"] for table, size in sizes.items()},
        "index_bytes": {table: size["index_bytes"] for table, size in sizes.items()},
    }


async def _next_cycle(
    engine: AsyncEngine, base: datetime, per_hour: int, hours: int, cycle: int
) -> dict[str, Any]:
    """One more hour of the steady state: purge the oldest hour left, VACUUM, load the next."""
    began = time.perf_counter()
    async with transaction(session_factory(engine)) as session:
        await history.purge(session, base + timedelta(hours=cycle), 0)
    purge_seconds = time.perf_counter() - began
    vacuum = {table: await _autocommit(engine, f"VACUUM {table}") for table in TABLES}
    next_hour = hours + cycle - 1
    await _load(engine, base, per_hour, range(next_hour, next_hour + 1))
    return _cycle(cycle, purge_seconds, vacuum, await _sizes(engine))


async def measure(
    admin_url: str, per_hour: int, hours: int, cycles_wanted: int = 1
) -> dict[str, Any]:
    """Loads `hours` hours at `per_hour` rows per table into a fresh database, purges the oldest
    hour with `history.purge`, vacuums and loads the next hour; then `cycles_wanted - 1` more
    such hours (purge, VACUUM, load), recording the sizes after each. Returns the numbers."""
    if per_hour < 1 or hours < 2 or cycles_wanted < 1:
        raise ValueError(
            "rows_per_hour must be >= 1, hours >= 2 (one hour purged, one kept), cycles >= 1"
        )
    name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(admin_url, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await _prepare(url)
        base = (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)
        load = await _load(engine, base, per_hour, range(hours))
        load_vacuum = await _autocommit(engine, "VACUUM ANALYZE")
        await _autocommit(engine, "CHECKPOINT")
        before = await _sizes(engine)
        older_than = base + timedelta(hours=1)
        server = await _server(engine, older_than)

        spent = _statement_timer(engine)
        wal = await _wal_position(engine)
        began = time.perf_counter()
        async with transaction(session_factory(engine)) as session:
            prompts, attempts = await history.purge(session, older_than, 0)
        purge_seconds = time.perf_counter() - began
        delete_seconds = dict(spent)  # later cycles' DELETEs add to `spent`
        wal_bytes = await _wal_position(engine) - wal
        after_purge = await _sizes(engine)

        vacuum = {table: await _autocommit(engine, f"VACUUM {table}") for table in TABLES}
        after_vacuum = await _sizes(engine)
        # The next hour arrives: does it fit in the space the purge and VACUUM freed?
        refill = await _load(engine, base, per_hour, range(hours, hours + 1))
        after_next_hour = await _sizes(engine)
        cycles = [_cycle(1, purge_seconds, vacuum, after_next_hour)]
        for cycle in range(2, cycles_wanted + 1):
            cycles.append(await _next_cycle(engine, base, per_hour, hours, cycle))
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    rows_per_second = (prompts + attempts) / purge_seconds
    return {
        "rows_per_hour": per_hour,
        "hours_loaded": hours,
        "load_seconds": {table: round(s, 1) for table, s in load.items()},
        "load_vacuum_analyze_seconds": round(load_vacuum, 1),
        "purge": {
            "deleted_prompts": prompts,
            "deleted_attempts": attempts,
            "seconds": round(purge_seconds, 4),
            "delete_seconds": {table: round(delete_seconds.get(table, 0.0), 4) for table in TABLES},
            "rows_per_second": round(rows_per_second),
            "wal_bytes": wal_bytes,
        },
        "vacuum_seconds": {table: round(s, 4) for table, s in vacuum.items()},
        "next_hour_load_seconds": {table: round(s, 1) for table, s in refill.items()},
        "sizes": {
            "before": before,
            "after_purge": after_purge,
            "after_vacuum": after_vacuum,
            "after_next_hour": after_next_hour,
        },
        "growth_with_next_hour_bytes": {
            table: after_next_hour[table]["total_bytes"] - before[table]["total_bytes"]
            for table in TABLES
        },
        "cycles": cycles,
        "server": server,
        "worker_deadline_seconds": RETENTION_TIMEOUT_SECONDS,
        "projection": [_projection(rows_per_second, rate) for rate in (1_000, 10_000)],
    }


def _mb(size: int) -> str:
    return f"{size / 2**20:,.1f}"


def _report(result: dict[str, Any]) -> None:
    purge = result["purge"]
    print(
        f"{result['hours_loaded']} hours loaded at {result['rows_per_hour']:,} rows/hour per table "
        f"in {sum(result['load_seconds'].values()):.0f} s (+ VACUUM ANALYZE "
        f"{result['load_vacuum_analyze_seconds']:.0f} s)"
    )
    print(f"{'table':>15} {'rows':>11} {'heap MB':>8} {'index MB':>9} {'total MB':>9}  when")
    for when in result["sizes"]:
        for table, size in result["sizes"][when].items():
            print(
                f"{table:>15} {size['rows']:>11,} {_mb(size['heap_bytes']):>8} "
                f"{_mb(size['index_bytes']):>9} {_mb(size['total_bytes']):>9}  {when}"
            )
    deletes = ", ".join(f"{t} {s:.1f} s" for t, s in purge["delete_seconds"].items())
    print(
        f"purge of the oldest hour: {purge['deleted_prompts']:,} prompts + "
        f"{purge['deleted_attempts']:,} attempts in {purge['seconds']:.1f} s ({deletes}, then "
        f"commit) = {purge['rows_per_second']:,} rows/s, {_mb(purge['wal_bytes'])} MB of WAL"
    )
    vacuums = ", ".join(f"{t} {s:.1f} s" for t, s in result["vacuum_seconds"].items())
    print(f"VACUUM afterwards: {vacuums}")
    growth = ", ".join(f"{t} {_mb(b)} MB" for t, b in result["growth_with_next_hour_bytes"].items())
    print(f"growth over the start once the next hour is in (purged hour's space reused): {growth}")
    if len(result["cycles"]) > 1:
        print("steady state, per hour purged, vacuumed and loaded (total MB after):")
        for c in result["cycles"]:
            sizes = ", ".join(f"{t} {_mb(b)}" for t, b in c["total_bytes"].items())
            print(
                f"  cycle {c['cycle']:>3}: purge {c['purge_seconds']:.2f} s, VACUUM "
                f"{c['vacuum_seconds']:.2f} s; {sizes}"
            )
    server = result["server"]
    print(
        "PostgreSQL "
        + ", ".join(f"{s} {server[s]}" for s in _SETTINGS if s != "server_version")
        + f" ({server['server_version']}); plans: "
        + "; ".join(server[f"plan_{t}"][1].strip() for t in TABLES)
    )
    for p in result["projection"]:
        print(
            f"at {p['prompts_per_second']:>6,} prompts/s: {p['rows_per_hour_deleted']:,} rows an "
            f"hour → {p['purge_seconds']:,.0f} s ({100 * p['share_of_the_hour']:.1f} % of the "
            f"hour); within the worker's {result['worker_deadline_seconds']:.0f} s deadline: "
            f"{'yes' if p['within_worker_deadline'] else 'no'}"
        )


async def run(
    per_hour: int, hours: int, out: Path, server_url: str | None = None, cycles: int = 1
) -> dict[str, Any]:
    """Measures, prints and writes the JSON result to `out`.

    `server_url` (else BENCH_DATABASE_URL, else an embedded server) is where the database is made.
    """
    async with admin_server(server_url) as admin_url:
        result = await measure(admin_url, per_hour, hours, cycles)
    _report(result)
    document = json.dumps({"benchmark": "retention", "result": result}, indent=2) + "\n"
    await write_json(out, document)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument(
        "--rows-per-hour", type=int, default=3_600_000, help="rows per table per hour"
    )
    parser.add_argument("--hours", type=int, default=2, help="hours loaded; the oldest is purged")
    parser.add_argument(
        "--cycles", type=int, default=1, help="hours of purge, VACUUM and refill to run in a row"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    asyncio.run(run(args.rows_per_hour, args.hours, args.out, cycles=args.cycles))


if __name__ == "__main__":
    main()
