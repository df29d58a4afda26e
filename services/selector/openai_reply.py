"""Renders OpenAI's replies: `chat.completion`, stream chunks, errors and the model list."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from aiselector.v1 import common_pb2, selector_pb2
from services.common import errors, secrets
from services.selector.openai_request import AUTO_MODEL

#: Trailer carrying the OpenAI error body; Envoy's Lua filter makes it the HTTP body (ADR 0008).
ERROR_TRAILER = "x-openai-error-body"
ERROR_MESSAGE_MAX_CHARS = 2_000
MODEL_HEADER = "x-aiselector-model"
PROVIDER_HEADER = "x-aiselector-provider"
ATTEMPTS_HEADER = "x-aiselector-attempts"
DONE_EVENT = b"data: [DONE]\n\n"
AUTO_OWNER = "free-ai-selector"

# OpenAI's error type for each gRPC code, chosen by the HTTP status Envoy's transcoder gives it
# (in the comments): the SDKs pick their exception class from that status.
_ERROR_TYPES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_request_error",  # 400
    grpc.StatusCode.UNAUTHENTICATED: "authentication_error",  # 401
    grpc.StatusCode.PERMISSION_DENIED: "permission_error",  # 403
    grpc.StatusCode.NOT_FOUND: "not_found_error",  # 404
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limit_error",  # 429
}
# Everything else is a 5xx: UNAVAILABLE 503, DEADLINE_EXCEEDED 504, INTERNAL 500.
_SERVER_ERROR = "server_error"
_REASON_PREFIX = "ERROR_REASON_"


def completion_id(request_id: str) -> str:
    """The `id` of the completion answering the request with id `request_id`."""
    return f"chatcmpl-{request_id}"


def _usage(usage: selector_pb2.TokenUsage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def completion_body(
    reply: selector_pb2.ProcessPromptResponse, *, created: int, finish_reason: str = "stop"
) -> bytes:
    """The `chat.completion` JSON for a whole answer (`created` in Unix seconds)."""
    return _json(
        {
            "id": completion_id(reply.request_id),
            "object": "chat.completion",
            "created": created,
            "model": reply.selected_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.response},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": _usage(reply.usage),
        }
    )


@dataclass(frozen=True)
class ChunkStream:
    """Renders the Server-Sent Events of one streamed completion, in OpenAI's order."""

    request_id: str
    created: int
    model: str
    include_usage: bool

    def opening(self) -> bytes:
        """The first chunk: the assistant's role with empty content."""
        return self._chunk({"role": "assistant", "content": ""}, None)

    def delta(self, text: str) -> bytes:
        """A chunk carrying the next piece of the answer."""
        return self._chunk({"content": text}, None)

    def closing(self, usage: selector_pb2.TokenUsage, finish_reason: str = "stop") -> bytes:
        """The finish chunk, the usage chunk when asked for, and `[DONE]`."""
        events = [self._chunk({}, finish_reason)]
        if self.include_usage:
            events.append(_event({**self._envelope(), "choices": [], "usage": _usage(usage)}))
        return b"".join([*events, DONE_EVENT])

    def _envelope(self) -> dict[str, Any]:
        return {
            "id": completion_id(self.request_id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        chunk = {
            **self._envelope(),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        # OpenAI sends `usage: null` on every chunk but the usage chunk when usage is asked for.
        if self.include_usage:
            chunk["usage"] = None
        return _event(chunk)


def routing_headers(model: str, provider: str, attempts: int) -> tuple[tuple[str, str], ...]:
    """Response headers saying which model and provider answered after how many attempts."""
    return (
        (MODEL_HEADER, _ascii(model)),
        (PROVIDER_HEADER, _ascii(provider)),
        (ATTEMPTS_HEADER, str(attempts)),
    )


def _ascii(value: str) -> str:
    # Metadata values must be printable ASCII; a catalog name never should break a reply.
    return value.encode("ascii", "backslashreplace").decode("ascii")


def error_object(error: errors.ServiceError) -> dict[str, Any]:
    """OpenAI's `{"error": {message, type, param, code}}` for `error`, secrets removed."""
    message = secrets.redact(error.message)
    if len(message) > ERROR_MESSAGE_MAX_CHARS:
        message = message[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"
    param = None
    if isinstance(error, errors.InvalidArgument) and error.violations:
        param = error.violations[0][0]
    elif error.reason == common_pb2.ERROR_REASON_MODEL_NOT_FOUND:
        param = "model"
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(error.code, _SERVER_ERROR),
            "param": param,
            "code": errors.reason_name(error.reason).removeprefix(_REASON_PREFIX).lower(),
        }
    }


def error_trailers(error: errors.ServiceError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for an error before any reply: the OpenAI body and `retry-after`."""
    # Metadata values are printable ASCII: escape everything else, DEL included.
    body = json.dumps(error_object(error), separators=(",", ":")).replace("\x7f", "\\u007f")
    extra: tuple[tuple[str, str], ...] = ()
    if error.reason == common_pb2.ERROR_REASON_NO_CREDENTIALS:
        # The SDKs retry every 503; retrying cannot help until someone sets a provider key.
        extra = (("x-should-retry", "false"),)
    return ((ERROR_TRAILER, body), *error.trailers(), *extra)


def error_event(error: errors.ServiceError) -> bytes:
    """The in-stream event for a failure after the first chunk (no `[DONE]` follows it)."""
    return _event(error_object(error))


def models_body(models: Iterable[common_pb2.Model]) -> bytes:
    """The `GET /v1/models` JSON: `auto` first, then every active model by name."""
    active = sorted((m for m in models if m.is_active), key=lambda m: m.name)
    entries = [
        {
            "id": model.name,
            "object": "model",
            "created": model.create_time.seconds,
            "owned_by": model.provider,
        }
        for model in active
    ]
    # `auto` is as old as the oldest model it can choose from.
    oldest = min((e["created"] for e in entries), default=0)
    auto = {"id": AUTO_MODEL, "object": "model", "created": oldest, "owned_by": AUTO_OWNER}
    return _json({"object": "list", "data": [auto, *entries]})


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _event(value: dict[str, Any]) -> bytes:
    return b"data: " + _json(value) + b"\n\n"
