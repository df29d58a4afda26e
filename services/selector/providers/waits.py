"""Parses how long a provider asks to wait, in each format providers use for it.

Every header format has the signature `(value, now) -> seconds | None`, so a rule can name the
format a provider documents: Go durations (Groq), float seconds (Cerebras), millisecond epochs
(OpenRouter), `Retry-After` seconds or HTTP dates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Format = Callable[[str, datetime], "float | None"]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
# Groq: "Please try again in 1m26.4s."; Gemini: "Please retry in 38.90923309s."
_TRY_AGAIN = re.compile(
    r"(?:try again|retry) in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)", re.IGNORECASE
)
# A "reset" this large is no wait but a Unix time (seconds; milliseconds above the second bound).
_EPOCH_SECONDS = 1e9
_EPOCH_MILLISECONDS = 1e12


def parse_duration(text: str) -> float | None:
    """Seconds in a duration like `7`, `2.5s`, `1m30s`, `1h2m3.5s`, `120ms`; None if unparsable."""
    text = text.strip().lower()
    if not text:
        return None
    number = _number(text)
    if number is not None:
        return max(0.0, number)
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
    number = _number(value)
    if number is not None:
        return max(0.0, number)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def go_duration(value: str, now: datetime) -> float | None:
    """A header holding a Go duration (`2m59.56s`, `7.66s`), as Groq sends its resets."""
    return parse_duration(value)


def float_seconds(value: str, now: datetime) -> float | None:
    """A header holding plain (float) seconds (`11.382867097854614`), as Cerebras sends them."""
    number = _number(value)
    return None if number is None else max(0.0, number)


def ms_epoch(value: str, now: datetime) -> float | None:
    """A header holding the reset instant in milliseconds since the epoch (OpenRouter)."""
    number = _number(value)
    return None if number is None else max(0.0, number / 1000 - now.timestamp())


def seconds_or_epoch(value: str, now: datetime) -> float | None:
    """A header whose format is not documented: seconds, or a Unix time in s or ms when it is
    too large to be a wait (no provider asks to wait 31 years)."""
    number = _number(value)
    if number is None:
        return None
    if number >= _EPOCH_MILLISECONDS:
        return ms_epoch(value, now)
    if number >= _EPOCH_SECONDS:
        return max(0.0, number - now.timestamp())
    return max(0.0, number)


def spent_reset(
    headers: Mapping[str, str], kinds: tuple[str, ...], parse: Format, now: datetime
) -> float | None:
    """Seconds from `x-ratelimit-reset-<kind>` for the given kinds: the reset of a limit whose
    `x-ratelimit-remaining-<kind>` is 0 wins; otherwise the longest reset given."""
    spent: list[float] = []
    given: list[float] = []
    for kind in kinds:
        raw = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = parse(raw, now) if raw else None
        if seconds is None:
            continue
        given.append(seconds)
        if is_spent(headers, kind):
            spent.append(seconds)
    if spent:
        return max(spent)
    return max(given) if given else None


def is_spent(headers: Mapping[str, str], kind: str) -> bool:
    """Whether `x-ratelimit-remaining-<kind>` says nothing is left."""
    return headers.get(f"x-ratelimit-remaining-{kind}", "").strip() in ("0", "0.0")


def message_retry_delay(message: str) -> float | None:
    """Seconds from a message like Groq's "Please try again in 1m26.4s."."""
    match = _TRY_AGAIN.search(message)
    return parse_duration(match.group(1)) if match else None


def seconds_until_midnight(now: datetime, zone: str = "UTC") -> float:
    """Seconds from `now` until the next midnight in time zone `zone` (UTC if unknown)."""
    return local_day(now.timestamp(), zone)[1] - now.timestamp()


def local_day(now: float, zone: str = "UTC") -> tuple[float, float]:
    """(start, end) in epoch seconds of the calendar day in `zone` (UTC if unknown) holding `now`:
    23 or 25 hours long on a daylight-saving change."""
    tz: tzinfo
    try:
        tz = ZoneInfo(zone)
    except ZoneInfoNotFoundError:
        tz = UTC
    today = datetime.fromtimestamp(now, tz).date()
    start, end = (
        datetime.combine(d, datetime.min.time(), tzinfo=tz)
        for d in (today, today + timedelta(days=1))
    )
    return start.timestamp(), end.timestamp()


def _number(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
