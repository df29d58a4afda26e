"""The official `openai` SDK against the real stack through the real Envoy: completions whole and
streamed, `model` and `models`, the model list, and every error as the SDK's own class."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from services.simulator.streaming import split
from tests.envoy.sdk import read

TEXT = "[simulated] one two three four five six seven eight nine"
USER = {"role": "user", "content": "Say something."}
ALL = ("alpha/*", "beta/*", "gamma/*")


def everyone(**script: Any) -> dict[str, Any]:
    return {name: script for name in ALL}


async def test_a_whole_conversation_is_answered_by_the_model_it_names(sdk):
    stack, _, client = await sdk(everyone(text=TEXT))

    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "An earlier question."},
            {"role": "assistant", "content": "An earlier answer."},
            USER,
        ],
        user="user-7",
        max_tokens=5000,
        extra_headers={"x-client-id": "sdk-test"},
    )

    completion = raw.parse()
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == raw.headers["x-aiselector-model"]
    assert raw.headers["x-aiselector-attempts"] == "1"
    assert completion.usage.completion_tokens > 0
    assert completion.id == f"chatcmpl-{raw.headers['x-request-id']}"
    [record] = await stack.history()
    assert (record.prompt_text, record.response_text) == (USER["content"], TEXT)
    assert (record.user_id, record.caller, record.success) == ("user-7", "sdk-test", True)
    [entry] = stack.sim.log()
    assert entry["stream"] is False
    assert entry["system_prompt"] == "Be brief."
    assert entry["max_tokens"] == 256  # the model's own limit (the test catalog's) is lower


async def test_a_lower_max_tokens_is_what_the_model_is_asked_for(sdk):
    stack, _, client = await sdk()

    await client.chat.completions.create(model="auto", messages=[USER], max_tokens=40)

    assert stack.sim.log()[0]["max_tokens"] == 40


async def test_streamed_deltas_join_to_the_answer_and_end_with_usage(sdk):
    stack, _, client = await sdk(everyone(text=TEXT, stream={"chunks": 4}))

    stream = await client.chat.completions.create(
        model="auto", messages=[USER], stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    [entry] = stack.sim.log()
    assert (entry["stream"], entry["chunks"]) == (True, 4)
    assert {c.model for c in chunks} == {f"{entry['provider']}/m1"}
    [record] = await stack.history()
    assert (record.response_text, record.success) == (TEXT, True)


async def test_a_models_list_is_tried_in_its_order_and_nothing_else(sdk):
    stack, _, client = await sdk({"gamma/*": {"behaviour": 500}, "beta/*": {"text": TEXT}})

    completion = await client.chat.completions.create(
        model="auto", messages=[USER], extra_body={"models": ["gamma/m1", "beta/m1"]}
    )

    assert (completion.model, completion.choices[0].message.content) == ("beta/m1", TEXT)
    assert [e["provider"] for e in stack.sim.log()] == ["gamma", "beta"]
    assert stack.requests_to("alpha") == []


async def test_only_listed_models_may_answer(sdk):
    stack, _, client = await sdk({"gamma/*": {"behaviour": 500}})

    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(
            model="auto", messages=[USER], extra_body={"models": ["gamma/m1"]}
        )

    assert raised.value.status_code == 503
    assert "gamma/m1" in raised.value.message
    # Nothing else may answer, so the only model earns one quick retry of its 500 (ADR 0011).
    assert [e["provider"] for e in stack.sim.log()] == ["gamma", "gamma"]


async def test_a_catalog_name_as_model_is_tried_first_with_automatic_fallback(sdk):
    stack, _, client = await sdk({"gamma/*": {"behaviour": 500}})

    completion = await client.chat.completions.create(model="gamma/m1", messages=[USER])

    assert completion.model in {"alpha/m1", "beta/m1"}
    assert stack.sim.log()[0]["provider"] == "gamma"


async def test_the_model_list_has_auto_and_every_active_model(sdk):
    _, _, client = await sdk()

    page = await client.models.list()

    assert [(m.id, m.owned_by) for m in page.data] == [
        ("auto", "free-ai-selector"),
        ("alpha/m1", "alpha"),
        ("beta/m1", "beta"),
        ("gamma/m1", "gamma"),
    ]


async def test_all_models_rate_limited_is_a_rate_limit_error_with_retry_after(sdk):
    stack, _, client = await sdk(everyone(behaviour="rate_limited", retry_after=120))

    with pytest.raises(openai.RateLimitError) as raised:
        await client.chat.completions.create(model="auto", messages=[USER])

    assert raised.value.code == "all_rate_limited"
    assert int(raised.value.response.headers["retry-after"]) >= 100
    with pytest.raises(openai.RateLimitError) as streamed:
        await client.chat.completions.create(model="auto", messages=[USER], stream=True)
    assert streamed.value.code == "all_rate_limited"
    records = await stack.history()
    assert [r.status_code for r in records] == ["RESOURCE_EXHAUSTED"] * 2


async def test_bad_input_is_a_bad_request_error_naming_the_field(sdk):
    stack, _, client = await sdk()

    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "robot", "content": "hi"}]
        )

    assert raised.value.param == "messages[0].role"
    assert raised.value.type == "invalid_request_error"
    assert stack.sim.log() == []


async def test_an_unknown_model_is_a_not_found_error_naming_the_model(sdk):
    _, _, client = await sdk()

    with pytest.raises(openai.NotFoundError) as raised:
        await client.chat.completions.create(model="nobody/nothing", messages=[USER])

    assert raised.value.param == "model"
    assert "GET /v1/models" in raised.value.message


async def test_no_provider_key_is_a_503_the_sdk_does_not_retry(sdk):
    _, _, client = await sdk(keys=())

    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="auto", messages=[USER])

    assert raised.value.status_code == 503
    assert raised.value.code == "no_credentials"
    assert raised.value.response.headers["x-should-retry"] == "false"


async def test_a_failure_after_the_first_token_is_an_api_error_in_the_stream(sdk):
    scripts = everyone(behaviour="stream_drop", text=TEXT, stream={"chunks": 4, "fault_after": 2})
    stack, _, client = await sdk(scripts)

    seen = await read(
        await client.chat.completions.create(model="auto", messages=[USER], stream=True)
    )

    assert isinstance(seen.error, openai.APIError)
    assert not isinstance(seen.error, openai.APIStatusError)
    assert seen.error.code == "service_unavailable"
    assert "cut off" in seen.error.message
    [entry] = stack.sim.log()
    assert seen.text == "".join(split(TEXT, 4)[:2]).rstrip()
    assert entry["chunks"] == 2
