"""A scripted Selector gRPC servicer: records calls, replies by script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import timestamp_pb2
from grpc_status import rpc_status

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common import errors

SELECTOR = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name
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


def default_test_results() -> selector_pb2.TestProvidersResponse:
    """A probe run over three models: two answered, one is unknown to its provider."""
    return selector_pb2.TestProvidersResponse(
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


@dataclass
class Call:
    """One call the fake received."""

    method: str
    request: object
    metadata: dict[str, str]
    time_remaining: float | None

    @property
    def request_id(self) -> str:
        return self.metadata.get("x-request-id", "")


Reply = selector_pb2.ProcessPromptResponse | errors.ServiceError
Answer = Callable[
    [selector_pb2.ProcessPromptRequest, grpc.aio.ServicerContext],
    Awaitable[selector_pb2.ProcessPromptResponse],
]


@dataclass
class Delta:
    """A StreamPrompt `delta` event, sent `delay` seconds after the previous event."""

    text: str
    delay: float = 0.0


@dataclass
class Failover:
    """A `failover` event: `failed_model` failed before any text, `next_model` is tried next."""

    failed_model: str
    next_model: str
    delay: float = 0.0


@dataclass
class Finish:
    """The `result` event that ends a complete stream."""

    reply: selector_pb2.ProcessPromptResponse
    delay: float = 0.0


@dataclass
class Fail:
    """The stream fails with `error`: after text as an `error` event and then the status, before
    text as the status alone (as the contract says)."""

    error: errors.ServiceError
    delay: float = 0.0


Step = Delta | Failover | Finish | Fail


def scripted_reply(response: str, **fields: object) -> selector_pb2.ProcessPromptResponse:
    """A reply from groq/llama-3.3-70b-versatile in 2.345 s at the first attempt, or as `fields`
    say."""
    values: dict[str, object] = {
        "selected_model": "groq/llama-3.3-70b-versatile",
        "provider": "groq",
        "response_time_seconds": 2.345,
        "success": True,
        "attempts": 1,
    }
    values.update(fields)
    return selector_pb2.ProcessPromptResponse(response=response, **values)  # type: ignore[arg-type]


def streamed(reply: selector_pb2.ProcessPromptResponse) -> list[Step]:
    """`reply` as a stream: its text in two deltas, then the result."""
    middle = len(reply.response) // 2
    return [Delta(reply.response[:middle]), Delta(reply.response[middle:]), Finish(reply)]


def default_key_usages() -> list[common_pb2.ClientKeyUsage]:
    """Today's usage of two client keys."""
    return [
        common_pb2.ClientKeyUsage(
            client_key_id=1, name="my-app", day="2026-12-02", requests=12, tokens=3400
        ),
        common_pb2.ClientKeyUsage(
            client_key_id=2, name="<ci>", day="2026-12-02", requests=3, failures=1
        ),
    ]


def _cooldown_until() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)


@dataclass
class ScriptedSelector(selector_pb2_grpc.SelectorServicer):
    """A Selector that answers by script and records every call in `calls`.

    - ProcessPrompt: the next of `prompt_script` (a reply, or an error it raises), else what
      `answer(request, context)` returns, else `echo`'s. `delay_seconds` holds every prompt
      back that long.
    - StreamPrompt: the next of `stream_scripts` (lists of steps), else what ProcessPrompt would
      answer, as a stream (an error before any event); with `streams` False it is UNIMPLEMENTED,
      as a Selector older than StreamPrompt. `stream_cancelled` is set when a client cancels one.
    - GetModelStats returns `models`; TestProviders `test_results`; DiscoverModels `discovery`;
      GetClientKeyUsage `key_usages`. The last three are admin calls: they want
      `authorization: Bearer <admin_token>`.
    - `failures[method]` is an error that method raises; a call to a method in `holds` waits for
      that event first.
    """

    answer: Answer | None = None
    prompt_script: list[Reply] = field(default_factory=list)
    stream_scripts: list[list[Step]] = field(default_factory=list)
    streams: bool = True
    delay_seconds: float = 0.0
    cooldown_until: datetime = field(default_factory=_cooldown_until)
    models: list[selector_pb2.ModelStats] | None = None  # None: default_models(cooldown_until)
    test_results: selector_pb2.TestProvidersResponse = field(default_factory=default_test_results)
    discovery: selector_pb2.DiscoverModelsResponse = field(
        default_factory=selector_pb2.DiscoverModelsResponse
    )
    key_usages: list[common_pb2.ClientKeyUsage] = field(default_factory=default_key_usages)
    admin_token: str = ADMIN_TOKEN
    failures: dict[str, errors.ServiceError] = field(default_factory=dict)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = default_models(self.cooldown_until)

    def reset(self) -> None:
        """Back to the default script (for a fake shared by several tests)."""
        self.__init__()  # type: ignore[misc]

    def calls_to(self, method: str) -> list[Call]:
        """The calls received by `method`."""
        return [c for c in self.calls if c.method == method]

    def prompts(self) -> list[Call]:
        """The ProcessPrompt and StreamPrompt calls received."""
        return [c for c in self.calls if c.method in ("ProcessPrompt", "StreamPrompt")]

    async def _receive(
        self, method: str, request: object, context: grpc.aio.ServicerContext, *, admin=False
    ) -> None:
        """Records the call, checks the admin token, waits for its hold, raises its failure."""
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}
        self.calls.append(Call(method, request, metadata, context.time_remaining()))
        if admin:
            authorization = metadata.get("authorization", "")
            if not authorization:
                raise errors.Unauthenticated("admin token required: authorization: Bearer <token>")
            if authorization != f"Bearer {self.admin_token}":
                raise errors.PermissionDenied("wrong admin token")
        if method in self.holds:
            await self.holds[method].wait()
        if method in self.failures:
            raise self.failures[method]

    async def _reply(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.ProcessPromptResponse:
        """The next scripted reply (raising a scripted error), else `answer`'s."""
        if self.prompt_script:
            reply = self.prompt_script.pop(0)
            if isinstance(reply, errors.ServiceError):
                raise reply
            return reply
        if self.answer is not None:
            return await self.answer(request, context)
        return self.echo(request)

    def echo(
        self, request: selector_pb2.ProcessPromptRequest
    ) -> selector_pb2.ProcessPromptResponse:
        """ "Answer to: <prompt>" from the pinned model, else from groq's llama; a pinned name
        not among `models` is NOT_FOUND."""
        if request.model_name and request.model_name not in {m.name for m in self.models or ()}:
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

    async def ProcessPrompt(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.ProcessPromptResponse:
        await self._receive("ProcessPrompt", request, context)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return await self._reply(request, context)

    async def StreamPrompt(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[selector_pb2.StreamPromptResponse]:
        await self._receive("StreamPrompt", request, context)
        if not self.streams:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.stream_scripts:
            steps = self.stream_scripts.pop(0)
        else:
            try:
                steps = streamed(await self._reply(request, context))
            except errors.ServiceError as error:
                steps = [Fail(error)]
        try:
            async for event in self._play(steps, context):
                yield event
        except asyncio.CancelledError:
            self.stream_cancelled.set()
            raise

    @staticmethod
    async def _play(
        steps: list[Step], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[selector_pb2.StreamPromptResponse]:
        text_sent = False
        for step in steps:
            await asyncio.sleep(step.delay)
            match step:
                case Delta():
                    text_sent = True
                    yield selector_pb2.StreamPromptResponse(
                        delta=selector_pb2.TextDelta(text=step.text)
                    )
                case Failover():
                    yield selector_pb2.StreamPromptResponse(
                        failover=selector_pb2.FailoverNotice(
                            failed_attempt=selector_pb2.AttemptSummary(model=step.failed_model),
                            next_model=step.next_model,
                        )
                    )
                case Finish():
                    yield selector_pb2.StreamPromptResponse(result=step.reply)
                case Fail():
                    status = errors.to_status(step.error)
                    if text_sent:
                        yield selector_pb2.StreamPromptResponse(error=status)
                    grpc_status = rpc_status.to_status(status)
                    await context.abort(
                        grpc_status.code,
                        grpc_status.details,
                        (*grpc_status.trailing_metadata, *step.error.trailers()),
                    )

    async def GetModelStats(
        self, request: selector_pb2.GetModelStatsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetModelStatsResponse:
        await self._receive("GetModelStats", request, context)
        return selector_pb2.GetModelStatsResponse(
            models=self.models, total_models=len(self.models), window_hours=168
        )

    async def TestProviders(
        self, request: selector_pb2.TestProvidersRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.TestProvidersResponse:
        await self._receive("TestProviders", request, context, admin=True)
        return self.test_results

    async def DiscoverModels(
        self, request: selector_pb2.DiscoverModelsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.DiscoverModelsResponse:
        await self._receive("DiscoverModels", request, context, admin=True)
        return self.discovery

    async def GetClientKeyUsage(
        self, request: selector_pb2.GetClientKeyUsageRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetClientKeyUsageResponse:
        await self._receive("GetClientKeyUsage", request, context, admin=True)
        return selector_pb2.GetClientKeyUsageResponse(usages=self.key_usages)
