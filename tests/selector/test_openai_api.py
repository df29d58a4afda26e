"""OpenAI wire format: parsing requests, rendering replies and errors, read back by the real SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import openai
import pytest
from aiohttp import web
from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors, secrets
from services.selector import openai_reply, openai_request
from services.selector.openai_request import CompletionRequest, parse_request

USER = {"role": "user", "content": "hi"}
# The HTTP status Envoy's transcoder gives each gRPC code (checked with Envoy 1.40, ADR 0008).
ENVOY_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def parse(**fields: Any) -> CompletionRequest:
    return parse_request(json.dumps({"messages": [USER], **fields}).encode())


def violations(body: bytes) -> list[tuple[str, str]]:
    with pytest.raises(errors.InvalidArgument) as raised:
        parse_request(body)
    return raised.value.violations


def reply(**fields: Any) -> selector_pb2.ProcessPromptResponse:
    defaults: dict[str, Any] = {
        "response": "Hello there",
        "selected_model": "groq/llama",
        "provider": "groq",
        "attempts": 2,
        "request_id": "req-1",
        "usage": selector_pb2.TokenUsage(prompt_tokens=7, completion_tokens=3),
    }
    return selector_pb2.ProcessPromptResponse(**{**defaults, **fields})


def events(stream: bytes) -> list[Any]:
    """The `data:` payloads of an SSE byte stream, JSON-decoded except `[DONE]`."""
    assert stream.endswith(b"\n\n")
    payloads = []
    for event in stream.decode().split("\n\n")[:-1]:
        assert event.startswith("data: ")
        data = event.removeprefix("data: ")
        payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


# --- parsing ---------------------------------------------------------------------------------


def test_a_full_request_keeps_the_conversation_and_every_option():
    body = {
        "model": "groq/llama",
        "models": ["gemini/flash", "groq/llama", "cerebras/qwen"],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use English."}]},
            {"role": "user", "content": [{"type": "text", "text": t} for t in ("a", "b")]},
            {"role": "assistant", "content": "Sure.", "name": "bot"},
            {"role": "user", "content": "And now?"},
        ],
        "max_tokens": 50,
        "max_completion_tokens": 40,
        "temperature": 0.2,
        "top_p": 1,
        "stop": "END",
        "response_format": {"type": "json_object"},
        "user": "u-42",
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
        "tools": [],
        "tool_choice": "none",
        "seed": 7,
        "logit_bias": {},
        "metadata": {"anything": "ignored"},
    }
    request = parse_request(json.dumps(body).encode())
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("system", "Use English."),
        ("user", "a\nb"),
        ("assistant", "Sure."),
        ("user", "And now?"),
    ]
    assert request.preferred_models == ("groq/llama", "gemini/flash", "cerebras/qwen")
    assert request.only_preferred
    assert request.max_tokens == 40
    assert (request.temperature, request.top_p) == (0.2, 1.0)
    assert request.stop == ("END",)
    assert request.json_mode
    assert request.user == "u-42"
    assert (request.stream, request.include_usage) == (True, True)


def test_a_minimal_request_means_automatic_choice_and_no_options():
    request = parse()
    assert request.preferred_models == ()
    assert not request.only_preferred
    assert (request.max_tokens, request.temperature, request.top_p) == (None, None, None)
    assert (request.stop, request.json_mode, request.user) == ((), False, "")
    assert (request.stream, request.include_usage) == (False, False)


@pytest.mark.parametrize("model", ["auto", "", None])
def test_auto_empty_or_null_model_is_automatic(model):
    assert parse(model=model).preferred_models == ()


def test_a_model_name_is_tried_first_without_restricting_the_choice():
    request = parse(model="groq/llama", stop=["a", "b"], temperature=None)
    assert request.preferred_models == ("groq/llama",)
    assert not request.only_preferred
    assert request.stop == ("a", "b")


def test_a_models_list_alone_restricts_the_choice_in_its_order():
    request = parse(model="auto", models=["b/2", "a/1"])
    assert request.preferred_models == ("b/2", "a/1")
    assert request.only_preferred


TOO_LONG = "x" * 256
BAD_BODIES = [
    (b"not json", "body", "JSON object"),
    (b"\xff\xfe", "body", "UTF-8"),
    (b"[1, 2]", "body", "JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "body", "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "body", "JSON"),
]
BAD_FIELDS = [
    ({"messages": None}, "messages", "non-empty array"),
    ({"messages": "hi"}, "messages", "non-empty array"),
    ({"messages": []}, "messages", "non-empty array"),
    ({"messages": ["hi"]}, "messages[0]", "object"),
    ({"messages": [{"content": "x"}]}, "messages[0].role", "required"),
    ({"messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role", "robot"),
    ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role", "one of"),
    ({"messages": [USER, {"role": "tool", "content": "x"}]}, "messages[1].role", "not supported"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content", "required"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content", "empty"),
    ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages[0].content", "NUL"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content[0].type",
        "only text",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "messages[0].content[0].type",
        "only text",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
        "string",
    ),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]", "object"),
    (
        {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
        "messages[1].tool_calls",
        "not supported",
    ),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages", "user message"),
    ({"messages": [{"role": "user", "content": "  "}]}, "messages", "user message"),
    ({"messages": [USER] * 501}, "messages", "at most 500 messages"),
    (
        {"messages": [{"role": "user", "content": "x" * 60_000}] * 2},
        "messages",
        "at most 100000 characters, got 120000",
    ),
    ({"model": 5}, "model", "string"),
    ({"model": TOO_LONG}, "model", "at most 255"),
    ({"model": "a\x00"}, "model", "NUL"),
    ({"models": "a/1"}, "models", "array"),
    ({"models": ["a/1", "auto"]}, "models[1]", "not `auto`"),
    ({"models": ["a/1", 7]}, "models[1]", "model name"),
    ({"models": [TOO_LONG]}, "models[0]", "at most 255"),
    ({"models": [f"m/{i}" for i in range(21)]}, "models", "at most 20"),
    ({"n": 2}, "n", "only n = 1"),
    ({"n": 0}, "n", "only n = 1"),
    ({"tools": [{"type": "function"}]}, "tools", "not supported"),
    ({"functions": [{"name": "f"}]}, "functions", "not supported"),
    ({"tool_choice": "required"}, "tool_choice", "not supported"),
    ({"function_call": {"name": "f"}}, "function_call", "not supported"),
    ({"max_tokens": 0}, "max_tokens", "1..1000000"),
    ({"max_tokens": "10"}, "max_tokens", "integer"),
    ({"max_completion_tokens": True}, "max_completion_tokens", "integer"),
    ({"max_completion_tokens": 10.5}, "max_completion_tokens", "integer"),
    ({"temperature": 2.5}, "temperature", "0..2"),
    ({"temperature": "hot"}, "temperature", "number"),
    ({"temperature": 10**400}, "temperature", "0..2"),
    ({"top_p": -0.1}, "top_p", "0..1"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({"stop": 5}, "stop", "string or an array"),
    ({"stop": ["a", ""]}, "stop[1]", "1..255"),
    ({"stop": "x" * 256}, "stop", "1..255"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {}}},
        "response_format.type",
        "use json_object",
    ),
    ({"response_format": {"type": "xml"}}, "response_format", "json_object"),
    ({"response_format": "json"}, "response_format", "json_object"),
    ({"user": 42}, "user", "string"),
    ({"user": TOO_LONG}, "user", "at most 255"),
    ({"stream": "yes"}, "stream", "true or false"),
    ({"stream_options": 1}, "stream_options", "object"),
    ({"stream_options": {"include_usage": "y"}}, "stream_options.include_usage", "true or false"),
]


@pytest.mark.parametrize(("body", "field", "fragment"), BAD_BODIES)
def test_a_body_that_is_not_a_json_object_is_rejected_naming_the_body(body, field, fragment):
    assert [(f, fragment in d) for f, d in violations(body)] == [(field, True)]


@pytest.mark.parametrize(("fields", "field", "fragment"), BAD_FIELDS)
def test_each_bad_field_is_named_with_its_limit(fields, field, fragment):
    body = json.dumps({"messages": [USER], **fields}).encode()
    found = violations(body)
    assert [(f, fragment in d) for f, d in found] == [(field, True)], found


def test_every_problem_is_reported_at_once():
    body = {"messages": [{"role": "user", "content": 1}], "n": 3, "temperature": 9}
    fields = [f for f, _ in violations(json.dumps(body).encode())]
    assert fields == ["messages[0].content", "temperature", "n"]


def test_a_flood_of_problems_is_cut_to_a_bounded_list():
    body = {"messages": [{"role": "user", "content": i} for i in range(30)]}
    found = violations(json.dumps(body).encode())
    assert len(found) == openai_request.MAX_VIOLATIONS + 1
    assert found[-1] == ("body", "and 10 more problems")


# --- replies ---------------------------------------------------------------------------------


def test_a_whole_answer_is_a_chat_completion():
    body = openai_reply.completion_body(reply(), created=1_700_000_000)
    assert json.loads(body) == {
        "id": "chatcmpl-req-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "groq/llama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def chunk_stream(include_usage: bool) -> bytes:
    chunks = openai_reply.ChunkStream("req-1", 1_700_000_000, "groq/llama", include_usage)
    usage = selector_pb2.TokenUsage(prompt_tokens=7, completion_tokens=3)
    return b"".join(
        [chunks.opening(), chunks.delta("Hel"), chunks.delta("lo"), chunks.closing(usage)]
    )


def test_a_stream_opens_with_the_role_carries_deltas_and_ends_with_finish_and_done():
    payloads = events(chunk_stream(include_usage=False))
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-req-1"
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["created"], chunk["model"]) == (1_700_000_000, "groq/llama")
        assert "usage" not in chunk
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]


def test_include_usage_adds_a_usage_chunk_with_no_choices_before_done():
    payloads = events(chunk_stream(include_usage=True))
    assert payloads[-1] == "[DONE]"
    usage_chunk = payloads[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert all(chunk["usage"] is None for chunk in payloads[:-2])


def test_routing_headers_name_the_model_provider_and_attempts_in_ascii():
    assert openai_reply.routing_headers("groq/llama", "gröq", 3) == (
        ("x-aiselector-model", "groq/llama"),
        ("x-aiselector-provider", "gr\\xf6q"),
        ("x-aiselector-attempts", "3"),
    )


def test_the_model_list_has_auto_first_then_active_models_by_name():
    def model(name: str, provider: str, created: int, active: bool = True) -> common_pb2.Model:
        return common_pb2.Model(
            name=name,
            provider=provider,
            is_active=active,
            create_time=timestamp_pb2.Timestamp(seconds=created),
        )

    catalog = [
        model("groq/b", "groq", 300),
        model("gemini/a", "gemini", 200),
        model("old/x", "old", 1, active=False),
    ]
    body = openai_reply.models_body(catalog)
    assert json.loads(body) == {
        "object": "list",
        "data": [
            {"id": "auto", "object": "model", "created": 200, "owned_by": "free-ai-selector"},
            {"id": "gemini/a", "object": "model", "created": 200, "owned_by": "gemini"},
            {"id": "groq/b", "object": "model", "created": 300, "owned_by": "groq"},
        ],
    }


# --- errors ----------------------------------------------------------------------------------

ERRORS = [
    (
        errors.InvalidArgument([("messages[2].content", "must be a string"), ("n", "only 1")]),
        "invalid_request_error",
        "messages[2].content",
        "invalid_argument",
    ),
    (
        errors.InvalidArgument(
            [("messages", "too long for every model")],
            reason=common_pb2.ERROR_REASON_PROMPT_REJECTED,
        ),
        "invalid_request_error",
        "messages",
        "prompt_rejected",
    ),
    (errors.Unauthenticated("token required"), "authentication_error", None, "unauthenticated"),
    (errors.PermissionDenied("wrong token"), "permission_error", None, "permission_denied"),
    (errors.NotFound("no model 'gpt-4o'"), "not_found_error", "model", "model_not_found"),
    (
        errors.ResourceExhausted("every model is rate limited", retry_after_seconds=6.2),
        "rate_limit_error",
        None,
        "all_rate_limited",
    ),
    (
        errors.Unavailable("no model can answer now", retry_after_seconds=30),
        "server_error",
        None,
        "service_unavailable",
    ),
    (
        errors.Unavailable(
            "no provider key is set",
            retry_after_seconds=30,
            reason=common_pb2.ERROR_REASON_NO_CREDENTIALS,
        ),
        "server_error",
        None,
        "no_credentials",
    ),
    (errors.DeadlineExceeded("deadline spent"), "server_error", None, "deadline_exceeded"),
    (errors.ServiceError("internal error"), "server_error", None, "internal"),
]


@pytest.mark.parametrize(("error", "kind", "param", "code"), ERRORS)
def test_each_error_has_openai_shape_type_param_and_code(error, kind, param, code):
    assert openai_reply.error_object(error) == {
        "error": {"message": error.message, "type": kind, "param": param, "code": code}
    }


def test_error_trailers_carry_the_body_in_printable_ascii_and_retry_after():
    error = errors.ResourceExhausted("limité \x7f \n done", retry_after_seconds=6.2)
    trailers = dict(openai_reply.error_trailers(error))
    body = trailers[openai_reply.ERROR_TRAILER]
    assert all(0x20 <= ord(c) < 0x7F for c in body)
    assert json.loads(body) == openai_reply.error_object(error)
    assert trailers["retry-after"] == "7"
    assert "x-should-retry" not in trailers


def test_a_missing_provider_key_tells_the_sdks_not_to_retry():
    error = errors.Unavailable(
        "no key", retry_after_seconds=30, reason=common_pb2.ERROR_REASON_NO_CREDENTIALS
    )
    assert dict(openai_reply.error_trailers(error))["x-should-retry"] == "false"


def test_error_messages_are_redacted_and_bounded():
    secret = "sk-test-secret-value-123"
    secrets.register(secret)
    error = errors.Unavailable(f"provider said {secret} " + "x" * 5000, retry_after_seconds=1)
    message = openai_reply.error_object(error)["error"]["message"]
    assert secret not in message
    assert secrets.REDACTED in message
    assert len(message) == openai_reply.ERROR_MESSAGE_MAX_CHARS


def test_an_in_stream_error_is_one_event_without_done():
    payloads = events(openai_reply.error_event(errors.Unavailable("cut", retry_after_seconds=1)))
    assert payloads == [openai_reply.error_object(errors.Unavailable("cut", retry_after_seconds=1))]


# --- the official SDK reads what we render -----------------------------------------------------


@dataclass
class OpenAIFront:
    """An HTTP server answering as Envoy and the Selector will, with openai_reply's output."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def error_response(self, error: errors.ServiceError) -> web.Response:
        # What Envoy makes of an abort with `error_trailers`: trailers become headers, the
        # status follows the gRPC code, and the Lua filter moves the body out of its header.
        headers = dict(openai_reply.error_trailers(error))
        body = headers.pop(openai_reply.ERROR_TRAILER)
        return web.Response(
            status=ENVOY_STATUS[error.code],
            body=body.encode(),
            headers={**headers, "content-type": "application/json"},
        )

    async def models(self, request: web.Request) -> web.Response:
        model = common_pb2.Model(name="groq/llama", provider="groq", is_active=True)
        return web.Response(body=openai_reply.models_body([model]), content_type="application/json")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.bodies.append(json.loads(raw))
        try:
            parsed = parse_request(raw)
        except errors.ServiceError as error:
            return self.error_response(error)
        script = parsed.messages[-1].content
        scripted: dict[str, errors.ServiceError] = {
            "limited": errors.ResourceExhausted("every model is limited", retry_after_seconds=7),
            "unknown": errors.NotFound("no model named 'gpt-4o'"),
            "down": errors.Unavailable("no model can answer now", retry_after_seconds=30),
            "late": errors.DeadlineExceeded("the deadline was spent"),
        }
        if script in scripted:
            return self.error_response(scripted[script])
        answer = reply()
        headers = dict(openai_reply.routing_headers("groq/llama", "groq", 2))
        if not parsed.stream:
            body = openai_reply.completion_body(answer, created=1_700_000_000)
            return web.Response(body=body, headers=headers, content_type="application/json")
        response = web.StreamResponse(headers={**headers, "content-type": "text/event-stream"})
        await response.prepare(request)
        chunks = openai_reply.ChunkStream(
            "req-1", 1_700_000_000, "groq/llama", parsed.include_usage
        )
        await response.write(chunks.opening() + chunks.delta("Hello"))
        if script == "cut":
            dropped = errors.Unavailable("provider dropped", retry_after_seconds=1)
            await response.write(openai_reply.error_event(dropped))
        else:
            await response.write(chunks.delta(" there"))
            await response.write(chunks.closing(answer.usage))
        await response.write_eof()
        return response


@pytest.fixture
async def front() -> AsyncIterator[OpenAIFront]:
    state = OpenAIFront()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.completions)
    app.router.add_get("/v1/models", state.models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(front: OpenAIFront) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=front.url, api_key="unused", max_retries=0, timeout=10)
    try:
        yield sdk
    finally:
        await sdk.close()


async def test_the_sdk_reads_a_completion_and_the_routing_headers(client, front):
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_completion_tokens=20,
        stop=["END"],
        extra_body={"models": ["groq/llama", "gemini/flash"]},
    )
    completion = raw.parse()
    assert completion.id == "chatcmpl-req-1"
    assert completion.model == "groq/llama"
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == 10
    assert raw.headers["x-aiselector-model"] == "groq/llama"
    assert raw.headers["x-aiselector-attempts"] == "2"
    parsed = parse_request(json.dumps(front.bodies[-1]).encode())
    assert parsed.preferred_models == ("groq/llama", "gemini/flash")
    assert parsed.only_preferred
    assert (parsed.max_tokens, parsed.stop) == (20, ("END",))


async def test_the_sdk_joins_the_streamed_deltas_and_reads_the_usage_chunk(client):
    stream = await client.chat.completions.create(
        model="auto",
        messages=[USER],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3


async def test_a_failure_after_the_first_token_raises_an_api_error_in_the_sdk(client):
    stream = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "cut"}], stream=True
    )
    received: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as raised:
        await read()
    assert "".join(received) == "Hello"
    assert raised.value.message == "provider dropped"
    assert raised.value.code == "service_unavailable"
    assert not isinstance(raised.value, openai.APIStatusError)


@pytest.mark.parametrize(
    ("content", "exception", "code"),
    [
        ("limited", openai.RateLimitError, "all_rate_limited"),
        ("unknown", openai.NotFoundError, "model_not_found"),
        ("down", openai.InternalServerError, "service_unavailable"),
        ("late", openai.InternalServerError, "deadline_exceeded"),
    ],
)
async def test_errors_become_the_sdks_own_exception_classes(client, content, exception, code):
    with pytest.raises(exception) as raised:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": content}]
        )
    assert raised.value.code == code
    assert raised.value.body["message"] in str(raised.value)


async def test_rate_limit_errors_carry_retry_after(client):
    with pytest.raises(openai.RateLimitError) as raised:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "limited"}]
        )
    assert raised.value.response.headers["retry-after"] == "7"


async def test_bad_input_is_a_bad_request_error_naming_the_field(client):
    picture = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    with pytest.raises(openai.BadRequestError) as raised:
        await client.chat.completions.create(model="auto", messages=[USER, picture], n=2)
    assert raised.value.param == "messages[1].content[0].type"
    assert raised.value.type == "invalid_request_error"
    assert "n: only n = 1 is supported" in raised.value.message


async def test_the_sdk_lists_the_models(client):
    page = await client.models.list()
    assert [(m.id, m.owned_by) for m in page.data] == [
        ("auto", "free-ai-selector"),
        ("groq/llama", "groq"),
    ]
