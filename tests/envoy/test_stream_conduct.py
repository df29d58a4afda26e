"""Streaming conduct on the real stack behind the real Envoy, one case per scripted stream fault:
which model answered, what each provider received, what the client saw, what history recorded.

The first token is the commit point: a fault before it fails over invisibly, one after it ends
the stream with an error event and never with another model's text."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from services.simulator.streaming import split
from tests.envoy.sdk import read

TEXT = "[simulated] one two three four five six seven eight nine ten eleven"
CHUNKS = 4
USER = {"role": "user", "content": "Stream me an answer."}
# Short stream timers keep the silent cases quick; the models' own timeout is 2 s.
TIMERS = {"stream_first_token_timeout_seconds": 0.5, "stream_idle_timeout_seconds": 0.5}


async def ask_alpha_first(sdk, fault: dict[str, Any]) -> tuple[Any, Any]:
    """Streams a request that tries alpha/m1 (scripted with `fault`) first; beta and gamma
    answer TEXT. Returns the stack and what the client read."""
    scripts = {
        "alpha/*": {"text": TEXT, **fault},
        "beta/*": {"text": TEXT},
        "gamma/*": {"text": TEXT},
    }
    stack, _, client = await sdk(scripts, **TIMERS)
    stream = await client.chat.completions.create(model="alpha/m1", messages=[USER], stream=True)
    return stack, await read(stream)


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ({"behaviour": "stream_silent_before_headers"}, "OUTCOME_TIMEOUT"),
        ({"behaviour": "stream_silent_after_headers"}, "OUTCOME_TIMEOUT"),
        ({"stream": {"first_token_delay": 3}}, "OUTCOME_TIMEOUT"),
        ({"behaviour": "stream_drop", "stream": {"fault_after": 0}}, "OUTCOME_TRANSIENT"),
        ({"behaviour": "stream_error", "stream": {"fault_after": 0}}, "OUTCOME_TRANSIENT"),
        ({"behaviour": "stream_stall", "stream": {"fault_after": 0}}, "OUTCOME_TIMEOUT"),
        ({"behaviour": "stream_malformed", "stream": {"fault_after": 0}}, "OUTCOME_BAD_ANSWER"),
        ({"behaviour": 503}, "OUTCOME_TRANSIENT"),
    ],
    ids=[
        "silent-before-headers",
        "silent-after-headers",
        "slow-first-token",
        "drop-before-text",
        "error-before-text",
        "stall-before-text",
        "malformed-before-text",
        "http-503",
    ],
)
async def test_a_fault_before_the_first_token_fails_over_invisibly(sdk, fault, outcome):
    stack, seen = await ask_alpha_first(sdk, fault)

    assert seen.error is None
    assert seen.text == TEXT
    [answering] = seen.models
    assert answering in {"beta/m1", "gamma/m1"}
    assert [e["provider"] for e in stack.sim.log()] == ["alpha", answering.split("/")[0]]
    [record] = await stack.history()
    assert (record.success, record.attempts, record.fallback_used) == (True, 2, True)
    assert record.response_text == TEXT
    outcomes = await stack.outcomes()
    assert outcomes["alpha/m1"] == {outcome: 1}
    assert outcomes[answering] == {"OUTCOME_SUCCESS": 1}


@pytest.mark.parametrize(
    ("fault", "outcome", "words"),
    [
        ({"behaviour": "stream_drop"}, "OUTCOME_TRANSIENT", "broke off"),
        ({"behaviour": "stream_error"}, "OUTCOME_TRANSIENT", "Provider disconnected"),
        ({"behaviour": "stream_stall"}, "OUTCOME_TIMEOUT", "stream stalled"),
        ({"behaviour": "stream_malformed"}, "OUTCOME_BAD_ANSWER", "not JSON"),
    ],
    ids=["drop", "error-event", "stall", "malformed"],
)
async def test_a_fault_after_the_first_token_ends_the_stream_with_an_error(
    sdk, fault, outcome, words
):
    fault = {**fault, "stream": {"chunks": CHUNKS, "fault_after": 2}}

    stack, seen = await ask_alpha_first(sdk, fault)

    assert isinstance(seen.error, openai.APIError)
    assert not isinstance(seen.error, openai.APIStatusError)
    assert words in seen.error.message
    assert seen.text == "".join(split(TEXT, CHUNKS)[:2]).rstrip()
    assert seen.models == {"alpha/m1"}
    assert all(c.choices[0].finish_reason is None for c in seen.chunks)
    assert [e["provider"] for e in stack.sim.log()] == ["alpha"]
    [record] = await stack.history()
    assert (record.success, record.attempts, record.response_text) == (False, 1, "")
    assert words in record.error_message
    assert record.status_code == "UNAVAILABLE"
    assert await stack.outcomes() == {"alpha/m1": {outcome: 1}}
