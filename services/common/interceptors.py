"""Server interceptor: request id for every call, and domain errors turned into rich statuses."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_status import rpc_status

from services.common.errors import ServiceError, internal_status, to_status
from services.common.logging import request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"


def request_id_from(context: grpc.aio.ServicerContext) -> str:
    """The caller's `x-request-id`, or a new one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str:
    """One invocation metadata value, or an empty string."""
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return str(v)
    return ""


def log_failure(method: str, error: ServiceError) -> None:
    """Logs a call that ended with a domain error (at info: it is the client's answer)."""
    log.info(
        "call failed",
        extra={"method": method, "code": error.code.name, "error": to_status(error).message},
    )


async def abort(
    context: grpc.aio.ServicerContext,
    error: ServiceError,
    trailers: Iterable[tuple[str, str]] | None = None,
) -> None:
    """Ends the call (raises AbortError) with `error`'s status, `trailers` (the error's own by
    default) and the request id; trailers-only when nothing was sent, which Envoy needs to turn
    `retry-after` into a header."""
    bounded = to_status(error)
    status = rpc_status.to_status(bounded)
    extra = error.trailers() if trailers is None else tuple(trailers)
    try:
        await context.abort(
            status.code,
            status.details,
            (*status.trailing_metadata, *extra, (REQUEST_ID_KEY, request_id_var.get())),
        )
    except grpc.aio.AbortError:
        raise
    except Exception:
        # The status could not be sent: the caller went away (a stream reader that stopped at
        # an error event). Nothing more can reach it; end the call as cancelled.
        raise asyncio.CancelledError from None


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Binds the request id into logs and maps every exception of a unary-unary or unary-stream
    handler to a status (stream handlers write their replies with `context.write`)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            wrap = grpc.unary_unary_rpc_method_handler
            behavior = handler.unary_unary
        elif handler.unary_stream is not None:
            wrap = grpc.unary_stream_rpc_method_handler
            behavior = handler.unary_stream
        else:
            return handler
        method = handler_call_details.method

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            request_id = request_id_from(context)
            token = request_id_var.set(request_id)
            try:
                # The id rides in the trailers: no extra metadata operation per call, and an error
                # stays "trailers-only", which Envoy needs to turn `retry-after` into a header.
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
                return await _call(behavior, request, context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except ServiceError as error:
                log_failure(method, error)
                await abort(context, error)
            except Exception:
                log.exception("unexpected error", extra={"method": method})
                await context.abort_with_status(rpc_status.to_status(internal_status()))
            finally:
                request_id_var.reset(token)

        return wrap(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _call(
    behavior: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext
) -> Any:
    """Runs a handler; a streaming one written as an async generator has its messages written."""
    result = behavior(request, context)
    if inspect.isasyncgen(result):
        async for message in result:
            await context.write(message)
        return None
    return await result
