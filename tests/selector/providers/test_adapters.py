"""Both wire-format adapters against the real simulator over loopback HTTP."""

from __future__ import annotations

import json
import socket
import time

import pytest

from aiselector.v1 import common_pb2
from services.selector.providers import (
    REASONING_MIN_OUTPUT_TOKENS,
    ChatRequest,
    ProviderClient,
    ProviderError,
)
from tests.selector.providers.helpers import WIRES, script

pb = common_pb2


@pytest.mark.parametrize("wire", WIRES)
async def test_normal_answer_with_usage_and_key_sent_in_a_header(sim, client, target, wire):
    script(sim, wire, api_key=target(wire).api_key)  # any other key would get a 401

    result = await client.complete(target(wire), ChatRequest.from_prompt("Hi"), timeout=5)

    assert result.text.startswith("[simulated]")
    assert result.http_status == 200
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    [entry] = sim.log()
    assert entry["outcome"] == "ok"
    assert entry["credential_sent"] is True
    assert "key" not in entry["path"]


@pytest.mark.parametrize("wire", WIRES)
async def test_a_long_answer_is_read_to_its_last_byte(sim, client, target, wire):
    long_text = "word " * 200_000 + "THE END"
    script(sim, wire, text=long_text)

    result = await client.complete(target(wire), ChatRequest.from_prompt("Hi"), timeout=10)

    assert result.text.endswith("THE END")
    assert len(result.text) > 1_000_000


@pytest.mark.parametrize("wire", WIRES)
async def test_system_prompt_and_output_limit_reach_the_provider(sim, client, target, wire):
    request = ChatRequest.from_prompt(
        "Hi", system_prompt="Answer like a pirate.", max_output_tokens=300
    )

    await client.complete(target(wire), request, timeout=5)

    [entry] = sim.log()
    assert entry["system_prompt"] == "Answer like a pirate."
    assert entry["max_tokens"] == 300
    assert entry["response_format"] is False
    assert entry["reasoning"] is None


@pytest.mark.parametrize("wire", WIRES)
async def test_json_mode_asks_on_the_wire_and_returns_a_json_object(sim, client, target, wire):
    result = await client.complete(
        target(wire), ChatRequest.from_prompt("Give me JSON", json_mode=True), timeout=5
    )

    assert json.loads(result.text)["simulated"] is True
    [entry] = sim.log()
    assert entry["response_format"] is True
    assert "JSON" in entry["system_prompt"]


async def test_huggingface_json_mode_relies_on_the_prompt_and_is_still_validated(
    sim, client, target
):
    wire = ("huggingface", pb.API_FORMAT_OPENAI)
    hf = target(wire, json_response_format=False)

    result = await client.complete(
        hf, ChatRequest.from_prompt("Give me JSON", json_mode=True), timeout=5
    )
    assert json.loads(result.text)["model"] == "m"
    assert sim.log()[0]["response_format"] is False

    script(sim, wire, behaviour="invalid_json")
    with pytest.raises(ProviderError) as caught:
        await client.complete(
            hf, ChatRequest.from_prompt("Give me JSON", json_mode=True), timeout=5
        )
    assert caught.value.outcome == pb.OUTCOME_WRONG_FORMAT
    assert "not a JSON object" in caught.value.message


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("behaviour", "outcome", "words"),
    [
        ("invalid_json", pb.OUTCOME_WRONG_FORMAT, "not a JSON object ("),
        ("empty", pb.OUTCOME_BAD_ANSWER, "empty answer"),
    ],
)
async def test_json_mode_prose_is_the_wrong_format_but_nothing_at_all_is_a_bad_answer(
    sim, client, target, wire, behaviour, outcome, words
):
    script(sim, wire, behaviour=behaviour)

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire), ChatRequest.from_prompt("x", json_mode=True), timeout=5)

    assert (caught.value.outcome, caught.value.http_status) == (outcome, 200)
    assert words in caught.value.message


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("behaviour", ["ok", "harmony", "think"])
async def test_reasoning_is_never_the_answer(sim, client, target, wire, behaviour):
    script(sim, wire, behaviour=behaviour, reasoning="SECRET-CHAIN-OF-THOUGHT")
    thinker = target(wire, reasoning=True)

    result = await client.complete(
        thinker, ChatRequest.from_prompt("x", max_output_tokens=256), timeout=5
    )

    assert result.text.startswith("[simulated]")
    assert "SECRET-CHAIN-OF-THOUGHT" not in result.text
    assert "<" not in result.text
    [entry] = sim.log()
    assert entry["max_tokens"] == REASONING_MIN_OUTPUT_TOKENS
    assert entry["reasoning"]  # minimal reasoning was asked for


@pytest.mark.parametrize("wire", WIRES)
async def test_reasoning_only_reply_cut_at_length_is_a_bad_answer(sim, client, target, wire):
    script(sim, wire, behaviour="reasoning_only", reasoning="SECRET-CHAIN-OF-THOUGHT")

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire, reasoning=True), ChatRequest.from_prompt("x"), timeout=5)

    assert caught.value.outcome == pb.OUTCOME_BAD_ANSWER
    assert "reasoning only" in caught.value.message
    assert "SECRET-CHAIN-OF-THOUGHT" not in caught.value.message


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("behaviour", "outcome", "status", "words"),
    [
        (500, pb.OUTCOME_TRANSIENT, 500, "server error"),
        (503, pb.OUTCOME_TRANSIENT, 503, "server error"),
        (401, pb.OUTCOME_PERMANENT, 401, "API key rejected"),
        (402, pb.OUTCOME_PERMANENT, 402, "payment required"),
        (403, pb.OUTCOME_PERMANENT, 403, "access denied"),
        (404, pb.OUTCOME_PERMANENT, 404, "model not found at provider"),
        (410, pb.OUTCOME_PERMANENT, 410, "removed"),
        (413, pb.OUTCOME_BAD_REQUEST, 413, "too large"),
        (422, pb.OUTCOME_BAD_REQUEST, 422, "rejected"),
        ("context_length_exceeded", pb.OUTCOME_BAD_REQUEST, 400, "maximum"),
        ("empty", pb.OUTCOME_BAD_ANSWER, 200, "empty answer"),
        ("rate_limited", pb.OUTCOME_RATE_LIMITED, 429, "rate limited"),
        ("daily_quota", pb.OUTCOME_QUOTA_EXHAUSTED, 429, "daily quota"),
        ("reset", pb.OUTCOME_TRANSIENT, 0, "connection failed"),
    ],
)
async def test_each_failure_is_classified_with_its_status(
    sim, client, target, wire, behaviour, outcome, status, words
):
    script(sim, wire, behaviour=behaviour)

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire), ChatRequest.from_prompt("x"), timeout=5)

    error = caught.value
    assert (error.outcome_name, error.http_status) == (pb.Outcome.Name(outcome), status)
    assert words in error.message
    assert error.message.startswith(f"HTTP {status} from {wire[0]}" if status else wire[0])


@pytest.mark.parametrize("wire", WIRES)
async def test_content_filter_is_a_bad_request_for_this_prompt(sim, client, target, wire):
    script(sim, wire, behaviour="content_filter")

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire), ChatRequest.from_prompt("x"), timeout=5)

    assert caught.value.outcome == pb.OUTCOME_BAD_REQUEST
    assert "filter" in caught.value.message or "SAFETY" in caught.value.message


@pytest.mark.parametrize("wire", WIRES)
async def test_the_timeout_bounds_the_whole_attempt(sim, client, target, wire):
    script(sim, wire, behaviour="silence")
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire), ChatRequest.from_prompt("x"), timeout=0.3)

    assert caught.value.outcome == pb.OUTCOME_TIMEOUT
    assert caught.value.http_status == 0
    assert 0.25 <= time.monotonic() - started < 2.0


async def test_slow_provider_times_out_and_a_fast_one_answers_on_the_same_client(
    sim, client, target
):
    wire = ("groq", pb.API_FORMAT_OPENAI)
    sim.set_scripts({"scripts": {"groq/slow": {"latency": 3}, "groq/fast": {"latency": 0}}})

    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire, model="slow"), ChatRequest.from_prompt("x"), timeout=0.3)
    result = await client.complete(
        target(wire, model="fast"), ChatRequest.from_prompt("x"), timeout=5
    )

    assert caught.value.outcome == pb.OUTCOME_TIMEOUT
    assert result.text.startswith("[simulated]")


async def test_connection_refused_is_transient(target):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    wire = ("groq", pb.API_FORMAT_OPENAI)
    provider_client = await ProviderClient.open(max_connections=1)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider_client.complete(
                target(wire, base_url=f"http://127.0.0.1:{port}/groq/v1"),
                ChatRequest.from_prompt("x"),
                timeout=5,
            )
    finally:
        await provider_client.close()

    assert (caught.value.outcome, caught.value.http_status) == (pb.OUTCOME_TRANSIENT, 0)


async def test_unknown_api_format_is_permanent(client, target):
    with pytest.raises(ProviderError) as caught:
        await client.complete(
            target(("groq", pb.API_FORMAT_UNSPECIFIED)), ChatRequest.from_prompt("x"), timeout=5
        )

    assert caught.value.outcome == pb.OUTCOME_PERMANENT
