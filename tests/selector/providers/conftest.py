"""Fixtures for the adapter tests: a real simulator on a loopback port and a real ProviderClient."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.selector.providers import ProviderClient, Target
from services.simulator import RunningSimulator, start_simulator
from tests.selector.providers.helpers import KEY


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator({"default": {"latency": 0}})
    yield simulator
    await simulator.close()


@pytest.fixture
async def client() -> AsyncIterator[ProviderClient]:
    provider_client = await ProviderClient.open(max_connections=16)
    yield provider_client
    await provider_client.close()


@pytest.fixture
def target(sim: RunningSimulator) -> Callable[..., Target]:
    """Builds a Target for `wire` = (provider, api_format) pointing at the simulator."""

    def make(wire: tuple[str, int], model: str = "m", **overrides: Any) -> Target:
        provider, api_format = wire
        fields: dict[str, Any] = {
            "provider": provider,
            "model": model,
            "api_format": api_format,
            "base_url": sim.base_url(provider),
            "api_key": KEY,
        }
        fields.update(overrides)
        return Target(**fields)

    return make
