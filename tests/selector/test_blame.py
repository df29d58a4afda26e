"""Honest blame on the real stack: a model is charged a failure only for what the model did."""

from __future__ import annotations

import grpc
import pytest

from aiselector.v1 import common_pb2, selector_pb2
from tests.selector.test_conduct import MODELS, _details, _model_stats

JSON = {"type": "json_object"}


async def _all_ready_without_failures(stack) -> None:
    for name in MODELS:
        stats = await _model_stats(stack, name)
        assert stats.state == selector_pb2.MODEL_STATE_READY, (name, stats.state_reason)
        assert stats.failed_requests == 0, name


async def test_prose_answers_to_json_requests_fall_back_and_blame_nobody(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"behaviour": "invalid_json"}, "beta/m1": {"behaviour": "invalid_json"}}
    )
    for _ in range(3):
        reply = await stack.ask(model_name="alpha/m1", response_format=JSON)
        assert reply.selected_model == "gamma/m1"
        assert reply.response.startswith("{")
        assert common_pb2.OUTCOME_WRONG_FORMAT in [a.outcome for a in reply.attempt_details]
    assert len(stack.requests_to("alpha")) == 3
    await _all_ready_without_failures(stack)
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.total_requests == 3


async def test_json_asked_and_every_model_answered_prose_is_a_clear_client_error(make_stack):
    stack = await make_stack({m: {"behaviour": "invalid_json"} for m in MODELS})
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stack.ask("Write a poem", response_format=JSON)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reason, retry, violations = _details(caught.value)
        assert reason == "ERROR_REASON_PROMPT_REJECTED"
        assert retry is None
        assert {field for field, _ in violations} == {"response_format.type"}
        assert "not a JSON object" in violations[0][1]
    await _all_ready_without_failures(stack)
    # Plain-text requests are still answered by every model.
    for name in MODELS:
        assert (await stack.ask(model_name=name)).selected_model == name
