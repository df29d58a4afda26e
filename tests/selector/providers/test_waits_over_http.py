"""Every source of a retry wait, read from real 429 replies of the simulator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, ProviderError
from services.selector.providers.waits import seconds_until_midnight
from tests.selector.providers.helpers import script

pb = common_pb2
GROQ = ("groq", pb.API_FORMAT_OPENAI)
GEMINI = ("gemini", pb.API_FORMAT_GEMINI)
# A provider without rules of its own: the default rules for OpenAI-compatible providers.
OTHER = ("alpha", pb.API_FORMAT_OPENAI)


async def _failure(client, target, wire) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await client.complete(target(wire), ChatRequest.from_prompt("x"), timeout=5)
    return caught.value


async def test_retry_after_in_seconds(sim, client, target):
    script(sim, GROQ, behaviour="rate_limited", retry_after=7)

    error = await _failure(client, target, GROQ)

    assert (error.outcome, error.http_status) == (pb.OUTCOME_RATE_LIMITED, 429)
    assert error.retry_after == 7


async def test_retry_after_as_http_date(sim, client, target):
    script(sim, GROQ, behaviour=429, retry_after=30, retry_after_format="http_date")

    error = await _failure(client, target, GROQ)

    assert error.outcome == pb.OUTCOME_RATE_LIMITED
    assert 27 <= error.retry_after <= 31


# Gemini's per-minute quota without a RetryInfo lasts at most its one-minute window.
@pytest.mark.parametrize(("wire", "expected"), [(GROQ, None), (GEMINI, 60.0)])
async def test_429_without_any_wait(sim, client, target, wire, expected):
    script(sim, wire, behaviour="rate_limited")

    error = await _failure(client, target, wire)

    assert (error.outcome, error.retry_after) == (pb.OUTCOME_RATE_LIMITED, expected)


SPENT_TOKENS = {
    "x-ratelimit-reset-requests": "59.9s",
    "x-ratelimit-remaining-requests": "14",
    "x-ratelimit-reset-tokens": "1.5s",
    "x-ratelimit-remaining-tokens": "0",
}


@pytest.mark.parametrize(
    ("wire", "headers", "expected"),
    [
        (OTHER, {"x-ratelimit-reset-requests": "1m30s"}, 90.0),
        (OTHER, {"x-ratelimit-reset-tokens": "2.5s"}, 2.5),
        (OTHER, SPENT_TOKENS, 1.5),
        (GROQ, {"x-ratelimit-reset-tokens": "2.5s"}, 2.5),
        (GROQ, SPENT_TOKENS, 1.5),
        # Groq's -requests headers count the day: their reset is no per-minute wait.
        (GROQ, {"x-ratelimit-reset-requests": "1m30s"}, None),
    ],
)
async def test_x_ratelimit_reset_headers(sim, client, target, wire, headers, expected):
    script(sim, wire, behaviour="rate_limited", headers=headers)

    error = await _failure(client, target, wire)

    assert error.outcome == pb.OUTCOME_RATE_LIMITED
    assert error.retry_after == (pytest.approx(expected) if expected is not None else None)


async def test_gemini_resource_exhausted_retry_delay(sim, client, target):
    script(sim, GEMINI, behaviour="rate_limited", retry_after=7)

    error = await _failure(client, target, GEMINI)

    assert (error.outcome, error.http_status) == (pb.OUTCOME_RATE_LIMITED, 429)
    assert error.retry_after == 7


@pytest.mark.parametrize("wire", [GROQ, OTHER])
async def test_daily_quota_waits_as_told(sim, client, target, wire):
    script(sim, wire, behaviour="daily_quota", retry_after=5000)

    error = await _failure(client, target, wire)

    assert (error.outcome, error.retry_after) == (pb.OUTCOME_QUOTA_EXHAUSTED, 5000)


async def test_gemini_daily_quota_lasts_until_midnight_pacific_whatever_the_retry_delay(
    sim, client, target
):
    script(sim, GEMINI, behaviour="daily_quota", retry_after=5000)

    error = await _failure(client, target, GEMINI)

    assert error.outcome == pb.OUTCOME_QUOTA_EXHAUSTED
    expected = seconds_until_midnight(datetime.now(UTC), "America/Los_Angeles")
    assert error.retry_after == pytest.approx(expected, abs=5)


@pytest.mark.parametrize(("wire", "zone"), [(OTHER, "UTC"), (GEMINI, "America/Los_Angeles")])
async def test_daily_quota_without_a_wait_lasts_until_the_daily_reset(
    sim, client, target, wire, zone
):
    script(sim, wire, behaviour="daily_quota")

    error = await _failure(client, target, wire)

    assert error.outcome == pb.OUTCOME_QUOTA_EXHAUSTED
    expected = seconds_until_midnight(datetime.now(UTC), zone)
    assert error.retry_after == pytest.approx(expected, abs=5)


async def test_spent_per_day_quota_is_told_apart_from_per_minute(sim, client, target):
    script(sim, GROQ, quota={"per_minute": 5, "per_day": 1, "day_seconds": 7200})

    await client.complete(target(GROQ), ChatRequest.from_prompt("x"), timeout=5)
    error = await _failure(client, target, GROQ)

    assert error.outcome == pb.OUTCOME_QUOTA_EXHAUSTED
    assert 7000 <= error.retry_after <= 7200
