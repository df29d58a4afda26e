"""RecordAttempts and GetModelStatistics through a real client: exact, idempotent, windowed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aiselector.v1 import common_pb2
from aiselector.v1 import model_store_pb2 as pb
from tests.data.rpc import attempt, error_reason, ts, violations

pbc = common_pb2


async def _model(stub, name: str = "groq/gpt-oss-120b") -> common_pb2.Model:
    return (await stub.GetModel(pb.GetModelRequest(name=name))).model


async def test_fifty_concurrent_batches_leave_exact_counts(model_store_stub):
    model = await _model(model_store_stub)
    now = datetime.now(UTC)
    # i % 4 over 0..49: success and transient 13 times each, rate limited and timeout 12 times.
    outcomes = [
        pbc.OUTCOME_SUCCESS,
        pbc.OUTCOME_TRANSIENT,
        pbc.OUTCOME_RATE_LIMITED,
        pbc.OUTCOME_TIMEOUT,
    ]
    recent = now - timedelta(seconds=5)
    batches = [
        [
            attempt(model.id, recent, outcomes[i % 4], latency_ms=100 + i, tokens=3),
            attempt(model.id, now - timedelta(hours=1), pbc.OUTCOME_SUCCESS, latency_ms=1000),
        ]
        for i in range(50)
    ]
    replies = await asyncio.gather(
        *(
            model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=b), timeout=30)
            for b in batches
        )
    )
    assert [r.recorded_count for r in replies] == [2] * 50
    stored = await _model(model_store_stub)
    assert stored.request_count == 100
    assert stored.success_count == 13 + 50
    # transient and timeout count as failures; rate limited does not.
    assert stored.failure_count == 13 + 12
    expected_seconds = sum(100 + i for i in range(0, 50, 4)) / 1000 + 50 * 1.0
    assert stored.total_response_time_seconds == pytest.approx(expected_seconds)
    assert stored.last_checked == ts(recent)

    window = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(model_ids=[model.id], start_time=ts(now - timedelta(hours=2)))
    )
    buckets = window.statistics[0].buckets
    totals: dict[int, int] = {}
    for bucket in buckets:
        for count in bucket.outcome_counts:
            totals[count.outcome] = totals.get(count.outcome, 0) + count.count
    assert totals == {
        pbc.OUTCOME_SUCCESS: 63,
        pbc.OUTCOME_TRANSIENT: 13,
        pbc.OUTCOME_RATE_LIMITED: 12,
        pbc.OUTCOME_TIMEOUT: 12,
    }
    assert window.statistics[0].requests_last_minute == 50
    assert sum(b.tokens for b in buckets) == 150


async def test_outcomes_that_are_not_the_models_fault_are_counted_but_not_failures(
    model_store_stub,
):
    model = await _model(model_store_stub)
    now = datetime.now(UTC)
    batch = [
        attempt(model.id, now, outcome)
        for outcome in (pbc.OUTCOME_WRONG_FORMAT, pbc.OUTCOME_ABANDONED, pbc.OUTCOME_BAD_ANSWER)
    ]
    await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=batch))
    stored = await _model(model_store_stub)
    assert (stored.request_count, stored.failure_count) == (3, 1)
    window = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(model_ids=[model.id], start_time=ts(now - timedelta(hours=1)))
    )
    counts = {c.outcome: c.count for b in window.statistics[0].buckets for c in b.outcome_counts}
    assert counts == {
        pbc.OUTCOME_WRONG_FORMAT: 1,
        pbc.OUTCOME_ABANDONED: 1,
        pbc.OUTCOME_BAD_ANSWER: 1,
    }


async def test_the_same_batch_sent_twice_counts_once(model_store_stub):
    model = await _model(model_store_stub)
    now = datetime.now(UTC)
    batch = pb.RecordAttemptsRequest(
        attempts=[attempt(model.id, now, pbc.OUTCOME_SUCCESS, latency_ms=300) for _ in range(5)]
    )
    first, second, third = await asyncio.gather(
        *(model_store_stub.RecordAttempts(batch) for _ in range(3))
    )
    assert sorted(r.recorded_count for r in (first, second, third)) == [0, 0, 5]
    assert sorted(r.duplicate_count for r in (first, second, third)) == [0, 5, 5]
    stored = await _model(model_store_stub)
    assert (stored.request_count, stored.success_count) == (5, 5)
    assert stored.total_response_time_seconds == pytest.approx(1.5)
    window = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(model_ids=[model.id], start_time=ts(now - timedelta(hours=1)))
    )
    assert sum(b.outcome_counts[0].count for b in window.statistics[0].buckets) == 5


async def test_a_repeated_id_inside_one_batch_counts_once(model_store_stub):
    model = await _model(model_store_stub)
    one = attempt(model.id, datetime.now(UTC), attempt_id="same-id")
    reply = await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=[one, one]))
    assert (reply.recorded_count, reply.duplicate_count) == (1, 1)
    assert (await _model(model_store_stub)).request_count == 1


async def test_statistics_window_over_spread_data(model_store_stub):
    groq = await _model(model_store_stub)
    gemini = await _model(model_store_stub, "gemini/gemini-3.6-flash")
    end = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    hour5 = end - timedelta(hours=5)
    spread = [
        # Outside the window (before start): must not appear.
        attempt(groq.id, end - timedelta(hours=30), pbc.OUTCOME_SUCCESS, latency_ms=50),
        # Hour end-5h: two successes in different histogram buckets, a 429, a permanent error.
        attempt(groq.id, hour5 + timedelta(minutes=10), pbc.OUTCOME_SUCCESS, 100, tokens=7),
        attempt(groq.id, hour5 + timedelta(minutes=20), pbc.OUTCOME_SUCCESS, 2500, tokens=9),
        attempt(groq.id, hour5 + timedelta(minutes=30), pbc.OUTCOME_RATE_LIMITED, 40),
        attempt(groq.id, hour5 + timedelta(minutes=40), pbc.OUTCOME_PERMANENT, 90),
        # Hour end-1h: an overflow-latency success and a bad answer.
        attempt(groq.id, end - timedelta(minutes=30), pbc.OUTCOME_SUCCESS, 61000),
        attempt(groq.id, end - timedelta(minutes=20), pbc.OUTCOME_BAD_ANSWER, 800),
        # At or after the end: must not appear.
        attempt(groq.id, end + timedelta(minutes=1), pbc.OUTCOME_SUCCESS, 10),
        attempt(gemini.id, end - timedelta(hours=2), pbc.OUTCOME_QUOTA_EXHAUSTED, 30),
    ]
    await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=spread))
    reply = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(
            model_ids=[groq.id, gemini.id],
            start_time=ts(end - timedelta(hours=24, minutes=30)),
            end_time=ts(end),
        )
    )
    assert list(reply.latency_bounds_ms) == [
        100,
        250,
        500,
        1000,
        2000,
        4000,
        8000,
        15000,
        30000,
        60000,
    ]
    assert reply.start_time == ts(end - timedelta(hours=25))
    by_model = {s.model_id: s for s in reply.statistics}
    hours = by_model[groq.id].buckets
    assert [b.start_time for b in hours] == [
        ts(end - timedelta(hours=5)),
        ts(end - timedelta(hours=1)),
    ]
    early, late = hours
    assert {c.outcome: c.count for c in early.outcome_counts} == {
        pbc.OUTCOME_SUCCESS: 2,
        pbc.OUTCOME_RATE_LIMITED: 1,
        pbc.OUTCOME_PERMANENT: 1,
    }
    assert early.success_latency_ms_sum == 2600
    assert list(early.success_latency_histogram) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert early.tokens == 16
    assert {c.outcome: c.count for c in late.outcome_counts} == {
        pbc.OUTCOME_SUCCESS: 1,
        pbc.OUTCOME_BAD_ANSWER: 1,
    }
    assert list(late.success_latency_histogram) == [0] * 10 + [1]
    (gemini_hour,) = by_model[gemini.id].buckets
    assert [(c.outcome, c.count) for c in gemini_hour.outcome_counts] == [
        (pbc.OUTCOME_QUOTA_EXHAUSTED, 1)
    ]


async def test_empty_model_list_reports_every_model_and_budget_today(model_store_stub):
    groq = await _model(model_store_stub)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    batch = [
        attempt(groq.id, now - timedelta(seconds=10), pbc.OUTCOME_SUCCESS, tokens=100),
        attempt(groq.id, now - timedelta(seconds=90), pbc.OUTCOME_RATE_LIMITED, tokens=0),
        attempt(groq.id, today - timedelta(minutes=1), pbc.OUTCOME_SUCCESS, tokens=1000),
    ]
    await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=batch))
    reply = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(start_time=ts(now - timedelta(days=2)))
    )
    listed = await model_store_stub.ListModels(pb.ListModelsRequest())
    assert [s.model_id for s in reply.statistics] == [m.id for m in listed.models]
    groq_stats = next(s for s in reply.statistics if s.model_id == groq.id)
    assert groq_stats.requests_last_minute == 1
    expected_today = 2 if now - timedelta(seconds=90) >= today else 1
    assert groq_stats.requests_today == expected_today
    assert groq_stats.tokens_today == 100
    others = [s for s in reply.statistics if s.model_id != groq.id]
    assert all(not s.buckets and s.requests_today == 0 for s in others)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attempt_id": ""}, "attempts[0].attempt_id"),
        ({"model_id": 0}, "attempts[0].model_id"),
        ({"outcome": pbc.OUTCOME_UNSPECIFIED}, "attempts[0].outcome"),
        ({"source": pbc.ATTEMPT_SOURCE_UNSPECIFIED}, "attempts[0].source"),
        ({"latency_ms": -1}, "attempts[0].latency_ms"),
        ({"http_status": 700}, "attempts[0].http_status"),
    ],
)
async def test_record_attempts_validation(model_store_stub, change, field):
    one = attempt(1, datetime.now(UTC))
    for key, value in change.items():
        setattr(one, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=[one]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(caught.value)


async def test_record_attempts_batch_limits_and_unknown_model(model_store_stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest())
    assert "attempts" in violations(caught.value)
    missing_time = attempt(1, datetime.now(UTC))
    missing_time.ClearField("start_time")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=[missing_time]))
    assert "attempts[0].start_time" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordAttempts(
            pb.RecordAttemptsRequest(attempts=[attempt(777777, datetime.now(UTC))])
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "ERROR_REASON_MODEL_NOT_FOUND"


async def test_statistics_validation(model_store_stub):
    now = datetime.now(UTC)
    cases = [
        (pb.GetModelStatisticsRequest(), "start_time"),
        (pb.GetModelStatisticsRequest(start_time=ts(now - timedelta(days=32))), "start_time"),
        (
            pb.GetModelStatisticsRequest(start_time=ts(now), end_time=ts(now - timedelta(hours=2))),
            "start_time",
        ),
        (
            pb.GetModelStatisticsRequest(model_ids=[-1], start_time=ts(now - timedelta(hours=1))),
            "model_ids",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await model_store_stub.GetModelStatistics(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.GetModelStatistics(
            pb.GetModelStatisticsRequest(model_ids=[31337], start_time=ts(now - timedelta(hours=1)))
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_attempt_ids_are_unique_across_models(model_store_stub):
    groq = await _model(model_store_stub)
    gemini = await _model(model_store_stub, "gemini/gemini-3.6-flash")
    shared = uuid.uuid4().hex
    now = datetime.now(UTC)
    first = await model_store_stub.RecordAttempts(
        pb.RecordAttemptsRequest(attempts=[attempt(groq.id, now, attempt_id=shared)])
    )
    second = await model_store_stub.RecordAttempts(
        pb.RecordAttemptsRequest(attempts=[attempt(gemini.id, now, attempt_id=shared)])
    )
    assert (first.recorded_count, second.duplicate_count) == (1, 1)
    assert (await _model(model_store_stub, "gemini/gemini-3.6-flash")).request_count == 0
