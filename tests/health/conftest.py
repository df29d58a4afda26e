"""Fixtures of the health worker tests: a scripted Selector over loopback and fresh metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from aiselector.v1 import selector_pb2_grpc
from services.common.channels import open_channel
from services.common.server import GrpcServer
from services.health.metrics import HealthMetrics
from tests.health.fakes import ScriptedSelector, start_selector


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> HealthMetrics:
    return HealthMetrics(registry)


@pytest.fixture
def fake_selector() -> ScriptedSelector:
    return ScriptedSelector()


@pytest.fixture
async def selector_server(fake_selector: ScriptedSelector) -> AsyncIterator[GrpcServer]:
    running = await start_selector(fake_selector)
    yield running
    await running.stop(0)


@pytest.fixture
async def selector_stub(
    selector_server: GrpcServer,
) -> AsyncIterator[selector_pb2_grpc.SelectorStub]:
    async with open_channel(f"127.0.0.1:{selector_server.port}") as channel:
        yield selector_pb2_grpc.SelectorStub(channel)
