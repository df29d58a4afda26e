"""Scenario files: what each simulated (provider, model) does, validated with pydantic.

Besides `default` and `scripts`, a scenario may declare the models each provider serves
(`providers: {groq: {models: [...]}}`, or `models_from_catalog: true` for the catalog's models):
a provider with declared models answers any other id with its own unknown-model reply and lists
exactly those models on its model-list endpoint. A provider without declared models accepts any id
and lists none. Each provider speaks its profile (`services/simulator/profiles.py`), chosen by its
name or by a script's `profile:`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.simulator.environ import catalog_models

SIMULATED_PREFIX = "[simulated]"
GEMINI = "gemini"
DEFAULT_PROFILE = "default"
# Providers with a profile of their own (`services/simulator/profiles.py`), plus `default`.
PROFILE_NAMES = frozenset(
    {
        DEFAULT_PROFILE,
        GEMINI,
        "groq",
        "cerebras",
        "sambanova",
        "huggingface",
        "cloudflare",
        "openrouter",
    }
)

# Behaviours a reply can have; an int is "answer with this HTTP status" in the wire format's shape.
BEHAVIOURS = frozenset(
    {
        "ok",  # a plausible answer (a JSON object in JSON mode)
        "empty",  # 200 with empty content
        "reasoning_only",  # 200, content empty, reasoning present, cut at the length limit
        "harmony",  # 200, answer inside harmony channel tags after an analysis channel
        "think",  # 200, `<think>…</think>` before the answer
        "invalid_json",  # 200, text that is not JSON (also in JSON mode)
        "silence",  # accepts the request and never answers
        "reset",  # closes the connection before sending headers
        "rate_limited",  # 429 (with Retry-After when `retry_after` is set)
        "daily_quota",  # 429 saying the per-day quota is spent
        "context_length_exceeded",  # 400 context_length_exceeded
        "content_filter",  # 400 content filter (Gemini: 200 with a prompt block reason)
        "echo_authorization",  # 401 whose body repeats the credential it was sent
        "queue_exceeded",  # 429 "out of capacity", not a quota (Cerebras queue, Cloudflare 3040)
        "no_free_tier",  # Gemini: 429 "limit: 0"; other profiles: their 402
        "safety",  # 200 cut by the safety filter with no content (Gemini SAFETY candidate)
        # Streamed requests only (a request without `stream` answers `ok`); `stream.fault_after`
        # content chunks are sent first where the fault happens mid-stream:
        "stream_silent_before_headers",  # accepts, never sends the response headers
        "stream_silent_after_headers",  # sends 200 and SSE headers, then nothing (keep-alives only)
        "stream_drop",  # drops the connection after `fault_after` chunks
        "stream_error",  # an error event after `fault_after` chunks, then the stream ends
        "stream_stall",  # stops sending after `fault_after` chunks without closing
        "stream_malformed",  # chunk `fault_after + 1` is a data line with invalid JSON
    }
)
# Behaviours that only concern streams: a request without `stream: true` answers `ok` instead.
STREAM_FAULTS = frozenset(b for b in BEHAVIOURS if b.startswith("stream_"))


def check_behaviour(value: str | int) -> str | int:
    """`value` if it is a known behaviour or an HTTP status 200..599."""
    if isinstance(value, bool):
        raise ValueError(f"unknown behaviour {value!r}")
    if isinstance(value, int):
        if not 200 <= value <= 599:
            raise ValueError(f"status {value} is not an HTTP status")
        return value
    if value.isdigit():
        return check_behaviour(int(value))
    if value not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {value!r}; known: {sorted(BEHAVIOURS)} or a status")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Strict):
    """Delay before the reply: fixed `seconds`, uniform `min`..`max`, or log-normal `median`/`sigma`
    (capped at `max` when given). A bare number in a file means fixed seconds."""

    seconds: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)
    median: float | None = Field(default=None, gt=0)
    sigma: float = Field(default=0.5, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, value: Any) -> Any:
        return {"seconds": value} if isinstance(value, int | float) else value

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.seconds is not None:
            return self.seconds
        if self.median is not None:
            delay = self.median * math.exp(rng.gauss(0.0, self.sigma))
            return min(delay, self.max) if self.max is not None else delay
        if self.max is not None:
            return rng.uniform(self.min or 0.0, self.max)
        return self.min or 0.0


class Quota(_Strict):
    """Requests (and tokens) allowed per window; a request over a limit gets a 429 until the window
    ends. Tokens are counted on admission as providers estimate them: prompt + `max_tokens`; a
    single request larger than `tokens_per_minute` is refused outright (Groq: HTTP 413).

    A window starts at its first request. `window_seconds`/`day_seconds` scale time down in tests.
    `scope: account` shares one budget among the provider's models whose quota says so (as
    OpenRouter's `:free` daily cap and Cloudflare's neurons do); `model` (default): one each.
    """

    per_minute: int | None = Field(default=None, gt=0)
    per_day: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    window_seconds: float = Field(default=60.0, gt=0)
    day_seconds: float = Field(default=86400.0, gt=0)
    scope: str = Field(default="model", pattern="^(model|account)$")


class Outage(_Strict):
    """From `start` to `end` seconds after the scripts were loaded, requests get `behaviour`."""

    start: float = Field(default=0.0, ge=0)
    end: float = Field(gt=0)
    behaviour: str | int = 503

    _check = field_validator("behaviour")(check_behaviour)


class Stream(_Strict):
    """How a streamed answer is sent: the answer split into `chunks` content chunks, the first after
    `first_token_delay` (counted from the response headers), the next ones `chunk_delay` apart;
    stream faults happen after `fault_after` content chunks."""

    chunks: int = Field(default=4, ge=1)
    first_token_delay: Latency = Latency()
    chunk_delay: Latency = Latency()
    fault_after: int = Field(default=1, ge=0)


class Script(_Strict):
    """What one simulated model does with each request, in this order of precedence:
    credential refused (`api_key` mismatch → the profile's 401), undeclared model, parameter the
    profile rejects, outage, next `sequence` entry, quota, `error_rate`, `behaviour`.

    `per_key` replaces the script (not the profile) for requests sent with one of its keys (the
    credential sent), e.g. `{"sk-b": {"behaviour": 401}}`. Quotas count per key: each credential
    has its own budget, as the providers count them.
    """

    profile: str | None = None
    latency: Latency = Latency()
    text: str = "{prefix} {provider}/{model} answers: this is a simulated reply, not a real model."
    reasoning: str = "The user wants a short answer; I will think about it step by step."
    behaviour: str | int = "ok"
    sequence: tuple[str | int, ...] = ()
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error: str | int = 500
    retry_after: float | None = Field(default=None, ge=0)
    retry_after_format: str = Field(default="seconds", pattern="^(seconds|http_date)$")
    headers: dict[str, str] = {}
    quota: Quota | None = None
    outage: Outage | None = None
    api_key: str | None = None
    usage: bool = True
    stream: Stream = Stream()
    per_key: dict[str, Script] = {}

    _check = field_validator("behaviour", "error")(check_behaviour)

    def for_key(self, credential: str) -> Script:
        """The script for a request sent with `credential`."""
        return self.per_key.get(credential, self)

    @field_validator("profile")
    @classmethod
    def _check_profile(cls, value: str | None) -> str | None:
        if value is not None and value not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {value!r}; known: {sorted(PROFILE_NAMES)}")
        return value

    @field_validator("sequence")
    @classmethod
    def _check_sequence(cls, value: tuple[str | int, ...]) -> tuple[str | int, ...]:
        return tuple(check_behaviour(v) for v in value)

    def answer_text(self, provider: str, model: str) -> str:
        """The answer for a successful reply; always starts with `[simulated]`."""
        text = self.text.replace("{prefix}", SIMULATED_PREFIX)
        text = text.replace("{provider}", provider).replace("{model}", model)
        return text if text.startswith(SIMULATED_PREFIX) else f"{SIMULATED_PREFIX} {text}"


class ModelSpec(_Strict):
    """A model a provider serves, with what its model list says about it. A bare id in a file is
    `{id: …}`. An inactive model is listed (Groq: `active: false`) but not served."""

    id: str = Field(min_length=1)
    free: bool = True
    active: bool = True
    context: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    expires: str | None = None  # ISO date the provider announces removal (OpenRouter, Cloudflare)
    methods: tuple[str, ...] = ("generateContent", "countTokens")  # Gemini only

    @model_validator(mode="before")
    @classmethod
    def _bare_id(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @field_validator("id")
    @classmethod
    def _gemini_name(cls, value: str) -> str:
        return value.removeprefix("models/")


class ProviderSpec(_Strict):
    """What a scenario says about one provider as a whole."""

    models: tuple[ModelSpec, ...] = ()


class Scenario(_Strict):
    """A scenario: the default script, scripts per `provider/model` (or `provider/*`), a seed, and
    the models each provider serves (`providers`, filled from the catalog by
    `models_from_catalog: true` for providers the file does not list)."""

    default: Script = Script()
    scripts: dict[str, Script] = {}
    seed: int | None = None
    providers: dict[str, ProviderSpec] = {}
    models_from_catalog: bool = False

    @field_validator("scripts")
    @classmethod
    def _check_keys(cls, value: dict[str, Script]) -> dict[str, Script]:
        for key, script in value.items():
            provider, _, model = key.partition("/")
            if not provider or not model:
                raise ValueError(f"script key {key!r} must be 'provider/model' or 'provider/*'")
            if script.profile is not None and (script.profile == GEMINI) != (provider == GEMINI):
                raise ValueError(f"script {key!r}: only the gemini provider speaks profile gemini")
        return value

    @field_validator("default")
    @classmethod
    def _check_default(cls, value: Script) -> Script:
        if value.profile == GEMINI:
            raise ValueError("the default script cannot use profile gemini")
        return value

    def profile_for(self, provider: str, model: str = "*") -> str:
        """The profile `provider` speaks for `model`: Gemini's wire always speaks gemini; otherwise
        the script's `profile`, else the profile named like the provider, else `default`."""
        if provider == GEMINI:
            return GEMINI
        chosen = self.script_for(provider, model).profile
        return chosen or (provider if provider in PROFILE_NAMES else DEFAULT_PROFILE)

    def script_for(self, provider: str, model: str) -> Script:
        """The exact script, else the provider's `provider/*` script, else the default."""
        return (
            self.scripts.get(f"{provider}/{model}")
            or self.scripts.get(f"{provider}/*")
            or self.default
        )


def load_scenario(source: dict[str, Any] | Path | str) -> Scenario:
    """A validated scenario from a dict or a YAML/JSON file; raises ValueError when invalid."""
    if isinstance(source, Path | str):
        source = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    if not isinstance(source, dict):
        raise ValueError("a scenario must be a mapping")
    if source.get("models_from_catalog") is True:
        declared = {name: {"models": models} for name, models in catalog_models().items()}
        source = {**source, "providers": {**declared, **(source.get("providers") or {})}}
    return Scenario.model_validate(source)
