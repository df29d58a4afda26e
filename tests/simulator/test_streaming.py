"""Streamed answers over real HTTP in both wire formats, and every scripted stream fault as a
client reading Server-Sent Events sees it (every read bounded in time)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from services.simulator import start_simulator
from tests.fakes import eventually
from tests.simulator.helpers import (
    ask,
    chat_body,
    chat_url,
    key_headers,
    keys,
    missing,
    read_stream,
    recorded,
)

GEMINI_SEPARATOR = "\r\n\r\n"
# Groq chunk fields a client does not read; the simulator leaves them out.
GROQ_EXTRAS = frozenset(
    {"system_fingerprint", "logprobs", "queue_time", "prompt_time", "completion_time", "total_time"}
)


async def stream(http, sim, provider: str, model: str = "m", *, within: float = 5.0, **extra):
    body = chat_body(provider, model, **extra)
    if provider != "gemini":
        body["stream"] = True
    url = chat_url(sim, provider, model, stream=True)
    return await read_stream(http, url, body, key_headers(provider, "k"), within=within)


def joined(chunks: list[dict]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def script(sim, provider: str, **fields) -> None:
    sim.set_scripts({"scripts": {f"{provider}/*": {"latency": 0, **fields}}})


async def test_openai_stream_has_role_deltas_finish_usage_and_done(sim, http):
    script(sim, "alpha", text="one two three four five six", stream={"chunks": 3})

    seen = await stream(http, sim, "alpha", stream_options={"include_usage": True})
    _, _, whole = await ask(http, sim, "alpha", "m")

    assert (seen.status, seen.ended) == (200, True)
    assert seen.headers["content-type"].startswith("text/event-stream")
    chunks = seen.chunks()
    assert seen.data()[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("content")]
    assert len(content) == 3
    assert joined(chunks) == whole["choices"][0]["message"]["content"]
    finish = chunks[-2]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["object"] == "chat.completion.chunk" and c["simulated"] for c in chunks)
    [entry] = [e for e in sim.log() if e["stream"]]
    assert (entry["outcome"], entry["status"], entry["chunks"]) == ("ok", 200, 3)


async def test_without_include_usage_there_is_no_usage_chunk(sim, http):
    seen = await stream(http, sim, "alpha")

    assert not any("usage" in c for c in seen.chunks())
    assert seen.chunks()[-1]["choices"][0]["finish_reason"] == "stop"


async def test_groq_stream_has_the_recorded_chunk_shape_and_x_groq_usage(sim, http):
    seen = await stream(http, sim, "groq", "openai/gpt-oss-120b")

    recorded_chunks = [
        json.loads(line.removeprefix("data: "))
        for line in recorded("groq/stream_success")["stream"]
        if line.startswith("data: {")
    ]
    chunks = seen.chunks()
    for ours, theirs in ((chunks[1], recorded_chunks[1]), (chunks[-1], recorded_chunks[-1])):
        assert missing(ours, theirs, GROQ_EXTRAS) == []
    assert chunks[-1]["x_groq"]["usage"]["total_tokens"] > 0
    assert chunks[-1]["usage"] == chunks[-1]["x_groq"]["usage"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_openrouter_sends_keepalive_comments_until_the_first_token(sim, http):
    script(sim, "openrouter", stream={"first_token_delay": 1.2})

    seen = await stream(http, sim, "openrouter", "openai/gpt-oss-120b:free")

    events = seen.text.split("\n\n")
    comments = [e for e in events if e.startswith(":")]
    assert comments == [": OPENROUTER PROCESSING"] * len(comments)
    assert len(comments) >= 2  # one at once, one per second of waiting
    assert events.index(comments[-1]) < next(i for i, e in enumerate(events) if "content" in e)
    final = seen.chunks()[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"]["total_tokens"] > 0  # OpenRouter: usage in the final chunk
    assert seen.data()[-1] == "[DONE]"


async def test_gemini_stream_is_sse_of_whole_responses_without_done(sim, http):
    script(sim, "gemini", text="alpha beta gamma delta", stream={"chunks": 2})

    seen = await stream(http, sim, "gemini", "gemini-3.6-flash")
    _, _, whole = await ask(http, sim, "gemini", "gemini-3.6-flash")

    assert (seen.status, seen.ended) == (200, True)
    assert seen.text.endswith(GEMINI_SEPARATOR)
    events = seen.chunks(GEMINI_SEPARATOR)
    assert "[DONE]" not in seen.text
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == whole["candidates"][0]["content"]["parts"][-1]["text"]
    assert len(events) == 3  # two content events and the closing one
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] > 0
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    first_recorded = json.loads(
        recorded("gemini/stream_success")["stream"][0].removeprefix("data: ")
    )
    assert missing(events[0], first_recorded) == []


async def test_gemini_stream_needs_alt_sse(sim, http):
    url = f"{sim.base_url('gemini')}/models/m:streamGenerateContent"

    async with http.post(url, json=chat_body("gemini", "m")) as response:
        assert response.status == 400


async def test_a_failure_before_the_stream_answers_as_without_streaming(sim, http):
    script(sim, "groq", behaviour="rate_limited", retry_after=4)

    seen = await stream(http, sim, "groq")
    plain_status, plain_headers, plain = await ask(http, sim, "groq", "m")

    assert (seen.status, plain_status) == (429, 429)
    assert seen.headers["content-type"].startswith("application/json")
    assert json.loads(seen.text) == plain
    assert seen.headers["retry-after"] == plain_headers["retry-after"] == "4"


async def test_slow_first_token_and_chunk_delay(sim, http):
    script(sim, "alpha", stream={"first_token_delay": 0.4, "chunk_delay": 0.15, "chunks": 3})

    seen = await stream(http, sim, "alpha")

    assert seen.ended
    first, _ = seen.reads[0]
    last_content = max(
        at for at, text in seen.reads if '"content": "' in text and "role" not in text
    )
    assert first >= 0.4  # headers first, then the wait, then the first chunk
    assert last_content - first >= 0.3  # two gaps between three content chunks


async def test_silent_before_headers_never_answers_a_stream(sim, http):
    script(sim, "alpha", behaviour="stream_silent_before_headers")

    with pytest.raises(TimeoutError):
        await stream(http, sim, "alpha", within=0.3)
    status, _, _ = await ask(http, sim, "alpha", "m")  # not streamed: answered

    assert status == 200
    assert [e["outcome"] for e in sim.log()] == ["stream_silent_before_headers", "ok"]


async def test_silent_after_headers_sends_200_then_nothing(sim, http):
    sim.set_scripts(
        {
            "scripts": {
                "alpha/*": {"latency": 0, "behaviour": "stream_silent_after_headers"},
                "openrouter/*": {"latency": 0, "behaviour": "stream_silent_after_headers"},
            }
        }
    )

    quiet = await stream(http, sim, "alpha", within=0.5)
    keepalives = await stream(http, sim, "openrouter", within=1.5)

    assert (quiet.status, quiet.text, quiet.ended) == (200, "", False)
    assert keepalives.status == 200
    assert not keepalives.ended
    assert keepalives.text.count(": OPENROUTER PROCESSING") >= 2
    assert "data:" not in keepalives.text
    await eventually(lambda: all(e["client_gone"] for e in sim.log()))


@pytest.mark.parametrize("provider", ["alpha", "gemini"])
async def test_drop_after_n_chunks_breaks_the_connection(sim, http, provider):
    script(sim, provider, behaviour="stream_drop", stream={"chunks": 4, "fault_after": 2})

    seen = await stream(http, sim, provider)

    assert seen.broken
    assert not seen.ended
    separator = GEMINI_SEPARATOR if provider == "gemini" else "\n\n"
    texts = [
        (c["candidates"][0]["content"]["parts"][0]["text"] if provider == "gemini" else c)
        for c in seen.chunks(separator)
    ]
    assert "[DONE]" not in seen.text
    assert len(texts) == (2 if provider == "gemini" else 3)  # OpenAI: the role chunk too
    [entry] = sim.log()
    assert (entry["outcome"], entry["chunks"]) == ("stream_drop", 2)


async def test_openai_error_event_mid_stream_has_openrouters_shape(sim, http):
    script(sim, "openrouter", behaviour="stream_error", stream={"chunks": 4, "fault_after": 1})

    seen = await stream(http, sim, "openrouter", "openai/gpt-oss-120b:free")

    assert (seen.status, seen.ended) == (200, True)
    assert "[DONE]" not in seen.text
    chunks = seen.chunks()
    error = chunks[-1]
    assert error["error"]["message"] == "[simulated] Provider disconnected unexpectedly"
    assert error["choices"][0]["finish_reason"] == "error"
    recorded_error = json.loads(
        recorded("openrouter/stream_mid_stream_error")["stream"][2].removeprefix("data: ")
    )
    assert keys(error) == keys(recorded_error)
    assert joined(chunks[:-1])  # some text came before the error
    assert sim.log()[-1]["chunks"] == 1


async def test_gemini_error_mid_stream_is_a_safety_finish_without_content(sim, http):
    script(sim, "gemini", behaviour="stream_error", stream={"chunks": 3, "fault_after": 1})

    seen = await stream(http, sim, "gemini", "gemini-3.6-flash")

    events = seen.chunks(GEMINI_SEPARATOR)
    assert seen.ended
    assert events[0]["candidates"][0]["content"]["parts"][0]["text"].startswith("[simulated]")
    last = events[-1]["candidates"][0]
    assert last["finishReason"] == "SAFETY"
    assert "content" not in last
    assert len(events) == 2


async def test_stall_keeps_the_connection_open_after_n_chunks(sim, http):
    script(sim, "alpha", behaviour="stream_stall", stream={"chunks": 4, "fault_after": 2})

    seen = await stream(http, sim, "alpha", within=0.6)

    assert (seen.status, seen.ended, seen.broken) == (200, False, False)
    assert len(seen.chunks()) == 3  # role + 2 content chunks, then nothing
    assert "[DONE]" not in seen.text
    await eventually(lambda: sim.log()[0]["client_gone"])


async def test_malformed_chunk_is_one_data_line_of_invalid_json(sim, http):
    script(sim, "alpha", behaviour="stream_malformed", stream={"chunks": 3, "fault_after": 1})

    seen = await stream(http, sim, "alpha")

    data = seen.data()
    broken = []
    for payload in data[:-1]:
        try:
            json.loads(payload)
        except ValueError:
            broken.append(payload)
    assert len(broken) == 1
    assert data[-1] == "[DONE]"
    assert seen.ended


async def test_stream_fault_on_a_request_without_stream_answers_normally(sim, http):
    for fault in ("stream_drop", "stream_stall", "stream_error", "stream_malformed"):
        script(sim, "alpha", behaviour=fault)
        status, _, body = await ask(http, sim, "alpha", "m")
        assert status == 200, fault
        assert body["choices"][0]["message"]["content"].startswith("[simulated]")


async def test_closing_the_simulator_ends_a_stalled_stream(http):
    simulator = await start_simulator(
        {"default": {"latency": 0, "behaviour": "stream_stall", "stream": {"fault_after": 0}}}
    )
    try:
        url = chat_url(simulator, "alpha")
        body = {**chat_body("alpha", "m"), "stream": True}
        reading = asyncio.create_task(read_stream(http, url, body, {}, within=5))
        await eventually(lambda: simulator.log() and simulator.log()[0]["status"] == 200)
    finally:
        await simulator.close()
    seen = await reading
    assert seen.ended or seen.broken


async def test_reset_and_silence_apply_to_streams_too(sim, http):
    sim.set_scripts(
        {"scripts": {"alpha/r": {"behaviour": "reset"}, "alpha/s": {"behaviour": "silence"}}}
    )

    with pytest.raises(aiohttp.ClientConnectionError):
        await stream(http, sim, "alpha", "r")
    with pytest.raises(TimeoutError):
        await stream(http, sim, "alpha", "s", within=0.3)
