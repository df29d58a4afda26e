"""Reads the events of one streamed reply into answer text, and the result or failure they say."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiselector.v1 import common_pb2
from services.selector.providers.answer import ReasoningFilter, clean_text
from services.selector.providers.classify import classify_error_body
from services.selector.providers.errors import ProviderError
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.sse import Event
from services.selector.providers.target import Target
from services.selector.providers.wire import StreamState, WireFormat, bad_answer, finish

#: Receives each piece of a streamed answer.
TextSink = Callable[[str], Awaitable[None]]
_DONE = "[DONE]"
# OpenAI-compatible streams that fail say so with this finish reason (OpenRouter, with an error).
_ERROR_FINISH = "error"


@dataclass
class StreamReader:
    """One streamed reply being read: what its events said and the answer text they made certain.

    `filter` is created at the first token (answer or reasoning): until then the first-token
    timeout runs, after it the idle timeout.
    """

    target: Target
    wire: WireFormat
    request: ChatRequest
    state: StreamState = field(default_factory=StreamState)
    filter: ReasoningFilter | None = None
    pieces: int = 0
    text: list[str] = field(default_factory=list)
    ended: bool = False

    def take(self, event: Event, headers: Mapping[str, str]) -> str | ProviderError:
        """The answer text `event` makes certain (maybe ""), or the failure it reports."""
        if event.comment or self.ended:
            return ""
        if event.data.strip() == _DONE:
            self.ended = True
            return ""
        # An error event is read by the same rules as an error reply (OpenRouter, Gemini); an
        # event without the word carries none (`error` or `errors`), and is parsed only once.
        if "error" in event.data:
            error = classify_error_body(self.target, 200, headers, event.data, datetime.now(UTC))
            if error is not None:
                return error
        try:
            body = json.loads(event.data)
        except ValueError:
            return bad_answer(self.target, "stream event is not JSON", event.data[:80])
        try:
            raw = self.wire.read_event(self.target, body, self.state)
        except ProviderError as failure:
            return failure
        if self.state.finish_reason == _ERROR_FINISH:
            reported = json.dumps({"error": {"message": "the stream ended with an error"}})
            failure = classify_error_body(self.target, 200, headers, reported, datetime.now(UTC))
            assert failure is not None
            return failure
        if self.filter is None:
            if not (raw.strip() or self.state.had_reasoning):
                return ""
            # Reasoning in the content itself, untagged, is held until it is known to be none.
            untagged = self.wire.untagged_reasoning and not self.state.had_reasoning
            self.filter = ReasoningFilter(hold_untagged=self.target.reasoning and untagged)
        return self._hand_on(self.filter.feed(raw))

    def _hand_on(self, text: str) -> str:
        text = clean_text(text)
        if text:
            self.pieces += 1
            self.text.append(text)
        return text

    async def finish(self, on_text: TextSink) -> ChatResult | ProviderError:
        """The result once the connection has closed or `[DONE]` came."""
        if not (self.ended or self.state.finish_reason):
            return dropped(self.target, self.pieces, "it ended without a finish")
        if self.filter is not None:
            tail = self._hand_on(self.filter.flush())
            if tail:
                await on_text(tail)
        try:
            return finish(
                self.target,
                self.request,
                "".join(self.text),
                had_reasoning=self.state.had_reasoning
                or (self.filter is not None and self.filter.saw_content),
                finish_reason=self.state.finish_reason,
                prompt_tokens=self.state.prompt_tokens,
                completion_tokens=self.state.completion_tokens,
            )
        except ProviderError as failure:
            return failure


def dropped(target: Target, pieces: int, why: str) -> ProviderError:
    """A stream that broke off: the provider's failure (TRANSIENT), whatever came before."""
    return ProviderError(
        common_pb2.OUTCOME_TRANSIENT,
        f"{target.provider}: the stream broke off after {pieces} piece(s) of answer ({why})",
        http_status=200,
    )
