"""Parses how long a provider asks to wait: Retry-After, x-ratelimit-reset-*, Gemini retryDelay."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)", re.IGNORECASE)
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def parse_duration(text: str) -> float | None:
    """Seconds in a duration like `7`, `2.5s`, `1m30s`, `1h2m3.5s`, `120ms`; None if unparsable."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date (relative to `now`)."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def ratelimit_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds from `x-ratelimit-reset-requests` / `-tokens` (and their `-day` variants).

    The reset of a limit whose `remaining` is 0 wins; otherwise the longest reset given.
    """
    spent: list[float] = []
    given: list[float] = []
    for kind in ("requests", "tokens", "requests-day", "tokens-day"):
        raw = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = parse_duration(raw) if raw else None
        if seconds is None:
            continue
        given.append(seconds)
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
            spent.append(seconds)
    if spent:
        return max(spent)
    return max(given) if given else None


def gemini_retry_delay(body: Any) -> float | None:
    """Seconds from a Google error body's `google.rpc.RetryInfo.retryDelay`, e.g. `"7s"`."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str):
                return parse_duration(delay)
    return None


def message_retry_delay(message: str) -> float | None:
    """Seconds from a message like Groq's "Please try again in 1m26.4s."."""
    match = _TRY_AGAIN.search(message)
    return parse_duration(match.group(1)) if match else None


def seconds_until_midnight(now: datetime, zone: str = "UTC") -> float:
    """Seconds from `now` until the next midnight in time zone `zone` (UTC if unknown)."""
    tz: tzinfo
    try:
        tz = ZoneInfo(zone)
    except ZoneInfoNotFoundError:
        tz = UTC
    local = now.astimezone(tz)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return (midnight - local).total_seconds()
