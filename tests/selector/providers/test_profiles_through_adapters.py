"""The simulator's provider profiles replayed through the real adapters over HTTP.

Each case makes the simulator say exactly what a provider recorded (tests/simulator/
test_profiles.py checks that); here the real ProviderClient must conclude what the recording's
`expect` block says: the outcome, the scope, and whether a wait was given. The exact waits are
pinned by tests/selector/providers/test_fixture_replay.py (the simulator words them from its own
clock).
Replies whose wait rides in rate-limit headers are driven by a simulated quota instead, so the
headers carry the simulator's real windows.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, ProviderClient, ProviderError, Target
from services.simulator import RunningSimulator
from tests.simulator.helpers import recorded
from tests.simulator.test_profiles import REPRODUCED, Case

# Request fields a case sends that the adapter sends from its request options.
_OPTIONS = {"top_p": "top_p"}


def _target(sim: RunningSimulator, case: Case) -> Target:
    provider = case.fixture.split("/")[0]
    api_format = (
        common_pb2.API_FORMAT_GEMINI if provider == "gemini" else common_pb2.API_FORMAT_OPENAI
    )
    return Target(
        provider=provider,
        model=case.model,
        api_format=api_format,
        base_url=sim.base_url(provider),
        api_key=case.key or "",
    )


def _request(case: Case) -> ChatRequest:
    options: dict[str, Any] = {_OPTIONS[name]: value for name, value in case.extra.items()}
    return ChatRequest.from_prompt("Hello", **options)


# Headers carry these waits; the simulator sends them when a quota drives the reply (below).
_WAIT_IN_HEADERS = {"groq/429_rpd", "cerebras/429_requests_per_minute", "cerebras/429_daily"}
_CASES = [
    c for c in REPRODUCED if set(c.extra) <= set(_OPTIONS) and c.fixture not in _WAIT_IN_HEADERS
]


@pytest.mark.parametrize("case", _CASES, ids=str)
async def test_recorded_reply_from_the_simulator_is_classified_as_the_recording_says(
    sim: RunningSimulator, client: ProviderClient, case: Case
):
    sim.set_scripts({"default": {"latency": 0}, **case.scenario})
    expect = recorded(case.fixture)["expect"]

    try:
        result = await client.complete(_target(sim, case), _request(case), timeout=5)
    except ProviderError as error:
        outcome, scope, wait = error.outcome_name, error.scope.value, error.retry_after
    else:
        outcome, scope, wait = "OUTCOME_SUCCESS", "model", None
        assert result.text

    assert outcome == f"OUTCOME_{expect['outcome']}"
    assert scope == expect["scope"]
    assert (wait is None) == (expect["wait_seconds"] is None), wait


@pytest.mark.parametrize(
    ("provider", "model", "quota", "outcome", "scope", "wait_range"),
    [
        # groq/429_rpd: `-requests` headers are the daily budget; the wait is Groq's retry-after.
        ("groq", "openai/gpt-oss-120b", {"per_day": 1}, "QUOTA_EXHAUSTED", "model", (1, 86400)),
        # cerebras/429_requests_per_minute: the minute reset, never the day's (issue 13's bug).
        ("cerebras", "gpt-oss-120b", {"per_minute": 1}, "RATE_LIMITED", "model", (0, 60)),
        # cerebras/429_daily: remaining-requests-day 0 waits for the -day reset.
        ("cerebras", "gpt-oss-120b", {"per_day": 1}, "QUOTA_EXHAUSTED", "model", (60, 86400)),
        # gemini/429_daily_free_tier: PerDay quota id, until midnight Pacific, not the retryDelay.
        ("gemini", "gemini-3.6-flash", {"per_day": 1}, "QUOTA_EXHAUSTED", "model", (61, 86400)),
        # openrouter/429_free_daily_50: the account's shared free cap, reset at UTC midnight.
        (
            "openrouter",
            "openai/gpt-oss-120b:free",
            {"per_day": 1, "scope": "account"},
            "QUOTA_EXHAUSTED",
            "account",
            (1, 86400),
        ),
    ],
)
async def test_a_spent_simulated_quota_is_classified_with_its_window(
    sim: RunningSimulator,
    client: ProviderClient,
    provider: str,
    model: str,
    quota: dict[str, Any],
    outcome: str,
    scope: str,
    wait_range: tuple[float, float],
):
    sim.set_scripts({"scripts": {f"{provider}/*": {"latency": 0, "quota": quota}}})
    case = Case(f"{provider}/quota", {}, model)
    target = _target(sim, case)

    await client.complete(target, _request(case), timeout=5)
    with pytest.raises(ProviderError) as caught:
        await client.complete(target, _request(case), timeout=5)

    error = caught.value
    assert (error.outcome_name, error.scope.value) == (f"OUTCOME_{outcome}", scope), error
    assert error.retry_after is not None, error
    low, high = wait_range
    assert low <= error.retry_after <= high, error
