"""The streaming faces of one answer on a gRPC stream: StreamPrompt's typed events and OpenAI's
chat-completion chunks, each ending a failed stream the way its clients can read."""

from __future__ import annotations

import contextlib

import grpc
from google.api import httpbody_pb2

from aiselector.v1 import selector_pb2
from services.common import errors
from services.common.interceptors import abort, log_failure
from services.selector import openai_reply
from services.selector.answering import Answered, CallerGone
from services.selector.openai_request import CompletionRequest

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
CHAT_COMPLETIONS = "/aiselector.v1.Selector/ChatCompletions"


async def _write(context: grpc.aio.ServicerContext, message: object) -> None:
    try:
        await context.write(message)
    except grpc.aio.UsageError as error:  # the call has ended: its caller went away
        raise CallerGone(str(error)) from None


class PromptEvents:
    """StreamPrompt: `failover` and `delta` events, then `result`; a stream that has sent any
    event and fails ends with an `error` event (a JSON client cannot see the status once the
    stream has begun) and then the same status."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self.started = False

    async def failover(
        self, failed: selector_pb2.AttemptSummary, next_model: str, next_provider: str
    ) -> None:
        notice = selector_pb2.FailoverNotice(
            failed_attempt=failed, next_model=next_model, next_provider=next_provider
        )
        await self._send(selector_pb2.StreamPromptResponse(failover=notice))

    async def commit(self, model: str, provider: str, attempts: int) -> None:
        """Nothing to send: the reply names the model at the end."""

    async def delta(self, text: str) -> None:
        await self._send(selector_pb2.StreamPromptResponse(delta=selector_pb2.TextDelta(text=text)))

    async def finish(self, answered: Answered) -> None:
        """The last event of a complete stream."""
        await self._send(selector_pb2.StreamPromptResponse(result=answered.reply))

    async def fail(self, error: errors.ServiceError | None) -> None:
        """Reports a failure in the stream if it has begun (`None`: an unexpected one); the
        caller then ends the call with the status."""
        if not self.started:
            return
        status = errors.internal_status() if error is None else errors.to_status(error)
        with contextlib.suppress(CallerGone):  # nobody to tell: the status cannot reach it either
            await self._send(selector_pb2.StreamPromptResponse(error=status))

    async def _send(self, event: selector_pb2.StreamPromptResponse) -> None:
        self.started = True
        await _write(self._context, event)


class ChatChunks:
    """OpenAI chat completions: with `stream`, the routing headers and the first chunk at the
    first token, then a chunk per piece and the closing chunks with `[DONE]`; without, the routing
    headers and one `chat.completion`. An error before anything was sent is a trailers-only status
    carrying OpenAI's error body (Envoy's Lua filter makes it the HTTP body); after, it is a
    `data: {"error": …}` event and no `[DONE]`, then the status."""

    def __init__(self, context: grpc.aio.ServicerContext, request_id: str, created: int) -> None:
        self._context = context
        self._request_id = request_id
        self._created = created
        self._chunks: openai_reply.ChunkStream | None = None
        self.include_usage = False

    @property
    def started(self) -> bool:
        """Whether the stream's first chunk was sent."""
        return self._chunks is not None

    def configure(self, request: CompletionRequest) -> None:
        """Takes the options of the parsed request."""
        self.include_usage = request.include_usage

    async def failover(
        self, failed: selector_pb2.AttemptSummary, next_model: str, next_provider: str
    ) -> None:
        """Invisible to OpenAI clients: they see one stream, from the model that answers."""

    async def commit(self, model: str, provider: str, attempts: int) -> None:
        await self._context.send_initial_metadata(
            openai_reply.routing_headers(model, provider, attempts)
        )
        self._chunks = openai_reply.ChunkStream(
            self._request_id, self._created, model, self.include_usage
        )
        await self._send(EVENT_STREAM, self._chunks.opening())

    async def delta(self, text: str) -> None:
        assert self._chunks is not None
        await self._send(EVENT_STREAM, self._chunks.delta(text))

    async def finish(self, answered: Answered) -> None:
        """The end of a complete stream, or the whole completion when not streamed."""
        reply = answered.reply
        if self._chunks is not None:
            closing = self._chunks.closing(reply.usage, answered.finish_reason)
            await self._send(EVENT_STREAM, closing)
            return
        await self._context.send_initial_metadata(
            openai_reply.routing_headers(reply.selected_model, reply.provider, reply.attempts)
        )
        body = openai_reply.completion_body(
            reply, created=self._created, finish_reason=answered.finish_reason
        )
        await self._send(JSON, body)

    async def fail(self, error: errors.ServiceError) -> None:
        """Ends the call with `error` as OpenAI clients read it (raises AbortError)."""
        log_failure(CHAT_COMPLETIONS, error)
        if self._chunks is None:
            await abort(self._context, error, openai_reply.error_trailers(error))
        try:
            await self._send(EVENT_STREAM, openai_reply.error_event(error))
        finally:
            await abort(self._context, error)

    async def _send(self, content_type: str, data: bytes) -> None:
        await _write(self._context, httpbody_pb2.HttpBody(content_type=content_type, data=data))
