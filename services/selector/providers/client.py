"""The shared HTTP client that calls providers: one aiohttp session, one adapter per wire format.

aiohttp was chosen over httpx by measurement (`python -m bench.http_clients`, concurrency 32 against
the simulator): several times the throughput at a fraction of the CPU per request, and a flat p95.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp

from aiselector.v1 import common_pb2
from services.selector.providers.classify import classify_error_body, classify_response
from services.selector.providers.errors import ProviderError
from services.selector.providers.gemini import GeminiFormat
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.openai import OpenAIFormat
from services.selector.providers.sse import SseDecoder
from services.selector.providers.stalls import LoopWatch
from services.selector.providers.streamed import StreamReader, TextSink, dropped
from services.selector.providers.target import Target
from services.selector.providers.wire import HttpCall, WireFormat, bad_answer

log = logging.getLogger(__name__)

FORMATS: dict[int, WireFormat] = {
    common_pb2.API_FORMAT_OPENAI: OpenAIFormat(),
    common_pb2.API_FORMAT_GEMINI: GeminiFormat(),
}
# Replies larger than this are not read (a chat answer is a few KiB).
MAX_REPLY_BYTES = 4 * 1024 * 1024
# An attempt whose time ran out after the loop had stood still this long is not the model's fault.
STALL_BLAME_SECONDS = 1.0
EVENT_STREAM = "text/event-stream"


@dataclass
class _Clock:
    """One attempt's time: a local wait for a connection, then the provider's own timeout.

    `scope` first ends the wait at the request's deadline; once a connection is ours (new or
    reused) it is moved to the provider's timeout from then, still within the deadline.
    """

    scope: asyncio.Timeout
    timeout: float
    deadline: float | None
    connected_at: float | None = None

    @property
    def due(self) -> float | None:
        """When the provider's time runs out (loop time); None before a connection is ours."""
        if self.connected_at is None:
            return None
        due = self.connected_at + self.timeout
        return due if self.deadline is None else min(due, self.deadline)

    def connected(self, now: float) -> None:
        """Starts the provider's timer: a connection is ours at `now`."""
        if self.connected_at is not None or self.scope.expired():
            return
        self.connected_at = now
        self.scope.reschedule(self.due)


async def _connected(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: object,
) -> None:
    """Trace hook: a connection (reused or about to be created) is now this request's."""
    clock = context.trace_request_ctx
    if isinstance(clock, _Clock):
        clock.connected(asyncio.get_running_loop().time())


class ProviderClient:
    """Calls models over one shared connection pool; every failure becomes a ProviderError.

    A model is charged only for its own time: the attempt's timeout starts once a connection is
    ours, and a timeout that ran out while the Selector itself stood still is ABANDONED.
    """

    def __init__(self, session: aiohttp.ClientSession, watch: LoopWatch) -> None:
        self._session = session
        self._watch = watch

    @classmethod
    async def open(cls, *, max_connections: int) -> ProviderClient:
        """A client owning a new session with at most `max_connections` open connections."""
        trace = aiohttp.TraceConfig()
        trace.on_connection_reuseconn.append(_connected)
        trace.on_connection_create_start.append(_connected)
        connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
            trace_configs=[trace],
        )
        return cls(session, LoopWatch.start())

    async def close(self) -> None:
        """Closes every connection."""
        await self._session.close()
        await self._watch.stop()

    async def complete(
        self,
        target: Target,
        request: ChatRequest,
        *,
        timeout: float,
        deadline: float | None = None,
    ) -> ChatResult:
        """The model's answer to `request`, within `timeout` seconds of the provider's time.

        The provider's time runs from when a connection is ours (waiting for a free one is local)
        to the last byte; the whole call ends by `deadline` (event-loop time), or, without one,
        waits at most `timeout` for a connection. Raises ProviderError (outcome, HTTP status,
        wait, secret-free message) for every failure.
        """
        started = time.monotonic()
        outcome = await self._attempt(target, request, timeout, deadline)
        return self._settle(target, started, outcome)

    async def stream(
        self,
        target: Target,
        request: ChatRequest,
        *,
        on_text: TextSink,
        first_token_timeout: float,
        idle_timeout: float,
        deadline: float | None = None,
    ) -> ChatResult:
        """The model's answer to `request`, streamed: each certain piece of answer text (never
        reasoning) is awaited in `on_text` as it arrives; the result holds the whole answer.

        The provider has `first_token_timeout` seconds from when a connection is ours to its first
        token (answer or reasoning; keep-alive comments do not count), then `idle_timeout` seconds
        for each next event, counted while this client waits for it (not while `on_text` runs);
        the whole call ends by `deadline`. Raises ProviderError for every failure, also after text
        was given to `on_text`; an exception from `on_text` propagates as it is.
        """
        started = time.monotonic()
        outcome = await self._stream(
            target, request, on_text, first_token_timeout, idle_timeout, deadline
        )
        return self._settle(target, started, outcome)

    def _settle(
        self, target: Target, started: float, outcome: ChatResult | ProviderError
    ) -> ChatResult:
        # Raised here, outside any `except`, so no library exception (which may hold request
        # headers, hence the key) is chained to the error.
        if isinstance(outcome, ProviderError):
            log.debug(
                "provider call failed",
                extra={
                    "provider": target.provider,
                    "model": target.model,
                    "outcome": outcome.outcome_name,
                    "http_status": outcome.http_status,
                    "error": outcome.message,
                    "latency_ms": round(1000 * (time.monotonic() - started)),
                },
            )
            raise outcome
        return outcome

    async def _attempt(
        self, target: Target, request: ChatRequest, timeout: float, deadline: float | None
    ) -> ChatResult | ProviderError:
        wire = FORMATS.get(target.api_format)
        if wire is None:
            return _unsupported(target)
        call = wire.build(target, request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        scope = asyncio.timeout_at(deadline if deadline is not None else started + timeout)
        clock = _Clock(scope, timeout, deadline)
        try:
            async with scope:
                status, headers, raw = await self._post(call, clock)
        except TimeoutError:
            return self._timed_out(target, clock, started, loop.time(), "no answer")
        except (aiohttp.ClientError, OSError) as exc:
            return _connection_failed(target, exc)
        return _whole_reply(target, wire, request, status, headers, raw)

    async def _stream(
        self,
        target: Target,
        request: ChatRequest,
        on_text: TextSink,
        first_token_timeout: float,
        idle_timeout: float,
        deadline: float | None,
    ) -> ChatResult | ProviderError:
        wire = FORMATS.get(target.api_format)
        if wire is None:
            return _unsupported(target)
        call = wire.build(target, request, stream=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_due = deadline if deadline is not None else started + first_token_timeout
        scope = asyncio.timeout_at(first_due)
        clock = _Clock(scope, first_token_timeout, deadline)
        try:
            async with scope:
                response = await self._session.post(
                    call.url, json=call.body, headers=call.headers, trace_request_ctx=clock
                )
        except TimeoutError:
            return self._timed_out(target, clock, started, loop.time(), "no first token")
        except (aiohttp.ClientError, OSError) as exc:
            return _connection_failed(target, exc)
        # Releasing an unfinished response closes its connection: the provider stops at once.
        try:
            reader = StreamReader(target, wire, request)
            return await self._read(reader, response, clock, idle_timeout, on_text, started)
        finally:
            response.release()

    async def _read(
        self,
        reader: StreamReader,
        response: aiohttp.ClientResponse,
        clock: _Clock,
        idle_timeout: float,
        on_text: TextSink,
        started: float,
    ) -> ChatResult | ProviderError:
        """Reads a streamed reply to its end, handing answer text to `on_text` as it is certain."""
        target = reader.target
        loop = asyncio.get_running_loop()
        headers = _lowered(response)
        content_type = headers.get("content-type", "")
        if not 200 <= response.status < 300 or not content_type.startswith(EVENT_STREAM):
            # An error before the stream, or a provider that answered whole after all.
            try:
                async with asyncio.timeout_at(clock.scope.when()):
                    raw = await _body(response)
            except TimeoutError:
                return self._timed_out(target, clock, started, loop.time(), "no first token")
            except (aiohttp.ClientError, OSError) as exc:
                return _connection_failed(target, exc)
            outcome = _whole_reply(
                target, reader.wire, reader.request, response.status, headers, raw
            )
            if isinstance(outcome, ChatResult):
                await on_text(outcome.text)
            return outcome
        decoder = SseDecoder(MAX_REPLY_BYTES)
        received = 0
        while not reader.ended:
            waiting = loop.time()
            if reader.filter is None:
                # The first-token time runs from the connection on, as set in `clock.scope`.
                due, what = clock.scope.when(), "no first token"
            else:
                due = waiting + idle_timeout
                if clock.deadline is not None:
                    due = min(due, clock.deadline)
                what = f"stream stalled after {reader.pieces} piece(s) of answer: no data"
            try:
                async with asyncio.timeout_at(due):
                    chunk = await response.content.readany()
            except TimeoutError:
                if reader.filter is None:
                    return self._timed_out(target, clock, started, loop.time(), what)
                idle = _Clock(clock.scope, idle_timeout, clock.deadline, waiting)
                return self._timed_out(target, idle, started, loop.time(), what)
            except (aiohttp.ClientError, OSError) as exc:
                return dropped(target, reader.pieces, type(exc).__name__)
            if not chunk:
                break
            received += len(chunk)
            try:
                if received > MAX_REPLY_BYTES:
                    raise ValueError(f"the stream is longer than {MAX_REPLY_BYTES} bytes")
                events = decoder.feed(chunk)
            except ValueError as error:
                return bad_answer(target, str(error))
            for event in events:
                outcome = reader.take(event, headers)
                if isinstance(outcome, ProviderError):
                    return outcome
                if outcome:
                    await on_text(outcome)
        return await reader.finish(on_text)

    def _timed_out(
        self, target: Target, clock: _Clock, started: float, now: float, summary: str
    ) -> ProviderError:
        """TIMEOUT when the provider had its whole timeout; ABANDONED when something else ended it.

        Something else: no connection was free before the deadline, the request's deadline came
        before the model's timeout, or the loop had stood still for STALL_BLAME_SECONDS when the
        provider's time ran out (an answer that came meanwhile could not be read). `summary`
        says what did not come in time (`no answer`, `no first token`, …).
        """
        due = clock.due
        if due is None:
            return ProviderError(
                common_pb2.OUTCOME_ABANDONED,
                f"{target.provider}: abandoned after {now - started:.1f} s waiting for a free "
                "local connection: the request's deadline ran out",
            )
        assert clock.connected_at is not None
        if due < clock.connected_at + clock.timeout:
            return ProviderError(
                common_pb2.OUTCOME_ABANDONED,
                f"{target.provider}: abandoned after {due - clock.connected_at:.1f} s: "
                "the request's deadline ran out",
            )
        stalled = self._watch.stalled_for(due, now)
        if min(stalled, due - clock.connected_at) >= STALL_BLAME_SECONDS:
            return ProviderError(
                common_pb2.OUTCOME_ABANDONED,
                f"{target.provider}: abandoned: the selector was stalled for {stalled:.1f} s "
                "when the provider's time ran out",
            )
        return ProviderError(
            common_pb2.OUTCOME_TIMEOUT,
            f"{target.provider}: {summary} within {clock.timeout:g} s",
        )

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> tuple[int, dict[str, str], str]:
        """GET `url` over the shared pool (model lists): status, headers with lower-case names,
        body cut at `max_bytes`. The caller bounds its time; raises aiohttp.ClientError, OSError
        (which may hold the request's headers, hence the key: never chain or log them)."""
        async with self._session.get(url, headers=dict(headers), params=params) as response:
            return response.status, _lowered(response), await _body(response, max_bytes)

    async def _post(self, call: HttpCall, clock: _Clock) -> tuple[int, dict[str, str], str]:
        async with self._session.post(
            call.url, json=call.body, headers=call.headers, trace_request_ctx=clock
        ) as response:
            return response.status, _lowered(response), await _body(response)


def _lowered(response: aiohttp.ClientResponse) -> dict[str, str]:
    """The reply's headers with lower-case names."""
    return {name.lower(): value for name, value in response.headers.items()}


async def _body(response: aiohttp.ClientResponse, max_bytes: int = MAX_REPLY_BYTES) -> str:
    """A reply body, at most `max_bytes` of it (an over-size reply then fails as not JSON)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return b"".join(chunks)[:max_bytes].decode("utf-8", errors="replace")


def _whole_reply(
    target: Target,
    wire: WireFormat,
    request: ChatRequest,
    status: int,
    headers: Mapping[str, str],
    raw: str,
) -> ChatResult | ProviderError:
    """The answer in a whole reply, or the error it says."""
    if not 200 <= status < 300:
        return classify_response(target, status, headers, raw, datetime.now(UTC))
    # OpenRouter answers some failures (its daily cap among them) with HTTP 200 and an error.
    error = classify_error_body(target, status, headers, raw, datetime.now(UTC))
    if error is not None:
        return error
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return bad_answer(target, "reply is not JSON")
    try:
        return wire.parse(target, request, body)
    except ProviderError as error:
        return error


def _unsupported(target: Target) -> ProviderError:
    return ProviderError(
        common_pb2.OUTCOME_PERMANENT,
        f"{target.provider}: unsupported API format {target.api_format}",
    )


def _connection_failed(target: Target, exc: BaseException) -> ProviderError:
    return ProviderError(
        common_pb2.OUTCOME_TRANSIENT,
        f"{target.provider}: connection failed ({type(exc).__name__})",
    )
