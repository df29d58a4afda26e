"""How the streaming methods end on an unexpected failure, before and after their first reply:
a proper error (OpenAI's shape on ChatCompletions), never a traceback, never a cut stream that
looks complete. The real servicer on a real server; a small engine stand-in fails on cue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common.server import Registration, start_grpc_server
from services.selector.app import SERVICE_NAME
from services.selector.client_keys import ClientGate
from services.selector.openai_reply import ERROR_TRAILER
from services.selector.server import SelectorServicer
from services.selector.snapshot import Catalog

SECRET = "secret internals"


class FailingEngine:
    """Sends `pieces` of an answer to the listener, then raises."""

    def __init__(self) -> None:
        self.catalog = Catalog({}, {}, frozenset())
        self.pieces: list[str] = []

    async def answer(self, prompt: Any, *, listener: Any = None, **kwargs: Any) -> Any:
        if self.pieces and listener is not None:
            await listener.commit("alpha/m1", "alpha", 1)
            for piece in self.pieces:
                await listener.delta(piece)
        raise RuntimeError(SECRET)


@pytest.fixture
async def engine() -> FailingEngine:
    return FailingEngine()


# Anonymous requests served; no key is ever looked up (none is sent), so no ModelStore.
open_gate = ClientGate(
    None,  # type: ignore[arg-type]
    admin_token=None,
    allow_anonymous=True,
    exposed=False,
    cache_seconds=5,
)


@pytest.fixture
async def stub(engine: FailingEngine) -> AsyncIterator[selector_pb2_grpc.SelectorStub]:
    servicer = SelectorServicer(
        engine,  # type: ignore[arg-type]
        default_deadline=5,
        admin_token=None,
        discovery=None,  # type: ignore[arg-type]  # not called by these tests
        gate=open_gate,
        keys=None,  # type: ignore[arg-type]  # not called by these tests
        timeline=None,  # type: ignore[arg-type]  # not called by these tests
    )
    servicer.mark_ready()
    server = await start_grpc_server(
        [Registration(SERVICE_NAME, selector_pb2_grpc.add_SelectorServicer_to_server, servicer)],
        "127.0.0.1:0",
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield selector_pb2_grpc.SelectorStub(channel)
    await server.stop(0)


def completion(stream: bool) -> httpbody_pb2.HttpBody:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(body).encode())


async def read_all(call: Any) -> tuple[list[Any], grpc.aio.AioRpcError]:
    """The messages of a call that must end with an error status, and that status."""
    seen = []
    try:
        async for message in call:
            seen.append(message)
    except grpc.aio.AioRpcError as error:
        return seen, error
    raise AssertionError(f"the call ended without an error after {seen}")


async def test_chat_completions_failing_before_a_reply_is_an_internal_openai_error(stub):
    seen, error = await read_all(stub.ChatCompletions(completion(stream=True), timeout=5))

    assert seen == []
    assert error.code() == grpc.StatusCode.INTERNAL
    body = json.loads(dict(error.trailing_metadata())[ERROR_TRAILER])
    assert body["error"]["type"] == "server_error"
    assert "see the service logs" in body["error"]["message"]
    assert SECRET not in str(error.trailing_metadata()) + error.details()


async def test_chat_completions_failing_after_its_first_chunk_ends_with_an_error_event(
    stub, engine
):
    engine.pieces = ["Hello", " there"]

    seen, error = await read_all(stub.ChatCompletions(completion(stream=True), timeout=5))

    events = [m.data.decode() for m in seen]
    assert '"content":"Hello"' in events[1]
    assert events[-1].startswith('data: {"error":')
    assert not any("[DONE]" in e or '"finish_reason":"stop"' in e for e in events)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in "".join(events)


async def test_stream_prompt_failing_after_its_first_delta_ends_with_an_error_event(stub, engine):
    engine.pieces = ["Hello"]
    request = selector_pb2.ProcessPromptRequest(prompt="hi")

    seen, error = await read_all(stub.StreamPrompt(request, timeout=5))

    assert [m.WhichOneof("event") for m in seen] == ["delta", "error"]
    assert seen[-1].error.code == grpc.StatusCode.INTERNAL.value[0]
    assert error.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in seen[-1].error.message + error.details()


async def test_stream_prompt_failing_before_any_event_is_only_the_status(stub):
    request = selector_pb2.ProcessPromptRequest(prompt="hi")

    seen, error = await read_all(stub.StreamPrompt(request, timeout=5))

    assert seen == []
    assert error.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in error.details()
