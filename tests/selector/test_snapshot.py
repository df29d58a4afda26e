"""The catalog as the Selector reads it: limits, accounts, zones; today's counts after a restart."""

from __future__ import annotations

from datetime import datetime

from aiselector.v1 import common_pb2, model_store_pb2
from services.selector.snapshot import restore_live_state, to_spec
from services.selector.state import LiveState, Quota

HOUR = 3600


def _model(model_id: int, provider: str, **fields: object) -> common_pb2.Model:
    gemini = provider == "gemini"
    values: dict = {
        "id": model_id,
        "name": f"{provider}/m{model_id}",
        "provider": provider,
        "api_format": common_pb2.API_FORMAT_GEMINI if gemini else common_pb2.API_FORMAT_OPENAI,
        "api_key_env": f"{provider.upper()}_API_KEY",
        "is_active": True,
    }
    return common_pb2.Model(**(values | fields))


def test_a_spec_carries_the_account_its_zone_and_the_output_tokens_sent() -> None:
    router = to_spec(
        _model(
            1,
            "openrouter",
            limits=common_pb2.ModelLimits(tokens_per_minute=9000, max_output_tokens=512),
            account_limits=common_pb2.ModelLimits(requests_per_minute=20, requests_per_day=50),
            reasoning=True,
        )
    )
    assert router.limits.account == "openrouter/OPENROUTER_API_KEY"
    assert router.limits.account_quota == Quota(requests_per_minute=20, requests_per_day=50)
    assert router.limits.tokens_per_minute == 9000
    assert router.limits.zone == "UTC"
    # A reasoning model is asked for at least 2048 output tokens: the gates count what is sent.
    assert router.max_output_tokens == 2048
    gemini = to_spec(_model(2, "gemini"))
    assert gemini.limits.zone == "America/Los_Angeles"
    assert gemini.max_output_tokens == 1024
    local = to_spec(_model(3, "ollama", api_key_env=""))
    assert local.limits.account == "ollama"


def _stats(model_id: int, hours: list[tuple[float, int, int]]) -> model_store_pb2.ModelStatistics:
    """Statistics with one bucket per (start, attempts, tokens)."""
    buckets = []
    for start, attempts, tokens in hours:
        bucket = model_store_pb2.StatisticsBucket(
            outcome_counts=[
                model_store_pb2.OutcomeCount(outcome=common_pb2.OUTCOME_SUCCESS, count=attempts)
            ],
            tokens=tokens,
        )
        bucket.start_time.FromSeconds(int(start))
        buckets.append(bucket)
    return model_store_pb2.ModelStatistics(model_id=model_id, buckets=buckets)


def test_today_is_counted_in_each_providers_day_and_accounts_are_summed() -> None:
    # 10:30 UTC on 1 December: the UTC day began at 00:00, the Pacific day at 08:00 UTC.
    now = datetime.fromisoformat("2026-12-01T10:30:00+00:00").timestamp()
    utc_midnight = datetime.fromisoformat("2026-12-01T00:00:00+00:00").timestamp()
    pacific_midnight = utc_midnight + 8 * HOUR
    hours = [
        (utc_midnight - HOUR, 100, 1000),  # yesterday for both
        (utc_midnight + 3 * HOUR, 10, 100),  # today in UTC, yesterday in Pacific time
        (pacific_midnight, 4, 40),  # today for both
        (pacific_midnight + 2 * HOUR, 1, 10),
    ]
    models = [
        _model(1, "gemini", limits=common_pb2.ModelLimits(requests_per_day=20)),
        _model(2, "openrouter", account_limits=common_pb2.ModelLimits(requests_per_day=50)),
        _model(3, "openrouter", account_limits=common_pb2.ModelLimits(requests_per_day=50)),
    ]
    reply = model_store_pb2.GetModelStatisticsResponse(
        statistics=[_stats(model.id, hours) for model in models]
    )
    live = LiveState()
    restore_live_state(live, models, reply, now)
    assert live.budget(1, now).requests_today == 5
    assert live.budget(1, now).tokens_today == 50
    assert live.budget(2, now).requests_today == 15
    assert live.account_budget(2, now).requests_today == 30
    assert live.account_budget(3, now).tokens_today == 300
