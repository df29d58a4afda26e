"""Adapter for Google Gemini's native `generateContent` and `streamGenerateContent?alt=sse` (key
in `x-goog-api-key`, never the URL).

System messages as `systemInstruction`; user and assistant turns as `contents` with roles `user`
and `model`, consecutive turns of one role merged into one content (Gemini expects the roles to
alternate); stop sequences, temperature and top-p in `generationConfig`; JSON mode as
`responseMimeType`; the answer from the non-thought `candidates[0].content.parts[].text`.
Reasoning models get an output-token floor and a small `thinkingBudget` (valid for every 2.5
model) so thinking cannot eat the answer. A stream has no end marker: it ends when the connection
closes after a `finishReason`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.selector.providers.answer import strip_reasoning
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.target import Target
from services.selector.providers.wire import (
    HttpCall,
    StreamState,
    as_int,
    bad_answer,
    content_filtered,
    conversation,
    finish,
    output_tokens,
    sampling,
)

THINKING_BUDGET_TOKENS = 512
_BLOCKED = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
)
_ROLES = {"user": "user", "assistant": "model"}


class GeminiFormat:
    """`POST {base}/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`)."""

    # Thoughts come as parts marked `thought`, never inside the answer text.
    untagged_reasoning = False

    def build(self, target: Target, request: ChatRequest, *, stream: bool = False) -> HttpCall:
        config: dict[str, Any] = {
            "maxOutputTokens": output_tokens(target, request),
            **sampling(request, top_p="topP", stop="stopSequences"),
        }
        if request.json_mode and target.json_response_format:
            config["responseMimeType"] = "application/json"
        if target.reasoning:
            config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGET_TOKENS}
        messages = conversation(request)
        contents: list[dict[str, Any]] = []
        for message in messages:
            role = _ROLES.get(message.role)
            if role is None:
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"].append({"text": message.content})
            else:
                contents.append({"role": role, "parts": [{"text": message.content}]})
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        headers = {"Content-Type": "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        model = quote(target.model.removeprefix("models/"), safe="-._")
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return HttpCall(
            url=f"{target.base_url}/models/{model}:{action}", body=body, headers=headers
        )

    def parse(self, target: Target, request: ChatRequest, body: Any) -> ChatResult:
        state = StreamState()
        answer = self._read(target, body, state, whole=True)
        text = strip_reasoning(answer)
        if not text and state.finish_reason in _BLOCKED:
            raise content_filtered(target, f"finish reason {state.finish_reason}")
        return finish(
            target,
            request,
            text,
            had_reasoning=state.had_reasoning or bool(answer.strip()),
            finish_reason=state.finish_reason,
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
        )

    def read_event(self, target: Target, event: Any, state: StreamState) -> str:
        answer = self._read(target, event, state, whole=False)
        if state.finish_reason in _BLOCKED:
            # A stream may be blocked after some text: that text is not an answer.
            raise content_filtered(target, f"finish reason {state.finish_reason}")
        return answer

    def _read(self, target: Target, body: Any, state: StreamState, *, whole: bool) -> str:
        """The answer text of a reply (`whole`) or of one stream event; the rest into `state`."""
        if not isinstance(body, dict):
            raise bad_answer(target, "reply is not a JSON object")
        feedback = body.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            raise content_filtered(target, f"prompt blocked: {feedback['blockReason']}")
        usage = body.get("usageMetadata")
        if isinstance(usage, dict):
            state.prompt_tokens = as_int(usage.get("promptTokenCount"))
            state.completion_tokens = as_int(usage.get("candidatesTokenCount")) + as_int(
                usage.get("thoughtsTokenCount")
            )
        candidates = body.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            if whole:
                raise bad_answer(target, "reply has no candidates")
            return ""  # an event with usage only
        candidate = candidates[0]
        if candidate.get("finishReason"):
            state.finish_reason = str(candidate["finishReason"])
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        if any(p.get("thought") for p in parts):
            state.had_reasoning = True
        return "".join(
            p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
        )
