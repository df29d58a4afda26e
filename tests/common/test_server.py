"""The server factory and error mapping, through a real server on a loopback port."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common import errors
from services.common.logging import JsonFormatter, request_id_var
from services.common.server import start_grpc_server
from tests.fakes import SELECTOR, ScriptedSelector, registration


async def answer(request, context):
    """Raises whatever the prompt asks for; echoes the request id otherwise."""
    if request.prompt == "invalid":
        raise errors.InvalidArgument([("prompt", "must be 1..10000 characters")])
    if request.prompt == "limited":
        raise errors.ResourceExhausted("all rate limited", retry_after_seconds=6.2)
    if request.prompt == "boom":
        raise RuntimeError("secret internals")
    if request.prompt == "huge":
        raise errors.InvalidArgument([("tags", "t" * 200_000)] * 50)
    logging.getLogger("test").info("handled")
    return selector_pb2.ProcessPromptResponse(response="ok", request_id=request_id_var.get())


@pytest.fixture
async def server():
    running = await start_grpc_server(
        [registration(ScriptedSelector(answer=answer))], "127.0.0.1:0"
    )
    yield running
    await running.stop(0)


@pytest.fixture
async def channel(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


async def test_binds_a_free_port_and_reports_serving(server, channel):
    assert server.port > 0
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SELECTOR):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    replies = [r async for r in stub.ServerReflectionInfo(one(), timeout=5)]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {SELECTOR, "grpc.health.v1.Health"} <= names


async def test_graceful_stop_reports_not_serving(server, channel):
    await server.stop(0.1)
    with pytest.raises(grpc.aio.AioRpcError):
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)


async def _call(channel, prompt, metadata=()):
    stub = selector_pb2_grpc.SelectorStub(channel)
    return await stub.ProcessPrompt(
        selector_pb2.ProcessPromptRequest(prompt=prompt), timeout=5, metadata=metadata
    )


async def test_domain_error_arrives_with_reason_and_field_violation(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, "invalid")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(bad)
    assert info.reason == "ERROR_REASON_INVALID_ARGUMENT"
    assert info.domain == "aiselector.v1"
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("prompt", "must be 1..10000 characters")
    ]


async def test_retryable_error_carries_retry_info_and_trailer(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, "limited")
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(error).details[1].Unpack(retry)
    assert retry.retry_delay.seconds == 6
    assert ("retry-after", "7") in tuple(error.trailing_metadata())


async def test_an_error_echoing_huge_input_arrives_with_small_trailers(channel, caplog):
    caplog.set_level(logging.INFO)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, "huge")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailers = sum(len(k) + len(v) for k, v in error.trailing_metadata())
    assert len(error.details()) <= errors.MESSAGE_MAX_BYTES
    assert trailers + len(error.details()) < 16 * 1024
    bad = error_details_pb2.BadRequest()
    assert rpc_status.from_call(error).details[1].Unpack(bad)
    assert len(bad.field_violations) == errors.MAX_VIOLATIONS
    assert all(v.field == "tags" and v.description.endswith("…") for v in bad.field_violations)
    logged = next(r for r in caplog.records if r.getMessage() == "call failed")
    assert len(logged.error) <= errors.MESSAGE_MAX_BYTES


async def test_unexpected_exception_is_internal_without_its_text(channel):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channel, "boom")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internals" not in (caught.value.details() or "")
    assert "RuntimeError" not in (caught.value.details() or "")


async def test_request_id_round_trips_and_reaches_logs(channel, caplog):
    caplog.set_level(logging.INFO)
    call = selector_pb2_grpc.SelectorStub(channel).ProcessPrompt(
        selector_pb2.ProcessPromptRequest(prompt="hi"),
        timeout=5,
        metadata=(("x-request-id", "req-123"),),
    )
    reply = await call
    assert reply.request_id == "req-123"
    assert ("x-request-id", "req-123") in tuple(await call.trailing_metadata())
    record = next(r for r in caplog.records if r.getMessage() == "handled")
    assert '"request_id": "req-123"' in JsonFormatter("test").format(record)


async def test_request_id_is_generated_when_absent(channel):
    reply = await _call(channel, "hi")
    assert len(reply.request_id) == 32
