"""Event-driven virtual-time request path: one deadline per prompt, fallback, metrics per run."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from aiselector.v1 import common_pb2
from bench.routing.routers import RATE_OUTCOMES, TRIAL_PROMPT_TOKENS, Router
from bench.routing.scenarios import START, Scenario, Workload
from bench.routing.world import Request, Result, World

DEADLINE_S = 60.0
MIN_ATTEMPT_S = 0.05
SUCCESS = common_pb2.OUTCOME_SUCCESS


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
            requests.append(Request(len(requests), START + t, tokens, frozenset(tags), json_mode))
    requests.sort(key=lambda r: r.arrival)
    return [
        Request(i, r.arrival, r.prompt_tokens, r.tags, r.json_mode) for i, r in enumerate(requests)
    ]


@dataclass
class _InFlight:
    """One prompt on its way through the request path."""

    request: Request
    deadline: float
    order: list[str]
    index: int = 0
    rounds: int = 1
    attempts: int = 0
    done: set[str] = field(default_factory=set)
    last: tuple[str, Result] | None = None


@dataclass
class Outcomes:
    """Per-prompt results of one run."""

    answerable: int = 0
    answered: int = 0
    answered_answerable: int = 0
    deadlines_missed: int = 0
    latencies: list[float] = field(default_factory=list)
    attempts: int = 0
    requests: int = 0


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_over_all(latencies: list[float], requests: int, share: float) -> float:
    """Time by which `share` of all prompts were answered (inf when fewer were answered at all)."""
    needed = max(1, math.ceil(share * requests - 1e-9))
    if needed > len(latencies):
        return math.inf
    return sorted(latencies)[needed - 1]


def run(
    scenario: Scenario, make_router: Callable[[World, int], Router]
) -> tuple[dict[str, float | int | None], list[float]]:
    """Runs the scenario's workload through one policy: its metrics and answered latencies."""
    world = World(list(scenario.models), START, scenario.seed)
    router = make_router(world, scenario.seed)
    requests = workload(scenario)
    out = Outcomes(requests=len(requests))
    events: list[tuple[float, int, str, object]] = []
    sequence = itertools.count()
    answerable: set[int] = set()

    def push(at: float, kind: str, payload: object) -> None:
        heapq.heappush(events, (at, next(sequence), kind, payload))

    def settle(flight: _InFlight, now: float, answered: tuple[str, Result] | None) -> None:
        out.attempts += flight.attempts
        request = flight.request
        if answered is not None:
            out.answered += 1
            out.latencies.append(now - request.arrival)
            if request.request_id in answerable:
                out.answered_answerable += 1
        elif now >= flight.deadline - MIN_ATTEMPT_S:
            out.deadlines_missed += 1
        router.finish(request, answered, flight.last)

    def advance(flight: _InFlight, now: float) -> None:
        while True:
            while flight.index < len(flight.order):
                name = flight.order[flight.index]
                flight.index += 1
                if name in flight.done:
                    continue
                remaining = flight.deadline - now
                if remaining < MIN_ATTEMPT_S:
                    settle(flight, now, None)
                    return
                if not router.admit(name, flight.request, now):
                    continue
                model = world.models[name]
                timeout = min(model.timeout_s, remaining)
                result = world.send(name, flight.request, now)
                flight.attempts += 1
                if result.duration_s > timeout:
                    result = Result(common_pb2.OUTCOME_TIMEOUT, timeout)
                push(now + result.duration_s, "done", (flight, name, result, now))
                return
            if flight.rounds >= router.rounds:
                settle(flight, now, None)
                return
            flight.rounds += 1
            flight.order = router.plan(flight.request, now)
            flight.index = 0
            if any(name not in flight.done for name in flight.order):
                continue
            wait = router.wait(flight.request, now, flight.deadline - now)
            if wait is None:
                settle(flight, now, None)
                return
            push(now + wait, "resume", flight)
            return

    trials = itertools.count(1)

    def start_trials(now: float) -> None:
        for name in router.side_trials(now):
            probe = Request(-next(trials), now, TRIAL_PROMPT_TOKENS, frozenset(), False)
            result = world.send(name, probe, now)
            timeout = world.models[name].timeout_s
            if result.duration_s > timeout:
                result = Result(common_pb2.OUTCOME_TIMEOUT, timeout)
            push(now + result.duration_s, "trial", (probe, name, result, now))

    for request in requests:
        push(request.arrival, "arrive", request)
    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "trial":
            probe, name, result, started = payload  # type: ignore[misc]
            router.record(name, probe, result, started, now)
            continue
        start_trials(now)
        if kind == "arrive":
            request = payload
            assert isinstance(request, Request)
            if _answerable(world, request, now):
                answerable.add(request.request_id)
                out.answerable += 1
            flight = _InFlight(request, now + DEADLINE_S, router.plan(request, now))
            advance(flight, now)
        elif kind == "resume":
            flight = payload  # type: ignore[assignment]
            flight.order = router.plan(flight.request, now)
            flight.index = 0
            advance(flight, now)
        else:
            flight, name, result, started = payload  # type: ignore[misc]
            router.record(name, flight.request, result, started, now)
            flight.last = (name, result)
            if result.outcome == SUCCESS:
                settle(flight, now, (name, result))
                continue
            if result.outcome not in RATE_OUTCOMES:
                flight.done.add(name)
            advance(flight, now)
    return _metrics(out, world), out.latencies


def _answerable(world: World, request: Request, now: float) -> bool:
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
        if result.outcome == SUCCESS and result.duration_s <= min(model.timeout_s, DEADLINE_S):
            return True
    return False


def _metrics(out: Outcomes, world: World) -> dict[str, float | int | None]:
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
