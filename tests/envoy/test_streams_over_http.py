"""Streams over plain HTTP through the real Envoy on the real stack: StreamPrompt as Server-Sent
Events, bad input on the OpenAI route, a client that leaves, and streams that outlast Envoy's
request timers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiselector.v1 import selector_pb2
from tests.fakes import eventually

STREAM = "/api/v1/prompts/stream"
COMPLETIONS = "/v1/chat/completions"
TEXT = "[simulated] one two three four five six seven eight nine ten eleven"
USER = {"role": "user", "content": "hi"}
TIMERS = {"stream_first_token_timeout_seconds": 0.5, "stream_idle_timeout_seconds": 0.5}


def sse(body: str) -> list[Any]:
    """The JSON payload of each `data:` event of a Server-Sent Events body."""
    events = [e for e in body.replace("\r\n", "\n").split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), body
    return [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]


async def test_stream_prompt_is_server_sent_events_with_the_failover_before_the_first_delta(
    front,
):
    scripts = {"alpha/*": {"behaviour": "stream_silent_after_headers"}, "beta/*": {"text": TEXT}}
    _, _, http = await front(scripts, keys=("alpha", "beta"), **TIMERS)

    reply = await http.post(STREAM, json={"prompt": "hi", "model_name": "alpha/m1"})

    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse(reply.text)
    assert [next(iter(e)) for e in events][:2] == ["failover", "delta"]
    assert events[0]["failover"]["failed_attempt"]["outcome"] == "OUTCOME_TIMEOUT"
    assert events[0]["failover"]["next_model"] == "beta/m1"
    assert "".join(e["delta"]["text"] for e in events if "delta" in e) == TEXT
    assert events[-1]["result"]["response"] == TEXT


async def test_stream_prompt_ends_a_stream_cut_after_its_first_delta_with_an_error_event(front):
    cut = {"behaviour": "stream_drop", "text": TEXT, "stream": {"fault_after": 1}}
    _, _, http = await front({"alpha/*": cut})

    reply = await http.post(STREAM, json={"prompt": "hi", "model_name": "alpha/m1"})

    events = sse(reply.text)
    assert [next(iter(e)) for e in events] == ["delta", "error"]
    assert events[-1]["error"]["code"] == 14  # UNAVAILABLE
    assert "cut off" in events[-1]["error"]["message"]


async def test_stream_prompt_that_fails_before_any_event_is_an_http_error(front):
    _, _, http = await front(keys=())

    reply = await http.post(STREAM, json={"prompt": "hi"})

    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "30"
    assert reply.json()["details"][0]["reason"] == "ERROR_REASON_NO_CREDENTIALS"


BAD_INPUT = [
    (b"this is not json", 400, "body"),
    (json.dumps({"model": "auto"}).encode(), 400, "messages"),
    (json.dumps({"messages": []}).encode(), 400, "messages"),
    (
        json.dumps({"messages": [{"role": "robot", "content": "hi"}]}).encode(),
        400,
        "messages[0].role",
    ),
    (
        json.dumps({"messages": [{"role": "user", "content": 42}]}).encode(),
        400,
        "messages[0].content",
    ),
    (json.dumps({"messages": [USER], "n": 2}).encode(), 400, "n"),
    (json.dumps({"messages": [USER], "model": "nobody/nothing"}).encode(), 404, "model"),
    (json.dumps({"messages": [USER], "stream": "yes"}).encode(), 400, "stream"),
]


@pytest.mark.parametrize(("body", "status", "param"), BAD_INPUT)
async def test_bad_input_is_an_openai_error_and_no_provider_failure(front, body, status, param):
    stack, _, http = await front()

    reply = await http.post(COMPLETIONS, content=body, headers={"content-type": "application/json"})

    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["type"] in {"invalid_request_error", "not_found_error"}
    assert error["message"]
    assert stack.sim.log() == []
    assert await stack.outcomes() == {}


async def test_a_body_over_one_mib_is_a_413_in_openai_shape(front):
    stack, _, http = await front()
    body = json.dumps({"messages": [{"role": "user", "content": "x" * (1024 * 1024)}]})

    reply = await http.post(COMPLETIONS, content=body, headers={"content-type": "application/json"})

    assert reply.status_code == 413
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_payload_too_large")
    assert stack.sim.log() == []


async def test_an_unknown_openai_path_is_a_404_in_openai_shape(front):
    _, _, http = await front()

    reply = await http.post("/v1/embeddings", json={"input": "hi"})

    assert reply.status_code == 404
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("not_found_error", "unknown_path")
    assert "/v1/chat/completions" in error["message"]


async def test_envoys_own_timeout_on_an_openai_route_is_a_504_in_openai_shape(front):
    # Envoy's route timeout (1 s + its 5 s margin) ends before the Selector's own deadline.
    _, _, http = await front(
        {"alpha/*": {"behaviour": "silence"}, "beta/*": {"behaviour": "silence"}},
        models={"alpha/m1": {"limits": {"timeout_ms": 20000}}},
        keys=("alpha",),
        envoy={"request_deadline_seconds": 1},
        request_deadline_seconds=30,
    )

    reply = await http.post(COMPLETIONS, json={"messages": [USER]}, timeout=20)

    assert reply.status_code == 504
    error = reply.json()["error"]
    assert error["type"] == "server_error"
    # Envoy's reason: whichever of its equal route and stream-idle timers fired first.
    assert error["code"] in {"upstream_response_timeout", "stream_idle_timeout"}


async def test_a_client_that_leaves_mid_stream_cancels_the_provider_call(front):
    slow = {"text": TEXT, "stream": {"chunks": 8, "chunk_delay": 0.5}}
    stack, _, http = await front({"alpha/*": slow})
    body = {"messages": [USER], "model": "alpha/m1", "stream": True}

    async with http.stream("POST", COMPLETIONS, json=body) as reply:
        async for line in reply.aiter_lines():
            if '"content":"[simulated]' in line:
                break

    await eventually(lambda: stack.sim.log()[0]["client_gone"], timeout=5)
    assert stack.sim.log()[0]["chunks"] < 8
    await eventually(lambda: stack.selector.recorder.pending_attempts() == [], timeout=5)
    assert await stack.outcomes() == {"alpha/m1": {"OUTCOME_ABANDONED": 1}}


async def test_a_stream_longer_than_envoys_request_and_idle_timers_is_not_cut(front):
    slow = {"text": TEXT, "stream": {"chunks": 6, "chunk_delay": 0.5}}
    _, _, http = await front(
        {"alpha/*": slow},
        envoy={
            "first_byte_timeout_seconds": 0.5,
            "request_timeout_seconds": 0.5,
            "idle_timeout_seconds": 0.5,
        },
    )
    body = {"messages": [USER], "model": "alpha/m1", "stream": True}

    reply = await http.post(COMPLETIONS, json=body)

    assert reply.status_code == 200
    assert reply.text.endswith("data: [DONE]\n\n")
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in sse(reply.text))
    assert text == TEXT


@pytest.mark.parametrize(
    "script",
    [{}, {"behaviour": "stream_drop", "stream": {"fault_after": 1}}],
    ids=["whole", "cut-off"],
)
async def test_a_stream_without_usage_still_counts_its_tokens_against_the_budget(front, script):
    stack, _, http = await front({"alpha/*": {"text": TEXT, "usage": False, **script}})
    body = {"messages": [USER], "model": "alpha/m1", "stream": True}

    reply = await http.post(COMPLETIONS, json=body)

    assert reply.status_code == 200
    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    [alpha] = [m for m in stats.models if m.name == "alpha/m1"]
    assert alpha.budget.requests_today == 1
    assert alpha.budget.tokens_today > 0
