"""Turns a failed reply from a provider into a classified, secret-free ProviderError.

The meaning of each reply is in the provider's rule table (`rules.py`); this module reads the
reply, walks the table and builds the error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.common import secrets
from services.selector.providers import envelopes
from services.selector.providers.answer import clean_text
from services.selector.providers.errors import ProviderError
from services.selector.providers.rules import SHARED_RULES, Reply, rules_for
from services.selector.providers.target import Target

_MAX_DETAIL = 200
# The status a 2xx error body is classified as when its code is no HTTP status: a failure on the
# provider's side (OpenRouter's mid-stream `server_error`).
_ERROR_BODY_STATUS = 502


def scrub(text: str, target: Target) -> str:
    """`text` on one line, without the target's key or any registered secret, kept short."""
    text = clean_text(text)
    if target.api_key:
        text = text.replace(target.api_key, secrets.REDACTED)
    text = " ".join(secrets.redact(text).split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def classify_response(
    target: Target, status: int, headers: Mapping[str, str], raw: str, now: datetime
) -> ProviderError:
    """The ProviderError for a non-success HTTP reply (`headers` with lower-case names)."""
    return _classify(target, status, status, headers, _parse(raw), raw, now)


def classify_error_body(
    target: Target, status: int, headers: Mapping[str, str], raw: str, now: datetime
) -> ProviderError | None:
    """The ProviderError for a 2xx reply, or one stream event, whose body is an error instead of
    an answer (OpenRouter answers request errors with HTTP 200 and an `error` object, or sends one
    as an SSE event); None when `raw` is no error. A numeric `error.code` is classified as that
    HTTP status; any other as a provider-side failure."""
    body = _parse(raw)
    if not envelopes.has_error(body):
        return None
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    rule_status = code if isinstance(code, int) and 400 <= code < 600 else _ERROR_BODY_STATUS
    return _classify(target, rule_status, status, headers, body, raw, now)


def _classify(
    target: Target,
    rule_status: int,
    http_status: int,
    headers: Mapping[str, str],
    body: Any,
    raw: str,
    now: datetime,
) -> ProviderError:
    provider = rules_for(target.provider, target.api_format)
    envelope = envelopes.read(body, raw, provider.envelopes)
    reply = Reply(
        status=rule_status,
        headers={**envelope.headers, **headers},
        envelope=envelope,
        now=now,
        zone=provider.reset_zone,
    )
    # SHARED_RULES ends with a rule for any status, so one always matches.
    rule = next(r for r in (*provider.rules, *SHARED_RULES) if r.matches(reply))
    detail = scrub(envelope.text, target)
    text = f"HTTP {http_status} from {target.provider}: {rule.summary}"
    return ProviderError(
        rule.outcome,
        f"{text} ({detail})" if detail and detail != rule.summary else text,
        http_status=http_status,
        retry_after=rule.wait(reply),
        scope=rule.scope,
    )


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
