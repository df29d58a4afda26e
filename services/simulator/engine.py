"""Decides what a simulated model does with one request: scripts, sequences, quotas, outages."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.simulator.script import Quota, Scenario, Script


@dataclass(frozen=True)
class Decision:
    """The reply to give: a behaviour, the delay before it, the wait to announce, extra headers."""

    script: Script
    behaviour: str | int
    delay: float
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Window:
    """A fixed quota window that starts at its first request."""

    start: float | None = None
    count: int = 0

    def expire(self, now: float, length: float) -> None:
        if self.start is not None and now >= self.start + length:
            self.start, self.count = None, 0

    def remaining_time(self, now: float, length: float) -> float:
        return length if self.start is None else max(0.0, self.start + length - now)


@dataclass
class _ModelState:
    position: int = 0
    minute: _Window = field(default_factory=_Window)
    day: _Window = field(default_factory=_Window)


def go_duration(seconds: float) -> str:
    """Seconds as an OpenAI/Groq-style reset duration: `7.66s`, `1m30s`, `2h0m5s`."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.2f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


class Engine:
    """Holds the scenario and the per-(provider, model) state; `decide` runs once per request."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.replace(scenario)

    def replace(self, scenario: Scenario) -> None:
        """Loads new scripts and forgets all state; outage offsets count from now."""
        self.scenario = scenario
        self._rng = random.Random(scenario.seed)
        self._loaded_at = self._clock()
        self._states: dict[tuple[str, str], _ModelState] = {}

    def decide(self, provider: str, model: str, credential: str) -> Decision:
        """What to do with a request for `model` at `provider` that presented `credential`."""
        script = self.scenario.script_for(provider, model)
        state = self._states.setdefault((provider, model), _ModelState())
        now = self._clock()
        delay = script.latency.sample(self._rng)
        headers = dict(script.headers)

        def decision(behaviour: str | int, retry_after: float | None = None) -> Decision:
            if retry_after is None and behaviour in (429, "rate_limited", "daily_quota"):
                retry_after = script.retry_after
            return Decision(script, behaviour, delay, retry_after, headers)

        if script.api_key is not None and credential != script.api_key:
            return decision(401)
        if script.outage is not None:
            elapsed = now - self._loaded_at
            if script.outage.start <= elapsed < script.outage.end:
                return decision(script.outage.behaviour)
        if state.position < len(script.sequence):
            state.position += 1
            return decision(script.sequence[state.position - 1])
        if script.quota is not None:
            refusal = _take_quota(state, script.quota, now, headers)
            if refusal is not None:
                return decision(*refusal)
        if script.error_rate and self._rng.random() < script.error_rate:
            return decision(script.error)
        return decision(script.behaviour)


def _take_quota(
    state: _ModelState, quota: Quota, now: float, headers: dict[str, str]
) -> tuple[str, float] | None:
    """Counts the request against the quota and adds the rate-limit headers; when the quota is
    spent, returns the refusal (behaviour, retry-after seconds) instead."""
    day, minute = state.day, state.minute
    day.expire(now, quota.day_seconds)
    minute.expire(now, quota.window_seconds)
    if quota.per_day is not None and day.count >= quota.per_day:
        wait = day.remaining_time(now, quota.day_seconds)
        headers.update(_limit_headers("-day", quota.per_day, 0, wait))
        return "daily_quota", float(max(1, math.ceil(wait)))
    if quota.per_minute is not None and minute.count >= quota.per_minute:
        wait = minute.remaining_time(now, quota.window_seconds)
        headers.update(_limit_headers("", quota.per_minute, 0, wait))
        return "rate_limited", float(max(1, math.ceil(wait)))
    for window, limit, length, suffix in (
        (minute, quota.per_minute, quota.window_seconds, ""),
        (day, quota.per_day, quota.day_seconds, "-day"),
    ):
        if limit is None:
            continue
        window.count += 1
        if window.start is None:
            window.start = now
        headers.update(
            _limit_headers(suffix, limit, limit - window.count, window.remaining_time(now, length))
        )
    return None


def _limit_headers(suffix: str, limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-requests{suffix}": str(limit),
        f"x-ratelimit-remaining-requests{suffix}": str(remaining),
        f"x-ratelimit-reset-requests{suffix}": go_duration(reset),
    }
