"""GetModelStatistics and GetModelTimeline latency at two history sizes (10 thousand and 1 million).

    python -m bench.statistics [--rows 10000,1000000] [--calls 200] [--days 7] [--hours 24]

Starts an embedded PostgreSQL in a temporary folder (or uses BENCH_DATABASE_URL), and for each size
a fresh database with the catalog applied, loads that many attempt rows and as many prompt history
rows spread over 30 days (INSERT … SELECT generate_series; hourly buckets aggregated from the
attempts, per-minute prompt counts from the history), then times through real gRPC clients
`calls` GetModelStatistics calls over a `days` window on ModelStore, and `calls` GetModelTimeline
calls over `hours` hours on a Selector in front of it (the status page's read: three ModelStore
reads and the reply). Reading from buckets means the two sizes should cost about the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf import timestamp_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc, selector_pb2, selector_pb2_grpc
from bench.postgres import admin_server, database_url, write_json
from services.data.app import RunningModelStore, start_model_store
from services.data.schema import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, OUTCOMES, outcome_column
from services.selector.app import RunningSelector, start_selector
from services.selector.settings import SelectorSettings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "statistics.json"

_LATENCY_CASE = " ".join(
    f"WHEN latency_ms <= {bound} THEN {i}" for i, bound in enumerate(LATENCY_BOUNDS_MS)
)
_LOAD_ATTEMPTS = """
INSERT INTO model_attempts
  (attempt_id, model_id, start_time, latency_ms, outcome, http_status, source, request_id, tokens)
SELECT md5(g::text), ids.arr[1 + g % cardinality(ids.arr)],
       now() - (g::float8 / :rows * :span) * interval '1 second',
       ((g::bigint * 7919) % 9000 + 50)::int,
       (ARRAY['success','success','success','success','rate_limited','transient','timeout',
              'bad_answer'])[1 + g % 8],
       200, 'user', 'bench-' || g, 100 + g % 50
FROM generate_series(1, :rows) AS g, (SELECT array_agg(id ORDER BY id) AS arr FROM ai_models) ids
"""
_LOAD_HISTORY = """
INSERT INTO prompt_history
  (record_id, user_id, prompt_text, selected_model_id, response_text, response_time, success,
   created_at, caller, attempts, fallback_used)
SELECT 'bench-' || g, 'user-' || g % 100, 'prompt ' || g, ids.arr[1 + g % cardinality(ids.arr)],
       'answer ' || g, 1.5, g % 10 <> 0, now() - (g::float8 / :rows * :span) * interval '1 second',
       'bench', 1, g % 7 = 0
FROM generate_series(1, :rows) AS g, (SELECT array_agg(id ORDER BY id) AS arr FROM ai_models) ids
"""

_PROMPT_COUNTS = """
INSERT INTO prompt_counts_minutely (bucket_start, prompts, answered, failovers)
SELECT date_trunc('minute', created_at, 'UTC'), count(*), count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE success AND fallback_used)
FROM prompt_history GROUP BY 1
"""


def _bucket_sql() -> str:
    counts = ", ".join(
        f"count(*) FILTER (WHERE outcome = '{o}') AS {outcome_column(o)}" for o in OUTCOMES
    )
    histogram = ", ".join(
        f"count(*) FILTER (WHERE outcome = 'success' AND "
        f"(CASE {_LATENCY_CASE} ELSE {len(LATENCY_BOUNDS_MS)} END) = {i}) AS {column}"
        for i, column in enumerate(LATENCY_COLUMNS)
    )
    columns = ", ".join(
        [
            *(outcome_column(o) for o in OUTCOMES),
            *LATENCY_COLUMNS,
            "success_latency_ms_sum",
            "tokens",
        ]
    )
    return f"""
INSERT INTO model_stats_hourly (model_id, bucket_start, {columns})
SELECT model_id, date_trunc('hour', start_time, 'UTC'), {counts}, {histogram},
       coalesce(sum(latency_ms) FILTER (WHERE outcome = 'success'), 0), sum(tokens)
FROM model_attempts GROUP BY 1, 2
"""


async def _load(url: str, rows: int) -> float:
    started = time.perf_counter()
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as connection:
        params = {"rows": rows, "span": 30 * 86400}
        await connection.execute(text(_LOAD_ATTEMPTS), params)
        await connection.execute(text(_LOAD_HISTORY), params)
        await connection.execute(text(_bucket_sql()))
        await connection.execute(text(_PROMPT_COUNTS))
    # Vacuum now, so autovacuum of the fresh rows does not run during the timed calls.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return time.perf_counter() - started


def _request(days: int) -> model_store_pb2.GetModelStatisticsRequest:
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(datetime.now(UTC) - timedelta(days=days))
    return model_store_pb2.GetModelStatisticsRequest(start_time=start)


Call = Callable[[], Awaitable[int]]


async def _time_interleaved(stores: list[list[Call]], calls: int) -> list[list[list[float]]]:
    """Times `calls` calls of each method on each store, alternating store by store, call by call.

    Alternating puts every size under the same machine load, so a busy neighbour cannot make one
    size look slower than the other. `stores[i][j]` is method j on store i; the result is
    `[store][method]` → milliseconds of each call.
    """
    for methods in stores:
        for method in methods:
            for _ in range(10):
                await method()
    timings = [[[] for _ in methods] for methods in stores]
    for _ in range(calls):
        for store, methods in enumerate(stores):
            for index, method in enumerate(methods):
                began = time.perf_counter()
                await method()
                timings[store][index].append((time.perf_counter() - began) * 1000)
    return timings


def _statistics_call(stub: model_store_pb2_grpc.ModelStoreStub, days: int, seen: dict) -> Call:
    async def call() -> int:
        reply = await stub.GetModelStatistics(_request(days), timeout=30)
        assert reply.statistics, "no models in the reply"
        seen["buckets"] = sum(len(s.buckets) for s in reply.statistics)
        return seen["buckets"]

    return call


def _timeline_call(stub: selector_pb2_grpc.SelectorStub, hours: int, seen: dict) -> Call:
    async def call() -> int:
        request = selector_pb2.GetModelTimelineRequest(hours=hours)
        reply = await stub.GetModelTimeline(request, timeout=30)
        assert reply.models, "no models in the timeline"
        seen["timeline_hours"] = sum(
            1 for m in reply.models for h in m.hours if h.successes + h.failures
        )
        seen["timeline_prompts"] = sum(p.prompts for p in reply.prompt_hours)
        return seen["timeline_hours"]

    return call


async def _selector(store_address: str) -> RunningSelector:
    """A Selector over the store (no provider keys: the timeline needs none)."""
    settings = SelectorSettings(
        _env_file=None,
        selector_listen_address="127.0.0.1:0",
        model_store_address=store_address,
        snapshot_refresh_seconds=3600,
    )
    selector = await start_selector(settings, {})
    await selector.wait_ready(30)
    return selector


async def _loaded_store(admin_url: str, rows: int) -> tuple[str, RunningModelStore, float]:
    """A fresh database with `rows` history rows, and a ModelStore serving it."""
    name = f"bench_statistics_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = database_url(admin_url, name)
    store = await start_model_store(url, "127.0.0.1:0", ROOT / "catalog.yaml")
    return name, store, await _load(url, rows)


def _summary(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return round(statistics.median(times), 3), round(times[max(0, int(len(times) * 0.95) - 1)], 3)


async def measure(
    admin_url: str, sizes: list[int], calls: int, days: int, hours: int = 24
) -> list[dict[str, float | int]]:
    """Loads each size into its own database, then times GetModelStatistics (ModelStore) and
    GetModelTimeline (a Selector in front of it) on all, interleaved."""
    loaded: list[tuple[str, RunningModelStore, float]] = []
    selectors: list[RunningSelector] = []
    channels: list[grpc.aio.Channel] = []
    seen: list[dict] = [{} for _ in sizes]
    try:
        for rows in sizes:
            loaded.append(await _loaded_store(admin_url, rows))
        stores: list[list[Call]] = []
        for (_, store, _), facts in zip(loaded, seen, strict=True):
            selectors.append(await _selector(store.address))
            channels += [
                grpc.aio.insecure_channel(store.address),
                grpc.aio.insecure_channel(selectors[-1].address),
            ]
            stores.append(
                [
                    _statistics_call(
                        model_store_pb2_grpc.ModelStoreStub(channels[-2]), days, facts
                    ),
                    _timeline_call(selector_pb2_grpc.SelectorStub(channels[-1]), hours, facts),
                ]
            )
        timings = await _time_interleaved(stores, calls)
    finally:
        for channel in channels:
            await channel.close()
        for selector in selectors:
            await selector.stop()
        admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        for name, store, _ in loaded:
            await store.stop()
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    results = []
    for rows, (stats_times, timeline_times), facts, (_, _, load_seconds) in zip(
        sizes, timings, seen, loaded, strict=True
    ):
        median, p95 = _summary(stats_times)
        timeline_median, timeline_p95 = _summary(timeline_times)
        results.append(
            {
                "history_rows": rows,
                "calls": calls,
                "window_days": days,
                "buckets_in_reply": facts["buckets"],
                "median_ms": median,
                "p95_ms": p95,
                "timeline_hours": hours,
                "timeline_model_hours_with_attempts": facts["timeline_hours"],
                "timeline_prompts": facts["timeline_prompts"],
                "timeline_median_ms": timeline_median,
                "timeline_p95_ms": timeline_p95,
                "load_seconds": round(load_seconds, 1),
            }
        )
    return results


async def run(
    sizes: list[int],
    calls: int,
    days: int,
    out: Path,
    server_url: str | None = None,
    hours: int = 24,
) -> list[dict[str, float | int]]:
    """Measures every size, prints a table and writes the JSON results to `out`.

    `server_url` (else BENCH_DATABASE_URL, else an embedded server) is where databases are made.
    """
    async with admin_server(server_url) as admin_url:
        results = await measure(admin_url, sizes, calls, days, hours)
    print(
        f"{calls} calls each, interleaved: GetModelStatistics (ModelStore, all models, {days}-day "
        f"window) and GetModelTimeline (Selector, {hours} h)"
    )
    print(
        f"{'history rows':>14} {'buckets':>8} {'median ms':>10} {'p95 ms':>9} "
        f"{'timeline median ms':>19} {'timeline p95 ms':>16} {'load s':>8}"
    )
    for result in results:
        print(
            f"{result['history_rows']:>14,} {result['buckets_in_reply']:>8} "
            f"{result['median_ms']:>10.2f} {result['p95_ms']:>9.2f} "
            f"{result['timeline_median_ms']:>19.2f} {result['timeline_p95_ms']:>16.2f} "
            f"{result['load_seconds']:>8.1f}"
        )
    if len(results) >= 2:
        ratio = results[-1]["median_ms"] / results[0]["median_ms"]
        timeline = results[-1]["timeline_median_ms"] / results[0]["timeline_median_ms"]
        print(f"median ratio largest/smallest: statistics {ratio:.2f}, timeline {timeline:.2f}")
    document = json.dumps({"benchmark": "statistics", "results": results}, indent=2) + "\n"
    await write_json(out, document)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.statistics", description=__doc__)
    parser.add_argument("--rows", default="10000,1000000", help="comma-separated history sizes")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--days", type=int, default=7, help="statistics window in days")
    parser.add_argument("--hours", type=int, default=24, help="timeline window in hours")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(size) for size in args.rows.split(",")]
    asyncio.run(run(sizes, args.calls, args.days, args.out, hours=args.hours))


if __name__ == "__main__":
    main()
