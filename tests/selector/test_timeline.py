"""GetModelTimeline on the real stack: every model hour by hour from ModelStore, prompt totals."""

from __future__ import annotations

import time

import grpc
import pytest

from aiselector.v1 import common_pb2, model_store_pb2, selector_pb2
from services.selector.stats import HOUR
from services.selector.timeline import timeline_hour

MODELS = ["alpha/m1", "beta/m1", "gamma/m1"]


async def timeline(stack, hours: int = 0) -> selector_pb2.GetModelTimelineResponse:
    await stack.selector.recorder.flush()
    return await stack.stub().GetModelTimeline(
        selector_pb2.GetModelTimelineRequest(hours=hours), timeout=5
    )


async def test_every_model_has_every_hour_and_the_current_one_holds_the_attempts(make_stack):
    stack = await make_stack({"beta/m1": {"behaviour": 503}})
    for _ in range(2):
        await stack.ask(model_name="beta/m1")  # beta fails, another model answers
    await stack.ask(model_name="alpha/m1")

    reply = await timeline(stack, hours=3)

    now = time.time()
    assert reply.hours == 3
    assert [m.name for m in reply.models] == MODELS
    current = now - now % HOUR
    starts = [current - 2 * HOUR, current - HOUR, current]
    for model in reply.models:
        assert [h.start_time.seconds for h in model.hours] == starts
    hours = {m.name: m.hours[-1] for m in reply.models}
    assert hours["beta/m1"].failures == 2
    assert hours["beta/m1"].successes == 0
    answered = sum(hours[name].successes for name in MODELS)
    assert answered == 3
    assert hours["alpha/m1"].successes >= 1
    assert hours["alpha/m1"].median_response_time > 0
    assert all(h.failures == 0 and h.successes == 0 for m in reply.models for h in m.hours[:2])
    # Three prompts, all answered, two of them by a model other than the first tried.
    last = reply.last_hour
    assert (last.prompts, last.answered, last.failovers) == (3, 3, 2)
    assert [p.prompts for p in reply.prompt_hours] == [0, 0, 3]


async def test_zero_hours_means_a_day(make_stack):
    stack = await make_stack()
    reply = await timeline(stack)
    assert reply.hours == 24
    assert all(len(m.hours) == 24 for m in reply.models)
    assert len(reply.prompt_hours) == 24


@pytest.mark.parametrize("hours", [-1, 169, 100_000])
async def test_hours_out_of_range_names_the_field_and_the_limit(make_stack, hours):
    stack = await make_stack()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await timeline(stack, hours)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hours: must be between 1 and 168" in raised.value.details()


async def test_modelstore_down_is_unavailable_with_a_retry(make_stack):
    stack = await make_stack()
    await stack.stop_store()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub().GetModelTimeline(selector_pb2.GetModelTimelineRequest(), timeout=15)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "timeline could not be read" in raised.value.details()
    await stack.start_store()


def test_an_hour_sorts_outcomes_into_successes_failures_limits_and_the_rest():
    bucket = model_store_pb2.StatisticsBucket(
        outcome_counts=[
            model_store_pb2.OutcomeCount(
                outcome=common_pb2.Outcome.Value(f"OUTCOME_{name}"), count=n
            )
            for name, n in [
                ("SUCCESS", 4),
                ("RATE_LIMITED", 1),
                ("QUOTA_EXHAUSTED", 2),
                ("TRANSIENT", 3),
                ("TIMEOUT", 1),
                ("BAD_REQUEST", 5),
                ("ABANDONED", 1),
            ]
        ],
        success_latency_ms_sum=2000,
        success_latency_histogram=[0, 0, 4, 0],
    )
    hour = timeline_hour(0.0, bucket, (100, 250, 500))
    assert (hour.successes, hour.rate_limited, hour.failures, hour.other) == (4, 3, 4, 6)
    assert hour.average_response_time == pytest.approx(0.5)
    assert hour.median_response_time == pytest.approx(0.375)
