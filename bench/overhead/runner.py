"""One benchmark run: start the stack, measure, load history, measure again, stop, report."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.overhead import chat, history, keys, load, procs, replicas, report
from bench.overhead.stack import (
    CHUNK_DELAY_SECONDS,
    FIRST_TOKEN_DELAY_SECONDS,
    STREAM_CHUNKS,
    RunningStack,
    start,
)
from services.stack.settings import default_replicas


@dataclass(frozen=True)
class Plan:
    """How much to send and load."""

    latency_requests: int = 500
    throughput_requests: int = 5000
    concurrency: int = 32
    history_rows: int = 1_000_000
    warm_up_requests: int = 100
    quick: bool = False
    # Throughput through Envoy with each number of Selector replicas (bench.overhead.replicas):
    # one, and one per two cores but at least two; at each concurrency.
    replica_counts: tuple[int, ...] = (1, max(2, default_replicas(os.cpu_count())))
    replica_concurrencies: tuple[int, ...] = (32, 64)
    replica_requests: int = 3000


QUICK = Plan(
    latency_requests=50,
    throughput_requests=200,
    history_rows=10_000,
    warm_up_requests=10,
    quick=True,
    replica_counts=(2,),
    replica_concurrencies=(32,),
    replica_requests=100,
)
# Seconds the Selector gets to deliver its buffered records to ModelStore after the load.
RECORD_WAIT_SECONDS = 30.0


def _change_pct(before: float, after: float) -> float:
    return round((after - before) / before * 100, 1) if before else 0.0


def _cpu(stack: RunningStack) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack and by this client."""
    seconds = {
        name: procs.cpu_seconds(stack.pid(name))
        for name in ("selector", "data", "envoy", "simulator")
    }
    seconds["postgres"] = procs.total_cpu_seconds(stack.postgres_pids())
    seconds["client"] = time.process_time()
    return seconds


def _memory(stack: RunningStack) -> dict[str, float]:
    selector = procs.peak_rss_mb(stack.pid("selector"))
    model_store = procs.peak_rss_mb(stack.pid("data"))
    return {
        "selector": round(selector, 1),
        "model_store": round(model_store, 1),
        "selector_plus_store": round(selector + model_store, 1),
        "envoy": round(procs.peak_rss_mb(stack.pid("envoy")), 1),
    }


async def _openai(stack: RunningStack, plan: Plan, say: Any) -> tuple[dict[str, Any], int]:
    """The OpenAI-compatible face's measurements, and how many requests they sent through Envoy."""
    await chat.warm_up(stack, plan.warm_up_requests)
    say(f"/v1/chat/completions beside ProcessPrompt: {plan.latency_requests} paired requests ...")
    whole = await chat.measure_whole(stack, plan.latency_requests)
    say(f"time to first token: {plan.latency_requests} paired streams ...")
    streamed = await chat.measure_first_token(stack, plan.latency_requests)
    say(
        f"streaming throughput: {plan.throughput_requests} streams "
        f"at concurrency {plan.concurrency} ..."
    )
    throughput = await chat.measure_stream_throughput(
        stack, plan.throughput_requests, plan.concurrency
    )
    # Warm-up: a whole and a streamed chat each; each timed run: one untimed request per side first.
    sent = 2 * plan.warm_up_requests
    sent += 2 + 2 * plan.latency_requests
    sent += 1 + plan.latency_requests
    sent += plan.throughput_requests
    script = {
        "chunks": STREAM_CHUNKS,
        "first_token_delay_ms": FIRST_TOKEN_DELAY_SECONDS * 1000,
        "chunk_delay_ms": CHUNK_DELAY_SECONDS * 1000,
    }
    streaming = {"script": script, **streamed, "throughput": throughput.report()}
    return {"chat_completions": whole, "streaming": streaming}, sent


async def measure(stack: RunningStack, plan: Plan, say: Any) -> dict[str, Any]:
    """Every measurement on a started stack.

    Order: warm-up, throughput, added latency, the OpenAI-compatible face (whole answers beside
    ProcessPrompt, time to first token, streaming throughput), history load, added latency again;
    each ProcessPrompt latency run follows the same VACUUM ANALYZE and warm-up, so only the loaded
    rows differ between them. Memory is the peak over all of it.
    """
    say(
        "pids: "
        + ", ".join(f"{name} {child.pid}" for name, child in stack.children.items())
        + " (attach py-spy to profile)"
    )
    database_url = stack.database_url()
    await load.warm_up(stack, plan.warm_up_requests)
    say(f"throughput: {plan.throughput_requests} requests at concurrency {plan.concurrency} ...")
    cpu_before = _cpu(stack)
    throughput = await load.measure_throughput(stack, plan.throughput_requests, plan.concurrency)
    cpu_after = _cpu(stack)
    sent = plan.warm_up_requests + plan.throughput_requests
    # Both latency runs start with every record delivered: only the loaded history differs.
    await history.wait_for_rows(database_url, sent, RECORD_WAIT_SECONDS)
    await history.vacuum(database_url)
    await load.warm_up(stack, plan.warm_up_requests)
    sent += plan.warm_up_requests
    say(f"added latency: {plan.latency_requests} paired requests ...")
    before = await load.measure_latency(stack, plan.latency_requests)
    sent += 1 + plan.latency_requests
    # The face's runs start with no records in flight, as the latency run before them did.
    await history.wait_for_rows(database_url, sent, RECORD_WAIT_SECONDS)
    openai, openai_sent = await _openai(stack, plan, say)
    sent += openai_sent
    recorded = await history.wait_for_rows(database_url, sent, RECORD_WAIT_SECONDS)
    say(f"client key check: {plan.latency_requests} pairs with and without a key ...")
    client_keys, _ = await keys.measure(stack, plan.latency_requests)
    say(f"loading {plan.history_rows:,} history rows and as many attempts ...")
    load_seconds = await history.load_history(database_url, plan.history_rows)
    await history.vacuum(database_url)
    await load.warm_up(stack, plan.warm_up_requests)
    say(f"added latency with the loaded history: {plan.latency_requests} paired requests ...")
    after = await load.measure_latency(stack, plan.latency_requests)
    before_report, after_report = before.report(), after.report()
    return {
        "latency": before_report,
        "throughput": throughput.report(),
        "cpu_ms_per_request": {
            name: round((cpu_after[name] - cpu_before[name]) / throughput.requests * 1000, 3)
            for name in cpu_after
        },
        "recorded_rows": {"expected": sent, **recorded},
        "history": {
            "rows_loaded": plan.history_rows,
            "load_seconds": round(load_seconds, 1),
            "latency": after_report,
            "added_median_change_pct": _change_pct(
                before_report["added_paired"]["median_ms"],
                after_report["added_paired"]["median_ms"],
            ),
            "added_p95_change_pct": _change_pct(
                before_report["added_paired"]["p95_ms"], after_report["added_paired"]["p95_ms"]
            ),
        },
        **openai,
        "client_keys": client_keys,
        "memory_mb": _memory(stack),
    }


async def run(plan: Plan, out: Path, say: Any = print) -> dict[str, Any]:
    """Runs the benchmark in a fresh temporary folder, prints the table, writes `out`."""
    folder = Path(tempfile.mkdtemp(prefix="aiselector-overhead-"))
    try:
        say("starting simulator, ModelStore (embedded PostgreSQL), Selector, Envoy ...")
        stack = await start(folder)
        try:
            measured = await measure(stack, plan, say)
        finally:
            await stack.stop()
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    measured["replicas"] = await replicas.measure(
        list(plan.replica_counts),
        list(plan.replica_concurrencies),
        plan.replica_requests,
        plan.warm_up_requests,
        say,
    )
    results: dict[str, Any] = {
        "benchmark": "overhead",
        "quick": plan.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "plan": {
            "latency_requests": plan.latency_requests,
            "throughput_requests": plan.throughput_requests,
            "concurrency": plan.concurrency,
            "history_rows": plan.history_rows,
            "replica_counts": list(plan.replica_counts),
            "replica_concurrencies": list(plan.replica_concurrencies),
            "replica_requests": plan.replica_requests,
        },
        "startup_seconds": {k: round(v, 3) for k, v in stack.ready_seconds.items()},
        **measured,
        "targets": report.TARGETS,
    }
    results["met"] = report.verdicts(results)
    for line in report.table(results):
        say(line)
    await asyncio.to_thread(report.write, out, results)
    return results
