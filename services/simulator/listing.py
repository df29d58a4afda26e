"""Model lists in each provider's shape, from the models a scenario declares (`listing` fixtures).

Where each list is, relative to the base URL a client is configured with (the simulator serves
every provider under `/{provider}`, below which the provider's own path layout applies):

- OpenAI-compatible providers, OpenRouter included: `GET {base}/models` — `/{provider}/v1/models`.
  OpenRouter's real layout is also served: base `https://openrouter.ai/api/v1` maps to
  `{sim}/openrouter/api/v1` (and the older `{sim}/openrouter/v1`); both answer `/models`.
- Gemini: `GET {base}/models?pageSize=&pageToken=` — `/gemini/v1beta/models`.
- Cloudflare: not `/models` but `GET …/ai/models/search`, i.e. the base URL with its final `/v1`
  replaced by `/models/search`: `{sim}/client/v4/accounts/{account}/ai/models/search` for the real
  layout, `{sim}/cloudflare/models/search` for the simulator's `…/cloudflare/v1` base.

Answer bodies carry `"simulated": true`; descriptions say it where the shape has one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from typing import Any

from services.simulator.script import SIMULATED_PREFIX, ModelSpec

# Gemini's models.list page size: 50 when not given, at most 1000 (ai.google.dev/api/models).
GEMINI_PAGE_SIZE = 50
GEMINI_MAX_PAGE_SIZE = 1000
_CREATED = 1764000000  # a fixed `created` time: lists are the same on every call
_TEXT_GENERATION = {"id": "c329a1f9-323d-4e91-b2aa-582dd4188d34", "name": "Text Generation"}
# Illustrative prices of a paid model (openrouter/models_list, huggingface/models_list).
_OPENROUTER_PAID = {"prompt": "0.00000025", "completion": "0.00000069"}
_HUGGINGFACE_PAID = {"input": 0.25, "output": 0.69}


class ListingError(ValueError):
    """A model-list request the provider would refuse (bad paging parameters)."""


def _owner(model: ModelSpec, provider: str) -> str:
    return model.id.split("/", 1)[0] if "/" in model.id else provider


def openai_list(profile: str, provider: str, models: Iterable[ModelSpec]) -> dict[str, Any]:
    """`GET /models` in the OpenAI shape, with Groq's, Cerebras', HuggingFace's or OpenRouter's
    fields (fixtures `<provider>/models_list`). Groq lists retired models as `active: false`;
    the others leave them out."""
    models = [m for m in models if m.active or profile == "groq"]
    if profile == "openrouter":
        return {"data": [_openrouter_entry(m) for m in models], "simulated": True}
    entries: list[dict[str, Any]] = []
    for model in models:
        entry: dict[str, Any] = {"id": model.id, "object": "model"}
        if profile == "cerebras":
            entries.append({**entry, "owned_by": "Cerebras"})
            continue
        entry.update(created=_CREATED, owned_by=_owner(model, provider))
        if profile == "groq":
            entry.update(
                active=model.active,
                context_window=model.context,
                public_apps=None,
                max_completion_tokens=model.max_output,
            )
        elif profile == "huggingface":
            entry.update(_huggingface_fields(model))
        entries.append(entry)
    return {"object": "list", "data": entries, "simulated": True}


def _huggingface_fields(model: ModelSpec) -> dict[str, Any]:
    pricing = {"input": 0, "output": 0} if model.free else dict(_HUGGINGFACE_PAID)
    return {
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "providers": [
            {
                "provider": "simulated",
                "status": "live",
                "context_length": model.context,
                "pricing": pricing,
                "supports_tools": False,
                "supports_structured_output": True,
            }
        ],
    }


def _openrouter_entry(model: ModelSpec) -> dict[str, Any]:
    prices = {"prompt": "0", "completion": "0"} if model.free else dict(_OPENROUTER_PAID)
    return {
        "id": model.id,
        "canonical_slug": model.id.removesuffix(":free"),
        "name": f"{model.id} (simulated)",
        "created": _CREATED,
        "context_length": model.context,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
        },
        "pricing": {**prices, "request": "0", "image": "0"},
        "top_provider": {
            "context_length": model.context,
            "max_completion_tokens": model.max_output,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "reasoning", "response_format", "temperature"],
        "expiration_date": model.expires,
    }


def gemini_list(
    models: Iterable[ModelSpec], page_size: str | None, page_token: str | None
) -> dict[str, Any]:
    """One page of Gemini's models.list (fixture gemini/models_list); `nextPageToken` is left out
    on the last page, as Google's JSON leaves out empty fields. Raises ListingError."""
    try:
        size = int(page_size) if page_size else 0
    except ValueError as exc:
        raise ListingError(f"Invalid value at 'page_size' ({page_size!r})") from exc
    size = min(size, GEMINI_MAX_PAGE_SIZE) if size > 0 else GEMINI_PAGE_SIZE
    start = _offset(page_token) if page_token else 0
    listed = [m for m in models if m.active]
    page = listed[start : start + size]
    body: dict[str, Any] = {"models": [_gemini_entry(m) for m in page], "simulated": True}
    if start + size < len(listed):
        token = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        body["nextPageToken"] = token
    return body


def _offset(token: str) -> int:
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError as exc:  # bad base64, bytes or number
        raise ListingError("Invalid page token.") from exc
    if offset < 0:
        raise ListingError("Invalid page token.")
    return offset


def _gemini_entry(model: ModelSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{model.id}",
        "baseModelId": model.id,
        "version": "001",
        "displayName": model.id,
        "description": f"{SIMULATED_PREFIX} {model.id} on the provider simulator.",
    }
    if model.context is not None:
        entry["inputTokenLimit"] = model.context
    if model.max_output is not None:
        entry["outputTokenLimit"] = model.max_output
    entry["supportedGenerationMethods"] = list(model.methods)
    return entry


def cloudflare_search(
    models: Iterable[ModelSpec], task: str | None, search: str | None
) -> dict[str, Any]:
    """Cloudflare's `ai/models/search` in the v4 envelope (fixture cloudflare/models_search):
    every declared model is a Text Generation model; `search` filters by name."""
    results = []
    for model in models:
        if not model.active or (task and task != _TEXT_GENERATION["name"]):
            continue
        if search and search.lower() not in model.id.lower():
            continue
        properties: list[dict[str, Any]] = []
        if model.context is not None:
            properties.append({"property_id": "context_window", "value": str(model.context)})
        properties.append(
            {
                "property_id": "price",
                "value": [
                    {"unit": "per M input tokens", "price": 0.0605, "currency": "USD"},
                    {"unit": "per M output tokens", "price": 0.4, "currency": "USD"},
                ],
            }
        )
        if model.expires is not None:
            properties.append({"property_id": "planned_deprecation_date", "value": model.expires})
        results.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, model.id)),
                "name": model.id,
                "source": 1,
                "description": f"{SIMULATED_PREFIX} {model.id} on the provider simulator.",
                "task": dict(_TEXT_GENERATION),
                "properties": properties,
                "tags": [],
            }
        )
    return {"success": True, "errors": [], "messages": [], "result": results, "simulated": True}
