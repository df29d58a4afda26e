"""Decides what a simulated model does with one request: models, scripts, sequences, quotas."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.simulator.call import GEMINI, Call
from services.simulator.profiles import profile_named
from services.simulator.script import STREAM_FAULTS, ModelSpec, Quota, Scenario, Script

# A window the script sets no limit for is reported with this limit, as Cerebras reports its own
# unlimited buckets (fixture cerebras/429_requests_per_minute).
UNLIMITED = 1_000_000_000


@dataclass(frozen=True)
class Window:
    """One quota window as it stands: its limit (None: not scripted), use, seconds to its end."""

    limit: int | None
    used: int
    reset: float

    @property
    def reported_limit(self) -> int:
        return UNLIMITED if self.limit is None else self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.reported_limit - self.used)


@dataclass(frozen=True)
class Budget:
    """A script's quota windows after this request; `counted` if the request reached the quota
    (was counted or refused by it) rather than being answered before it (sequence, outage…)."""

    requests_day: Window
    requests_minute: Window
    tokens_minute: Window
    counted: bool


@dataclass(frozen=True)
class Refusal:
    """Why the quota refused a request: which window, its limit and use, and the wait."""

    window: str  # "requests_day", "requests_minute", "tokens_minute" or "too_large"
    limit: int
    used: int
    requested: int
    wait: float | None  # None: waiting never helps (one request larger than the limit)


@dataclass(frozen=True)
class Decision:
    """The reply to give: a behaviour, the delay before it, the wait the script announces, extra
    headers, the profile that words it, and the quota facts behind it."""

    script: Script
    behaviour: str | int
    delay: float
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    profile: str = "default"
    budget: Budget | None = None
    refusal: Refusal | None = None
    detail: str = ""  # the parameter a rejection is about
    first_token_delay: float = 0.0  # streams: from the headers to the first chunk
    chunk_delay: float = 0.0  # streams: between content chunks

    @property
    def wait(self) -> float | None:
        """The wait to announce: the quota's when the quota refused, else the script's."""
        return self.refusal.wait if self.refusal is not None else self.retry_after


@dataclass
class _Window:
    """A fixed window that starts at its first request and counts requests or tokens."""

    start: float | None = None
    count: int = 0

    def expire(self, now: float, length: float) -> None:
        if self.start is not None and now >= self.start + length:
            self.start, self.count = None, 0

    def add(self, now: float, amount: int) -> None:
        if self.start is None:
            self.start = now
        self.count += amount

    def remaining_time(self, now: float, length: float) -> float:
        return length if self.start is None else max(0.0, self.start + length - now)

    def snapshot(self, now: float, length: float, limit: int | None) -> Window:
        return Window(limit, self.count, self.remaining_time(now, length))


@dataclass
class _Budget:
    minute: _Window = field(default_factory=_Window)
    day: _Window = field(default_factory=_Window)
    tokens: _Window = field(default_factory=_Window)


class Engine:
    """Holds the scenario, the models each provider serves and the per-model state; `decide` runs
    once per request."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.replace(scenario)

    def replace(self, scenario: Scenario) -> None:
        """Loads new scripts and models and forgets all state; outage offsets count from now."""
        self.scenario = scenario
        self._rng = random.Random(scenario.seed)
        self._loaded_at = self._clock()
        self._positions: dict[tuple[str, str], int] = {}
        self._budgets: dict[tuple[str, str, str], _Budget] = {}
        self.models: dict[str, dict[str, ModelSpec]] = {
            name: {m.id: m for m in spec.models} for name, spec in scenario.providers.items()
        }

    def set_models(self, provider: str, models: Iterable[ModelSpec]) -> None:
        """From now on `provider` serves (and lists) exactly `models`."""
        self.models[provider] = {m.id: m for m in models}

    def retire(self, provider: str, model: str) -> bool:
        """`provider` stops listing and serving `model`; False if it did not declare it."""
        return self.models.get(provider, {}).pop(model, None) is not None

    def serves(self, provider: str, model: str) -> bool:
        """Whether `provider` answers `model`: any id when it declares no models."""
        declared = self.models.get(provider)
        if declared is None:
            return True
        spec = declared.get(model)
        if spec is None or not spec.active:
            return False
        return provider != GEMINI or "generateContent" in spec.methods

    def listing_fault(self, provider: str) -> str | int | None:
        """What `provider`'s model list does now: the behaviour of an outage of the provider's
        `provider/*` script (or the default one) while it lasts — a provider that is down lists
        nothing either — else None (the list answers)."""
        outage = self.scenario.script_for(provider, "*").outage
        elapsed = self._clock() - self._loaded_at
        if outage is not None and outage.start <= elapsed < outage.end:
            return outage.behaviour
        return None

    def decide(self, call: Call) -> Decision:
        """What to do with `call`."""
        provider, model = call.provider, call.model
        script = self.scenario.script_for(provider, model).for_key(call.credential)
        profile = self.scenario.profile_for(provider, model)
        now = self._clock()
        delay = script.latency.sample(self._rng)
        quota = script.quota
        budget = self._budget(provider, model, quota, call.credential)

        def decision(
            behaviour: str | int,
            *,
            refusal: Refusal | None = None,
            counted: Budget | None = None,
            detail: str = "",
        ) -> Decision:
            if behaviour in STREAM_FAULTS and not call.stream:
                behaviour = "ok"
            snapshot = counted
            if snapshot is None and budget is not None and quota is not None:
                snapshot = _snapshot(budget, quota, now, counted=False)
            return Decision(
                script=script,
                behaviour=behaviour,
                delay=delay,
                retry_after=script.retry_after,
                headers=dict(script.headers),
                profile=profile,
                budget=snapshot,
                refusal=refusal,
                detail=detail,
                first_token_delay=script.stream.first_token_delay.sample(self._rng),
                chunk_delay=script.stream.chunk_delay.sample(self._rng),
            )

        if not call.credential and profile_named(profile).requires_credential:
            return decision("no_credential")
        if script.api_key is not None and call.credential != script.api_key:
            return decision("unauthorized")
        if not self.serves(provider, model):
            return decision("unknown_model")
        rejected = profile_named(profile).rejected_parameter(call)
        if rejected:
            return decision("invalid_parameter", detail=rejected)
        if script.outage is not None:
            elapsed = now - self._loaded_at
            if script.outage.start <= elapsed < script.outage.end:
                return decision(script.outage.behaviour)
        position = self._positions.get((provider, model), 0)
        if position < len(script.sequence):
            self._positions[(provider, model)] = position + 1
            return decision(script.sequence[position])
        counted = None
        if budget is not None and quota is not None:
            refusal = _take(budget, quota, now, call.prompt_tokens + call.max_tokens)
            counted = _snapshot(budget, quota, now, counted=True)
            if refusal is not None:
                return decision(_BEHAVIOUR[refusal.window], refusal=refusal, counted=counted)
        if script.error_rate and self._rng.random() < script.error_rate:
            return decision(script.error, counted=counted)
        return decision(script.behaviour, counted=counted)

    def _budget(
        self, provider: str, model: str, quota: Quota | None, credential: str
    ) -> _Budget | None:
        """The budget a request is counted on: each key (credential) has its own, per model or,
        with `scope: account`, over the provider's models."""
        if quota is None:
            return None
        key = (provider, "" if quota.scope == "account" else model, credential)
        return self._budgets.setdefault(key, _Budget())


_BEHAVIOUR = {
    "requests_day": "daily_quota",
    "requests_minute": "rate_limited",
    "tokens_minute": "tokens_per_minute",
    "too_large": "request_too_large",
}


def _take(budget: _Budget, quota: Quota, now: float, tokens: int) -> Refusal | None:
    """Counts the request against the quota, or returns why the quota refuses it."""
    budget.day.expire(now, quota.day_seconds)
    budget.minute.expire(now, quota.window_seconds)
    budget.tokens.expire(now, quota.window_seconds)
    tpm = quota.tokens_per_minute
    if tpm is not None and tokens > tpm:
        return Refusal("too_large", tpm, budget.tokens.count, tokens, None)
    for name, window, limit, length, amount in (
        ("requests_day", budget.day, quota.per_day, quota.day_seconds, 1),
        ("requests_minute", budget.minute, quota.per_minute, quota.window_seconds, 1),
        ("tokens_minute", budget.tokens, tpm, quota.window_seconds, tokens),
    ):
        if limit is not None and window.count + amount > limit:
            wait = float(max(1, math.ceil(window.remaining_time(now, length))))
            return Refusal(name, limit, window.count, amount, wait)
    budget.day.add(now, 1)
    budget.minute.add(now, 1)
    budget.tokens.add(now, tokens)
    return None


def _snapshot(budget: _Budget, quota: Quota, now: float, *, counted: bool) -> Budget:
    for window, length in (
        (budget.day, quota.day_seconds),
        (budget.minute, quota.window_seconds),
        (budget.tokens, quota.window_seconds),
    ):
        window.expire(now, length)
    return Budget(
        requests_day=budget.day.snapshot(now, quota.day_seconds, quota.per_day),
        requests_minute=budget.minute.snapshot(now, quota.window_seconds, quota.per_minute),
        tokens_minute=budget.tokens.snapshot(now, quota.window_seconds, quota.tokens_per_minute),
        counted=counted,
    )
