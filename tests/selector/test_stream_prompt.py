"""StreamPrompt over gRPC on the real stack: deltas then the result, failover notices before the
first delta, an error event and the status after it, and a caller that leaves mid-stream."""

from __future__ import annotations

from typing import Any

import grpc

from aiselector.v1 import common_pb2, selector_pb2
from tests.fakes import eventually
from tests.stacks import Stack

TEXT = "[simulated] one two three four five six seven eight nine ten eleven"
TIMERS = {"stream_first_token_timeout_seconds": 0.5, "stream_idle_timeout_seconds": 0.5}


async def events(
    stack: Stack, timeout: float = 10, **fields: Any
) -> tuple[list[selector_pb2.StreamPromptResponse], grpc.aio.AioRpcError | None]:
    """Every event of one StreamPrompt call, and the error status it ended with (if any)."""
    request = selector_pb2.ProcessPromptRequest(prompt="Stream it", **fields)
    call = stack.stub().StreamPrompt(request, timeout=timeout)
    seen = []
    try:
        async for event in call:
            seen.append(event)
    except grpc.aio.AioRpcError as error:
        return seen, error
    return seen, None


def code(error: grpc.aio.AioRpcError | None) -> grpc.StatusCode:
    return grpc.StatusCode.OK if error is None else error.code()


def kinds(seen: list[selector_pb2.StreamPromptResponse]) -> list[str]:
    return [event.WhichOneof("event") for event in seen]


async def test_the_deltas_join_to_the_answer_in_the_result(make_stack):
    stack = await make_stack({"alpha/*": {"text": TEXT, "stream": {"chunks": 3}}})

    seen, error = await events(stack, model_name="alpha/m1")

    assert error is None
    assert kinds(seen) == ["delta", "delta", "delta", "result"]
    result = seen[-1].result
    assert "".join(e.delta.text for e in seen[:-1]) == result.response == TEXT
    assert (result.selected_model, result.attempts, result.success) == ("alpha/m1", 1, True)
    assert result.usage.completion_tokens > 0
    [record] = await stack.history()
    assert (record.response_text, record.success, record.status_code) == (TEXT, True, "OK")


async def test_a_model_failing_before_its_first_text_is_a_failover_notice(make_stack):
    stack = await make_stack(
        {"alpha/*": {"behaviour": "stream_silent_after_headers"}, "beta/*": {"text": TEXT}},
        keys=("alpha", "beta"),
        **TIMERS,
    )

    seen, error = await events(stack, model_name="alpha/m1")

    assert error is None
    assert kinds(seen)[0] == "failover"
    assert set(kinds(seen)[1:-1]) == {"delta"}
    notice = seen[0].failover
    assert (notice.failed_attempt.model, notice.next_model) == ("alpha/m1", "beta/m1")
    assert notice.failed_attempt.outcome == common_pb2.OUTCOME_TIMEOUT
    assert (seen[-1].result.attempts, seen[-1].result.fallback_used) == (2, True)
    assert seen[-1].result.response == TEXT


async def test_a_failure_after_the_first_delta_is_an_error_event_then_the_same_status(make_stack):
    stack = await make_stack(
        {"alpha/*": {"behaviour": "stream_drop", "text": TEXT, "stream": {"fault_after": 1}}}
    )

    seen, error = await events(stack, model_name="alpha/m1")

    assert kinds(seen) == ["delta", "error"]
    assert code(error) == grpc.StatusCode.UNAVAILABLE
    assert seen[-1].error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "cut off" in seen[-1].error.message == error.details()
    assert [e["provider"] for e in stack.sim.log()] == ["alpha"]


async def test_models_failing_one_after_another_are_failovers_then_the_error(make_stack):
    failing = {"behaviour": 500}
    stack = await make_stack({"alpha/*": failing, "beta/*": failing, "gamma/*": failing})

    seen, error = await events(stack, model_name="alpha/m1")

    assert kinds(seen) == ["failover", "failover", "error"]
    assert seen[0].failover.failed_attempt.model == "alpha/m1"
    assert code(error) == grpc.StatusCode.UNAVAILABLE
    assert seen[-1].error.message == error.details()


async def test_a_failure_before_any_event_is_only_the_status(make_stack):
    stack = await make_stack(keys=())

    seen, error = await events(stack)

    assert seen == []
    assert code(error) == grpc.StatusCode.UNAVAILABLE
    assert dict(error.trailing_metadata())["retry-after"] == "30"


async def test_bad_input_fails_before_any_event(make_stack):
    stack = await make_stack()

    seen, error = await events(stack, tags=["no-such-tag"])

    assert seen == []
    assert code(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert stack.sim.log() == []


async def test_a_json_mode_answer_is_checked_whole_and_sent_in_one_delta(make_stack):
    stack = await make_stack({"alpha/*": {"stream": {"chunks": 4}}})

    seen, error = await events(
        stack,
        model_name="alpha/m1",
        response_format=selector_pb2.ResponseFormat(type="json_object"),
    )

    assert error is None
    assert kinds(seen) == ["delta", "result"]
    assert seen[0].delta.text == seen[1].result.response
    assert seen[1].result.response.startswith("{")
    assert stack.sim.log()[0]["stream"] is False


async def test_a_caller_that_leaves_mid_stream_cancels_the_provider_call_as_abandoned(
    make_stack,
):
    stack = await make_stack(
        {"alpha/*": {"text": TEXT, "stream": {"chunks": 8, "chunk_delay": 0.5}}}
    )
    call = stack.stub().StreamPrompt(
        selector_pb2.ProcessPromptRequest(prompt="Stream it", model_name="alpha/m1"), timeout=20
    )
    first = await call.read()
    assert first.WhichOneof("event") == "delta"

    call.cancel()

    await eventually(lambda: stack.sim.log()[0]["client_gone"], timeout=3)
    assert stack.sim.log()[0]["chunks"] < 8
    assert await stack.outcomes() == {"alpha/m1": {"OUTCOME_ABANDONED": 1}}
    [record] = await stack.history()
    assert (record.status_code, record.success) == ("CANCELLED", False)
