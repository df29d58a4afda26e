"""A small scripted Selector gRPC servicer for the bot's tests: records calls, replies by script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import timestamp_pb2

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common import errors
from services.common.server import GrpcServer, Registration, start_grpc_server

SELECTOR_NAME = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def default_models(cooldown_until: datetime) -> list[selector_pb2.ModelStats]:
    """Four models: two ready (ranked), one cooling down until `cooldown_until`, one without key."""
    return [
        selector_pb2.ModelStats(
            id=1,
            name="groq/llama-3.3-70b-versatile",
            provider="groq",
            reliability_score=0.91,
            success_rate=0.98,
            average_response_time=1.24,
            total_requests=120,
            is_active=True,
            state=selector_pb2.MODEL_STATE_READY,
            rank=1,
        ),
        selector_pb2.ModelStats(
            id=2,
            name="gemini/gemini-2.5-flash",
            provider="gemini",
            reliability_score=0.8,
            success_rate=0.9,
            average_response_time=2.5,
            total_requests=40,
            is_active=True,
            state=selector_pb2.MODEL_STATE_READY,
            rank=2,
        ),
        selector_pb2.ModelStats(
            id=3,
            name="cerebras/zai-glm-4.7",
            provider="cerebras",
            reliability_score=0.5,
            success_rate=0.6,
            average_response_time=4.0,
            total_requests=10,
            is_active=True,
            state=selector_pb2.MODEL_STATE_COOLING_DOWN,
            state_reason="rate limited by the provider",
            available_at=_timestamp(cooldown_until),
        ),
        selector_pb2.ModelStats(
            id=4,
            name="sambanova/Meta-Llama-3.3-70B-Instruct",
            provider="sambanova",
            is_active=True,
            state=selector_pb2.MODEL_STATE_NO_CREDENTIALS,
        ),
    ]


@dataclass
class Call:
    """One call the fake received."""

    method: str
    request: object
    metadata: dict[str, str]
    time_remaining: float | None


Reply = selector_pb2.ProcessPromptResponse | errors.ServiceError


class ScriptedSelector(selector_pb2_grpc.SelectorServicer):
    """Answers ProcessPrompt from `prompt_script` (replies or errors, in order), then by echoing.

    `delay_seconds` holds every ProcessPrompt back that long. GetModelStats returns `models`;
    TestProviders checks the bearer token and returns `test_results`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the default script."""
        self.cooldown_until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        self.models = default_models(self.cooldown_until)
        self.prompt_script: list[Reply] = []
        self.stats_error: errors.ServiceError | None = None
        self.delay_seconds = 0.0
        self.calls: list[Call] = []
        self.test_results = selector_pb2.TestProvidersResponse(
            total_providers=3,
            successful=2,
            failed=1,
            results=[
                selector_pb2.ProviderTestResult(
                    provider="groq",
                    model="groq/llama-3.3-70b-versatile",
                    status=selector_pb2.TEST_STATUS_SUCCESS,
                    response_time_seconds=0.84,
                ),
                selector_pb2.ProviderTestResult(
                    provider="gemini",
                    model="gemini/gemini-2.5-flash",
                    status=selector_pb2.TEST_STATUS_SUCCESS,
                    response_time_seconds=1.5,
                ),
                selector_pb2.ProviderTestResult(
                    provider="cerebras",
                    model="cerebras/zai-glm-4.7",
                    status=selector_pb2.TEST_STATUS_ERROR,
                    error="HTTP 404: model <zai-glm-4.7> not found",
                ),
            ],
        )

    def _record(self, method: str, request: object, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        self.calls.append(Call(method, request, metadata, context.time_remaining()))

    def prompts(self) -> list[Call]:
        """The ProcessPrompt calls received."""
        return [c for c in self.calls if c.method == "ProcessPrompt"]

    async def ProcessPrompt(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.ProcessPromptResponse:
        self._record("ProcessPrompt", request, context)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.prompt_script:
            reply = self.prompt_script.pop(0)
            if isinstance(reply, errors.ServiceError):
                raise reply
            return reply
        if request.model_name and request.model_name not in {m.name for m in self.models}:
            raise errors.NotFound(f"no model named {request.model_name!r}")
        return selector_pb2.ProcessPromptResponse(
            prompt=request.prompt,
            response=f"Answer to: {request.prompt}",
            selected_model=request.model_name or "groq/llama-3.3-70b-versatile",
            provider=(request.model_name or "groq").split("/")[0],
            response_time_seconds=1.25,
            success=True,
            attempts=1,
        )

    async def GetModelStats(
        self, request: selector_pb2.GetModelStatsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetModelStatsResponse:
        self._record("GetModelStats", request, context)
        if self.stats_error is not None:
            raise self.stats_error
        return selector_pb2.GetModelStatsResponse(
            models=self.models, total_models=len(self.models), window_hours=168
        )

    async def TestProviders(
        self, request: selector_pb2.TestProvidersRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.TestProvidersResponse:
        self._record("TestProviders", request, context)
        authorization = self.calls[-1].metadata.get("authorization", "")
        if not authorization:
            raise errors.Unauthenticated("admin token required")
        if authorization != f"Bearer {ADMIN_TOKEN}":
            raise errors.PermissionDenied("wrong admin token")
        return self.test_results


async def start_fake_selector(servicer: ScriptedSelector) -> GrpcServer:
    """Serves `servicer` on 127.0.0.1 at a free port, through the project's server factory."""
    return await start_grpc_server(
        [Registration(SELECTOR_NAME, selector_pb2_grpc.add_SelectorServicer_to_server, servicer)],
        "127.0.0.1:0",
    )
