"""Fixtures: the real Envoy in front of a scripted Selector + ModelStore, or of the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.stack.envoy_config import EnvoyConfig
from tests.envoy.harness import RunningEnvoy, Upstream, scripted_selector, start_envoy, stop_envoy
from tests.envoy.sdk import sdk
from tests.fakes import ScriptedModelStore, serve
from tests.stacks import Stack, make_stack

__all__ = ["make_stack", "sdk"]

Front = Callable[..., Awaitable[tuple[Stack, RunningEnvoy, httpx.AsyncClient]]]


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[Upstream]:
    selector = scripted_selector()
    server = await serve(selector, ScriptedModelStore())
    yield Upstream(server, selector)
    await server.stop(0)


@pytest.fixture(scope="module")
def envoy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEnvoy]:
    config = EnvoyConfig(
        selector_address=upstream.address,
        listen_port=0,
        admin_port=0,
        request_deadline_seconds=5,
    )
    running = start_envoy(config, tmp_path_factory.mktemp("envoy"))
    yield running
    stop_envoy(running.process)


@pytest.fixture
async def http(envoy: RunningEnvoy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=envoy.url, timeout=10) as client:
        yield client


@pytest.fixture
async def front(make_stack, tmp_path: Path) -> AsyncIterator[Front]:
    """Starts the real stack (simulator, ModelStore, Selector) with Envoy in front.

    `front(scripts, envoy={...}, **stack_settings)`: `envoy` overrides EnvoyConfig fields.
    """
    envoys: list[RunningEnvoy] = []
    clients: list[httpx.AsyncClient] = []

    async def factory(
        scripts: dict[str, Any] | None = None, *, envoy: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[Stack, RunningEnvoy, httpx.AsyncClient]:
        stack = await make_stack(scripts, **kwargs)
        config = EnvoyConfig(
            selector_address=stack.selector.address,
            listen_port=0,
            admin_port=0,
            **{"request_deadline_seconds": 10, **(envoy or {})},
        )
        running = start_envoy(config, tmp_path / f"envoy-{len(envoys)}")
        envoys.append(running)
        client = httpx.AsyncClient(base_url=running.url, timeout=15)
        clients.append(client)
        return stack, running, client

    yield factory
    for client in clients:
        await client.aclose()
    for running in envoys:
        stop_envoy(running.process)
