"""Throughput through Envoy with one and with N Selector replicas, and what each process costs.

For each replica count a fresh stack (bench.overhead.stack) is started; the same aiohttp client
sends the same number of ProcessPrompt requests at each concurrency. Around each run the CPU time
of every process is read from /proc/<pid>/stat, and PostgreSQL's own counters
(`pg_stat_database`: commits, rows inserted and updated) give the database's writes per prompt.
From the CPU milliseconds per request the run projects a 16-core machine (docs/adr/0015).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.overhead import history, load, procs
from bench.overhead.stack import RunningStack, start

PROJECTED_CORES = 16
_WRITES = """
SELECT xact_commit, tup_inserted, tup_updated, tup_deleted
FROM pg_stat_database WHERE datname = current_database()
"""


async def database_writes(database_url: str) -> dict[str, int]:
    """PostgreSQL's cumulative commits and rows written in the ModelStore's database."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            # The statistics of this transaction's snapshot would hide the latest counts.
            await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            row = (await connection.execute(text(_WRITES))).one()
    finally:
        await engine.dispose()
    return {
        "commits": int(row.xact_commit),
        "rows_inserted": int(row.tup_inserted),
        "rows_updated": int(row.tup_updated),
        "rows_deleted": int(row.tup_deleted),
    }


_SIZES = """
SELECT (SELECT count(*) FROM prompt_history) AS prompts,
       pg_total_relation_size('prompt_history') AS history_bytes,
       (SELECT count(*) FROM model_attempts) AS attempts,
       pg_total_relation_size('model_attempts') AS attempts_bytes
"""


async def bytes_per_prompt(database_url: str) -> dict[str, float]:
    """Disk per recorded prompt (table, indexes, TOAST) of the history and of the attempts."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            row = (await connection.execute(text(_SIZES))).one()
    finally:
        await engine.dispose()
    return {
        "prompt_history": round(row.history_bytes / max(1, row.prompts)),
        "model_attempts": round(row.attempts_bytes / max(1, row.prompts)),
        "prompts": int(row.prompts),
    }


def cpu_seconds(stack: RunningStack) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack (every replica apart)."""
    seconds = {name: procs.cpu_seconds(stack.pid(name)) for name in stack.children}
    seconds["postgres"] = procs.total_cpu_seconds(stack.postgres_pids())
    seconds["client"] = time.process_time()
    return seconds


async def one_run(stack: RunningStack, requests: int, concurrency: int) -> dict[str, Any]:
    """`requests` ProcessPrompts at `concurrency`; throughput, CPU per request, writes."""
    database_url = stack.database_url()
    rows_before = await history.count_rows(database_url)
    cpu_before = cpu_seconds(stack)
    writes_before = await database_writes(database_url)
    run = await load.measure_throughput(stack, requests, concurrency)
    cpu_after = cpu_seconds(stack)
    writes_after = await settled_writes(database_url, rows_before, requests, writes_before)
    # The records' writes settle after the run; the commits counted include the ones made while
    # waiting for them, and the few made by the counter queries themselves (three per reading).
    per_request = {
        name: round((cpu_after[name] - cpu_before[name]) / requests * 1000, 3) for name in cpu_after
    }
    replicas = stack.selector_names
    per_request["selectors"] = round(sum(per_request[name] for name in replicas), 3)
    writes = {
        key: round((writes_after[key] - writes_before[key]) / requests, 3) for key in writes_after
    }
    return {
        **run.report(),
        "cpu_ms_per_request": per_request,
        "postgres_writes_per_request": writes,
    }


async def settled_writes(
    database_url: str,
    rows_before: dict[str, int],
    requests: int,
    before: dict[str, int],
    timeout: float = 20.0,
) -> dict[str, int]:
    """PostgreSQL's counters once the run's records are in and counted.

    The Selectors hand their records over every 0.25 s, and a PostgreSQL backend reports its
    counters to `pg_stat_database` every second or, once idle, up to 10 s later: wait until both
    tables hold the run's `requests` rows more and the counters show at least as many inserted
    (or `timeout`).
    """
    await history.wait_for_rows(database_url, min(rows_before.values()) + requests, timeout)
    stored = await history.count_rows(database_url)
    inserted = sum(stored.values()) - sum(rows_before.values())
    deadline = time.monotonic() + timeout
    while True:
        after = await database_writes(database_url)
        if after["rows_inserted"] - before["rows_inserted"] >= inserted:
            return after
        if time.monotonic() > deadline:
            return after
        await asyncio.sleep(0.5)


def memory(stack: RunningStack) -> dict[str, float]:
    """Peak RSS of each replica and of ModelStore, in MiB."""
    mb = {name: round(procs.peak_rss_mb(stack.pid(name)), 1) for name in stack.selector_names}
    mb["model_store"] = round(procs.peak_rss_mb(stack.pid("data")), 1)
    mb["envoy"] = round(procs.peak_rss_mb(stack.pid("envoy")), 1)
    return mb


def _count(value: int | None) -> str:
    return "not measured (run too short)" if value is None else f"{value:,}"


def projection(run: dict[str, Any], replicas: int, cores: int = PROJECTED_CORES) -> dict[str, Any]:
    """Prompts/s on `cores` cores from the CPU milliseconds per request of each process.

    Bounds: every core busy (the sum of the server-side processes' CPU per request: Selectors,
    ModelStore, PostgreSQL, Envoy; the simulator and the client stand in for the providers and
    the callers, so they are left out); each Selector replica and the one ModelStore are single
    event loops, so one of them cannot use more than one core.
    """
    cpu = run["cpu_ms_per_request"]
    server = cpu["selectors"] + cpu["data"] + cpu["postgres"] + cpu["envoy"]
    per_selector_ms = cpu["selectors"]
    # A process whose CPU did not move by one clock tick in a short run bounds nothing measurable.
    measured = {
        "all_cores": cores * 1000 / server if server else None,
        "selector_replicas": replicas * 1000 / per_selector_ms if per_selector_ms else None,
        "one_model_store": 1000 / cpu["data"] if cpu["data"] else None,
    }
    bounds = {k: round(v) for k, v in measured.items() if v is not None}
    limit = min(bounds, key=bounds.__getitem__) if bounds else None
    return {
        "cores": cores,
        "selector_replicas": replicas,
        "server_cpu_ms_per_request": round(server, 3),
        "bounds_prompts_per_second": {k: bounds.get(k) for k in measured},
        "prompts_per_second": bounds[limit] if limit else None,
        "limited_by": limit,
    }


async def measure(
    replica_counts: list[int],
    concurrencies: list[int],
    requests: int,
    warm_up: int,
    say: Callable[[str], Any],
) -> dict[str, Any]:
    """Every run: for each replica count a fresh stack, each concurrency on it."""
    runs: list[dict[str, Any]] = []
    memories: dict[str, dict[str, float]] = {}
    sizes: dict[str, float] = {}
    for replicas in replica_counts:
        folder = Path(tempfile.mkdtemp(prefix="aiselector-replicas-"))
        try:
            say(f"replicas: starting a stack with {replicas} Selector replica(s) ...")
            stack = await start(folder, replicas=replicas)
            try:
                await load.warm_up(stack, warm_up)
                for concurrency in concurrencies:
                    say(f"replicas: {replicas} × Selector, {requests} at c={concurrency} ...")
                    run = await one_run(stack, requests, concurrency)
                    runs.append({"replicas": replicas, "concurrency": concurrency, **run})
                memories[str(replicas)] = memory(stack)
                sizes = await bytes_per_prompt(stack.database_url())
            finally:
                await stack.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    most = max(replica_counts)
    best = max((r for r in runs if r["replicas"] == most), key=lambda r: r["requests_per_second"])
    one = [r for r in runs if r["replicas"] == 1]
    per_replica = max(one, key=lambda r: r["requests_per_second"]) if one else best
    first = memories[str(min(replica_counts))]
    return {
        "requests": requests,
        "runs": runs,
        "memory_mb": memories,
        "selector_plus_store_mb": round(first["selector"] + first["model_store"], 1),
        # The run's own prompts, with their attempts (the last stack's): history growth per day.
        "bytes_per_prompt": sizes,
        "prompts_per_second_one_replica": per_replica["requests_per_second"],
        "projection": projection(best, replicas=max(1, PROJECTED_CORES // 2)),
    }


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The table rows of the replicas section."""
    out: list[tuple[str, str, str, str]] = []
    for run in results["runs"]:
        cpu = run["cpu_ms_per_request"]
        writes = run["postgres_writes_per_request"]
        out.append(
            (
                f"replicas {run['replicas']}, c={run['concurrency']}, n={run['requests']}",
                f"{run['requests_per_second']:.0f} req/s, {run['errors']} errors, "
                f"p50 {run['p50_ms']:.1f} / p99 {run['p99_ms']:.1f} ms",
                "0 errors",
                "ok" if run["errors"] == 0 else "MISSED",
            )
        )
        out.append(
            (
                "  CPU ms/request: selectors / data / postgres / envoy / sim / client",
                " / ".join(
                    f"{cpu[k]:.2f}"
                    for k in ("selectors", "data", "postgres", "envoy", "simulator", "client")
                ),
                "",
                "",
            )
        )
        out.append(
            (
                "  PostgreSQL per prompt: commits / rows inserted / updated",
                f"{writes['commits']:.3f} / {writes['rows_inserted']:.2f} / "
                f"{writes['rows_updated']:.2f}",
                "",
                "",
            )
        )
    for replicas, mb in results["memory_mb"].items():
        out.append(
            (
                f"peak RSS with {replicas} replica(s), MB",
                ", ".join(f"{k} {v:.0f}" for k, v in mb.items()),
                "",
                "",
            )
        )
    sizes = results["bytes_per_prompt"]
    out.append(
        (
            "disk per prompt: history + attempts, bytes",
            f"{sizes['prompt_history']} + {sizes['model_attempts']} "
            f"(over {sizes['prompts']:,} recorded prompts)",
            "",
            "",
        )
    )
    projected = results["projection"]
    out.append(
        (
            f"projected, {projected['cores']} cores, {projected['selector_replicas']} replicas",
            f"{_count(projected['prompts_per_second'])} prompts/s (limited by "
            f"{projected['limited_by']}: "
            + ", ".join(
                f"{k} {_count(v)}" for k, v in projected["bounds_prompts_per_second"].items()
            )
            + ")",
            "",
            "",
        )
    )
    return out
