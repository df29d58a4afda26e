"""Drives a scenario's prompts through a policy in virtual time and measures the run.

The selector is the real thing: `services/selector/conduct.py` (with the real policy, live state
and statistics) decides every step on a simulated clock; this module only performs the steps
against the simulated providers (`world.py`) and sends the background recovery probes conduct
asks for. Baselines and the oracle (`policies.py`) are given the same request path without
waits, rounds or probes.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bench.routing.policies import Router
from bench.routing.scenarios import START, Scenario, Workload
from bench.routing.world import Request, Result, SimModel, World
from services.common import errors, outcomes
from services.selector.conduct import (
    MIN_ATTEMPT_SECONDS,
    PROBE,
    TRIAL_INTERVAL_SECONDS,
    USER,
    Conduct,
    Conductor,
    GiveUp,
    Outcome,
    Seat,
    Try,
    Wait,
)
from services.selector.policy import ModelSpec, Needs
from services.selector.state import LiveState
from services.selector.stats import StatsBook

#: Prompt tokens of a recovery probe (the synthetic probe prompt is a few words).
TRIAL_PROMPT_TOKENS = 12
#: Output tokens a probe asks for (the Selector's `probe_max_output_tokens`).
TRIAL_OUTPUT_TOKENS = 16
SELECTOR = "selector"


class Clock:
    """The simulated clock conduct reads."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spec_of(model_id: int, model: SimModel) -> ModelSpec:
    """A simulated model as the selector's catalog would describe it."""
    return ModelSpec(
        model_id=model_id,
        name=model.name,
        provider=model.provider,
        is_active=True,
        tags=model.tags,
        supports_json=model.supports_json,
        context_tokens=model.context_tokens,
        max_output_tokens=model.max_output_tokens,
        timeout_s=model.timeout_s,
        limits=model.declared,
    )


@dataclass(frozen=True)
class SelectorOptions:
    """Conduct's switches, to measure what each rule is worth (`--variant`)."""

    name: str = SELECTOR
    max_retry_wait_seconds: float | None = None
    trials_by_probe: bool = True
    fallback_share: bool = True
    quick_retry: bool = True


class Flight(Protocol):
    """One prompt's request path: the selector's Conduct or a baseline's plain loop."""

    def next_step(self) -> Try | Wait | GiveUp: ...

    def record(self, outcome: Outcome) -> None: ...


class Policy(Protocol):
    """What the driver needs of a compared policy."""

    def begin(self, request: Request, now: float) -> Flight: ...

    def trials_due(self) -> list[ModelSpec]: ...

    def learn(self, outcome: Outcome) -> None: ...

    def finish(self, request: Request, flight: Flight, answered: bool) -> None: ...


class SelectorPolicy:
    """The real conduct module over the real policy, live state and statistics."""

    def __init__(self, world: World, seed: int, clock: Clock, options: SelectorOptions) -> None:
        self.specs = {
            m.name: spec_of(index + 1, m) for index, m in enumerate(world.models.values())
        }
        self.seats = {s.model_id: Seat(s) for s in self.specs.values()}
        kwargs = {}
        if options.max_retry_wait_seconds is not None:
            kwargs["max_retry_wait_seconds"] = options.max_retry_wait_seconds
        self.conductor = Conductor(
            LiveState(),
            StatsBook(),
            clock=clock,
            rng=random.Random(seed),
            trials_by_probe=options.trials_by_probe,
            fallback_share=options.fallback_share,
            quick_retry=options.quick_retry,
            **kwargs,  # type: ignore[arg-type]
        )

    def begin(self, request: Request, now: float) -> Conduct:
        needs = Needs(
            tags=request.tags,
            json_mode=request.json_mode,
            prompt_tokens=request.prompt_tokens,
            preferred=tuple(self.specs[n].model_id for n in request.preferred),
        )
        return self.conductor.begin(self.seats, needs, deadline=now + request.deadline_s)

    def trials_due(self) -> list[ModelSpec]:
        return self.conductor.trials_due(self.seats, TRIAL_PROMPT_TOKENS + TRIAL_OUTPUT_TOKENS)

    def learn(self, outcome: Outcome) -> None:
        self.conductor.learn(outcome)

    def finish(self, request: Request, flight: Flight, answered: bool) -> None:
        return None


class _PlainFlight:
    """A baseline's request path: its order once, each attempt min(timeout, time left)."""

    def __init__(
        self, router: Router, specs: dict[str, ModelSpec], request: Request, clock: Clock
    ) -> None:
        self.router, self.specs, self.request, self.clock = router, specs, request, clock
        self.deadline = clock() + request.deadline_s
        order = router.plan(request, clock())
        if router.name != "oracle":
            # The named model first when the policy would use it at all, as the selector does.
            first = [n for n in request.preferred if n in order]
            order = first + [n for n in order if n not in first]
        self.order = order
        self.index = 0
        self.last: tuple[str, Result] | None = None

    def next_step(self) -> Try | Wait | GiveUp:
        while self.index < len(self.order):
            name = self.order[self.index]
            self.index += 1
            remaining = self.deadline - self.clock()
            if remaining < MIN_ATTEMPT_SECONDS:
                return GiveUp(errors.DeadlineExceeded("deadline"))
            if not self.router.admit(name, self.request, self.clock()):
                continue
            spec = self.specs[name]
            return Try(spec, min(spec.timeout_s, remaining), spec.max_output_tokens)
        return GiveUp(errors.Unavailable("nothing left", retry_after_seconds=1.0))

    def record(self, outcome: Outcome) -> None:
        result = Result(
            outcome.outcome,
            outcome.ended - outcome.started,
            outcome.http_status,
            outcome.retry_after,
            outcome.completion_tokens,
        )
        self.router.record(outcome.spec.name, self.request, result, outcome.started, outcome.ended)
        self.last = (outcome.spec.name, result)


class PlainPolicy:
    """A baseline or the oracle on the plain request path."""

    def __init__(self, router: Router, world: World, clock: Clock) -> None:
        self.router, self.clock = router, clock
        self.specs = {
            m.name: spec_of(index + 1, m) for index, m in enumerate(world.models.values())
        }

    def begin(self, request: Request, now: float) -> _PlainFlight:
        return _PlainFlight(self.router, self.specs, request, self.clock)

    def trials_due(self) -> list[ModelSpec]:
        return []

    def learn(self, outcome: Outcome) -> None:
        return None

    def finish(self, request: Request, flight: Flight, answered: bool) -> None:
        assert isinstance(flight, _PlainFlight)
        last = flight.last
        self.router.finish(request, last if answered else None, last)


def workload(scenario: Scenario) -> list[Request]:
    """The scenario's prompts: Poisson arrivals at the piecewise rates, sizes and needs drawn."""
    spec: Workload = scenario.workload
    rng = random.Random(scenario.seed)
    requests: list[Request] = []
    for begin, end, rate in spec.rates:
        t = begin
        stop = min(end, scenario.duration_s)
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= stop:
                break
            big = rng.random() < spec.big_prompt_share
            tokens = (
                spec.big_prompt_tokens
                if big
                else max(5, int(spec.prompt_tokens_median * math.exp(rng.gauss(0.0, 0.8))))
            )
            tags: set[str] = set()
            if rng.random() < spec.code_share:
                tags.add("code")
            if rng.random() < spec.russian_share:
                tags.add("russian")
            json_mode = rng.random() < spec.json_share
            if json_mode:
                tags.add("json")
            requests.append(
                Request(
                    len(requests),
                    START + t,
                    tokens,
                    frozenset(tags),
                    json_mode,
                    spec.pinned,
                    spec.deadline_s,
                )
            )
    requests.sort(key=lambda r: r.arrival)
    return [
        Request(i, r.arrival, r.prompt_tokens, r.tags, r.json_mode, r.preferred, r.deadline_s)
        for i, r in enumerate(requests)
    ]


@dataclass
class Tally:
    """Per-prompt results of one run."""

    answerable: int = 0
    answered: int = 0
    answered_answerable: int = 0
    deadlines_missed: int = 0
    latencies: list[float] = field(default_factory=list)
    attempts: int = 0
    requests: int = 0
    #: (time, model) of every answer, for the recovery measure.
    answers: list[tuple[float, str]] = field(default_factory=list)


def latency_over_all(latencies: list[float], requests: int, share: float) -> float:
    """Time by which `share` of all prompts were answered (inf when fewer were answered at all)."""
    needed = max(1, math.ceil(share * requests - 1e-9))
    if needed > len(latencies):
        return math.inf
    return sorted(latencies)[needed - 1]


def run(
    scenario: Scenario, make_policy: Callable[[World, int, Clock], Policy]
) -> tuple[dict[str, float | int | None], list[float]]:
    """Runs the scenario's workload through one policy: its metrics and answered latencies."""
    world = World(list(scenario.models), START, scenario.seed)
    clock = Clock(START)
    policy = make_policy(world, scenario.seed, clock)
    requests = workload(scenario)
    tally = Tally(requests=len(requests))
    events: list[tuple[float, int, int, str, object]] = []
    sequence = itertools.count()
    answerable: set[int] = set()
    probes = itertools.count(1)

    def push(at: float, kind: str, payload: object) -> None:
        # At one instant, replies arrive before anything is sent: a 429 that lands at the moment
        # another request would go out holds that request back, as it would in the Selector.
        first = 0 if kind in ("done", "trial") else 1
        heapq.heappush(events, (at, first, next(sequence), kind, payload))

    def send(spec: ModelSpec, request: Request, seconds: float) -> tuple[Result, float]:
        """Sends the request; its result as the Selector sees it, and when it ends."""
        model = world.models[spec.name]
        result = world.send(spec.name, request, clock())
        if result.duration_s > seconds:
            # The model's own timeout ran out (its fault), or the attempt's share (not its fault).
            kind = outcomes.TIMEOUT if seconds >= model.timeout_s else outcomes.ABANDONED
            result = Result(kind, seconds)
        return result, clock() + result.duration_s

    def advance(request: Request, flight: Flight) -> None:
        step = flight.next_step()
        if isinstance(step, GiveUp):
            if isinstance(step.error, errors.DeadlineExceeded):
                tally.deadlines_missed += 1
            policy.finish(request, flight, answered=False)
            return
        if isinstance(step, Wait):
            push(clock() + step.seconds, "resume", (request, flight))
            return
        tally.attempts += 1
        result, ends = send(step.spec, request, step.seconds)
        push(ends, "done", (request, flight, step.spec, result, clock()))

    def start_trials() -> None:
        for spec in policy.trials_due():
            probe = Request(-next(probes), clock(), TRIAL_PROMPT_TOKENS, frozenset(), False)
            result, ends = send(spec, probe, spec.timeout_s)
            push(ends, "trial", (spec, result, clock()))

    for request in requests:
        push(request.arrival, "arrive", request)
    push(START + TRIAL_INTERVAL_SECONDS, "tick", None)
    end = START + scenario.duration_s
    while events:
        now, _, _, kind, payload = heapq.heappop(events)
        clock.now = now
        if kind == "tick":
            start_trials()
            if now < end + 120.0:
                push(now + TRIAL_INTERVAL_SECONDS, "tick", None)
        elif kind == "trial":
            spec, result, started = payload  # type: ignore[misc]
            policy.learn(_outcome(spec, result, started, now, PROBE))
        elif kind == "arrive":
            request = payload
            assert isinstance(request, Request)
            if answerable_now(world, request, now):
                answerable.add(request.request_id)
                tally.answerable += 1
            advance(request, policy.begin(request, now))
        elif kind == "resume":
            request, flight = payload  # type: ignore[misc]
            advance(request, flight)
        else:
            request, flight, spec, result, started = payload  # type: ignore[misc]
            flight.record(_outcome(spec, result, started, now))
            if result.outcome == outcomes.SUCCESS:
                tally.answered += 1
                tally.latencies.append(now - request.arrival)
                tally.answers.append((now, spec.name))
                if request.request_id in answerable:
                    tally.answered_answerable += 1
                policy.finish(request, flight, answered=True)
            else:
                push(now, "resume", (request, flight))  # after every reply of this instant
    metrics = _metrics(tally, world)
    if scenario.recovery is not None:
        name, back_at = scenario.recovery
        back = START + back_at
        later = [t for t, model in tally.answers if model == name and t >= back]
        metrics["recovery_s"] = round(min(later) - back, 2) if later else None
    return metrics, tally.latencies


def _outcome(
    spec: ModelSpec, result: Result, started: float, now: float, source: int = USER
) -> Outcome:
    return Outcome(
        spec,
        result.outcome,
        started,
        now,
        http_status=result.http_status,
        retry_after=result.retry_after,
        completion_tokens=result.tokens,
        source=source,
    )


def answerable_now(world: World, request: Request, now: float) -> bool:
    """Whether some model would answer this prompt if it were sent there now, within the rules.

    A model counts only when sending is allowed: no Retry-After it announced to this client is
    still running, and its declared budget has room for the prompt and an answer at the model's
    output limit (nobody knows the answer's length before sending). The simulated providers
    answer some requests during a Retry-After they announced, and token budgets have room for
    short answers after a careful client must stop: an answer only a rule breaker could get is
    not one the policy could have given.
    """
    for name, model in world.models.items():
        if (
            not world.fits(model, request)
            or world.held_back(name, now)
            or not world.within_declared(name, request, now, worst_case=True)
        ):
            continue
        result = world.peek(name, request, now)
        limit = min(model.timeout_s, request.deadline_s)
        if result.outcome == outcomes.SUCCESS and result.duration_s <= limit:
            return True
    return False


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _metrics(out: Tally, world: World) -> dict[str, float | int | None]:
    def pct(part: int, whole: int) -> float | None:
        return round(100.0 * part / whole, 3) if whole else None

    p50 = statistics.median(out.latencies) if out.latencies else None
    p95 = _percentile(out.latencies, 0.95)
    unanswered = [math.inf] * (out.requests - out.answered)
    p95_all = _percentile(out.latencies + unanswered, 0.95)
    return {
        "requests": out.requests,
        "answerable": out.answerable,
        "answered": out.answered,
        "answered_pct": pct(out.answered, out.requests),
        "answered_of_answerable_pct": pct(out.answered_answerable, out.answerable),
        "median_latency_s": None if p50 is None else round(p50, 3),
        "p95_latency_s": None if p95 is None else round(p95, 3),
        "p95_all_prompts_s": None if p95_all is None or math.isinf(p95_all) else round(p95_all, 3),
        "attempts_per_prompt": round(out.attempts / out.requests, 3) if out.requests else None,
        "rate_limited_429s": world.rate_limited,
        "beyond_declared_budget": world.beyond_budget,
        "sent_during_retry_after": world.during_retry_after,
        "deadlines_missed": out.deadlines_missed,
    }
