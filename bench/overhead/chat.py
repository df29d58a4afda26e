"""The OpenAI-compatible face: whole answers beside ProcessPrompt, time to first token, streams.

The latency runs pair each request through Envoy with the same one sent straight to the
simulator, as ProcessPrompt's run does (`load.pairs`). A streamed request is timed at its first
content chunk (a non-empty `delta.content`; the role chunk before it carries none) and at its end
(`data: [DONE]`), and counts only when it ends with `[DONE]`, without an error event, with some
content.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.overhead.load import (
    PROMPT,
    LatencyRun,
    RequestFailed,
    ThroughputRun,
    ask_direct,
    ask_gateway,
    client_session,
    direct_body,
    measure_throughput,
    pairs,
)
from bench.overhead.stack import API_KEY, RunningStack

MESSAGES = [{"role": "user", "content": PROMPT}]
DONE = "[DONE]"


async def ask_chat(session: aiohttp.ClientSession, stack: RunningStack) -> float:
    """One non-streaming chat completion through Envoy; its duration in ms."""
    began = time.perf_counter()
    async with session.post(stack.chat_url, json={"messages": MESSAGES}) as reply:
        body = await reply.json(content_type=None)
        elapsed = (time.perf_counter() - began) * 1000
    if reply.status != 200 or body.get("object") != "chat.completion":
        raise RequestFailed(f"chat completions answered {reply.status}: {str(body)[:200]}")
    if not body["choices"][0]["message"]["content"]:
        raise RequestFailed("chat completions answered with no content")
    return elapsed


@dataclass(frozen=True)
class Streamed:
    """When a stream's first content chunk and its end arrived, in ms after the request began."""

    first_content_ms: float
    complete_ms: float


async def _read_stream(reply: aiohttp.ClientResponse, began: float, side: str) -> Streamed:
    if reply.status != 200:
        raise RequestFailed(f"{side} answered {reply.status}: {(await reply.text())[:200]}")
    first: float | None = None
    async for raw in reply.content:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == DONE:
            if first is None:
                raise RequestFailed(f"{side} streamed no content")
            return Streamed(first, (time.perf_counter() - began) * 1000)
        event: dict[str, Any] = json.loads(data)
        if "error" in event:
            raise RequestFailed(f"{side} streamed an error: {data[:200]}")
        choices = event.get("choices") or [{}]
        if first is None and choices[0].get("delta", {}).get("content"):
            first = (time.perf_counter() - began) * 1000
    raise RequestFailed(f"{side}'s stream ended without {DONE}")


async def stream_direct(session: aiohttp.ClientSession, stack: RunningStack) -> Streamed:
    """One chat completion streamed straight from the simulator, asked as the Selector asks."""
    body = {**direct_body(), "stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    began = time.perf_counter()
    async with session.post(stack.provider_url, json=body, headers=headers) as reply:
        return await _read_stream(reply, began, "the simulator")


async def stream_gateway(session: aiohttp.ClientSession, stack: RunningStack) -> Streamed:
    """One `stream: true` chat completion through Envoy."""
    began = time.perf_counter()
    async with session.post(stack.chat_url, json={"messages": MESSAGES, "stream": True}) as reply:
        return await _read_stream(reply, began, "the gateway")


async def _stream_gateway_ms(session: aiohttp.ClientSession, stack: RunningStack) -> float:
    return (await stream_gateway(session, stack)).complete_ms


async def warm_up(stack: RunningStack, requests: int) -> None:
    """Warms the whole and the streamed chat path on both sides (not measured)."""
    async with client_session(1) as session:
        for _ in range(requests):
            await ask_chat(session, stack)
            await stream_direct(session, stack)
            await stream_gateway(session, stack)


async def measure_whole(stack: RunningStack, requests: int) -> dict[str, Any]:
    """`requests` triples: direct, then ProcessPrompt and `/v1/chat/completions` (their order
    swapped every other triple), each side on its own keep-alive connection. Both faces' added
    latency and `chat_minus_process_ms`, the difference of their added percentiles."""
    direct_ms: list[float] = []
    process_ms: list[float] = []
    chat_ms: list[float] = []
    async with (
        client_session(1) as direct,
        client_session(1) as process,
        client_session(1) as chat,
    ):
        await ask_direct(direct, stack)
        await ask_gateway(process, stack)
        await ask_chat(chat, stack)
        for index in range(requests):
            direct_ms.append(await ask_direct(direct, stack))
            if index % 2:
                chat_ms.append(await ask_chat(chat, stack))
                process_ms.append(await ask_gateway(process, stack))
            else:
                process_ms.append(await ask_gateway(process, stack))
                chat_ms.append(await ask_chat(chat, stack))
    process_report = LatencyRun(direct_ms, process_ms).report()
    chat_report = LatencyRun(direct_ms, chat_ms).report()
    added_process, added_chat = process_report["added_paired"], chat_report["added_paired"]
    return {
        "requests": requests,
        "process": process_report,
        "chat": chat_report,
        "chat_minus_process_ms": {
            key: round(added_chat[key] - added_process[key], 3) for key in added_chat
        },
    }


async def measure_first_token(stack: RunningStack, requests: int) -> dict[str, Any]:
    """`requests` pairs of streams (see `load.pairs`): time to the first content chunk
    (`first_token`) and to the end (`complete`) of each."""
    direct, gateway = await pairs(stack, requests, stream_direct, stream_gateway)
    return {
        "first_token": LatencyRun(
            [s.first_content_ms for s in direct], [s.first_content_ms for s in gateway]
        ).report(),
        "complete": LatencyRun(
            [s.complete_ms for s in direct], [s.complete_ms for s in gateway]
        ).report(),
    }


async def measure_stream_throughput(
    stack: RunningStack, requests: int, concurrency: int
) -> ThroughputRun:
    """`requests` complete streams through Envoy, `concurrency` at a time."""
    return await measure_throughput(stack, requests, concurrency, _stream_gateway_ms)
