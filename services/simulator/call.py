"""What the simulator reads from one chat request (in either wire format) and what it answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

OPENAI = "openai"
GEMINI = "gemini"


@dataclass(frozen=True)
class Call:
    """One chat request: who it is for, what it asks, and how the reply must be shaped."""

    provider: str
    model: str
    wire: str  # OPENAI or GEMINI
    body: dict[str, Any]
    credential: str
    json_asked: bool  # JSON asked for on the wire or in the prompt
    reasoning_asked: bool
    stream: bool = False
    include_usage: bool = False  # OpenAI `stream_options.include_usage`

    @cached_property
    def prompt_tokens(self) -> int:
        """The prompt's size in tokens, estimated as a provider would (about 4 bytes a token)."""
        return max(1, len(json.dumps(self.body)) // 4)

    @property
    def max_tokens(self) -> int:
        """The output tokens asked for (0 when the request does not say)."""
        if self.wire == GEMINI:
            value = (self.body.get("generationConfig") or {}).get("maxOutputTokens")
        else:
            value = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Reply:
    """Status, JSON body, headers and the log outcome name of one reply."""

    status: int
    body: dict[str, Any]
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)


def _mentions_json(texts: list[str]) -> bool:
    return any("JSON" in text for text in texts)


def openai_call(provider: str, body: dict[str, Any], headers: Mapping[str, str]) -> Call:
    """A `POST …/chat/completions` request to `provider`."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    response_format = body.get("response_format")
    wire_json = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    options = body.get("stream_options")
    return Call(
        provider=provider,
        model=str(body.get("model", "")),
        wire=OPENAI,
        body=body,
        credential=headers.get("Authorization", "").removeprefix("Bearer "),
        json_asked=wire_json or _mentions_json(texts),
        reasoning_asked=bool(body.get("reasoning_effort") or body.get("reasoning")),
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def gemini_call(
    model: str, body: dict[str, Any], headers: Mapping[str, str], *, stream: bool
) -> Call:
    """A `POST …/models/{model}:generateContent` (or `:streamGenerateContent`) request."""
    config = body.get("generationConfig") or {}
    texts = [
        part.get("text", "")
        for holder in [*(body.get("contents") or []), body.get("systemInstruction") or {}]
        for part in (holder.get("parts") or [] if isinstance(holder, dict) else [])
        if isinstance(part, dict)
    ]
    return Call(
        provider=GEMINI,
        model=model,
        wire=GEMINI,
        body=body,
        credential=headers.get("x-goog-api-key", ""),
        json_asked=config.get("responseMimeType") == "application/json" or _mentions_json(texts),
        reasoning_asked=bool(config.get("thinkingConfig")),
        stream=stream,
    )
