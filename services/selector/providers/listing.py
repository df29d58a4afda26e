"""Reads a provider's model list with its key: one bounded, paged, secret-free fetch per provider,
and a pure parser per reply shape (docs/providers.md, "Model list" of each provider).

- OpenAI-compatible `GET {base}/models`: `data[].id`; Groq adds `active`, `context_window`,
  `max_completion_tokens`; OpenRouter `context_length`, `top_provider`, `pricing` (strings) and
  `expiration_date`. Free is known only from OpenRouter's shape: a `:free` id at price "0".
- Gemini `GET {base}/models?pageSize=&pageToken=`: chat models only (`generateContent` in
  `supportedGenerationMethods`), ids without `models/`, `inputTokenLimit`, `outputTokenLimit`.
- Cloudflare `GET …/ai/models/search?task=Text Generation` (the base URL's final `/v1` replaced by
  `/models/search`), paged by `page`/`per_page`, v4 envelope: `result[].name` with `properties[]`
  `context_window` and `planned_deprecation_date`.

A listed model is necessary, not sufficient: a provider may list a model a new key cannot use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import aiohttp

from aiselector.v1 import common_pb2
from services.selector.providers.classify import classify_response, scrub
from services.selector.providers.client import ProviderClient
from services.selector.providers.target import Target

# Gemini's models.list gives at most 1000 per page (ai.google.dev/api/models).
GEMINI_PAGE_SIZE = 1000
# Cloudflare's search pages as Wrangler reads it (`per_page=50` until a short page).
CLOUDFLARE_PAGE_SIZE = 50
CLOUDFLARE_TASK = "Text Generation"
# A list is read in at most this many pages (a provider that pages forever is cut off).
MAX_PAGES = 20
# OpenRouter's full list is about a megabyte; a reply larger than this is not read.
MAX_LIST_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Listed:
    """One chat model as the provider's list describes it; 0 / None = the list does not say."""

    id: str
    context_tokens: int = 0
    max_output_tokens: int = 0
    free: bool | None = None
    active: bool = True
    expires: date | None = None


class ListingError(Exception):
    """The list could not be read or understood; the message is secret-free and readable."""


@dataclass(frozen=True)
class _Page:
    """One page of a list: its models and what to ask for the next one (None: the last)."""

    models: list[Listed]
    next_params: dict[str, str] | None = None


def _positive(*values: Any) -> int:
    """The first value that is a positive int (a numeric string counts), else 0."""
    for value in values:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _date(value: Any) -> date | None:
    """The date in `2026-12-31` or an ISO time starting with it; None when absent or unreadable."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _is_zero(price: Any) -> bool:
    try:
        return float(price) == 0.0
    except (TypeError, ValueError):
        return False


def _entries(body: Any, key: str, shape: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ListingError(f"the model list is not {shape} (no `{key}` list)")
    return [item for item in items if isinstance(item, dict)]


def parse_openai(body: Any) -> list[Listed]:
    """`{"data": [{"id", …}]}` with Groq's and OpenRouter's extra fields; raises ListingError."""
    listed = []
    for entry in _entries(body, "data", "an OpenAI list"):
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not model_id:
            continue
        top = entry.get("top_provider") if isinstance(entry.get("top_provider"), dict) else {}
        pricing = entry.get("pricing")
        free = None
        if isinstance(pricing, dict):
            prices = (pricing.get("prompt"), pricing.get("completion"))
            free = model_id.endswith(":free") and all(map(_is_zero, prices))
        listed.append(
            Listed(
                id=model_id,
                context_tokens=_positive(
                    entry.get("context_window"),
                    entry.get("context_length"),
                    top.get("context_length"),
                ),
                max_output_tokens=_positive(
                    entry.get("max_completion_tokens"), top.get("max_completion_tokens")
                ),
                free=free,
                active=entry.get("active") is not False,
                expires=_date(entry.get("expiration_date")),
            )
        )
    return listed


def parse_gemini(body: Any) -> tuple[list[Listed], str]:
    """(chat models, next page token or "") of one models.list page; raises ListingError."""
    listed = []
    for entry in _entries(body, "models", "Gemini's models.list"):
        name = entry.get("name")
        methods = entry.get("supportedGenerationMethods")
        if not isinstance(name, str) or not isinstance(methods, list):
            continue
        if "generateContent" not in methods:
            continue
        listed.append(
            Listed(
                id=name.removeprefix("models/"),
                context_tokens=_positive(entry.get("inputTokenLimit")),
                max_output_tokens=_positive(entry.get("outputTokenLimit")),
            )
        )
    token = body.get("nextPageToken")
    return listed, token if isinstance(token, str) else ""


def parse_cloudflare(body: Any) -> list[Listed]:
    """Text-generation models of a `models/search` page (v4 envelope); raises ListingError,
    also for `"success": false`."""
    if isinstance(body, dict) and body.get("success") is False:
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        messages = [str(e.get("message")) for e in errors if isinstance(e, dict)]
        raise ListingError(f"the model search failed: {'; '.join(messages) or 'no reason given'}")
    listed = []
    for entry in _entries(body, "result", "a Cloudflare v4 envelope"):
        name = entry.get("name")
        task = entry.get("task") if isinstance(entry.get("task"), dict) else {}
        if not isinstance(name, str) or task.get("name", CLOUDFLARE_TASK) != CLOUDFLARE_TASK:
            continue
        properties = {
            p.get("property_id"): p.get("value")
            for p in entry.get("properties") or []
            if isinstance(p, dict)
        }
        listed.append(
            Listed(
                id=name,
                context_tokens=_positive(properties.get("context_window")),
                expires=_date(properties.get("planned_deprecation_date")),
            )
        )
    return listed


@dataclass(frozen=True)
class _Shape:
    """Where a provider's list is, how it is asked for, and how a page is read."""

    path: Callable[[str], str]
    first: dict[str, str]
    page: Callable[[Any, dict[str, str]], _Page]
    key_header: Callable[[str], dict[str, str]]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _openai_page(body: Any, params: dict[str, str]) -> _Page:
    return _Page(parse_openai(body))


def _gemini_page(body: Any, params: dict[str, str]) -> _Page:
    models, token = parse_gemini(body)
    return _Page(models, {**params, "pageToken": token} if token else None)


def _cloudflare_page(body: Any, params: dict[str, str]) -> _Page:
    models = parse_cloudflare(body)
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list) or len(result) < CLOUDFLARE_PAGE_SIZE:
        return _Page(models)
    return _Page(models, {**params, "page": str(int(params.get("page", "1")) + 1)})


_OPENAI = _Shape(lambda base: f"{base}/models", {}, _openai_page, _bearer)
_GEMINI = _Shape(
    lambda base: f"{base}/models",
    {"pageSize": str(GEMINI_PAGE_SIZE)},
    _gemini_page,
    lambda key: {"x-goog-api-key": key} if key else {},
)
_CLOUDFLARE = _Shape(
    lambda base: f"{base.removesuffix('/v1')}/models/search",
    {"task": CLOUDFLARE_TASK, "per_page": str(CLOUDFLARE_PAGE_SIZE), "page": "1"},
    _cloudflare_page,
    _bearer,
)


def _shape(target: Target) -> _Shape:
    if target.api_format == common_pb2.API_FORMAT_GEMINI:
        return _GEMINI
    return _CLOUDFLARE if target.provider == "cloudflare" else _OPENAI


async def fetch_listing(
    client: ProviderClient,
    target: Target,
    *,
    timeout: float,
    first_params: Mapping[str, str] | None = None,
) -> list[Listed]:
    """Every chat model `target`'s provider lists, read with its key within `timeout` seconds
    (all pages together). Raises ListingError with a secret-free message for an error reply, a
    timeout, a failed connection, a reply that is no list, or one that holds no model (a real
    provider always lists some: an empty list is not taken as "every model is gone").
    `first_params` overrides the query of the first page (tests page Gemini one by one)."""
    shape = _shape(target)
    outcome = await _fetch_pages(client, target, shape, timeout, dict(first_params or shape.first))
    # Raised here, outside any `except`, so no library exception (which may hold the request's
    # headers, hence the key) is chained to it.
    if isinstance(outcome, ListingError):
        raise outcome
    if not outcome:
        raise ListingError(f"{target.provider} listed no chat model; nothing was changed")
    return outcome


async def _fetch_pages(
    client: ProviderClient, target: Target, shape: _Shape, timeout: float, params: dict[str, str]
) -> list[Listed] | ListingError:
    url = shape.path(target.base_url)
    listed: dict[str, Listed] = {}
    try:
        async with asyncio.timeout(timeout):
            for _ in range(MAX_PAGES):
                status, headers, raw = await client.get(
                    url,
                    headers=shape.key_header(target.api_key),
                    params=params,
                    max_bytes=MAX_LIST_BYTES,
                )
                if not 200 <= status < 300:
                    error = classify_response(target, status, headers, raw, datetime.now(UTC))
                    return ListingError(f"model list: {error.message}")
                page = shape.page(_json(raw, target), params)
                fresh = {m.id: m for m in page.models if m.id not in listed}
                listed.update(fresh)
                # A provider that ignores the paging (the same page again) is not asked forever.
                repeated = bool(page.models) and not fresh
                if page.next_params in (None, params) or repeated:
                    break
                params = page.next_params
    except TimeoutError:
        return ListingError(f"{target.provider}: the model list did not come within {timeout:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return ListingError(
            f"{target.provider}: model list: connection failed ({type(exc).__name__})"
        )
    except ListingError as error:
        return ListingError(f"{target.provider}: {scrub(str(error), target)}")
    return list(listed.values())


def _json(raw: str, target: Target) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ListingError(f"the model list is not JSON ({scrub(raw[:80], target)})") from None
