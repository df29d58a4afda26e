"""Smoke test of the overhead benchmark: a quick run on the real stack prints and writes JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for label in (
        "added, paired per request, ms",
        "throughput, c=32, n=200",
        "peak RSS Selector + ModelStore, MB",
        "start to all SERVING, s",
        "change of added latency p50 / p95, %",
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

    # Bookkeeping was on: every request through the gateway left a history row and an attempt.
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
