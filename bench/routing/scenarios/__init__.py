"""Routing benchmark scenarios as data: simulated providers, their faults, and the workload."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.routing.world import Outage, SimModel
from services.selector.state import DAY, Limits

#: Scenarios start at a UTC midnight (day 20 600, in 2026), so "today" and daily quotas line up.
START = 20_600 * DAY
MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True)
class Workload:
    """Arrivals (piecewise-constant Poisson rates) and what the prompts need."""

    rates: tuple[tuple[float, float, float], ...]
    prompt_tokens_median: int = 400
    big_prompt_share: float = 0.03
    big_prompt_tokens: int = 20_000
    code_share: float = 0.10
    russian_share: float = 0.05
    json_share: float = 0.10
    #: Models every prompt names (`model_name`): tried first.
    pinned: tuple[str, ...] = ()
    #: Every prompt's deadline, in seconds.
    deadline_s: float = 60.0


@dataclass(frozen=True)
class Scenario:
    """One benchmark scenario: what happens to which provider while the workload runs."""

    name: str
    description: str
    duration_s: float
    models: tuple[SimModel, ...]
    workload: Workload
    seed: int = 1
    #: (model, seconds from the start): the model is healthy again from then on; the run reports
    #: how long until it answered a user's prompt again (`recovery_s`, target ≤ 30 s).
    recovery: tuple[str, float] | None = None

    def shortened(self, seconds: float) -> Scenario:
        """The same scenario cut to its first `seconds` (for the quick smoke run)."""
        return replace(self, duration_s=min(self.duration_s, seconds))


def _model(name: str, provider: str, **fields: object) -> SimModel:
    return SimModel(name=name, provider=provider, **fields)  # type: ignore[arg-type]


GEMINI = _model(
    "gemini/gemini-2.5-flash",
    "gemini",
    latency_median_s=1.2,
    failure_rate=0.01,
    rpm=10,
    rpd=250,
    declared=Limits(requests_per_minute=10, requests_per_day=250),
    tags=frozenset({"json", "code", "russian"}),
    context_tokens=1_000_000,
    timeout_s=30.0,
)
GROQ = _model(
    "groq/llama-3.3-70b-versatile",
    "groq",
    latency_median_s=0.8,
    failure_rate=0.01,
    rpm=30,
    rpd=1000,
    declared=Limits(requests_per_minute=30, requests_per_day=1000),
    tags=frozenset({"json", "code"}),
    timeout_s=20.0,
)
CEREBRAS = _model(
    "cerebras/qwen-3-32b",
    "cerebras",
    latency_median_s=0.6,
    failure_rate=0.02,
    rpm=30,
    rpd=14_400,
    declared=Limits(requests_per_minute=30, requests_per_day=14_400),
    tags=frozenset({"json", "code"}),
    context_tokens=65_536,
    timeout_s=20.0,
)
SAMBANOVA = _model(
    "sambanova/llama-4-maverick",
    "sambanova",
    latency_median_s=2.0,
    failure_rate=0.03,
    rpm=20,
    declared=Limits(requests_per_minute=20),
    tags=frozenset({"code", "russian"}),
    timeout_s=30.0,
)
HUGGINGFACE = _model(
    "huggingface/llama-3.1-8b-instruct",
    "huggingface",
    latency_median_s=3.0,
    latency_sigma=0.5,
    failure_rate=0.05,
    rpm=60,
    sends_retry_after=False,
    tags=frozenset({"russian"}),
    supports_json=False,
    context_tokens=8192,
    timeout_s=30.0,
)
CLOUDFLARE = _model(
    "cloudflare/llama-3.1-8b-instruct",
    "cloudflare",
    latency_median_s=2.5,
    failure_rate=0.03,
    tpd=300_000,
    declared=Limits(tokens_per_day=300_000),
    tags=frozenset({"json"}),
    context_tokens=8192,
    timeout_s=30.0,
)
CATALOG = (GEMINI, GROQ, CEREBRAS, SAMBANOVA, HUGGINGFACE, CLOUDFLARE)


def _with(model: SimModel, *outages: Outage, **fields: object) -> SimModel:
    return replace(model, outages=(*model.outages, *outages), **fields)  # type: ignore[arg-type]


def _swap(catalog: tuple[SimModel, ...], *changed: SimModel) -> tuple[SimModel, ...]:
    by_name = {m.name: m for m in changed}
    return tuple(by_name.get(m.name, m) for m in catalog)


STEADY_RATE = ((0.0, 1e9, 0.5),)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="steady",
        description="every provider healthy, 30 prompts/min for 2 h",
        duration_s=2 * HOUR,
        models=CATALOG,
        workload=Workload(rates=STEADY_RATE),
        seed=11,
    ),
    Scenario(
        name="outage",
        description="the fastest provider (cerebras) silent for one hour, then back",
        duration_s=2.5 * HOUR,
        models=_swap(CATALOG, _with(CEREBRAS, Outage(0.5 * HOUR, 1.5 * HOUR, "timeout"))),
        workload=Workload(rates=STEADY_RATE),
        seed=12,
    ),
    Scenario(
        name="rate_limit_storm",
        description="a burst of 120 prompts/min for 30 min while another client of the same "
        "accounts spends most of groq's and cerebras' minute: 6 of their declared 30 requests/min "
        "are left, beyond them a 429 (groq's with a truthful Retry-After, cerebras' without one)",
        duration_s=2 * HOUR,
        models=_swap(
            CATALOG,
            _with(GROQ, Outage(0.5 * HOUR, 1.0 * HOUR, "rate_limit", rpm=6)),
            _with(
                CEREBRAS,
                Outage(0.5 * HOUR, 1.0 * HOUR, "rate_limit", rpm=6),
                sends_retry_after=False,
            ),
        ),
        workload=Workload(
            rates=((0.0, 0.5 * HOUR, 0.5), (0.5 * HOUR, HOUR, 2.0), (HOUR, 1e9, 0.5))
        ),
        seed=13,
    ),
    Scenario(
        name="daily_quotas",
        description="a whole UTC day at 9 prompts/min; the fast providers' daily quotas run out "
        "(sambanova's 2000/day is not declared and ends in 429s until midnight)",
        duration_s=DAY,
        models=_swap(CATALOG, replace(SAMBANOVA, rpd=2000)),
        workload=Workload(rates=((0.0, 1e9, 0.15),)),
        seed=14,
    ),
    Scenario(
        name="slow_provider",
        description="cerebras turns 25 times slower (about 15 s, often past its 20 s timeout) "
        "after 20 min",
        duration_s=2 * HOUR,
        models=_swap(CATALOG, _with(CEREBRAS, Outage(20 * MINUTE, 1e9, "slow", factor=25.0))),
        workload=Workload(rates=STEADY_RATE),
        seed=15,
    ),
    Scenario(
        name="flapping",
        description="groq alternates 4 min healthy and 3 min silent for 2 h",
        duration_s=2 * HOUR,
        models=_swap(
            CATALOG,
            _with(
                GROQ,
                *(
                    Outage(start + 4 * MINUTE, start + 7 * MINUTE, "timeout")
                    for start in range(0, int(2 * HOUR), int(7 * MINUTE))
                ),
            ),
        ),
        workload=Workload(rates=STEADY_RATE),
        seed=16,
    ),
    Scenario(
        name="stale_404",
        description="sambanova's model id is gone: every request to it is a 404",
        duration_s=HOUR,
        models=_swap(CATALOG, _with(SAMBANOVA, Outage(0.0, 1e9, "not_found"))),
        workload=Workload(rates=STEADY_RATE),
        seed=17,
    ),
    Scenario(
        name="two_keys",
        description="groq through two keys (two accounts, 30 requests/min each) in a burst of "
        "90 prompts/min for 30 min",
        duration_s=1.5 * HOUR,
        models=(
            *(m for m in CATALOG if m is not GROQ),
            replace(
                GROQ,
                name="groq/llama-3.3-70b-versatile#key1",
                declared=replace(GROQ.declared, account="groq/GROQ_API_KEY#1"),
            ),
            replace(
                GROQ,
                name="groq/llama-3.3-70b-versatile#key2",
                declared=replace(GROQ.declared, account="groq/GROQ_API_KEY#2"),
            ),
        ),
        workload=Workload(
            rates=((0.0, 0.5 * HOUR, 0.5), (0.5 * HOUR, HOUR, 1.5), (HOUR, 1e9, 0.5))
        ),
        seed=18,
    ),
    Scenario(
        name="mixed_prompts",
        description="40% JSON mode and 15% long prompts (70k tokens: only gemini, groq and "
        "sambanova fit) at 40 prompts/min",
        duration_s=HOUR,
        models=CATALOG,
        workload=Workload(
            rates=((0.0, 1e9, 40 / MINUTE),),
            json_share=0.4,
            big_prompt_share=0.15,
            big_prompt_tokens=70_000,
        ),
        seed=19,
    ),
    Scenario(
        name="failover",
        description="every prompt names a primary (model_name) with a 20 s deadline: it fails "
        "(503) for 10 min, is healthy, turns slow (20 s) for 10 min, then silent for 10 min",
        duration_s=HOUR,
        models=(
            _model(
                "primary/fast",
                "primary",
                latency_median_s=0.5,
                failure_rate=0.0,
                tags=frozenset({"json", "code", "russian"}),
                outages=(
                    Outage(10 * MINUTE, 20 * MINUTE, "error"),
                    Outage(30 * MINUTE, 40 * MINUTE, "slow", factor=40.0),
                    Outage(40 * MINUTE, 50 * MINUTE, "timeout"),
                ),
            ),
            _model(
                "fallback/steady",
                "fallback",
                latency_median_s=1.0,
                failure_rate=0.0,
                tags=frozenset({"json", "code", "russian"}),
            ),
        ),
        workload=Workload(
            rates=((0.0, 1e9, 6 / MINUTE),), pinned=("primary/fast",), deadline_s=20.0
        ),
        seed=20,
        recovery=("primary/fast", 20 * MINUTE),
    ),
)
