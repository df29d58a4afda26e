"""Small fakes for the health worker tests: a scripted Selector and ModelStore on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from aiselector.v1 import (
    common_pb2,
    model_store_pb2,
    model_store_pb2_grpc,
    selector_pb2,
    selector_pb2_grpc,
)
from services.common import errors
from services.common.server import GrpcServer, Registration, start_grpc_server

SELECTOR_SERVICE = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name
MODEL_STORE_SERVICE = model_store_pb2.DESCRIPTOR.services_by_name["ModelStore"].full_name
ADMIN_TOKEN = "admin-token-for-tests-5f2c"


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


@dataclass
class ScriptedSelector(selector_pb2_grpc.SelectorServicer):
    """Answers TestProviders with `reply` and DiscoverModels with `discovery`, or raises `error`;
    remembers each call's metadata (`calls`: probes, `discovery_calls`: discovery runs).

    With `gate` set, each probe call waits for it before answering.
    """

    reply: selector_pb2.TestProvidersResponse = field(default_factory=two_model_reply)
    discovery: selector_pb2.DiscoverModelsResponse = field(default_factory=discovery_reply)
    error: errors.ServiceError | None = None
    gate: asyncio.Event | None = None
    calls: list[dict[str, str]] = field(default_factory=list)
    discovery_calls: list[dict[str, str]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def TestProviders(
        self, request: selector_pb2.TestProvidersRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.TestProvidersResponse:
        self.calls.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.reply

    async def DiscoverModels(
        self, request: selector_pb2.DiscoverModelsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.DiscoverModelsResponse:
        self.discovery_calls.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.error is not None:
            raise self.error
        return self.discovery


async def start_selector(servicer: ScriptedSelector, port: int = 0) -> GrpcServer:
    """Serves `servicer` on 127.0.0.1 (`port` 0 picks a free one)."""
    registration = Registration(
        SELECTOR_SERVICE, selector_pb2_grpc.add_SelectorServicer_to_server, servicer
    )
    return await start_grpc_server([registration], f"127.0.0.1:{port}")


async def eventually(condition: Callable[[], bool], within_seconds: float = 10.0) -> None:
    """Polls `condition` until it holds; fails the test after `within_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@dataclass
class ScriptedModelStore(model_store_pb2_grpc.ModelStoreServicer):
    """Answers PurgeHistory with fixed counts and remembers each request (for the process test)."""

    requests: list[model_store_pb2.PurgeHistoryRequest] = field(default_factory=list)

    async def PurgeHistory(
        self, request: model_store_pb2.PurgeHistoryRequest, context: grpc.aio.ServicerContext
    ) -> model_store_pb2.PurgeHistoryResponse:
        self.requests.append(request)
        return model_store_pb2.PurgeHistoryResponse(deleted_prompts=3, deleted_attempts=7)


async def start_model_store(servicer: ScriptedModelStore, *, serving: bool = True) -> GrpcServer:
    """Serves `servicer` on a free port of 127.0.0.1."""
    registration = Registration(
        MODEL_STORE_SERVICE, model_store_pb2_grpc.add_ModelStoreServicer_to_server, servicer
    )
    return await start_grpc_server([registration], "127.0.0.1:0", serving=serving)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
