"""Scenario files: what each simulated (provider, model) does, validated with pydantic."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SIMULATED_PREFIX = "[simulated]"

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
    }
)


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
    """Requests allowed per window; the request after the limit gets a 429 until the window ends.

    A window starts at its first request. `window_seconds`/`day_seconds` scale time down in tests.
    """

    per_minute: int | None = Field(default=None, gt=0)
    per_day: int | None = Field(default=None, gt=0)
    window_seconds: float = Field(default=60.0, gt=0)
    day_seconds: float = Field(default=86400.0, gt=0)


class Outage(_Strict):
    """From `start` to `end` seconds after the scripts were loaded, requests get `behaviour`."""

    start: float = Field(default=0.0, ge=0)
    end: float = Field(gt=0)
    behaviour: str | int = 503

    _check = field_validator("behaviour")(check_behaviour)


class Script(_Strict):
    """What one simulated model does with each request, in this order of precedence:
    `api_key` mismatch → 401, outage, next `sequence` entry, quota, `error_rate`, `behaviour`."""

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

    _check = field_validator("behaviour", "error")(check_behaviour)

    @field_validator("sequence")
    @classmethod
    def _check_sequence(cls, value: tuple[str | int, ...]) -> tuple[str | int, ...]:
        return tuple(check_behaviour(v) for v in value)

    def answer_text(self, provider: str, model: str) -> str:
        """The answer for a successful reply; always starts with `[simulated]`."""
        text = self.text.replace("{prefix}", SIMULATED_PREFIX)
        text = text.replace("{provider}", provider).replace("{model}", model)
        return text if text.startswith(SIMULATED_PREFIX) else f"{SIMULATED_PREFIX} {text}"


class Scenario(_Strict):
    """A scenario: the default script, scripts per `provider/model` (or `provider/*`), a seed."""

    default: Script = Script()
    scripts: dict[str, Script] = {}
    seed: int | None = None

    @field_validator("scripts")
    @classmethod
    def _check_keys(cls, value: dict[str, Script]) -> dict[str, Script]:
        for key in value:
            provider, _, model = key.partition("/")
            if not provider or not model:
                raise ValueError(f"script key {key!r} must be 'provider/model' or 'provider/*'")
        return value

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
    return Scenario.model_validate(source)
