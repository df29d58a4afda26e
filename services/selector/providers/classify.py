"""Turns a failed HTTP exchange with a provider into a classified, secret-free ProviderError."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiselector.v1 import common_pb2
from services.common import secrets
from services.selector.providers import waits
from services.selector.providers.answer import clean_text
from services.selector.providers.errors import ProviderError
from services.selector.providers.target import Target

_MAX_DETAIL = 200
# A wait this long means a daily (or longer) quota rather than a per-minute limit.
_QUOTA_WAIT_SECONDS = 3600.0
_DAILY = re.compile(
    r"per[ _-]?day|daily|\bRPD\b|\bTPD\b|PerDay|ByDay|-day\b|per 86400", re.IGNORECASE
)
# Error codes that mean "this model (or key) cannot be used", whatever the HTTP status says.
_PERMANENT_CODES = frozenset(
    {"model_decommissioned", "model_not_found", "invalid_api_key", "API_KEY_INVALID"}
)
_RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded", "RESOURCE_EXHAUSTED", "429"})
_PERMANENT_REASONS = {
    401: "API key rejected",
    402: "payment required (free credit spent)",
    403: "access denied",
    404: "model not found at provider",
    410: "model removed at provider",
}
_BAD_REQUEST_REASONS = {400: "request rejected", 413: "request too large", 422: "request rejected"}
# Daily quotas reset at midnight in this zone (Gemini: Pacific time); others at UTC midnight.
_QUOTA_ZONE = {common_pb2.API_FORMAT_GEMINI: "America/Los_Angeles"}


def scrub(text: str, target: Target) -> str:
    """`text` on one line, without the target's key or any registered secret, kept short."""
    text = clean_text(text)
    if target.api_key:
        text = text.replace(target.api_key, secrets.REDACTED)
    text = " ".join(secrets.redact(text).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _error_object(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_codes(body: Any) -> set[str]:
    """Machine-readable codes in an error body (OpenAI `code`/`type`, Google `status`/reasons)."""
    error = _error_object(body)
    codes = {str(error[k]) for k in ("code", "type", "status") if error.get(k) is not None}
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            codes.add(str(detail["reason"]))
    return codes


def provider_reason(body: Any, raw: str) -> str:
    """The provider's own human explanation from an error body, or the raw text."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            texts = [e.get("message", "") for e in errors if isinstance(e, dict)]
            return "; ".join(t for t in texts if t)
        for key in ("detail", "message"):
            if isinstance(body.get(key), str):
                return body[key]
    return "" if raw.lstrip().startswith("<") else raw


def _retry_wait(headers: Mapping[str, str], body: Any, reason: str, now: datetime) -> float | None:
    retry_after = headers.get("retry-after")
    for wait in (
        waits.parse_retry_after(retry_after, now) if retry_after else None,
        waits.ratelimit_reset(headers),
        waits.gemini_retry_delay(body),
        waits.message_retry_delay(reason),
    ):
        if wait is not None:
            return wait
    return None


def _is_daily(headers: Mapping[str, str], raw: str, wait: float | None) -> bool:
    if any(
        headers.get(f"x-ratelimit-remaining-{k}-day", "").strip() == "0"
        for k in ("requests", "tokens")
    ):
        return True
    return bool(_DAILY.search(raw)) or (wait is not None and wait >= _QUOTA_WAIT_SECONDS)


def classify_response(
    target: Target, status: int, headers: Mapping[str, str], raw: str, now: datetime
) -> ProviderError:
    """The ProviderError for a non-success HTTP reply (`headers` with lower-case names)."""
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    reason = provider_reason(body, raw)
    codes = error_codes(body)

    def error(outcome: int, summary: str, retry_after: float | None = None) -> ProviderError:
        detail = scrub(reason, target)
        text = f"HTTP {status} from {target.provider}: {summary}"
        return ProviderError(
            outcome,
            f"{text} ({detail})" if detail and detail != summary else text,
            http_status=status,
            retry_after=retry_after,
        )

    if status == 429 or (status >= 500 and codes & _RATE_LIMIT_CODES):
        wait = _retry_wait(headers, body, reason, now)
        if _is_daily(headers, raw, wait):
            if wait is None:
                zone = _QUOTA_ZONE.get(target.api_format, "UTC")
                wait = waits.seconds_until_midnight(now, zone)
            return error(common_pb2.OUTCOME_QUOTA_EXHAUSTED, "daily quota exhausted", wait)
        return error(common_pb2.OUTCOME_RATE_LIMITED, "rate limited", wait)
    if status in _PERMANENT_REASONS:
        return error(common_pb2.OUTCOME_PERMANENT, _PERMANENT_REASONS[status])
    if status in _BAD_REQUEST_REASONS:
        if codes & _PERMANENT_CODES:
            return error(common_pb2.OUTCOME_PERMANENT, "model or key not usable at provider")
        return error(common_pb2.OUTCOME_BAD_REQUEST, _BAD_REQUEST_REASONS[status])
    if status >= 500:
        return error(common_pb2.OUTCOME_TRANSIENT, "server error")
    return error(common_pb2.OUTCOME_TRANSIENT, "unexpected status")
