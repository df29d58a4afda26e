"""Streamed answers as Server-Sent Events in both wire formats, with the scripted stream faults.

OpenAI-compatible: `data: {chat.completion.chunk}` events — a role chunk, content deltas, a finish
chunk, usage (a separate chunk when `stream_options.include_usage`; Groq and OpenRouter always put
it in the finish chunk, Groq also under `x_groq.usage`, as recorded), then `data: [DONE]`.
OpenRouter sends `: OPENROUTER PROCESSING` comment lines until the first content. Gemini
(`alt=sse`): every event is a whole `GenerateContentResponse`, events end with a blank line
(`\\r\\n\\r\\n`), the last carries `finishReason` and the final `usageMetadata`, and there is no
`[DONE]`.

Timeline: response headers (after the script's `latency`), `first_token_delay`, the first chunk,
then `chunk_delay` between content chunks. Faults after `fault_after` content chunks:
`stream_error` sends OpenRouter's mid-stream error chunk (top-level `error`, `finish_reason:
"error"`, HTTP 200 — the one recorded shape for OpenAI-compatible streams) or, on Gemini, a SAFETY
finish without content, then ends the stream; `stream_malformed` sends a data line of invalid JSON
in place of the next content chunk and carries on; `stream_drop` aborts the connection;
`stream_stall` goes quiet without closing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar

from aiohttp import web

from services.simulator.call import GEMINI, Call
from services.simulator.engine import Decision
from services.simulator.profiles import profile_named
from services.simulator.recorded import recorded
from services.simulator.replies import (
    GEMINI_FINISH,
    Answer,
    answer_for,
    completion_id,
    gemini_usage,
    openai_usage,
    success_headers,
    usage_counts,
)
from services.simulator.script import SIMULATED_PREFIX

# How often OpenRouter's keep-alive comment is repeated while no content has been sent.
KEEPALIVE_SECONDS = 1.0
# Faults that end the stream where they happen.
_CUTTING = frozenset({"stream_error", "stream_stall", "stream_drop"})
# Waits `seconds` (None: until the client leaves or the simulator stops), calling the ping (which
# sends a keep-alive comment) every KEEPALIVE_SECONDS meanwhile; True if the stream must end now.
Ping = Callable[[], Awaitable[None]]
Hold = Callable[[float | None, Ping | None], Awaitable[bool]]


class StreamDropped(Exception):
    """The script wants the connection dropped here."""


def split(text: str, count: int) -> list[str]:
    """`text` in at most `count` consecutive pieces, cut after whitespace where possible."""
    if not text:
        return []
    words = re.split(r"(?<=\s)", text)
    size = -(-len(words) // count)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class _Stream:
    """One SSE stream in the OpenAI-compatible format; counts the content chunks sent."""

    separator: ClassVar[bytes] = b"\n\n"

    def __init__(self, response: web.StreamResponse, call: Call, decision: Decision) -> None:
        self.response = response
        self.call = call
        self.profile = profile_named(decision.profile)
        self.with_usage = decision.script.usage
        self.chunks = 0
        self.id = completion_id()
        self.created = int(time.time())

    async def raw(self, line: bytes) -> None:
        await self.response.write(line + self.separator)

    async def event(self, payload: Any) -> None:
        await self.raw(b"data: " + json.dumps(payload).encode())

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.call.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "simulated": True,
        }

    async def start(self, answer: Answer) -> None:
        await self.event(self.chunk({"role": "assistant", "content": ""}))
        if answer.reasoning:
            await self.event(self.chunk({"reasoning": answer.reasoning}))

    async def content(self, piece: str) -> None:
        await self.event(self.chunk({"content": piece}))

    async def malformed(self) -> None:
        await self.raw(b'data: {"id": "' + self.id.encode() + b'", "choices": [{"delta": {"con')

    async def finish(self, answer: Answer) -> None:
        last = self.chunk({}, answer.finish)
        extra: list[dict[str, Any]] = []
        if self.with_usage:
            usage = openai_usage(*usage_counts(self.call, answer))
            if self.profile.name == "groq":
                last["x_groq"] = {"id": f"req_sim{self.created}", "usage": usage}
            if self.profile.usage_in_final_chunk:
                last["usage"] = usage
            elif self.call.include_usage:
                extra.append({**self.chunk({}), "choices": [], "usage": usage})
        for payload in (last, *extra):
            await self.event(payload)
        await self.raw(b"data: [DONE]")

    async def error(self) -> None:
        # openrouter/stream_mid_stream_error, worded for this stream.
        line = recorded("openrouter/stream_mid_stream_error")["stream"][2]
        chunk = json.loads(line.removeprefix("data: "))
        chunk["error"]["message"] = f"{SIMULATED_PREFIX} {chunk['error']['message']}"
        ours = {"id": self.id, "created": self.created, "model": self.call.model}
        await self.event({**chunk, **ours})


class _GeminiStream(_Stream):
    """One `alt=sse` stream of `GenerateContentResponse` events."""

    separator = b"\r\n\r\n"

    def candidate_event(self, parts: list[dict[str, Any]], usage: dict[str, int]) -> dict[str, Any]:
        candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.call.model,
            "simulated": True,
        }

    def _running_usage(self) -> dict[str, int]:
        prompt = self.call.prompt_tokens
        return {"promptTokenCount": prompt, "totalTokenCount": prompt}

    async def start(self, answer: Answer) -> None:
        if answer.reasoning:
            thought = [{"text": answer.reasoning, "thought": True}]
            await self.event(self.candidate_event(thought, self._running_usage()))

    async def content(self, piece: str) -> None:
        await self.event(self.candidate_event([{"text": piece}], self._running_usage()))

    async def malformed(self) -> None:
        await self.raw(b'data: {"candidates": [{"content": {"parts": [{"text": "')

    async def finish(self, answer: Answer) -> None:
        if answer.finish == "content_filter":
            await self.error()
            return
        usage = gemini_usage(*usage_counts(self.call, answer))
        event = self.candidate_event([{"text": ""}], usage)
        event["candidates"][0]["finishReason"] = GEMINI_FINISH[answer.finish]
        await self.event(event)

    async def error(self) -> None:
        # The SAFETY finish without content of gemini/stream_safety_mid_stream.
        line = recorded("gemini/stream_safety_mid_stream")["stream"][2]
        await self.event({**json.loads(line.removeprefix("data: ")), "simulated": True})


async def stream_answer(
    request: web.Request, call: Call, decision: Decision, entry: dict[str, Any], hold: Hold
) -> web.StreamResponse:
    """Streams the answer of `decision` (an answering behaviour or a stream fault); `entry` (the
    request's log entry) counts the content chunks sent. Raises StreamDropped to drop it."""
    behaviour = decision.behaviour
    settings = decision.script.stream
    headers = {**success_headers(decision), "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers=headers)
    response.content_type = "text/event-stream"
    await response.prepare(request)
    entry["status"] = 200
    stream = (_GeminiStream if call.wire == GEMINI else _Stream)(response, call, decision)
    keepalive = stream.profile.keepalive
    ping = partial(stream.raw, keepalive.encode()) if keepalive else None
    if ping is not None:
        await ping()
    if behaviour == "stream_silent_after_headers":
        await hold(None, ping)
        return response
    if await hold(decision.first_token_delay, ping):
        return response
    answer = answer_for(call, decision)
    await stream.start(answer)
    for index, piece in enumerate(split(answer.text, settings.chunks)):
        if behaviour in _CUTTING and index == settings.fault_after:
            break
        if index and await hold(decision.chunk_delay, None):
            return response
        if behaviour == "stream_malformed" and index == settings.fault_after:
            await stream.malformed()
        else:
            await stream.content(piece)
        stream.chunks += 1
        entry["chunks"] = stream.chunks
    if behaviour == "stream_drop":
        raise StreamDropped
    if behaviour == "stream_stall":
        await hold(None, None)
        return response
    if behaviour == "stream_error":
        await stream.error()
    else:
        await stream.finish(answer)
    await response.write_eof()
    return response
