"""Reads provider error bodies, one reader per envelope shape (docs/providers.md, rule table).

Each reader takes the parsed JSON body and returns what it found as an Envelope; `read` merges the
readers a provider's rules name. A body none of them understands is kept as raw text (unless it is
an HTML page), so text rules and the error message still see it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from services.selector.providers.waits import parse_duration

_GOOGLE = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class Envelope:
    """What an error body says, whatever its shape."""

    # The provider's own explanations, joined: matched by text rules, quoted in the error message.
    text: str = ""
    # Machine-readable codes as strings: `code`, `type`, `status`, Google reasons, OpenRouter's
    # `metadata.limit_source`, Cloudflare's numeric `errors[].code`.
    codes: frozenset[str] = frozenset()
    # Google `QuotaFailure.violations[].quotaId`, e.g. `GenerateRequestsPerDayPerProjectPerModel-…`.
    quota_ids: tuple[str, ...] = ()
    # Google `RetryInfo.retryDelay` in seconds.
    retry_delay: float | None = None
    # Rate-limit headers the provider copied into the body (OpenRouter `metadata.headers`).
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


Reader = Callable[[dict[str, Any]], Envelope]


def error_object(body: dict[str, Any]) -> Envelope:
    """`{"error": {"message", "code", "type" | "status"}}`: OpenAI and every provider modelled on
    it (Groq, SambaNova, HuggingFace, Gemini, OpenRouter with a numeric `code`)."""
    error = body.get("error")
    if not isinstance(error, dict):
        return Envelope()
    codes = {_code(error.get(key)) for key in ("code", "type", "status")}
    return Envelope(text=_text(error.get("message")), codes=frozenset(codes - {""}))


def google_details(body: dict[str, Any]) -> Envelope:
    """Gemini's `error.details[]`: `ErrorInfo.reason`, `QuotaFailure.violations[].quotaId`,
    `RetryInfo.retryDelay`."""
    error = body.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    reasons: set[str] = set()
    quota_ids: list[str] = []
    retry_delay: float | None = None
    for item in details if isinstance(details, list) else []:
        if not isinstance(item, dict):
            continue
        reasons.add(_code(item.get("reason")))
        for violation in item.get("violations") or []:
            if isinstance(violation, dict) and isinstance(violation.get("quotaId"), str):
                quota_ids.append(violation["quotaId"])
        if item.get("@type") == _GOOGLE + "RetryInfo" and isinstance(item.get("retryDelay"), str):
            retry_delay = parse_duration(item["retryDelay"])
    return Envelope(
        codes=frozenset(reasons - {""}), quota_ids=tuple(quota_ids), retry_delay=retry_delay
    )


def openrouter_metadata(body: dict[str, Any]) -> Envelope:
    """OpenRouter's `error.metadata`: the decisive text may sit in `raw` (an upstream provider's
    reply), the daily cap in `limit_source`, the reset in `headers`."""
    error = body.get("error")
    metadata = error.get("metadata") if isinstance(error, dict) else None
    if not isinstance(metadata, dict):
        return Envelope()
    copied = metadata.get("headers")
    headers = (
        {str(name).lower(): str(value) for name, value in copied.items()}
        if isinstance(copied, dict)
        else {}
    )
    return Envelope(
        text=_text(metadata.get("raw")),
        codes=frozenset({_code(metadata.get("limit_source"))} - {""}),
        headers=MappingProxyType(headers),
    )


def error_string(body: dict[str, Any]) -> Envelope:
    """`{"error": "text"}` (HuggingFace's older replies)."""
    return Envelope(text=_text(body.get("error")))


def errors_list(body: dict[str, Any]) -> Envelope:
    """`{"errors": [{"code": <number>, "message"}], "success": false}` (Cloudflare v4)."""
    errors = body.get("errors")
    entries = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return Envelope(
        text=_join(*(_text(e.get("message")) for e in entries)),
        codes=frozenset({_code(e.get("code")) for e in entries} - {""}),
    )


def top_level(body: dict[str, Any]) -> Envelope:
    """`{"message", "type", "param", "code"}` with no wrapper (Cerebras)."""
    codes = {_code(body.get(key)) for key in ("code", "type")}
    return Envelope(text=_text(body.get("message")), codes=frozenset(codes - {""}))


def detail(body: dict[str, Any]) -> Envelope:
    """`{"detail": "text"}` (FastAPI-style: Mistral, Cerebras without credentials)."""
    return Envelope(text=_text(body.get("detail")))


ALL_READERS: tuple[Reader, ...] = (
    error_object,
    google_details,
    openrouter_metadata,
    error_string,
    errors_list,
    top_level,
    detail,
)


def read(body: Any, raw: str, readers: tuple[Reader, ...]) -> Envelope:
    """What `body` (parsed from `raw`) says, read with `readers`; raw text if they find nothing."""
    found = [reader(body) for reader in readers] if isinstance(body, dict) else []
    text = _join(*(e.text for e in found))
    if not text and not raw.lstrip().startswith("<"):
        text = raw.strip()
    headers: dict[str, str] = {}
    for envelope in found:
        headers.update(envelope.headers)
    return Envelope(
        text=text,
        codes=frozenset().union(*(e.codes for e in found)),
        quota_ids=tuple(q for e in found for q in e.quota_ids),
        retry_delay=next((e.retry_delay for e in found if e.retry_delay is not None), None),
        headers=MappingProxyType(headers),
    )


def has_error(body: Any) -> bool:
    """Whether a 2xx body (or one stream event) carries an error instead of an answer."""
    if not isinstance(body, dict):
        return False
    return bool(body.get("error")) or (body.get("success") is False and bool(body.get("errors")))


def _code(value: Any) -> str:
    return "" if value is None or isinstance(value, dict | list) else str(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _join(*texts: str) -> str:
    unique: list[str] = []
    for text in texts:
        if text and text not in unique:
            unique.append(text)
    return "; ".join(unique)
