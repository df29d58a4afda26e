"""Routing policies compared by the benchmark: the real selector, three baselines and an oracle."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiselector.v1 import common_pb2, selector_pb2
from bench.routing.world import Request, Result, SimModel, World
from services.selector import engine as request_path
from services.selector import policy
from services.selector.policy import Candidate, ModelSpec, Needs
from services.selector.settings import SelectorSettings
from services.selector.state import LiveState
from services.selector.stats import StatsBook

RATE_OUTCOMES = (common_pb2.OUTCOME_RATE_LIMITED, common_pb2.OUTCOME_QUOTA_EXHAUSTED)
#: Prompt tokens of a recovery trial (the synthetic probe prompt is a few words).
TRIAL_PROMPT_TOKENS = 12


@dataclass(frozen=True)
class EngineModel:
    """How services/selector/engine.py uses the policy: waits, rounds, recovery trials.

    `max_retry_wait_s`: longest wait for a rate-limited or out-of-budget model when nothing else
    is eligible, taken only when the wait plus `wait_margin_s` fits the time left; `rounds`:
    planning rounds per request; `recovery_trials`: a half-open circuit gets its one trial from a
    background probe instead of from a user's prompt, so no prompt waits on a model that may
    still be down.
    """

    name: str
    max_retry_wait_s: float = 5.0
    rounds: int = 3
    recovery_trials: bool = False
    wait_margin_s: float = 1.0


def engine_from_code() -> EngineModel:
    """The engine as services/selector/engine.py and its settings' defaults behave now."""
    wait = SelectorSettings.model_fields["max_retry_wait_seconds"].default
    return EngineModel(
        "current",
        max_retry_wait_s=float(wait),
        rounds=request_path.MAX_ROUNDS,
        recovery_trials=False,
        wait_margin_s=request_path.RETRY_WAIT_MARGIN_SECONDS,
    )


#: The engine with the changes proposed in bench/routing/README.md.
PROPOSED_ENGINE = EngineModel(
    "proposed", max_retry_wait_s=30.0, rounds=10, recovery_trials=True, wait_margin_s=5.0
)
ENGINES = {"current": engine_from_code, "proposed": lambda: PROPOSED_ENGINE}


class Router(Protocol):
    """What the simulated request path asks of a routing policy."""

    name: str
    rounds: int

    def plan(self, request: Request, now: float) -> list[str]:
        """Model names to try, best first."""
        ...

    def admit(self, name: str, request: Request, now: float) -> bool:
        """Whether the request may be sent to the model now (budget, half-open slot)."""
        ...

    def record(
        self, name: str, request: Request, result: Result, started: float, now: float
    ) -> None:
        """Learns from one attempt."""
        ...

    def finish(
        self, request: Request, answered: tuple[str, Result] | None, last: tuple[str, Result] | None
    ) -> None:
        """Learns from a whole request."""
        ...

    def wait(self, request: Request, now: float, remaining: float) -> float | None:
        """Seconds to wait before planning again when nothing is left to try; None gives up."""
        ...

    def side_trials(self, now: float) -> list[str]:
        """Models to send a background recovery probe to now (admitted already)."""
        ...


class _Stateless:
    """Shared no-op parts of routers that learn nothing."""

    rounds = 1

    def __init__(self, world: World) -> None:
        self.world = world
        self.names = sorted(world.models)

    def _fitting(self, request: Request) -> list[str]:
        return [n for n in self.names if self.world.fits(self.world.models[n], request)]

    def admit(self, name: str, request: Request, now: float) -> bool:
        return True

    def record(
        self, name: str, request: Request, result: Result, started: float, now: float
    ) -> None:
        return None

    def finish(
        self, request: Request, answered: tuple[str, Result] | None, last: tuple[str, Result] | None
    ) -> None:
        return None

    def wait(self, request: Request, now: float, remaining: float) -> float | None:
        return None

    def side_trials(self, now: float) -> list[str]:
        return []


class RandomRouter(_Stateless):
    """Every model that fits, in random order; no memory of failures."""

    name = "random"

    def __init__(self, world: World, seed: int) -> None:
        super().__init__(world)
        self.rng = random.Random(seed)

    def plan(self, request: Request, now: float) -> list[str]:
        order = self._fitting(request)
        self.rng.shuffle(order)
        return order


class RoundRobinRouter(_Stateless):
    """Every model that fits, starting one further along the list for each request."""

    name = "round_robin"

    def __init__(self, world: World, seed: int) -> None:
        super().__init__(world)
        self.turn = seed

    def plan(self, request: Request, now: float) -> list[str]:
        order = self._fitting(request)
        self.turn += 1
        if not order:
            return order
        shift = self.turn % len(order)
        return order[shift:] + order[:shift]


class OracleRouter(_Stateless):
    """Knows every provider's future: sends each request once, to the fastest model that answers."""

    name = "oracle"

    def plan(self, request: Request, now: float) -> list[str]:
        best: tuple[float, str] | None = None
        for name in self._fitting(request):
            model = self.world.models[name]
            if not self.world.within_declared(name, request, now):
                continue
            result = self.world.peek(name, request, now)
            limit = min(model.timeout_s, 60.0)
            answers = result.outcome == common_pb2.OUTCOME_SUCCESS and result.duration_s <= limit
            if answers and (best is None or result.duration_s < best[0]):
                best = (result.duration_s, name)
        return [] if best is None else [best[1]]


class V2Router(_Stateless):
    """The original system: formula "v2", one history row per request, its cooldowns and circuit.

    Ranking: over 7 days, weights 0.5 ** (age_h / 34); quality = (ws + 1) / (ws + wf + 2); speed =
    clamp(1 - (median - 0.5) / 19.5, 0, 1) or 0.5; base = quality * (0.5 + 0.5 * speed); effective =
    base + min(0.2 * sqrt(ln(T + 1) / (n + 1)), 0.15); models under 0.3 left out. Reactions: 429 →
    cooldown Retry-After or 3600 s; 5xx / timeout → provider circuit (2 failures → open 300 s,
    half-open lets everything through); 4xx → 24 h cooldown. Only the request's final outcome is
    recorded, so failures rescued by fallback never lower a score.
    """

    name = "v2"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.ids = {name: index + 1 for index, name in enumerate(self.names)}
        self.stats = StatsBook(half_life_hours=34.0)
        self.cooldown_until: dict[str, float] = {}
        self.failures: Counter[str] = Counter()
        self.open_until: dict[str, float] = {}

    def _fitting(self, request: Request) -> list[str]:
        return [
            n
            for n in self.names
            if request.tags <= self.world.models[n].tags
            and (self.world.models[n].supports_json or not request.json_mode)
        ]

    def plan(self, request: Request, now: float) -> list[str]:
        windows = {n: self.stats.window(self.ids[n], now) for n in self.names}
        total = sum(w.total for w in windows.values())
        scored: list[tuple[float, str]] = []
        for name in self._fitting(request):
            provider = self.world.models[name].provider
            if self.cooldown_until.get(name, 0.0) > now or self.open_until.get(provider, 0.0) > now:
                continue
            window = windows[name]
            quality = (window.successes + 1) / (window.successes + window.failures + 2)
            median = window.median_latency_s
            speed = 0.5 if median is None else min(1.0, max(0.0, 1 - (median - 0.5) / 19.5))
            base = quality * (0.5 + 0.5 * speed)
            bonus = min(0.2 * math.sqrt(math.log(total + 1) / (window.total + 1)), 0.15)
            if base + bonus >= 0.3:
                scored.append((base + bonus, name))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [name for _, name in scored]

    def record(
        self, name: str, request: Request, result: Result, started: float, now: float
    ) -> None:
        provider = self.world.models[name].provider
        if result.outcome == common_pb2.OUTCOME_SUCCESS:
            self.failures[provider] = 0
        elif result.outcome in RATE_OUTCOMES:
            retry = 3600.0 if result.retry_after is None else result.retry_after
            self.cooldown_until[name] = now + retry
        elif result.outcome in (common_pb2.OUTCOME_PERMANENT, common_pb2.OUTCOME_BAD_REQUEST):
            self.cooldown_until[name] = now + 86400.0
        else:
            self.failures[provider] += 1
            if self.failures[provider] >= 2:
                self.open_until[provider] = now + 300.0

    def finish(
        self, request: Request, answered: tuple[str, Result] | None, last: tuple[str, Result] | None
    ) -> None:
        row = answered or last
        if row is None:
            return
        name, result = row
        latency_ms = int(min(result.duration_s, 1e6) * 1000)
        self.stats.add(self.ids[name], result.outcome, latency_ms, result.tokens, request.arrival)


class SelectorRouter:
    """The Selector's real policy, live state and statistics modules, used as its engine does."""

    name = "selector"

    def __init__(self, world: World, seed: int, engine: EngineModel | None = None) -> None:
        self.world = world
        self.engine = engine or engine_from_code()
        self.rounds = self.engine.rounds
        self.specs = {
            model.name: _spec(index + 1, model) for index, model in enumerate(world.models.values())
        }
        self.live = LiveState()
        self.stats = StatsBook()
        self.rng = random.Random(seed)

    def _est(self, spec: ModelSpec, request: Request) -> int:
        return request.prompt_tokens + spec.max_output_tokens

    def _plan(self, request: Request, now: float) -> policy.Plan:
        candidates = [
            Candidate(
                spec=spec,
                window=self.stats.window(spec.model_id, now),
                availability=self.live.availability(
                    spec.model_id, spec.limits, now, self._est(spec, request)
                ),
            )
            for spec in self.specs.values()
        ]
        needs = Needs(
            tags=request.tags, json_mode=request.json_mode, prompt_tokens=request.prompt_tokens
        )
        return policy.plan(candidates, needs, now, self.rng)

    def plan(self, request: Request, now: float) -> list[str]:
        return [spec.name for spec in self._plan(request, now).order]

    def admit(self, name: str, request: Request, now: float) -> bool:
        spec = self.specs[name]
        return self.live.acquire(spec.model_id, spec.limits, now, self._est(spec, request))

    def record(
        self, name: str, request: Request, result: Result, started: float, now: float
    ) -> None:
        spec = self.specs[name]
        self.live.on_outcome(
            spec.model_id,
            result.outcome,
            now,
            started=started,
            retry_after=result.retry_after,
            tokens=result.tokens,
            http_status=result.http_status,
        )
        latency_ms = int((now - started) * 1000)
        self.stats.add(spec.model_id, result.outcome, latency_ms, result.tokens, started)

    def finish(
        self, request: Request, answered: tuple[str, Result] | None, last: tuple[str, Result] | None
    ) -> None:
        return None

    def wait(self, request: Request, now: float, remaining: float) -> float | None:
        excluded = self._plan(request, now).excluded
        waits = []
        for name, spec in self.specs.items():
            exclusion = excluded.get(spec.model_id)
            if (
                exclusion is None
                or exclusion.until is None
                or not self._rate_blocked(name, exclusion.state)
            ):
                continue
            waits.append(exclusion.until - now)
        if not waits:
            return None
        wait = max(0.0, min(waits))
        if wait > self.engine.max_retry_wait_s or wait + self.engine.wait_margin_s > remaining:
            return None
        return wait + 0.01

    def side_trials(self, now: float) -> list[str]:
        if not self.engine.recovery_trials:
            return []
        names = []
        for name, spec in self.specs.items():
            state = self.live.availability(spec.model_id, spec.limits, now).state
            tokens = TRIAL_PROMPT_TOKENS + spec.max_output_tokens
            if state == selector_pb2.MODEL_STATE_CIRCUIT_HALF_OPEN and self.live.acquire(
                spec.model_id, spec.limits, now, tokens
            ):
                names.append(name)
        return names

    def _rate_blocked(self, name: str, state: int) -> bool:
        if state == selector_pb2.MODEL_STATE_OUT_OF_BUDGET:
            return True
        cooldown = self.live.snapshot(self.specs[name].model_id)["cooldown_outcome"]
        return state == selector_pb2.MODEL_STATE_COOLING_DOWN and cooldown in RATE_OUTCOMES


def _spec(model_id: int, model: SimModel) -> ModelSpec:
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


def policies(engine: EngineModel | None = None) -> dict[str, Callable[[World, int], Router]]:
    """Every compared policy; the selector runs inside `engine` (default: the engine as coded)."""
    chosen = engine or engine_from_code()
    return {
        "selector": lambda world, seed: SelectorRouter(world, seed, chosen),
        "random": RandomRouter,
        "round_robin": RoundRobinRouter,
        "v2": lambda world, seed: V2Router(world),
        "oracle": lambda world, seed: OracleRouter(world),
    }
