"""Compares aiohttp and httpx as the shared provider HTTP client under concurrency, against the
provider simulator running in its own process: `python -m bench.http_clients [--requests N]`.

Prints a table (throughput, latency percentiles, client CPU per request) and writes JSON to
`bench/results/http_clients.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "http_clients.json"
BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Hello! Please respond with 'OK'"}],
    "max_tokens": 64,
}

Post = Callable[[str], Awaitable[int]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_simulator(latency: float) -> tuple[subprocess.Popen[bytes], str, Path]:
    scenario = Path(tempfile.mkstemp(suffix=".json")[1])
    scenario.write_text(json.dumps({"default": {"latency": latency}}))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"}
    command = [sys.executable, "-m", "services.simulator", "--scenario", str(scenario)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}/bench/v1/chat/completions", scenario
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the simulator did not start")


async def _run(post: Post, url: str, total: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    queue = iter(range(total))

    async def worker() -> None:
        nonlocal failures
        for _ in queue:
            start = time.perf_counter()
            status = await post(url)
            latencies.append(time.perf_counter() - start)
            failures += status != 200

    for _ in range(concurrency):  # warm-up: open the connections
        await post(url)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ordered = sorted(latencies)
    return {
        "requests": total,
        "failures": failures,
        "throughput_rps": total / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "client_cpu_us_per_request": 1e6 * cpu / total,
    }


async def _aiohttp(url: str, total: int, concurrency: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(target: str) -> int:
            async with session.post(target, json=BODY) as response:
                await response.json()
                return response.status

        return await _run(post, url, total, concurrency)


async def _httpx(url: str, total: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:

        async def post(target: str) -> int:
            response = await client.post(target, json=BODY)
            response.json()
            return response.status_code

        return await _run(post, url, total, concurrency)


CLIENTS = {"aiohttp": _aiohttp, "httpx": _httpx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0, help="simulated provider latency, s")
    args = parser.parse_args()
    process, url, scenario = _start_simulator(args.latency)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    try:
        for _ in range(args.rounds):
            for name, bench in CLIENTS.items():
                runs[name].append(asyncio.run(bench(url, args.requests, args.concurrency)))
    finally:
        process.terminate()
        process.wait(timeout=10)
        scenario.unlink()
    best = {name: max(results, key=lambda r: r["throughput_rps"]) for name, results in runs.items()}
    print(f"concurrency {args.concurrency}, {args.requests} requests, best of {args.rounds} rounds")
    print(f"{'client':8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}")
    for name, r in best.items():
        print(
            f"{name:8} {r['throughput_rps']:8.0f} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} "
            f"{r['p99_ms']:8.2f} {r['client_cpu_us_per_request']:11.0f}"
        )
    report: dict[str, Any] = {
        "benchmark": "http_clients",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": vars(args),
        "versions": {"aiohttp": aiohttp.__version__, "httpx": httpx.__version__},
        "best": best,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
