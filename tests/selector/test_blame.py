"""Honest blame on the real stack: a model is charged a failure only for what the model did."""

from __future__ import annotations

import asyncio
import itertools
import time

import grpc
import pytest

from aiselector.v1 import common_pb2, selector_pb2
from tests.selector.test_conduct_on_the_stack import MODELS, _details, _model_stats

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


async def test_a_burst_of_in_flight_failures_from_one_outage_counts_once(make_stack):
    latency, start, end = 0.3, 0.5, 3.5
    stack = await make_stack(
        circuit_failure_threshold=3, circuit_open_seconds=0.5, circuit_max_open_seconds=1.5
    )
    live, alpha_id = stack.selector.engine.live, stack.selector.engine.catalog.by_name["alpha/m1"]
    stack.sim.set_scripts(
        {
            "default": {"latency": latency},
            "scripts": {
                "alpha/m1": {
                    "latency": latency,
                    "outage": {"start": start, "end": end, "behaviour": 503},
                }
            },
        }
    )
    began = time.time()
    stop = began + end + 3.0
    snapshots: list[dict] = []

    async def worker() -> int:
        answered = 0
        while time.time() < stop:
            reply = await stack.ask(model_name="alpha/m1", timeout=10)
            answered += reply.success
        return answered

    async def watch() -> None:
        while time.time() < stop:
            snapshots.append(live.snapshot(alpha_id))
            await asyncio.sleep(0.02)

    *answered, _ = await asyncio.gather(*(worker() for _ in range(30)), watch())
    assert sum(answered) > 100
    log = stack.requests_to("alpha")
    failed = [e for e in log if e["status"] == 503]
    assert len(failed) >= 30  # the burst: many requests were in flight when alpha failed
    openings = sum(
        1
        for before, after in itertools.pairwise(snapshots)
        if before["circuit_opened_at"] is None and after["circuit_opened_at"] is not None
    )
    assert openings == 1
    # Three counted failures opened it; each failed trial (at most one per 0.5 s) adds one.
    assert max(s["consecutive_failures"] for s in snapshots) <= 3 + 3
    recovered = min(e["time"] for e in log if e["status"] == 200 and e["time"] > began + end)
    assert recovered - (began + end) < 1.5 + latency + 0.7
    assert live.snapshot(alpha_id)["circuit_opened_at"] is None


async def test_a_stalled_selector_does_not_blame_the_provider_it_was_waiting_for(make_stack):
    stack = await make_stack({"alpha/m1": {"latency": 0.3}})  # alpha's timeout: 2 s
    loop = asyncio.get_running_loop()
    loop.call_later(0.15, time.sleep, 2.5)  # the whole process stands still, like a SIGSTOP
    replies = await asyncio.gather(
        *(stack.ask(model_name="alpha/m1", timeout=10) for _ in range(10))
    )
    outcomes = [a.outcome for r in replies for a in r.attempt_details]
    assert common_pb2.OUTCOME_TIMEOUT not in outcomes
    stalled = [a for r in replies for a in r.attempt_details if a.model == "alpha/m1"]
    assert common_pb2.OUTCOME_ABANDONED in [a.outcome for a in stalled]
    assert all(
        a.outcome == common_pb2.OUTCOME_SUCCESS
        or (a.outcome == common_pb2.OUTCOME_ABANDONED and "stalled" in a.error)
        for a in stalled
    )
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.failed_requests == 0
    assert (await stack.ask(model_name="alpha/m1")).selected_model == "alpha/m1"


async def test_waiting_for_a_local_connection_slot_is_not_a_provider_timeout(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"latency": 0.4}},
        models={"alpha/m1": {"limits": {"timeout_ms": 1000}}},
        provider_max_connections=2,
    )
    replies = await asyncio.gather(
        *(stack.ask(model_name="alpha/m1", timeout=20) for _ in range(16))
    )
    outcomes = [a.outcome for r in replies for a in r.attempt_details]
    assert common_pb2.OUTCOME_TIMEOUT not in outcomes
    assert all(r.selected_model == "alpha/m1" for r in replies)
    # Sixteen answers of 0.4 s through two connections took longer than alpha's 1 s timeout.
    assert max(r.response_time_seconds for r in replies) > 1.0
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.failed_requests == 0
