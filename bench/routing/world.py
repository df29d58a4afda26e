"""Simulated providers in virtual time: latency, failures, quotas, 429s, outages, recoveries."""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from aiselector.v1 import common_pb2
from services.selector.state import DAY, Limits, next_utc_midnight

SUCCESS = common_pb2.OUTCOME_SUCCESS
RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
TIMEOUT = common_pb2.OUTCOME_TIMEOUT
PERMANENT = common_pb2.OUTCOME_PERMANENT
BAD_REQUEST = common_pb2.OUTCOME_BAD_REQUEST

#: Outage modes: what a provider does while the outage lasts.
MODES = ("error", "refused", "timeout", "rate_limit", "not_found", "slow")


@dataclass(frozen=True)
class Outage:
    """A period (seconds from the scenario start) in which a model misbehaves in one way.

    "rate_limit" with `rpm`: the provider's real per-minute limit falls to `rpm` (another client of
    the same account spends the rest), and its 429s say truthfully when it takes a request again,
    as providers document their `retry-after`. Without `rpm`: a `share` of requests, drawn at
    random, get a 429 with `retry_after` (a fixed wait, whatever the provider could take).
    """

    start: float
    end: float
    mode: str
    retry_after: float | None = None
    factor: float = 1.0
    share: float = 1.0
    rpm: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown outage mode {self.mode!r}")


@dataclass(frozen=True)
class SimModel:
    """One simulated model: how it behaves (real limits) and what the catalog declares about it."""

    name: str
    provider: str
    latency_median_s: float
    latency_sigma: float = 0.35
    failure_rate: float = 0.01
    rpm: int = 0
    rpd: int = 0
    tpd: int = 0
    sends_retry_after: bool = True
    declared: Limits = field(default_factory=Limits)
    tags: frozenset[str] = frozenset()
    supports_json: bool = True
    context_tokens: int = 131072
    max_output_tokens: int = 1024
    timeout_s: float = 30.0
    completion_tokens: int = 250
    outages: tuple[Outage, ...] = ()


@dataclass(frozen=True)
class Request:
    """One prompt of the workload."""

    request_id: int
    arrival: float
    prompt_tokens: int
    tags: frozenset[str]
    json_mode: bool
    #: Models the client named (`model_name`): tried first.
    preferred: tuple[str, ...] = ()
    #: The request's deadline, in seconds from its arrival.
    deadline_s: float = 60.0


@dataclass(frozen=True)
class Result:
    """What one attempt would get: outcome class, time it takes (inf = never answers), details."""

    outcome: int
    duration_s: float
    http_status: int = 0
    retry_after: float | None = None
    tokens: int = 0


@dataclass
class _Usage:
    """Counters of one model: what the provider counted and what was sent against declarations."""

    minute: deque[float] = field(default_factory=deque)
    day: int = -1
    today: int = 0
    tokens_today: int = 0
    sent_minute: deque[float] = field(default_factory=deque)
    sent_day: int = -1
    sent_today: int = 0
    sent_tokens_today: int = 0
    holds: list[tuple[float, float]] = field(default_factory=list)


class World:
    """All simulated models of one run; outcomes are drawn from (seed, model, request) only.

    Because an attempt's luck depends only on the seed, the model and the request (and, for a
    second attempt of the same prompt on the same model, how many came before), every policy
    meets the same world, and the oracle can look at an attempt's result before making it (`peek`).
    """

    def __init__(self, models: list[SimModel], start: float, seed: int) -> None:
        self.models = {m.name: m for m in models}
        self.start = start
        self.seed = seed
        self._usage = {m.name: _Usage() for m in models}
        self.rate_limited = 0
        self.beyond_budget = 0
        self.during_retry_after = 0
        # Attempts sent per (model, prompt): a second attempt of a prompt draws fresh luck.
        self._tries: dict[tuple[str, int], int] = {}

    def _outage(self, model: SimModel, now: float, request_id: int) -> Outage | None:
        offset = now - self.start
        for outage in model.outages:
            if outage.start <= offset < outage.end:
                draw = random.Random(f"{self.seed}:share:{model.name}:{request_id}").random()
                if draw < outage.share:
                    return outage
        return None

    def _roll(self, usage: _Usage, now: float) -> None:
        for window in (usage.minute, usage.sent_minute):
            while window and window[0] <= now - 60.0:
                window.popleft()
        day = int(now // DAY)
        if usage.day != day:
            usage.day, usage.today, usage.tokens_today = day, 0, 0
        if usage.sent_day != day:
            usage.sent_day, usage.sent_today, usage.sent_tokens_today = day, 0, 0

    def fits(self, model: SimModel, request: Request) -> bool:
        """Whether the model can take the request at all (tags, JSON mode, context)."""
        return (
            request.tags <= model.tags
            and (model.supports_json or not request.json_mode)
            and request.prompt_tokens + model.max_output_tokens <= model.context_tokens
        )

    def peek(self, name: str, request: Request, now: float) -> Result:
        """What sending the request to the model now would return, without sending it."""
        model = self.models[name]
        usage = self._usage[name]
        self._roll(usage, now)
        tries = self._tries.get((name, request.request_id), 0)
        again = f":{tries}" if tries else ""
        luck = random.Random(f"{self.seed}:{name}:{request.request_id}{again}")
        fail_draw, latency_draw = luck.random(), luck.gauss(0.0, 1.0)
        quick = 0.05 + 0.2 * luck.random()
        outage = self._outage(model, now, request.request_id)
        factor, rpm = 1.0, model.rpm
        if outage is not None and outage.mode == "rate_limit" and outage.rpm:
            rpm, outage = outage.rpm, None
        if outage is not None:
            if outage.mode == "error":
                return Result(TRANSIENT, quick, 503)
            if outage.mode == "refused":
                return Result(TRANSIENT, 0.01)
            if outage.mode == "timeout":
                return Result(TIMEOUT, math.inf)
            if outage.mode == "rate_limit":
                return Result(RATE_LIMITED, quick, 429, outage.retry_after)
            if outage.mode == "not_found":
                return Result(PERMANENT, quick, 404)
            factor = outage.factor
        tokens = request.prompt_tokens + model.completion_tokens
        if request.prompt_tokens + model.max_output_tokens > model.context_tokens:
            return Result(BAD_REQUEST, quick, 400)
        limited = self._quota_block(model, usage, now, tokens, rpm)
        if limited is not None:
            return limited
        if fail_draw < model.failure_rate:
            return Result(TRANSIENT, quick + 0.3, 503)
        latency = model.latency_median_s * math.exp(model.latency_sigma * latency_draw) * factor
        return Result(SUCCESS, latency, 200, tokens=tokens)

    def _quota_block(
        self, model: SimModel, usage: _Usage, now: float, tokens: int, rpm: int
    ) -> Result | None:
        retry: float | None = None
        if rpm and len(usage.minute) >= rpm:
            retry = usage.minute[len(usage.minute) - rpm] + 60.0 - now
        elif (model.rpd and usage.today >= model.rpd) or (
            model.tpd and usage.tokens_today + tokens > model.tpd
        ):
            retry = next_utc_midnight(now) - now
        if retry is None:
            return None
        return Result(RATE_LIMITED, 0.05, 429, max(1.0, retry) if model.sends_retry_after else None)

    def send(self, name: str, request: Request, now: float) -> Result:
        """Sends the request: counts it against the provider's quota and the declared budget."""
        result = self.peek(name, request, now)
        key = (name, request.request_id)
        self._tries[key] = self._tries.get(key, 0) + 1
        usage = self._usage[name]
        if not self.within_declared(name, request, now):
            self.beyond_budget += 1
        if self.held_back(name, now):
            self.during_retry_after += 1
        usage.sent_minute.append(now)
        usage.sent_today += 1
        if result.outcome == RATE_LIMITED:
            self.rate_limited += 1
            if result.retry_after is not None:
                known = now + result.duration_s
                usage.holds.append((known, known + result.retry_after))
            return result
        usage.minute.append(now)
        usage.today += 1
        if result.outcome == SUCCESS:
            usage.tokens_today += result.tokens
            usage.sent_tokens_today += result.tokens
        return result

    def held_back(self, name: str, now: float) -> bool:
        """Whether a Retry-After the provider sent to this client (and it received) still runs."""
        usage = self._usage[name]
        usage.holds = [(known, release) for known, release in usage.holds if release > now]
        return any(known <= now for known, _ in usage.holds)

    def within_declared(
        self, name: str, request: Request, now: float, *, worst_case: bool = False
    ) -> bool:
        """Whether sending now stays inside the declared budget (what the oracle respects).

        `worst_case` counts the answer at the model's output limit, as a client that cannot see
        the answer's length before sending must; the oracle counts the answer's real length.
        """
        model = self.models[name]
        usage = self._usage[name]
        self._roll(usage, now)
        declared = model.declared
        answer = model.max_output_tokens if worst_case else model.completion_tokens
        potential = request.prompt_tokens + answer
        return not (
            (
                declared.requests_per_minute
                and len(usage.sent_minute) >= declared.requests_per_minute
            )
            or (declared.requests_per_day and usage.sent_today >= declared.requests_per_day)
            or (
                declared.tokens_per_day
                and usage.sent_tokens_today + potential > declared.tokens_per_day
            )
        )
