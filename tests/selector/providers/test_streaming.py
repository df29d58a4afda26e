"""Streamed answers from both wire formats against the real simulator: the answer piece by piece,
reasoning held back, every scripted stream fault classified, and the timers of a stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, ChatResult, ProviderError
from tests.fakes import eventually
from tests.selector.providers.helpers import WIRES, script

pb = common_pb2
REQUEST = ChatRequest.from_prompt("Hi")
SECRET = "SECRET-CHAIN-OF-THOUGHT"
TEXT = "one two three four five six seven eight"


class Pieces(list[str]):
    """Collects what a stream hands on."""

    async def __call__(self, text: str) -> None:
        self.append(text)


async def stream(client, target, pieces=None, request=REQUEST, **timers) -> ChatResult:
    timers = {"first_token_timeout": 2.0, "idle_timeout": 2.0, **timers}
    return await client.stream(
        target, request, on_text=Pieces() if pieces is None else pieces, **timers
    )


async def failure(client, target, pieces=None, **timers) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await stream(client, target, pieces, **timers)
    return caught.value


@pytest.mark.parametrize("wire", WIRES)
async def test_the_answer_arrives_in_pieces_that_join_to_the_whole_answer(
    sim, client, target, wire
):
    script(sim, wire, text=TEXT, stream={"chunks": 4})
    whole = await client.complete(target(wire), REQUEST, timeout=5)
    pieces = Pieces()

    result = await stream(client, target(wire), pieces)

    entry = sim.log()[-1]
    assert len(pieces) == entry["chunks"] > 1
    assert "".join(pieces) == result.text == whole.text
    assert result.prompt_tokens > 0
    assert result.completion_tokens == whole.completion_tokens
    assert result.finish_reason == "stop"
    assert (entry["stream"], entry["outcome"]) == (True, "ok")


async def test_openai_streams_ask_for_usage(sim, client, target):
    wire = ("alpha", pb.API_FORMAT_OPENAI)
    script(sim, wire, text=TEXT)

    result = await stream(client, target(wire))

    # The default profile sends a usage chunk only when `stream_options.include_usage` asks.
    assert result.completion_tokens > 0


async def test_openrouter_keep_alive_comments_are_skipped_and_its_usage_read(sim, client, target):
    wire = ("openrouter", pb.API_FORMAT_OPENAI)
    script(sim, wire, text=TEXT, stream={"first_token_delay": 1.2})
    pieces = Pieces()

    result = await stream(client, target(wire), pieces)

    assert "".join(pieces) == result.text
    assert "OPENROUTER" not in result.text
    assert result.completion_tokens > 0


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("behaviour", ["ok", "harmony", "think"])
async def test_reasoning_never_reaches_a_piece(sim, client, target, wire, behaviour):
    script(sim, wire, behaviour=behaviour, reasoning=SECRET, text=TEXT, stream={"chunks": 6})
    pieces = Pieces()

    result = await stream(client, target(wire, reasoning=True), pieces)

    assert result.text.startswith("[simulated]")
    assert "".join(pieces) == result.text
    assert not any(SECRET in p or "<" in p for p in pieces)


async def test_untagged_reasoning_of_a_reasoning_model_is_held_until_its_closing_tag(
    sim, client, target
):
    wire = ("alpha", pb.API_FORMAT_OPENAI)
    # A host whose chat template opened the <think> block in the prompt: only </think> comes back.
    text = f"[simulated] {SECRET} and more of it</think>\n\n[simulated] {TEXT}"
    script(sim, wire, text=text, reasoning="")
    pieces = Pieces()

    result = await stream(client, target(wire, reasoning=True), pieces)

    assert result.text == f"[simulated] {TEXT}"
    assert "".join(pieces) == result.text
    assert not any(SECRET in p for p in pieces)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("behaviour", "words"),
    [("reasoning_only", "reasoning only"), ("empty", "empty answer")],
)
async def test_a_stream_without_an_answer_is_a_bad_answer_that_handed_nothing_on(
    sim, client, target, wire, behaviour, words
):
    script(sim, wire, behaviour=behaviour, reasoning=SECRET)
    pieces = Pieces()

    error = await failure(client, target(wire, reasoning=True), pieces)

    assert (error.outcome, error.http_status) == (pb.OUTCOME_BAD_ANSWER, 200)
    assert words in error.message
    assert pieces == []


@pytest.mark.parametrize("wire", WIRES)
async def test_an_error_before_the_stream_is_classified_by_the_provider_rules(
    sim, client, target, wire
):
    script(sim, wire, behaviour="rate_limited", retry_after=7)

    error = await failure(client, target(wire))

    assert error.outcome == pb.OUTCOME_RATE_LIMITED
    assert error.retry_after == pytest.approx(7, abs=1)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("behaviour", "stream"),
    [
        ("stream_silent_before_headers", {}),
        ("stream_silent_after_headers", {}),
        ("ok", {"first_token_delay": 3}),
    ],
)
async def test_a_provider_silent_before_its_first_token_times_out_at_the_first_token_timeout(
    sim, client, target, wire, behaviour, stream
):
    script(sim, wire, behaviour=behaviour, stream=stream)
    pieces = Pieces()
    started = time.monotonic()

    error = await failure(client, target(wire), pieces, first_token_timeout=0.5)

    assert error.outcome == pb.OUTCOME_TIMEOUT
    assert "no first token within 0.5 s" in error.message
    assert time.monotonic() - started < 2.0
    assert pieces == []


async def test_keep_alive_comments_do_not_count_as_a_first_token(sim, client, target):
    wire = ("openrouter", pb.API_FORMAT_OPENAI)
    script(sim, wire, behaviour="stream_silent_after_headers")

    error = await failure(client, target(wire), first_token_timeout=1.5)

    assert error.outcome == pb.OUTCOME_TIMEOUT
    assert "no first token" in error.message


@pytest.mark.parametrize("wire", WIRES)
async def test_a_dropped_stream_is_transient_after_the_pieces_it_sent(sim, client, target, wire):
    script(sim, wire, behaviour="stream_drop", text=TEXT, stream={"chunks": 4, "fault_after": 2})
    pieces = Pieces()

    error = await failure(client, target(wire), pieces)

    assert error.outcome == pb.OUTCOME_TRANSIENT
    assert "broke off after 2 piece(s)" in error.message
    assert len(pieces) == 2


async def test_an_error_event_mid_stream_is_read_by_the_shared_rules(sim, client, target):
    wire = ("openrouter", pb.API_FORMAT_OPENAI)
    script(sim, wire, behaviour="stream_error", text=TEXT, stream={"fault_after": 1})
    pieces = Pieces()

    error = await failure(client, target(wire), pieces)

    assert (error.outcome, error.http_status) == (pb.OUTCOME_TRANSIENT, 200)
    assert "Provider disconnected unexpectedly" in error.message
    assert len(pieces) == 1


async def test_a_gemini_safety_finish_after_text_is_a_content_filter_not_an_answer(
    sim, client, target
):
    wire = ("gemini", pb.API_FORMAT_GEMINI)
    script(sim, wire, behaviour="stream_error", text=TEXT, stream={"fault_after": 2})
    pieces = Pieces()

    error = await failure(client, target(wire), pieces)

    assert error.outcome == pb.OUTCOME_BAD_REQUEST
    assert "content filter" in error.message
    assert len(pieces) == 2


@pytest.mark.parametrize("wire", WIRES)
async def test_a_stall_mid_stream_times_out_at_the_idle_timeout(sim, client, target, wire):
    script(sim, wire, behaviour="stream_stall", text=TEXT, stream={"fault_after": 1})
    pieces = Pieces()

    error = await failure(client, target(wire), pieces, idle_timeout=0.5)

    assert error.outcome == pb.OUTCOME_TIMEOUT
    assert "stream stalled after 1 piece(s) of answer: no data within 0.5 s" in error.message
    assert len(pieces) == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_a_malformed_event_is_a_bad_answer(sim, client, target, wire):
    script(sim, wire, behaviour="stream_malformed", text=TEXT, stream={"fault_after": 1})
    pieces = Pieces()

    error = await failure(client, target(wire), pieces)

    assert error.outcome == pb.OUTCOME_BAD_ANSWER
    assert "stream event is not JSON" in error.message
    assert len(pieces) == 1


async def test_time_spent_handing_a_piece_on_is_not_the_providers(sim, client, target):
    wire = ("alpha", pb.API_FORMAT_OPENAI)
    script(sim, wire, text=TEXT, stream={"chunks": 3})

    async def slow_reader(text: str) -> None:
        await asyncio.sleep(0.4)

    result = await client.stream(
        target(wire), REQUEST, on_text=slow_reader, first_token_timeout=2, idle_timeout=0.2
    )

    assert result.text.endswith("eight")


async def test_the_deadline_ends_a_long_stream_as_abandoned(sim, client, target):
    wire = ("alpha", pb.API_FORMAT_OPENAI)
    script(sim, wire, text=TEXT, stream={"chunks": 8, "chunk_delay": 0.3})
    deadline = asyncio.get_running_loop().time() + 1.0

    error = await failure(client, target(wire), deadline=deadline)

    assert error.outcome == pb.OUTCOME_ABANDONED
    assert "deadline" in error.message


async def test_a_caller_that_goes_away_closes_the_providers_connection_at_once(sim, client, target):
    wire = ("alpha", pb.API_FORMAT_OPENAI)
    script(sim, wire, text=TEXT, stream={"chunks": 8, "chunk_delay": 0.5})
    pieces = Pieces()
    task = asyncio.create_task(stream(client, target(wire), pieces))
    await eventually(lambda: pieces)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await eventually(lambda: sim.log()[-1]["client_gone"], timeout=2)
    assert sim.log()[-1]["chunks"] < 8
