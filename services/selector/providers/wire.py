"""What the wire-format adapters share: the HTTP call they build and the answer checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aiselector.v1 import common_pb2
from services.selector.providers.answer import clean_text, json_answer
from services.selector.providers.classify import scrub
from services.selector.providers.errors import ProviderError
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.target import Target

# Reasoning models get at least this many output tokens, so reasoning cannot eat the whole answer.
REASONING_MIN_OUTPUT_TOKENS = 2048
DEFAULT_OUTPUT_TOKENS = 1024
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


@dataclass(frozen=True)
class HttpCall:
    """One POST to send: URL, headers (credentials included) and JSON body."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class WireFormat(Protocol):
    """One adapter per wire format: builds the request and reads a successful reply."""

    def build(self, target: Target, request: ChatRequest) -> HttpCall:
        """The HTTP call asking `target` to answer `request`."""
        ...

    def parse(self, target: Target, request: ChatRequest, body: Any) -> ChatResult:
        """The answer in a 2xx reply body; raises ProviderError when it is not usable."""
        ...


def output_tokens(target: Target, request: ChatRequest) -> int:
    """Output-token limit to ask for: the request's, floored for reasoning models."""
    return output_limit(request.max_output_tokens, reasoning=target.reasoning)


def output_limit(asked: int, *, reasoning: bool) -> int:
    """The output tokens sent for `asked` (0 = the default): reasoning models get a floor."""
    tokens = asked if asked > 0 else DEFAULT_OUTPUT_TOKENS
    return max(tokens, REASONING_MIN_OUTPUT_TOKENS) if reasoning else tokens


def system_text(request: ChatRequest) -> str:
    """The system prompt, with the JSON instruction appended in JSON mode."""
    if not request.json_mode:
        return request.system_prompt
    return f"{request.system_prompt}\n\n{JSON_INSTRUCTION}".strip()


def bad_answer(target: Target, summary: str, detail: str = "") -> ProviderError:
    """A BAD_ANSWER error for a 200 reply that holds nothing usable."""
    text = f"HTTP 200 from {target.provider}: {summary}"
    if detail:
        text = f"{text} ({scrub(detail, target)})"
    return ProviderError(common_pb2.OUTCOME_BAD_ANSWER, text, http_status=200)


def wrong_format(target: Target, text: str) -> ProviderError:
    """A WRONG_FORMAT error for a 200 reply whose answer is not the JSON object JSON mode asked for.

    Not the model's failure: the answer says more about the prompt than about the model.
    """
    return ProviderError(
        common_pb2.OUTCOME_WRONG_FORMAT,
        f"HTTP 200 from {target.provider}: answer is not a JSON object ({scrub(text, target)})",
        http_status=200,
    )


def content_filtered(target: Target, detail: str) -> ProviderError:
    """A BAD_REQUEST error for an answer the provider withheld by its content filter."""
    return ProviderError(
        common_pb2.OUTCOME_BAD_REQUEST,
        f"HTTP 200 from {target.provider}: blocked by content filter ({scrub(detail, target)})",
        http_status=200,
    )


def finish(
    target: Target,
    request: ChatRequest,
    text: str,
    *,
    had_reasoning: bool,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> ChatResult:
    """The ChatResult for an answer already stripped of reasoning, or a BAD_ANSWER error (nothing
    usable) or WRONG_FORMAT error (not JSON in JSON mode)."""
    text = clean_text(text)
    if not text:
        if had_reasoning:
            summary = f"reasoning only, no answer (finish reason {finish_reason or 'none'})"
            raise bad_answer(target, summary)
        raise bad_answer(target, f"empty answer (finish reason {finish_reason or 'none'})")
    if request.json_mode:
        json_text = json_answer(text)
        if json_text is None:
            raise wrong_format(target, text[:80])
        text = json_text
    return ChatResult(
        text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, http_status=200
    )


def as_int(value: Any) -> int:
    """`value` as a non-negative int (token counts), 0 when missing or malformed."""
    return value if isinstance(value, int) and value > 0 else 0
