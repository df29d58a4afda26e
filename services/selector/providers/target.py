"""Resolves a catalog model into everything needed to call it: base URL, key and wire format."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from aiselector.v1 import common_pb2
from services.common import secrets
from services.common.keys import key_ids
from services.selector.providers.errors import MissingCredentials

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# OpenAI-compatible providers that reject `response_format`; JSON mode then relies on the prompt.
PROVIDERS_WITHOUT_RESPONSE_FORMAT = frozenset({"huggingface"})
# The `reasoning_effort` a reasoning model is asked for when its catalog entry names none.
DEFAULT_REASONING_EFFORT = "low"


@dataclass(frozen=True)
class Target:
    """Everything needed to call one model; the key is kept out of `repr`."""

    provider: str
    model: str
    api_format: int
    base_url: str
    api_key: str = field(default="", repr=False)
    # Which key `api_key` is (`GROQ_API_KEY#2`; see services/common/keys.py); "" = no key.
    key_id: str = ""
    reasoning: bool = False
    # Whether JSON mode is asked for on the wire (`response_format` / `responseMimeType`).
    json_response_format: bool = True
    # The catalog's `reasoning_effort` (None: not set there); see `effort`.
    reasoning_effort: str | None = None

    @property
    def effort(self) -> str:
        """The `reasoning_effort` to send in the OpenAI format ("" = none): the catalog's value
        when it names one (also ""), else `low` for a reasoning model."""
        if self.reasoning_effort is not None:
            return self.reasoning_effort
        return DEFAULT_REASONING_EFFORT if self.reasoning else ""


def resolve_target(model: common_pb2.Model, environ: Mapping[str, str]) -> Target:
    """The target for `model` with its first key (see `resolve_targets`)."""
    return resolve_targets(model, environ)[0]


def resolve_targets(model: common_pb2.Model, environ: Mapping[str, str]) -> tuple[Target, ...]:
    """One target for `model` per key: base URL from `model.base_url_env` if set, else
    `api_endpoint`, with `{VAR}` placeholders filled from `environ`; the keys from
    `model.api_key_env`, which may list several separated by commas (`services.common.keys`).

    Raises MissingCredentials naming every variable that is needed but unset (or holds no key).
    Every key is registered with `services.common.secrets`, so the JSON log formatter redacts it
    wherever it appears.
    """
    base_url = (environ.get(model.base_url_env, "") if model.base_url_env else "") or (
        model.api_endpoint
    )
    listed = (
        key_ids(model.api_key_env, environ.get(model.api_key_env, "")) if model.api_key_env else []
    )
    missing: list[str] = []
    if model.api_key_env and not listed:
        missing.append(model.api_key_env)
    for name in _PLACEHOLDER.findall(base_url):
        if not environ.get(name) and name not in missing:
            missing.append(name)
    if missing:
        raise MissingCredentials(missing)
    base_url = _PLACEHOLDER.sub(lambda m: environ[m.group(1)], base_url).rstrip("/")
    for _, api_key in listed:
        secrets.register(api_key)
    target = Target(
        provider=model.provider,
        model=model.provider_model_id,
        api_format=model.api_format,
        base_url=base_url,
        reasoning=model.reasoning,
        json_response_format=model.supports_json
        and model.provider not in PROVIDERS_WITHOUT_RESPONSE_FORMAT,
        reasoning_effort=model.reasoning_effort if model.HasField("reasoning_effort") else None,
    )
    if not listed:
        return (target,)
    return tuple(replace(target, api_key=key, key_id=kid) for kid, key in listed)
