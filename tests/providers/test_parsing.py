"""The pure pieces: wait parsing, reasoning stripping, JSON answers, error classification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiselector.v1 import common_pb2 as pb
from services.selector.providers import Target
from services.selector.providers.answer import join_content, json_answer, strip_reasoning
from services.selector.providers.classify import classify_response
from services.selector.providers.waits import (
    parse_duration,
    parse_retry_after,
    seconds_until_midnight,
)

NOW = datetime(2026, 11, 26, 22, 0, 0, tzinfo=UTC)
GROQ = Target("groq", "m", pb.API_FORMAT_OPENAI, "http://x", api_key="gsk-secret-99")


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


@pytest.mark.parametrize(
    ("status", "headers", "body", "outcome", "retry_after"),
    [
        (
            429,
            {},
            '{"error":{"message":"Rate limit reached on tokens per minute (TPM). '
            'Please try again in 1m26.4s.","code":"rate_limit_exceeded"}}',
            pb.OUTCOME_RATE_LIMITED,
            86.4,
        ),
        (
            429,
            {"retry-after": "33000"},
            '{"error":{"message":"Rate limit of 150 per 86400s exceeded for UserByModelByDay."}}',
            pb.OUTCOME_QUOTA_EXHAUSTED,
            33000,
        ),
        (
            429,
            {"x-ratelimit-remaining-requests-day": "0", "x-ratelimit-reset-requests-day": "500.5"},
            '{"message":"Requests per day limit exceeded"}',
            pb.OUTCOME_QUOTA_EXHAUSTED,
            500.5,
        ),
        (
            503,
            {},
            '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"overloaded"}}',
            pb.OUTCOME_RATE_LIMITED,
            None,
        ),
        (
            400,
            {},
            '{"error":{"message":"The model `m` has been decommissioned",'
            '"code":"model_decommissioned"}}',
            pb.OUTCOME_PERMANENT,
            None,
        ),
        (
            400,
            {},
            '{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"API key not valid.",'
            '"details":[{"reason":"API_KEY_INVALID"}]}}',
            pb.OUTCOME_PERMANENT,
            None,
        ),
        (502, {}, "<html>Bad Gateway</html>", pb.OUTCOME_TRANSIENT, None),
        (409, {}, "conflict", pb.OUTCOME_TRANSIENT, None),
    ],
)
def test_classify_provider_replies(status, headers, body, outcome, retry_after):
    error = classify_response(GROQ, status, headers, body, NOW)

    assert (error.outcome_name, error.http_status) == (pb.Outcome.Name(outcome), status)
    assert error.retry_after == (pytest.approx(retry_after) if retry_after else None)


def test_provider_reason_is_kept_short_and_without_the_key():
    body = '{"error":{"message":"bad key gsk-secret-99 ' + "x" * 500 + '"}}'

    error = classify_response(GROQ, 400, {}, body, NOW)

    assert "gsk-secret-99" not in error.message
    assert "[REDACTED]" in error.message
    assert len(error.message) < 260
    assert "<html>" not in classify_response(GROQ, 502, {}, "<html>x</html>", NOW).message
