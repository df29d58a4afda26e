"""Each provider profile over real HTTP, against the recorded replies in tests/fixtures/providers.

A case scripted to reproduce a recording must give its status and exactly its body (messages
carry the `[simulated]` prefix); cases driven by a quota give the recorded body with our numbers,
and the recorded rate-limit headers in the recorded formats.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.simulator.profiles import PROFILES
from services.simulator.script import PROFILE_NAMES, load_scenario
from tests.simulator.helpers import PREFIX, ask, keys, missing, recorded, unmark

GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?s$")
FLOAT_SECONDS = re.compile(r"^\d+\.\d+$")


def script(provider: str, **fields: Any) -> dict[str, Any]:
    return {"scripts": {f"{provider}/*": {"latency": 0, **fields}}}


def models(provider: str, *ids: str) -> dict[str, Any]:
    return {"providers": {provider: {"models": list(ids)}}}


@dataclass(frozen=True)
class Case:
    """A scenario and a request that must get the recorded reply `fixture`."""

    fixture: str
    scenario: dict[str, Any]
    model: str = "m"
    extra: dict[str, Any] = field(default_factory=dict)
    key: str | None = "k"

    def __str__(self) -> str:
        return self.fixture


REPRODUCED = [
    Case("gemini/400_api_key_invalid", script("gemini", api_key="right"), key="wrong"),
    Case("gemini/400_context_too_long", script("gemini", behaviour="context_length_exceeded")),
    Case("gemini/404_unknown_model", models("gemini", "gemini-3.6-flash"), "gemini-1.5-flash"),
    Case(
        "gemini/429_daily_free_tier",
        script("gemini", behaviour="daily_quota", retry_after=38.90923309),
        "gemini-3.5-flash",
    ),
    Case(
        "gemini/429_per_minute",
        script("gemini", behaviour="rate_limited"),
        "gemini-2.5-flash-preview-image",
    ),
    Case(
        "gemini/429_per_minute_retryinfo",
        script("gemini", behaviour="rate_limited", retry_after=20.04466179),
        "gemini-3.5-flash",
    ),
    Case(
        "gemini/429_limit_zero_no_free_tier",
        script("gemini", behaviour="no_free_tier"),
        "gemini-2.5-pro",
    ),
    Case("gemini/503_high_demand", script("gemini", behaviour=503)),
    Case("gemini/503_high_demand", script("gemini", behaviour="queue_exceeded")),
    Case("gemini/prompt_blocked", script("gemini", behaviour="content_filter")),
    Case("gemini/safety_block_candidate", script("gemini", behaviour="safety")),
    Case("groq/401_invalid_api_key", script("groq", api_key="right"), key="wrong"),
    Case("groq/401_invalid_api_key", script("groq"), key=None),
    Case(
        "groq/404_model_decommissioned",
        models("groq", "openai/gpt-oss-120b"),
        "llama-3.3-70b-versatile",
    ),
    Case("groq/429_rpd", script("groq", behaviour="daily_quota"), "openai/gpt-oss-120b"),
    Case("cerebras/401_wrong_api_key", script("cerebras", api_key="right"), key="wrong"),
    Case("cerebras/403_no_auth_header", script("cerebras"), key=None),
    Case("cerebras/404_model_not_found", models("cerebras", "gpt-oss-120b"), "llama-3.3-70b"),
    Case("cerebras/429_queue_exceeded", script("cerebras", behaviour="queue_exceeded")),
    Case("cerebras/429_requests_per_minute", script("cerebras", behaviour="rate_limited")),
    Case("cerebras/429_daily", script("cerebras", behaviour="daily_quota")),
    Case("sambanova/400_invalid_parameter", script("sambanova"), extra={"top_p": 100}),
    Case("sambanova/402_payment_method_required", script("sambanova", behaviour=402)),
    Case("sambanova/402_payment_method_required", script("sambanova", behaviour="no_free_tier")),
    Case("sambanova/429_daily_violated_duration", script("sambanova", behaviour="daily_quota")),
    Case(
        "huggingface/400_model_not_supported",
        models("huggingface", "openai/gpt-oss-120b"),
        "HuggingFaceH4/zephyr-7b-beta",
    ),
    Case("huggingface/402_monthly_credits_exhausted", script("huggingface", behaviour=402)),
    Case(
        "cloudflare/400_no_such_model",
        models("cloudflare", "@cf/zai-org/glm-4.7-flash"),
        "@cf/meta/llama-3.1-8b-instruct",
    ),
    Case("cloudflare/403_requires_workers_paid", script("cloudflare", behaviour=403)),
    Case("cloudflare/408_timeout", script("cloudflare", behaviour=408)),
    Case("cloudflare/413_request_too_large", script("cloudflare", behaviour=413)),
    Case("cloudflare/429_daily_neurons_4006", script("cloudflare", behaviour="daily_quota")),
    Case("cloudflare/429_out_of_capacity", script("cloudflare", behaviour="queue_exceeded")),
    Case("cloudflare/429_out_of_capacity", script("cloudflare", behaviour="rate_limited")),
    Case("openrouter/401_missing_auth", script("openrouter"), key=None),
    Case("openrouter/402_insufficient_credits", script("openrouter", behaviour=402)),
    Case(
        "openrouter/404_no_endpoints",
        models("openrouter", "openai/gpt-oss-120b:free"),
        "stepfun/step-3.5-flash:free",
    ),
    Case(
        "openrouter/429_upstream_rate_limited",
        script("openrouter", behaviour="rate_limited"),
        "google/gemma-4-31b-it:free",
    ),
]


@pytest.mark.parametrize("case", REPRODUCED, ids=str)
async def test_scripted_case_says_exactly_what_the_provider_recorded(sim, http, case):
    provider = case.fixture.split("/")[0]
    sim.set_scripts({"default": {"latency": 0}, **case.scenario})
    fixture = recorded(case.fixture)

    status, headers, body = await ask(http, sim, provider, case.model, key=case.key, **case.extra)

    assert status == fixture["status"]
    expected = dict(fixture["body"])
    if "request_id" in expected:  # a fresh id per reply
        assert isinstance(body.pop("request_id"), str)
        expected.pop("request_id")
    assert unmark(body) == expected
    if status >= 400:
        assert PREFIX in str(body)
        assert "simulated" not in body  # error envelopes keep exactly the recorded keys
    else:
        assert body["simulated"] is True
    if provider in ("cerebras", "gemini"):
        assert "retry-after" not in headers


async def test_groq_sends_daily_request_and_minute_token_headers_on_every_reply(sim, http):
    quota = {"per_day": 2, "tokens_per_minute": 18000}
    sim.set_scripts(script("groq", quota=quota))
    recorded_names = set(recorded("groq/success_with_headers")["headers"])

    replies = [await ask(http, sim, "groq", "openai/gpt-oss-120b") for _ in range(3)]

    (first, first_headers, _), (second, second_headers, _), (third, headers, body) = replies
    assert (first, second, third) == (200, 200, 429)
    for seen in (first_headers, second_headers, headers):
        assert recorded_names <= set(seen)
        assert GO_DURATION.match(seen["x-ratelimit-reset-requests"])
        assert GO_DURATION.match(seen["x-ratelimit-reset-tokens"])
        assert seen["x-ratelimit-limit-requests"] == "2"  # -requests is the DAILY budget
        assert seen["x-ratelimit-limit-tokens"] == "18000"  # -tokens the per-minute one
    assert "retry-after" not in first_headers
    assert first_headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 86390 <= int(headers["retry-after"]) <= 86400  # integer seconds, only on 429
    fixture = recorded("groq/429_rpd")["body"]
    fixture["error"]["message"] = fixture["error"]["message"].replace("1000", "2")
    assert unmark(body) == fixture


async def test_groq_counts_max_tokens_against_tpm_with_429_and_413(sim, http):
    sim.set_scripts(script("groq", quota={"tokens_per_minute": 600}))
    model = "llama-3.1-8b-instant"

    fits, _, _ = await ask(http, sim, "groq", model, max_tokens=400)
    status, headers, body = await ask(http, sim, "groq", model, max_tokens=400)
    too_large, large_headers, large_body = await ask(http, sim, "groq", model, max_tokens=5000)

    assert (fits, status, too_large) == (200, 429, 413)
    message = body["error"]["message"]
    numbers = re.search(
        r"Limit (\d+), Used (\d+), Requested (\d+)\. Please try again in (\S+)\.", message
    )
    assert numbers is not None
    limit, used, requested, wait = numbers.groups()
    assert (limit, int(used) + int(requested) > 600) == ("600", True)
    fixture = recorded("groq/429_tpm")["body"]
    for old, new in (("6000", limit), ("5034", used), ("1443", requested), ("4.77s", wait)):
        fixture["error"]["message"] = fixture["error"]["message"].replace(old, new)
    assert unmark(body) == fixture
    assert headers["retry-after"].isdigit()
    assert int(headers["x-ratelimit-remaining-tokens"]) < int(requested)
    large = re.search(r"Limit 600, Requested (\d+),", large_body["error"]["message"])
    assert large is not None
    fixture = recorded("groq/413_request_too_large_tpm")["body"]
    fixture["error"]["message"] = (
        fixture["error"]["message"].replace("6000", "600").replace("12328", large.group(1))
    )
    assert unmark(large_body) == fixture
    assert "retry-after" not in large_headers


async def test_cerebras_float_second_headers_on_every_reply_and_top_level_429s(sim, http):
    sim.set_scripts(script("cerebras", quota={"per_minute": 1}))
    recorded_names = set(recorded("cerebras/success_with_headers")["headers"])

    ok, ok_headers, _ = await ask(http, sim, "cerebras", "gpt-oss-120b")
    status, headers, body = await ask(http, sim, "cerebras", "gpt-oss-120b")

    assert (ok, status) == (200, 429)
    for seen in (ok_headers, headers):
        assert recorded_names <= set(seen)
        assert FLOAT_SECONDS.match(seen["x-ratelimit-reset-requests-day"])
        assert FLOAT_SECONDS.match(seen["x-ratelimit-reset-tokens-minute"])
        # Unscripted buckets are reported as Cerebras reports its own: a limit of 1e9.
        assert seen["x-ratelimit-limit-requests-day"] == "1000000000"
    assert 86000 < float(headers["x-ratelimit-reset-requests-day"]) <= 86400
    assert 0 < float(headers["x-ratelimit-reset-tokens-minute"]) <= 60
    assert "retry-after" not in headers
    assert unmark(body) == recorded("cerebras/429_requests_per_minute")["body"]


async def test_cerebras_daily_and_token_quotas(sim, http):
    sim.set_scripts(
        {
            "scripts": {
                "cerebras/day": {"quota": {"per_day": 1}},
                "cerebras/tokens": {"quota": {"tokens_per_minute": 500}},
            }
        }
    )

    await ask(http, sim, "cerebras", "day")
    day_status, day_headers, day_body = await ask(http, sim, "cerebras", "day")
    await ask(http, sim, "cerebras", "tokens", max_tokens=300)
    tpm_status, tpm_headers, tpm_body = await ask(http, sim, "cerebras", "tokens", max_tokens=300)

    assert (day_status, tpm_status) == (429, 429)
    assert day_headers["x-ratelimit-remaining-requests-day"] == "0"
    assert unmark(day_body) == recorded("cerebras/429_daily")["body"]
    assert int(tpm_headers["x-ratelimit-remaining-tokens-minute"]) < 300
    assert unmark(tpm_body) == recorded("cerebras/429_tokens_per_minute")["body"]
    assert "retry-after" not in day_headers
    assert "retry-after" not in tpm_headers


async def test_gemini_daily_quota_names_per_day_and_still_gives_a_short_retry_delay(sim, http):
    sim.set_scripts(script("gemini", quota={"per_day": 1}))

    await ask(http, sim, "gemini", "gemini-3.6-flash")
    status, headers, body = await ask(http, sim, "gemini", "gemini-3.6-flash")

    assert status == 429
    error = body["error"]
    assert keys(body) == keys(recorded("gemini/429_daily_free_tier")["body"])
    [violation] = next(d for d in error["details"] if "violations" in d)["violations"]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert violation["quotaValue"] == "1"
    assert "limit: 1, model: gemini-3.6-flash" in error["message"]
    [delay] = [d["retryDelay"] for d in error["details"] if "retryDelay" in d]
    assert 1 <= int(delay.removesuffix("s")) <= 60  # the next minute, not the day's end
    assert not any(name.startswith(("x-ratelimit", "retry-after")) for name in headers)


async def test_gemini_per_minute_quota_names_per_minute(sim, http):
    sim.set_scripts(script("gemini", quota={"per_minute": 1}))

    await ask(http, sim, "gemini", "g")
    status, _, body = await ask(http, sim, "gemini", "g")

    assert status == 429
    quota_ids = [v["quotaId"] for d in body["error"]["details"] for v in d.get("violations", [])]
    assert quota_ids
    assert all("PerMinute" in q for q in quota_ids)
    [delay] = [d["retryDelay"] for d in body["error"]["details"] if "retryDelay" in d]
    assert 1 <= int(delay.removesuffix("s")) <= 60


async def test_openrouter_daily_cap_is_shared_and_resets_in_epoch_milliseconds(sim, http):
    sim.set_scripts(script("openrouter", quota={"per_day": 2, "scope": "account"}))

    statuses = [(await ask(http, sim, "openrouter", model))[0] for model in ("a:free", "b:free")]
    status, headers, body = await ask(http, sim, "openrouter", "c:free")

    assert (statuses, status) == ([200, 200], 429)
    metadata = body["error"]["metadata"]
    reset = int(metadata["headers"]["X-RateLimit-Reset"])
    expected = (time.time() + 86400) * 1000  # the account's day window ends in a day
    assert abs(reset - expected) < 5000
    assert metadata["headers"]["X-RateLimit-Limit"] == "2"
    assert headers["x-ratelimit-reset"] == str(reset)
    assert headers["x-ratelimit-remaining"] == "0"
    fixture = recorded("openrouter/429_free_daily_50")["body"]
    fixture["error"]["metadata"]["headers"].update(
        {"X-RateLimit-Limit": "2", "X-RateLimit-Reset": str(reset)}
    )
    assert unmark(body) == fixture


async def test_openrouter_scripted_daily_cap_resets_at_utc_midnight(sim, http):
    sim.set_scripts(script("openrouter", behaviour="daily_quota"))

    status, _, body = await ask(http, sim, "openrouter", "openai/gpt-oss-120b:free")

    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    assert status == 429
    reset = body["error"]["metadata"]["headers"]["X-RateLimit-Reset"]
    assert reset == str(int(midnight.timestamp() * 1000))
    assert body["error"]["metadata"]["limit_source"] == "openrouter_free_tier_daily"


async def test_sambanova_quota_says_violated_duration(sim, http):
    sim.set_scripts(script("sambanova", quota={"per_day": 1, "per_minute": 5}))

    await ask(http, sim, "sambanova", "m")
    status, headers, body = await ask(http, sim, "sambanova", "m")

    assert status == 429
    assert body["error"]["message"] == (
        f"{PREFIX}Request would exceed rate limit\n"
        "Violated duration_s: 86400, current usage: 1, limit: 1"
    )
    assert not any(name.startswith("x-ratelimit") for name in headers)


# Provider extras a client does not read; the simulator leaves them out.
EXTRAS = frozenset(
    {
        "x_groq",
        "system_fingerprint",
        "logprobs",
        "queue_time",
        "prompt_time",
        "completion_time",
        "total_time",
        "responseId",
        "safetyRatings",
    }
)


@pytest.mark.parametrize(
    ("provider", "fixture"),
    [
        ("gemini", "gemini/success"),
        ("cerebras", "cerebras/success_with_headers"),
        ("groq", "groq/success_with_headers"),
    ],
)
async def test_answers_have_the_recorded_shape(sim, http, provider, fixture):
    status, _, body = await ask(http, sim, provider, "m")

    assert status == 200
    assert body["simulated"] is True
    assert missing(body, recorded(fixture)["body"], EXTRAS) == []


async def test_profile_can_be_named_by_any_provider_and_alpha_stays_openai_style(sim, http):
    sim.set_scripts(
        {
            "scripts": {
                "alpha/*": {"profile": "cerebras", "behaviour": "queue_exceeded"},
                "beta/*": {"behaviour": "rate_limited", "retry_after": 3},
            }
        }
    )

    spoken, _, as_cerebras = await ask(http, sim, "alpha", "m")
    plain, headers, openai_style = await ask(http, sim, "beta", "m", key=None)

    assert spoken == 429
    assert unmark(as_cerebras) == recorded("cerebras/429_queue_exceeded")["body"]
    assert plain == 429
    assert headers["retry-after"] == "3"
    assert openai_style["error"]["code"] == "rate_limit_exceeded"
    assert openai_style["error"]["message"].startswith(PREFIX)


def test_every_profile_a_scenario_may_name_exists():
    assert set(PROFILES) == PROFILE_NAMES


def test_a_gemini_profile_outside_gemini_is_refused():
    for bad in (
        {"scripts": {"groq/*": {"profile": "gemini"}}},
        {"scripts": {"gemini/*": {"profile": "groq"}}},
        {"default": {"profile": "gemini"}},
        {"default": {"profile": "acme"}},
    ):
        with pytest.raises(ValueError, match="profile"):
            load_scenario(bad)
