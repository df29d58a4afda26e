"""Adapter for OpenAI-compatible chat completions (Groq, Cerebras, SambaNova, HuggingFace router,
Cloudflare's OpenAI endpoint, OpenRouter, GitHub Models, Fireworks, Ollama and any other).

Reasoning models are asked for `reasoning_effort: "low"` (OpenAI's own field, accepted by the
compatible providers that serve reasoning models) unless their catalog entry names another value
or "" for none (Groq's Qwen takes only `none`/`default`), and get an output-token floor. Reasoning
that comes back in `reasoning` / `reasoning_content`, harmony channel tags or `<think>` blocks is
never the answer.
"""

from __future__ import annotations

from typing import Any

from services.selector.providers.answer import join_content, strip_reasoning
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


class OpenAIFormat:
    """`POST {base}/chat/completions` with a bearer key."""

    def build(self, target: Target, request: ChatRequest) -> HttpCall:
        messages: list[dict[str, str]] = []
        system = system_text(request)
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": request.prompt})
        body: dict[str, Any] = {
            "model": target.model,
            "messages": messages,
            "max_tokens": output_tokens(target, request),
            "stream": False,
        }
        if request.json_mode and target.json_response_format:
            body["response_format"] = {"type": "json_object"}
        if target.effort:
            body["reasoning_effort"] = target.effort
        headers = {"Content-Type": "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        return HttpCall(url=f"{target.base_url}/chat/completions", body=body, headers=headers)

    def parse(self, target: Target, request: ChatRequest, body: Any) -> ChatResult:
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise bad_answer(target, "reply has no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        finish_reason = str(choice.get("finish_reason") or "")
        raw = join_content(message.get("content"))
        text = strip_reasoning(raw)
        if not text and finish_reason == "content_filter":
            raise content_filtered(target, "finish reason content_filter")
        had_reasoning = bool(
            message.get("reasoning") or message.get("reasoning_content") or raw.strip()
        )
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return finish(
            target,
            request,
            text,
            had_reasoning=had_reasoning,
            finish_reason=finish_reason,
            prompt_tokens=as_int(usage.get("prompt_tokens")),
            completion_tokens=as_int(usage.get("completion_tokens")),
        )
