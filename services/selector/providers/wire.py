"""What the wire-format adapters share: the HTTP call they build and the answer checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aiselector.v1 import common_pb2
from services.selector.providers.answer import clean_text, json_answer
from services.selector.providers.classify import scrub
from services.selector.providers.errors import ProviderError
from services.selector.providers.messages import ChatRequest, ChatResult, Message
from services.selector.providers.target import Target

# Reasoning models get at least this many output tokens, so reasoning cannot eat the whole answer.
REASONING_MIN_OUTPUT_TOKENS = 2048
DEFAULT_OUTPUT_TOKENS = 1024
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
# Finish reasons (OpenAI's, Gemini's) that say the output-token limit cut the answer.
_LENGTH_FINISHES = frozenset({"length", "MAX_TOKENS"})


@dataclass(frozen=True)
class HttpCall:
    """One POST to send: URL, headers (credentials included) and JSON body."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class StreamState:
    """What a streamed reply has said so far besides its answer text."""

    #: Reasoning came apart from the content (a reasoning field, thought parts).
    had_reasoning: bool = False
    #: The provider's finish reason, in its own words; empty until one came.
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class WireFormat(Protocol):
    """One adapter per wire format: builds the request and reads a successful reply, whole or
    streamed (errors are read by the shared rules in `classify.py`)."""

    #: Whether a reasoning model may put its reasoning in the answer text without an opening tag.
    untagged_reasoning: bool

    def build(self, target: Target, request: ChatRequest, *, stream: bool = False) -> HttpCall:
        """The HTTP call asking `target` to answer `request`, streamed when `stream`."""
        ...

    def parse(self, target: Target, request: ChatRequest, body: Any) -> ChatResult:
        """The answer in a 2xx reply body; raises ProviderError when it is not usable."""
        ...

    def read_event(self, target: Target, event: Any, state: StreamState) -> str:
        """The raw answer text in one stream event (reasoning fields left out), noting the rest
        in `state`; raises ProviderError when the event ends the answer as a failure."""
        ...


def output_tokens(target: Target, request: ChatRequest) -> int:
    """Output-token limit to ask for: the request's, floored for reasoning models."""
    return output_limit(request.max_output_tokens, reasoning=target.reasoning)


def output_limit(asked: int, *, reasoning: bool) -> int:
    """The output tokens sent for `asked` (0 = the default): reasoning models get a floor."""
    tokens = asked if asked > 0 else DEFAULT_OUTPUT_TOKENS
    return max(tokens, REASONING_MIN_OUTPUT_TOKENS) if reasoning else tokens


def sampling(request: ChatRequest, *, top_p: str, stop: str) -> dict[str, Any]:
    """The sampling options `request` asks for, under the wire format's names for top-p and stop
    sequences (`temperature` is called so everywhere)."""
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options[top_p] = request.top_p
    if request.stop:
        options[stop] = list(request.stop)
    return options


def conversation(request: ChatRequest) -> tuple[Message, ...]:
    """The messages to send: in JSON mode the JSON instruction ends the first system message
    (one is put first when there is none)."""
    messages = request.messages
    if not request.json_mode:
        return messages
    if messages and messages[0].role == "system":
        first = Message("system", f"{messages[0].content}\n\n{JSON_INSTRUCTION}".strip())
        return (first, *messages[1:])
    return (Message("system", JSON_INSTRUCTION), *messages)


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
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        http_status=200,
        finish_reason="length" if finish_reason in _LENGTH_FINISHES else "stop",
    )


def as_int(value: Any) -> int:
    """`value` as a non-negative int (token counts), 0 when missing or malformed."""
    return value if isinstance(value, int) and value > 0 else 0
