"""Smoke test of the overhead benchmark: a quick run on the real stack prints and writes JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.overhead.stack import CHUNK_DELAY_SECONDS, FIRST_TOKEN_DELAY_SECONDS, STREAM_CHUNKS

ROOT = Path(__file__).resolve().parents[2]
PERCENTILES = {"median_ms", "p95_ms", "p99_ms"}
LATENCY_SECTIONS = {"direct", "gateway", "added_paired", "added_percentile_difference"}


def _check_latency(section: dict) -> None:
    assert set(section) >= LATENCY_SECTIONS | {"requests"}
    assert section["requests"] == 50
    for name in LATENCY_SECTIONS:
        assert set(section[name]) == PERCENTILES
    for name in ("direct", "gateway"):
        values = section[name]
        assert 0 < values["median_ms"] <= values["p95_ms"] <= values["p99_ms"]


def test_quick_run_prints_the_table_and_writes_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "gen")])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.overhead", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for label in (
        "added, paired per request, ms",
        "throughput, c=32, n=200",
        "peak RSS Selector + ModelStore, MB",
        "start to all SERVING, s",
        "change of added latency p50 / p95, %",
        "chat minus ProcessPrompt added, ms",
        "stream first token added, paired, ms",
        "stream throughput, c=32, n=200",
        "errors in the stream throughput run",
        "client key check added, paired, ms",
        "client key check alone (warm cache), µs",
        "replicas 2, c=32, n=100",
        "CPU ms/request: selectors / data / postgres / envoy / sim / client",
        "PostgreSQL per prompt: commits / rows inserted / updated",
        "peak RSS per replica: Selector + ModelStore, MB",
        "projected, 16 cores, 8 replicas",
    ):
        assert label in done.stdout

    results = json.loads(out.read_text())
    assert results["quick"] is True
    _check_latency(results["latency"])
    _check_latency(results["history"]["latency"])

    throughput = results["throughput"]
    assert throughput["requests"] == 200
    assert throughput["errors"] == 0, throughput["first_error"]
    assert throughput["requests_per_second"] > 0
    assert 0 < throughput["p50_ms"] <= throughput["p99_ms"]

    _check_openai(results)
    _check_replicas(results["replicas"])

    # The key check: pairs with and without a client key, and the check alone.
    keys = results["client_keys"]
    assert keys["requests"] == 50
    for name in ("without_key", "with_key", "added_paired"):
        assert set(keys[name]) == PERCENTILES
    assert 0 < keys["check_alone_us"]["median_us"] <= keys["check_alone_us"]["p99_us"]
    assert "key_check_added_median_ms" in results["met"]

    # Bookkeeping was on: every request through the gateway (streams too) left a history row and
    # an attempt.
    recorded = results["recorded_rows"]
    assert recorded["prompt_history"] == recorded["expected"]
    assert recorded["model_attempts"] == recorded["expected"]

    assert results["history"]["rows_loaded"] == 10_000
    assert isinstance(results["history"]["added_median_change_pct"], float)
    memory = results["memory_mb"]
    assert memory["selector"] > 0
    assert memory["model_store"] > 0
    assert memory["selector_plus_store"] == pytest.approx(
        memory["selector"] + memory["model_store"], abs=0.2
    )
    startup = results["startup_seconds"]
    assert set(startup) == {"simulator", "data", "selector", "envoy", "total"}
    assert startup["total"] >= max(v for k, v in startup.items() if k != "total")
    assert set(results["cpu_ms_per_request"]) == {
        "selector",
        "data",
        "envoy",
        "simulator",
        "postgres",
        "client",
    }
    assert set(results["met"]) == set(results["targets"])


def _check_openai(results: dict) -> None:
    whole = results["chat_completions"]
    assert whole["requests"] == 50
    _check_latency(whole["process"])
    _check_latency(whole["chat"])
    assert set(whole["chat_minus_process_ms"]) == PERCENTILES
    for key, difference in whole["chat_minus_process_ms"].items():
        added = whole["chat"]["added_paired"][key] - whole["process"]["added_paired"][key]
        assert difference == pytest.approx(added, abs=0.002)

    streaming = results["streaming"]
    _check_latency(streaming["first_token"])
    _check_latency(streaming["complete"])
    first_token_ms = FIRST_TOKEN_DELAY_SECONDS * 1000
    shortest_ms = first_token_ms + (STREAM_CHUNKS - 1) * CHUNK_DELAY_SECONDS * 1000
    assert streaming["script"] == {
        "chunks": STREAM_CHUNKS,
        "first_token_delay_ms": first_token_ms,
        "chunk_delay_ms": CHUNK_DELAY_SECONDS * 1000,
    }
    # Timed at the first content chunk (sent after the script's delay, not with the headers) and
    # at the end of the stream (after every chunk).
    for side in ("direct", "gateway"):
        assert streaming["first_token"][side]["median_ms"] >= first_token_ms
        assert streaming["complete"][side]["median_ms"] >= shortest_ms
    # Through the gateway the first chunk arrives while the rest is still on its way: streamed,
    # not buffered until the end (half the simulator's spacing, to leave room for a busy machine).
    gateway_gap = (
        streaming["complete"]["gateway"]["median_ms"]
        - streaming["first_token"]["gateway"]["median_ms"]
    )
    assert gateway_gap >= (shortest_ms - first_token_ms) / 2

    throughput = streaming["throughput"]
    assert throughput["requests"] == 200
    assert throughput["concurrency"] == 32
    assert throughput["errors"] == 0, throughput["first_error"]
    assert throughput["requests_per_second"] > 0
    assert shortest_ms <= throughput["p50_ms"] <= throughput["p99_ms"]


def _check_replicas(replicas: dict) -> None:
    """Two Selector replicas behind Envoy answered every request; each process was measured."""
    [run] = replicas["runs"]
    assert (run["replicas"], run["concurrency"], run["requests"]) == (2, 32, 100)
    assert run["errors"] == 0, run["first_error"]
    assert run["requests_per_second"] > 0
    cpu = run["cpu_ms_per_request"]
    assert {"selector", "selector-2", "selectors", "data", "envoy", "postgres"} <= set(cpu)
    assert cpu["selectors"] == pytest.approx(cpu["selector"] + cpu["selector-2"], abs=0.002)
    assert cpu["selector"] > 0
    assert cpu["selector-2"] > 0
    # Every prompt wrote its history row and attempt row, in batches (fewer commits than rows).
    writes = run["postgres_writes_per_request"]
    assert writes["rows_inserted"] >= 1.5
    assert 0 < writes["commits"] < writes["rows_inserted"]
    memory = replicas["memory_mb"]["2"]
    assert memory["selector"] > 0
    assert memory["selector-2"] > 0
    assert replicas["selector_plus_store_mb"] == pytest.approx(
        memory["selector"] + memory["model_store"], abs=0.2
    )
    assert replicas["bytes_per_prompt"]["prompt_history"] > 0
    projected = replicas["projection"]
    assert projected["cores"] == 16
    assert projected["prompts_per_second"] == min(projected["bounds_prompts_per_second"].values())
