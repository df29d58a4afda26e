"""The client side: paired sequential requests for added latency, concurrent ones for throughput."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from bench.overhead.stack import API_KEY, MAX_OUTPUT_TOKENS, MODEL_ID, RunningStack

PROMPT = "Benchmark prompt: reply with one short sentence."
TIMEOUT = aiohttp.ClientTimeout(total=30)
Timing = TypeVar("Timing")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (`pct` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values_ms: Sequence[float]) -> dict[str, float]:
    """Median, p95 and p99 in milliseconds, rounded to microseconds."""
    return {
        "median_ms": round(percentile(values_ms, 50), 3),
        "p95_ms": round(percentile(values_ms, 95), 3),
        "p99_ms": round(percentile(values_ms, 99), 3),
    }


class RequestFailed(Exception):
    """A request that did not come back as a successful answer."""


def direct_body() -> dict[str, Any]:
    """The body the Selector itself sends to the provider for `PROMPT`."""
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_OUTPUT_TOKENS,
        "stream": False,
    }


async def ask_direct(session: aiohttp.ClientSession, stack: RunningStack) -> float:
    """One chat completion straight from the simulator; its duration in ms."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    began = time.perf_counter()
    async with session.post(stack.provider_url, json=direct_body(), headers=headers) as reply:
        body = await reply.json()
        elapsed = (time.perf_counter() - began) * 1000
    if reply.status != 200 or not body["choices"][0]["message"]["content"]:
        raise RequestFailed(f"simulator answered {reply.status}")
    return elapsed


async def ask_gateway(
    session: aiohttp.ClientSession, stack: RunningStack, headers: dict[str, str] | None = None
) -> float:
    """One ProcessPrompt as JSON through Envoy; its duration in ms."""
    began = time.perf_counter()
    async with session.post(stack.process_url, json={"prompt": PROMPT}, headers=headers) as reply:
        body = await reply.json(content_type=None)
        elapsed = (time.perf_counter() - began) * 1000
    if reply.status != 200 or body.get("success") is not True or not body.get("response"):
        raise RequestFailed(f"gateway answered {reply.status}: {str(body)[:200]}")
    return elapsed


def client_session(connections: int) -> aiohttp.ClientSession:
    """A keep-alive session with up to `connections` connections."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=TIMEOUT)


@dataclass(frozen=True)
class LatencyRun:
    """Per-request durations of the direct and the gateway requests, in pairs."""

    direct_ms: list[float]
    gateway_ms: list[float]

    def report(self) -> dict[str, Any]:
        """Percentiles of each side, of the paired difference, and the difference of medians."""
        paired = [g - d for g, d in zip(self.gateway_ms, self.direct_ms, strict=True)]
        direct, gateway = summary(self.direct_ms), summary(self.gateway_ms)
        return {
            "requests": len(paired),
            "direct": direct,
            "gateway": gateway,
            "added_paired": summary(paired),
            "added_percentile_difference": {
                key: round(gateway[key] - direct[key], 3) for key in direct
            },
        }


async def warm_up(stack: RunningStack, requests: int) -> None:
    """Opens connections and warms both paths (not measured)."""
    async with client_session(1) as session:
        for _ in range(requests):
            await ask_direct(session, stack)
            await ask_gateway(session, stack)


async def pairs(
    stack: RunningStack,
    requests: int,
    direct: Callable[[aiohttp.ClientSession, RunningStack], Awaitable[Timing]],
    gateway: Callable[[aiohttp.ClientSession, RunningStack], Awaitable[Timing]],
) -> tuple[list[Timing], list[Timing]]:
    """`requests` pairs, one after another: a direct request, then the same through the gateway.

    Alternating keeps slow drifts of the machine out of the difference. Each side keeps its own
    keep-alive connection, as a client of either would.
    """
    direct_timings: list[Timing] = []
    gateway_timings: list[Timing] = []
    async with client_session(1) as direct_session, client_session(1) as gateway_session:
        await direct(direct_session, stack)
        await gateway(gateway_session, stack)
        for _ in range(requests):
            direct_timings.append(await direct(direct_session, stack))
            gateway_timings.append(await gateway(gateway_session, stack))
    return direct_timings, gateway_timings


async def measure_latency(stack: RunningStack, requests: int) -> LatencyRun:
    """Added latency of ProcessPrompt: `requests` pairs (see `pairs`)."""
    return LatencyRun(*await pairs(stack, requests, ask_direct, ask_gateway))


@dataclass(frozen=True)
class ThroughputRun:
    """Outcome of a fixed number of requests sent by `concurrency` workers."""

    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    first_error: str

    def report(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests / self.seconds, 1),
            "errors": self.errors,
            "first_error": self.first_error,
            "p50_ms": round(percentile(self.latencies_ms, 50), 3) if self.latencies_ms else None,
            "p99_ms": round(percentile(self.latencies_ms, 99), 3) if self.latencies_ms else None,
        }


async def measure_throughput(
    stack: RunningStack,
    requests: int,
    concurrency: int,
    ask: Callable[[aiohttp.ClientSession, RunningStack], Awaitable[float]] = ask_gateway,
) -> ThroughputRun:
    """Sends `requests` calls of `ask` (ProcessPrompt through Envoy), `concurrency` at a time."""
    latencies: list[float] = []
    failures: list[str] = []
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                latencies.append(await ask(session, stack))
            except (RequestFailed, aiohttp.ClientError, TimeoutError, ValueError) as error:
                failures.append(f"{type(error).__name__}: {error}")

    async with client_session(concurrency) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return ThroughputRun(
        requests,
        concurrency,
        seconds,
        latencies,
        len(failures),
        failures[0] if failures else "",
    )
