"""Fixtures of the health worker tests: a scripted Selector over loopback and fresh metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from services.common.server import GrpcServer
from services.health.metrics import HealthMetrics
from tests.fakes import ScriptedSelector, serve


def two_model_reply() -> selector_pb2.TestProvidersResponse:
    """A probe run where one model answered and one failed."""
    return selector_pb2.TestProvidersResponse(
        total_providers=2,
        successful=1,
        failed=1,
        results=[
            selector_pb2.ProviderTestResult(
                provider="groq",
                model="llama-3.3-70b-versatile",
                status=selector_pb2.TEST_STATUS_SUCCESS,
                response_time_seconds=0.42,
                outcome=common_pb2.OUTCOME_SUCCESS,
            ),
            selector_pb2.ProviderTestResult(
                provider="cerebras",
                model="zai-glm-4.7",
                status=selector_pb2.TEST_STATUS_ERROR,
                response_time_seconds=1.5,
                error="HTTP 503 from provider",
                outcome=common_pb2.OUTCOME_TRANSIENT,
            ),
        ],
    )


def discovery_reply() -> selector_pb2.DiscoverModelsResponse:
    """A discovery run: one list not read, one with a model set aside and a new free model."""
    unlisted = selector_pb2.UnlistedModel(
        model="groq/gpt-oss-20b",
        reason="not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml",
    )
    new = selector_pb2.NewFreeModel(
        provider_model_id="openai/gpt-oss-20b:free", note="not added: CATALOG_AUTO_ADD is off"
    )
    return selector_pb2.DiscoverModelsResponse(
        providers=[
            selector_pb2.ProviderDiscovery(provider="cerebras", error="not read: X is not set"),
            selector_pb2.ProviderDiscovery(provider="gemini", listed_models=3),
            selector_pb2.ProviderDiscovery(provider="groq", listed_models=2, unlisted=[unlisted]),
            selector_pb2.ProviderDiscovery(
                provider="openrouter", listed_models=40, new_free_models=[new]
            ),
        ]
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> HealthMetrics:
    return HealthMetrics(registry)


@pytest.fixture
def fake_selector() -> ScriptedSelector:
    """A Selector whose probe run finds one model answering and one failing."""
    return ScriptedSelector(test_results=two_model_reply(), discovery=discovery_reply())


@pytest.fixture
async def selector_server(fake_selector: ScriptedSelector) -> AsyncIterator[GrpcServer]:
    running = await serve(fake_selector)
    yield running
    await running.stop(0)


@pytest.fixture
async def selector_stub(
    selector_server: GrpcServer,
) -> AsyncIterator[selector_pb2_grpc.SelectorStub]:
    async with open_channel(f"127.0.0.1:{selector_server.port}") as channel:
        yield selector_pb2_grpc.SelectorStub(channel)
