"""The policies the selector is compared with: three baselines and an oracle.

The selector itself is not here: `drive.py` runs the real `services/selector/conduct.py`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from bench.routing.world import Request, Result, World
from services.common.outcomes import BAD_REQUEST, PERMANENT, RATE_OUTCOMES, SUCCESS
from services.selector.stats import StatsBook


class Router(Protocol):
    """What the simulated request path asks of a routing policy."""

    name: str

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


class _Stateless:
    """Shared no-op parts of routers that learn nothing."""

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
            limit = min(model.timeout_s, request.deadline_s)
            answers = result.outcome == SUCCESS and result.duration_s <= limit
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
        if result.outcome == SUCCESS:
            self.failures[provider] = 0
        elif result.outcome in RATE_OUTCOMES:
            retry = 3600.0 if result.retry_after is None else result.retry_after
            self.cooldown_until[name] = now + retry
        elif result.outcome in (PERMANENT, BAD_REQUEST):
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


#: Every baseline and the oracle, by name: a factory from (world, seed).
BASELINES: dict[str, Callable[[World, int], Router]] = {
    "random": RandomRouter,
    "round_robin": RoundRobinRouter,
    "v2": lambda world, seed: V2Router(world),
    "oracle": lambda world, seed: OracleRouter(world),
}
