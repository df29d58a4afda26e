"""The pure pieces: wait parsing, reasoning stripping, JSON answers, error classification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiselector.v1 import common_pb2 as pb
from services.selector.providers import Scope, Target
from services.selector.providers.answer import join_content, json_answer, strip_reasoning
from services.selector.providers.classify import classify_error_body, classify_response
from services.selector.providers.rules import daily_reset_zone
from services.selector.providers.waits import (
    float_seconds,
    ms_epoch,
    parse_duration,
    parse_retry_after,
    seconds_or_epoch,
    seconds_until_midnight,
)

NOW = datetime(2026, 11, 26, 22, 0, 0, tzinfo=UTC)
GROQ = Target("groq", "m", pb.API_FORMAT_OPENAI, "http://x", api_key="gsk-secret-99")
MODEL, ACCOUNT = Scope.MODEL, Scope.ACCOUNT


def _target(provider: str, api_format: int = pb.API_FORMAT_OPENAI) -> Target:
    return Target(provider, "m", api_format, "http://x", api_key="key-secret-42")


def _ms(seconds_from_now: float) -> str:
    return str(int((NOW.timestamp() + seconds_from_now) * 1000))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7", 7.0),
        ("2.5s", 2.5),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        ("120ms", 0.12),
        ("6m0s", 360.0),
        ("33011.37", 33011.37),
        ("soon", None),
        ("5x", None),
        ("", None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_http_date_is_relative_to_now():
    assert parse_retry_after("Thu, 26 Nov 2026 22:00:42 GMT", NOW) == 42
    assert parse_retry_after("Thu, 26 Nov 2026 21:00:00 GMT", NOW) == 0
    assert parse_retry_after("12", NOW) == 12
    assert parse_retry_after("garbage", NOW) is None


def test_seconds_until_midnight_in_utc_and_pacific_time():
    assert seconds_until_midnight(NOW) == 2 * 3600
    # 22:00 UTC is 14:00 in Los Angeles (PST, UTC-8): 10 hours to its midnight.
    assert seconds_until_midnight(NOW, "America/Los_Angeles") == 10 * 3600


def test_seconds_until_midnight_counts_the_hour_daylight_saving_time_gives_back():
    # 00:30 PDT on 2026-11-01; clocks go back at 02:00, so the next midnight is 24.5 hours away.
    before_the_change = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)

    assert seconds_until_midnight(before_the_change, "America/Los_Angeles") == 24.5 * 3600


def test_header_formats_each_provider_uses():
    assert float_seconds("11.382867097854614", NOW) == pytest.approx(11.382867)
    assert float_seconds("1m", NOW) is None
    assert ms_epoch(_ms(90), NOW) == pytest.approx(90)
    assert ms_epoch(_ms(-90), NOW) == 0
    # Undocumented formats: seconds, or a Unix time in seconds or milliseconds.
    assert seconds_or_epoch("42", NOW) == 42
    assert seconds_or_epoch(str(int(NOW.timestamp()) + 600), NOW) == pytest.approx(600)
    assert seconds_or_epoch(_ms(600), NOW) == pytest.approx(600)
    assert seconds_or_epoch("nan", NOW) is None


@pytest.mark.parametrize(
    ("content", "answer"),
    [
        ("<think>plan the reply</think>\nParis.", "Paris."),
        ("<think>cut off before the answer", ""),
        ("plan without opening tag</think>Paris.", "Paris."),
        (
            "<|channel|>analysis<|message|>plan<|end|><|start|>assistant<|channel|>final"
            "<|message|>Paris.<|return|>",
            "Paris.",
        ),
        ("<|channel|>analysis<|message|>only a plan", ""),
        ("  Paris.  ", "Paris."),
    ],
)
def test_strip_reasoning(content, answer):
    assert strip_reasoning(content) == answer


def test_list_content_is_joined_and_non_text_parts_skipped():
    parts = [{"type": "text", "text": "Hel"}, {"type": "image_url"}, {"type": "text", "text": "lo"}]

    assert join_content(parts) == "Hello"
    assert join_content(None) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ("[1, 2]", None),
        ("Sure: {", None),
    ],
)
def test_json_answer(text, expected):
    assert json_answer(text) == expected


# (provider, status, headers, body, outcome, wait, scope): the rules the recorded fixtures
# (test_fixture_replay.py) do not pin down on their own.
CASES = [
    pytest.param(
        "groq",
        429,
        {},
        '{"error":{"message":"Rate limit reached on tokens per minute (TPM). '
        'Please try again in 1m26.4s.","code":"rate_limit_exceeded"}}',
        pb.OUTCOME_RATE_LIMITED,
        86.4,
        MODEL,
        id="groq-wait-from-the-message",
    ),
    pytest.param(
        "groq",
        429,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m59.56s"},
        '{"error":{"message":"Rate limit reached.","code":"rate_limit_exceeded"}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        179.56,
        MODEL,
        id="groq-requests-headers-are-the-daily-budget",
    ),
    pytest.param(
        "groq",
        429,
        {"x-ratelimit-remaining-requests": "14", "x-ratelimit-reset-requests": "2h0m0s"},
        '{"error":{"message":"Rate limit reached on requests per minute (RPM).",'
        '"code":"rate_limit_exceeded"}}',
        pb.OUTCOME_RATE_LIMITED,
        None,
        MODEL,
        id="groq-daily-reset-is-no-per-minute-wait",
    ),
    pytest.param(
        "github",
        429,
        {"retry-after": "33000"},
        '{"error":{"message":"Rate limit of 150 per 86400s exceeded for UserByModelByDay."}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        33000,
        MODEL,
        id="default-daily-from-the-message",
    ),
    pytest.param(
        "github",
        429,
        {"retry-after": "7200"},
        '{"error":{"message":"Rate limit reached on requests per minute."}}',
        pb.OUTCOME_RATE_LIMITED,
        7200,
        MODEL,
        id="default-a-long-wait-alone-is-not-daily",
    ),
    pytest.param(
        "github",
        429,
        {},
        '{"error":{"message":"Daily request limit reached."}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        2 * 3600,
        MODEL,
        id="default-daily-without-a-wait-until-utc-midnight",
    ),
    pytest.param(
        "cerebras",
        429,
        {"x-ratelimit-remaining-requests-day": "0", "x-ratelimit-reset-requests-day": "500.5"},
        '{"message":"Requests per day limit exceeded"}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        500.5,
        MODEL,
        id="cerebras-daily-budget-spent",
    ),
    pytest.param(
        "cerebras",
        429,
        {"x-ratelimit-remaining-requests-day": "99", "x-ratelimit-reset-requests-day": "33011.4"},
        '{"message":"Requests per minute limit exceeded - too many requests sent."}',
        pb.OUTCOME_RATE_LIMITED,
        None,
        MODEL,
        id="cerebras-never-waits-the-day-reset-for-a-minute-limit",
    ),
    pytest.param(
        "gemini",
        429,
        {},
        '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"quota","details":['
        '{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":'
        '"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},'
        '{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"5000s"}]}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        10 * 3600,
        MODEL,
        id="gemini-daily-ignores-even-a-long-retry-delay",
    ),
    pytest.param(
        "gemini",
        400,
        {},
        '{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"API key not valid.",'
        '"details":[{"reason":"API_KEY_INVALID"}]}}',
        pb.OUTCOME_PERMANENT,
        None,
        ACCOUNT,
        id="gemini-bad-key-is-400",
    ),
    pytest.param(
        "openrouter",
        429,
        {"x-ratelimit-reset": _ms(1234)},
        '{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day."}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        1234,
        ACCOUNT,
        id="openrouter-daily-reset-header-is-a-millisecond-epoch",
    ),
    pytest.param(
        "openrouter",
        429,
        {},
        '{"error":{"code":429,"message":"Rate limit exceeded","metadata":{'
        '"limit_source":"openrouter_free_tier_daily",'
        f'"headers":{{"X-RateLimit-Reset":"{_ms(4321)}"}}}}}}}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        4321,
        ACCOUNT,
        id="openrouter-daily-reset-copied-into-the-body",
    ),
    pytest.param(
        "openrouter",
        429,
        {"retry-after": "9"},
        '{"error":{"code":429,"message":"Provider returned error",'
        '"metadata":{"raw":"free-models-per-min exceeded","provider_name":"Chutes"}}}',
        pb.OUTCOME_RATE_LIMITED,
        9,
        ACCOUNT,
        id="openrouter-free-per-minute-cap-in-raw-is-account-wide",
    ),
    pytest.param(
        "sambanova",
        429,
        {},
        '{"error":{"message":"Request would exceed rate limit\\nViolated duration_s: 60, '
        'current usage: 20, limit: 20"}}',
        pb.OUTCOME_RATE_LIMITED,
        None,
        MODEL,
        id="sambanova-minute-window",
    ),
    pytest.param(
        "sambanova",
        429,
        {"x-ratelimit-reset-requests-day": str(int(NOW.timestamp()) + 600)},
        '{"error":{"message":"Request would exceed rate limit\\nViolated duration_s: 86400, '
        'current usage: 20, limit: 20"}}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        600,
        MODEL,
        id="sambanova-day-window-reset-as-an-epoch",
    ),
    pytest.param(
        "sambanova",
        400,
        {},
        '{"error":{"message":"(not captured)","code":"PAYMENT_METHOD_REQUIRED"}}',
        pb.OUTCOME_PERMANENT,
        None,
        ACCOUNT,
        id="payment-code-whatever-the-status",
    ),
    pytest.param(
        "cloudflare",
        429,
        {},
        '{"errors":[{"code":9999,"message":"You have used up your daily free allocation"}],'
        '"success":false}',
        pb.OUTCOME_QUOTA_EXHAUSTED,
        2 * 3600,
        ACCOUNT,
        id="cloudflare-daily-allocation-by-its-text",
    ),
    pytest.param(
        "groq",
        503,
        {},
        '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"overloaded"}}',
        pb.OUTCOME_RATE_LIMITED,
        None,
        MODEL,
        id="5xx-saying-rate-limit",
    ),
    pytest.param(
        "groq",
        400,
        {},
        '{"error":{"message":"The model `m` has been decommissioned",'
        '"code":"model_decommissioned"}}',
        pb.OUTCOME_PERMANENT,
        None,
        MODEL,
        id="code-overrides-400",
    ),
    pytest.param(
        "groq", 502, {}, "<html>Bad Gateway</html>", pb.OUTCOME_TRANSIENT, None, MODEL, id="html"
    ),
    pytest.param("groq", 409, {}, "conflict", pb.OUTCOME_TRANSIENT, None, MODEL, id="409"),
]


@pytest.mark.parametrize(
    ("provider", "status", "headers", "body", "outcome", "retry_after", "scope"), CASES
)
def test_classify_provider_replies(provider, status, headers, body, outcome, retry_after, scope):
    api_format = pb.API_FORMAT_GEMINI if provider == "gemini" else pb.API_FORMAT_OPENAI

    error = classify_response(_target(provider, api_format), status, headers, body, NOW)

    assert (error.outcome_name, error.http_status) == (pb.Outcome.Name(outcome), status)
    assert error.retry_after == (pytest.approx(retry_after) if retry_after is not None else None)
    assert error.scope == scope


def test_an_unnamed_gemini_format_provider_gets_geminis_rules_and_day():
    body = (
        '{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure",'
        '"violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}'
    )

    error = classify_response(_target("vertex", pb.API_FORMAT_GEMINI), 429, {}, body, NOW)

    assert (error.outcome, error.retry_after) == (pb.OUTCOME_QUOTA_EXHAUSTED, 10 * 3600)


@pytest.mark.parametrize(
    ("provider", "api_format", "zone"),
    [
        ("gemini", pb.API_FORMAT_GEMINI, "America/Los_Angeles"),
        ("vertex", pb.API_FORMAT_GEMINI, "America/Los_Angeles"),
        ("groq", pb.API_FORMAT_OPENAI, "UTC"),
        ("cloudflare", pb.API_FORMAT_OPENAI, "UTC"),
        ("openrouter", pb.API_FORMAT_OPENAI, "UTC"),
        ("anything-else", pb.API_FORMAT_OPENAI, "UTC"),
    ],
)
def test_daily_reset_zone(provider, api_format, zone):
    assert daily_reset_zone(provider, api_format) == zone


def test_openrouter_error_in_a_200_body_is_classified_like_its_code():
    body = '{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day."}}'

    error = classify_error_body(_target("openrouter"), 200, {}, body, NOW)

    assert error is not None
    assert (error.outcome, error.http_status, error.scope) == (
        pb.OUTCOME_QUOTA_EXHAUSTED,
        200,
        ACCOUNT,
    )
    assert error.retry_after == 2 * 3600
    assert error.message.startswith("HTTP 200 from openrouter: free-model daily cap reached")


def test_cloudflare_failure_in_a_200_body_is_classified():
    body = '{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model"}]}'

    error = classify_error_body(_target("cloudflare"), 200, {}, body, NOW)

    assert error is not None
    assert (error.outcome, error.scope) == (pb.OUTCOME_PERMANENT, MODEL)


@pytest.mark.parametrize(
    "body",
    [
        '{"choices":[{"message":{"role":"assistant","content":"Hi"}}]}',
        '{"error":null,"choices":[{"message":{"role":"assistant","content":"Hi"}}]}',
        '{"success":true,"errors":[],"result":{}}',
        "not json",
        "",
    ],
)
def test_a_200_body_without_an_error_is_left_to_the_adapter(body):
    assert classify_error_body(_target("openrouter"), 200, {}, body, NOW) is None


def test_provider_reason_is_kept_short_and_without_the_key():
    body = '{"error":{"message":"bad key gsk-secret-99 ' + "x" * 500 + '"}}'

    error = classify_response(GROQ, 400, {}, body, NOW)

    assert "gsk-secret-99" not in error.message
    assert "[REDACTED]" in error.message
    assert len(error.message) < 260
    assert "<html>" not in classify_response(GROQ, 502, {}, "<html>x</html>", NOW).message
