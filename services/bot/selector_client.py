"""Thin async client of `aiselector.v1.Selector` that turns gRPC errors into typed failures.

SelectorFailure                 anything else (INTERNAL, unknown codes, a stream without a result)
├── RateLimited                 RESOURCE_EXHAUSTED: every model is rate limited (retry_after)
├── NothingAvailable            UNAVAILABLE from the Selector: no model can answer (retry_after)
├── InvalidRequest              INVALID_ARGUMENT, with BadRequest field violations
├── PromptRejected              every model rejected this prompt (ERROR_REASON_PROMPT_REJECTED)
├── ModelNotFound               NOT_FOUND: the pinned model name is not in the catalog
├── DeadlinePassed              DEADLINE_EXCEEDED (the Selector's or the bot's own timeout)
├── AdminRefused                UNAUTHENTICATED / PERMISSION_DENIED on an admin call
└── SelectorUnreachable         no connection to the Selector (UNAVAILABLE without ErrorInfo)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common.logging import request_id_var

log = logging.getLogger(__name__)

CLIENT_ID = "telegram-bot"
# The contract's limit on `ProcessPromptRequest.prompt` (selector.proto).
PROMPT_MAX_CHARS = 10000
# Retry delay shown when the Selector sent none.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
STATS_TIMEOUT_SECONDS = 10.0
_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(eq=False)
class SelectorFailure(Exception):
    """A Selector call that did not succeed; `reason` is the ErrorInfo reason, if any."""

    message: str = ""
    reason: str = ""

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.reason or '-'}): {self.message}"


@dataclass(eq=False)
class RateLimited(SelectorFailure):
    """Every eligible model is rate limited or out of budget."""

    retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS


@dataclass(eq=False)
class NothingAvailable(SelectorFailure):
    """No model can answer now (none ready, none with credentials, store down)."""

    retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS


@dataclass(eq=False)
class InvalidRequest(SelectorFailure):
    """The request failed validation; `violations` are (field, description) pairs."""

    violations: list[tuple[str, str]] = field(default_factory=list)


class PromptRejected(SelectorFailure):
    """Every model that was tried rejected this particular prompt."""


class ModelNotFound(SelectorFailure):
    """The model name asked for is not in the catalog."""


class DeadlinePassed(SelectorFailure):
    """The deadline was spent before any model answered."""


class AdminRefused(SelectorFailure):
    """The Selector refused an admin call: no, a wrong, or a disabled admin token."""


class SelectorUnreachable(SelectorFailure):
    """The Selector could not be reached."""


def _details(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)
    except ValueError:
        return None


def failure_from(error: grpc.aio.AioRpcError) -> SelectorFailure:
    """The typed failure for a gRPC error, read from its `google.rpc.Status` details."""
    status = _details(error)
    return _classify(error.code(), error.details() or "", status.details if status else ())


def failure_from_status(status: status_pb2.Status) -> SelectorFailure:
    """The typed failure for a `google.rpc.Status` sent inside a stream (an `error` event)."""
    return _classify(_status_code(status), status.message, status.details)


def _status_code(status: status_pb2.Status) -> grpc.StatusCode:
    """The gRPC code of a `google.rpc.Status`."""
    return _CODES.get(status.code, grpc.StatusCode.UNKNOWN)


def _classify(
    code: grpc.StatusCode, message: str, details: Iterable[any_pb2.Any]
) -> SelectorFailure:
    reason = ""
    retry_after: float | None = None
    violations: list[tuple[str, str]] = []
    for detail in details:
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(retry):
            retry_after = retry.retry_delay.ToNanoseconds() / 1e9
        elif detail.Unpack(bad):
            violations = [(v.field, v.description) for v in bad.field_violations]
    delay = DEFAULT_RETRY_AFTER_SECONDS if retry_after is None else retry_after
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RateLimited(message, reason, retry_after_seconds=delay)
    if code == grpc.StatusCode.UNAVAILABLE:
        if not reason:
            return SelectorUnreachable(message, reason)
        return NothingAvailable(message, reason, retry_after_seconds=delay)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlinePassed(message, reason)
    if code == grpc.StatusCode.NOT_FOUND:
        return ModelNotFound(message, reason)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AdminRefused(message, reason)
    if reason == common_pb2.ErrorReason.Name(common_pb2.ERROR_REASON_PROMPT_REJECTED):
        return PromptRejected(message, reason)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(message, reason, violations=violations)
    return SelectorFailure(message, reason)


class SelectorClient:
    """Calls the Selector with the bot's caller tag, a request id, and the right timeouts.

    `prompt_timeout_seconds` is the gRPC timeout of StreamPrompt, ProcessPrompt and TestProviders.
    gRPC sends it to the Selector as the call's deadline, so the Selector knows when the bot stops
    waiting; it is set longer than the Selector's own deadline so that the Selector gives up first
    and its error (with a reason) reaches the user instead of a bare client-side timeout.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        prompt_timeout_seconds: float,
        admin_token: str = "",
        client_key: str = "",
        stats_timeout_seconds: float = STATS_TIMEOUT_SECONDS,
    ) -> None:
        self._stub = selector_pb2_grpc.SelectorStub(channel)
        self._prompt_timeout = prompt_timeout_seconds
        self._stats_timeout = stats_timeout_seconds
        self._admin_token = admin_token
        # Sent on the public methods, where the Selector may require a client key (ADR 0012):
        # the bot's own key when it has one (its usage is then counted apart), else the admin token.
        self._credential = client_key or admin_token

    def _metadata(self, *, admin: bool = False) -> tuple[tuple[str, str], ...]:
        request_id = request_id_var.get() or uuid.uuid4().hex
        metadata: tuple[tuple[str, str], ...] = (
            ("x-client-id", CLIENT_ID),
            ("x-request-id", request_id),
        )
        credential = self._admin_token if admin else self._credential
        if credential:
            metadata += (("authorization", f"Bearer {credential}"),)
        return metadata

    async def stream_prompt(
        self, prompt: str, *, user_id: str, model_name: str = ""
    ) -> AsyncGenerator[selector_pb2.StreamPromptResponse, None]:
        """Answers `prompt` as StreamPrompt events: failovers, deltas, and last the `result`;
        `model_name` pins a model to try first.

        A stream that fails, before its first delta or after it (its `error` event), raises the
        typed failure; so does one that ends without a `result`. Closing the generator early
        cancels the call, so the Selector stops work nobody waits for. A Selector older than
        StreamPrompt answers it UNIMPLEMENTED at once: the answer then comes from ProcessPrompt,
        whole, as the one `result` event.
        """
        request = selector_pb2.ProcessPromptRequest(
            prompt=prompt, user_id=user_id, model_name=model_name
        )
        call = self._stub.StreamPrompt(
            request, timeout=self._prompt_timeout, metadata=self._metadata()
        )
        started = False
        try:
            async for event in call:
                started = True
                if event.HasField("error"):
                    failure = failure_from_status(event.error)
                    raise self._logged("StreamPrompt", failure, _status_code(event.error).name)
                yield event
                if event.HasField("result"):
                    return
        except grpc.aio.AioRpcError as error:
            if started or error.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._failure("StreamPrompt", error) from None
        else:
            failure = SelectorFailure("the stream ended without a result")
            raise self._logged("StreamPrompt", failure, grpc.StatusCode.OK.name)
        finally:
            call.cancel()
        log.info("the Selector has no StreamPrompt; asking ProcessPrompt")
        yield selector_pb2.StreamPromptResponse(result=await self._process_prompt(request))

    async def _process_prompt(
        self, request: selector_pb2.ProcessPromptRequest
    ) -> selector_pb2.ProcessPromptResponse:
        """The whole answer at once, for a Selector older than StreamPrompt."""
        try:
            return await self._stub.ProcessPrompt(
                request, timeout=self._prompt_timeout, metadata=self._metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise self._failure("ProcessPrompt", error) from None

    async def model_stats(self) -> selector_pb2.GetModelStatsResponse:
        """Every model with its score and state, in ranking order."""
        try:
            return await self._stub.GetModelStats(
                selector_pb2.GetModelStatsRequest(),
                timeout=self._stats_timeout,
                metadata=self._metadata(),
            )
        except grpc.aio.AioRpcError as error:
            raise self._failure("GetModelStats", error) from None

    async def client_key_usage(self, days: int = 1) -> selector_pb2.GetClientKeyUsageResponse:
        """Admin: usage per client key over the last `days` days (UTC), newest first."""
        try:
            return await self._stub.GetClientKeyUsage(
                selector_pb2.GetClientKeyUsageRequest(days=days),
                timeout=self._stats_timeout,
                metadata=self._metadata(admin=True),
            )
        except grpc.aio.AioRpcError as error:
            raise self._failure("GetClientKeyUsage", error) from None

    async def test_providers(self) -> selector_pb2.TestProvidersResponse:
        """Admin: probes every configured model."""
        try:
            return await self._stub.TestProviders(
                selector_pb2.TestProvidersRequest(),
                timeout=self._prompt_timeout,
                metadata=self._metadata(admin=True),
            )
        except grpc.aio.AioRpcError as error:
            raise self._failure("TestProviders", error) from None

    @staticmethod
    def _failure(method: str, error: grpc.aio.AioRpcError) -> SelectorFailure:
        return SelectorClient._logged(method, failure_from(error), error.code().name)

    @staticmethod
    def _logged(method: str, failure: SelectorFailure, code: str) -> SelectorFailure:
        log.info(
            "selector call failed",
            extra={
                "method": method,
                "code": code,
                "failure": type(failure).__name__,
                "reason": failure.reason,
            },
        )
        return failure
