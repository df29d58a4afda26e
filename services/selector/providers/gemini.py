"""Adapter for Google Gemini's native `generateContent` (key in `x-goog-api-key`, never the URL).

System prompt as `systemInstruction`, JSON mode as `responseMimeType`, answer from the non-thought
`candidates[0].content.parts[].text`. Reasoning models get an output-token floor and a small
`thinkingBudget` (valid for every 2.5 model) so thinking cannot eat the answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.selector.providers.answer import strip_reasoning
from services.selector.providers.messages import ChatRequest, ChatResult
from services.selector.providers.target import Target
from services.selector.providers.wire import (
    HttpCall,
    as_int,
    bad_answer,
    content_filtered,
    finish,
    output_tokens,
    system_text,
)

THINKING_BUDGET_TOKENS = 512
_BLOCKED = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}
)


class GeminiFormat:
    """`POST {base}/models/{model}:generateContent`."""

    def build(self, target: Target, request: ChatRequest) -> HttpCall:
        config: dict[str, Any] = {"maxOutputTokens": output_tokens(target, request)}
        if request.json_mode and target.json_response_format:
            config["responseMimeType"] = "application/json"
        if target.reasoning:
            config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGET_TOKENS}
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
            "generationConfig": config,
        }
        system = system_text(request)
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        headers = {"Content-Type": "application/json"}
        if target.api_key:
            headers["x-goog-api-key"] = target.api_key
        model = quote(target.model.removeprefix("models/"), safe="-._")
        return HttpCall(
            url=f"{target.base_url}/models/{model}:generateContent", body=body, headers=headers
        )

    def parse(self, target: Target, request: ChatRequest, body: Any) -> ChatResult:
        if not isinstance(body, dict):
            raise bad_answer(target, "reply is not a JSON object")
        feedback = body.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            raise content_filtered(target, f"prompt blocked: {feedback['blockReason']}")
        candidates = body.get("candidates")
        if (
            not isinstance(candidates, list)
            or not candidates
            or not isinstance(candidates[0], dict)
        ):
            raise bad_answer(target, "reply has no candidates")
        candidate = candidates[0]
        finish_reason = str(candidate.get("finishReason") or "")
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        answer = "".join(
            p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
        )
        text = strip_reasoning(answer)
        if not text and finish_reason in _BLOCKED:
            raise content_filtered(target, f"finish reason {finish_reason}")
        usage = body.get("usageMetadata") if isinstance(body.get("usageMetadata"), dict) else {}
        return finish(
            target,
            request,
            text,
            had_reasoning=any(p.get("thought") for p in parts) or bool(answer.strip()),
            finish_reason=finish_reason,
            prompt_tokens=as_int(usage.get("promptTokenCount")),
            completion_tokens=as_int(usage.get("candidatesTokenCount"))
            + as_int(usage.get("thoughtsTokenCount")),
        )
