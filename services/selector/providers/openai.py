"""Adapter for OpenAI-compatible chat completions (Groq, Cerebras, SambaNova, HuggingFace router,
Cloudflare's OpenAI endpoint, OpenRouter, GitHub Models, Fireworks, Ollama and any other).

The conversation is sent as it is. Reasoning models are asked for `reasoning_effort: "low"`
(OpenAI's own field, accepted by the compatible providers that serve reasoning models) unless
their catalog entry names another value or "" for none (Groq's Qwen takes only `none`/`default`),
and get an output-token floor. Reasoning that comes back in `reasoning` / `reasoning_content`,
harmony channel tags or `<think>` blocks is never the answer. Streams ask for usage in a last
chunk (`stream_options.include_usage`); Groq and OpenRouter put it in the finish chunk anyway, Groq
also under `x_groq.usage`.
"""

from __future__ import annotations

from typing import Any

from services.selector.providers.answer import join_content, strip_reasoning
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

_CONTENT_FILTER = "content_filter"


class OpenAIFormat:
    """`POST {base}/chat/completions` with a bearer key."""

    # Some hosts' chat templates open the `<think>` block in the prompt: only `</think>` comes back.
    untagged_reasoning = True

    def build(self, target: Target, request: ChatRequest, *, stream: bool = False) -> HttpCall:
        body: dict[str, Any] = {
            "model": target.model,
            "messages": [{"role": m.role, "content": m.content} for m in conversation(request)],
            "max_tokens": output_tokens(target, request),
            "stream": stream,
            **sampling(request, top_p="top_p", stop="stop"),
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
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
        if not text and finish_reason == _CONTENT_FILTER:
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

    def read_event(self, target: Target, event: Any, state: StreamState) -> str:
        if not isinstance(event, dict):
            raise bad_answer(target, "stream event is not a JSON object")
        groq = event.get("x_groq") if isinstance(event.get("x_groq"), dict) else {}
        usage = event.get("usage") or groq.get("usage")
        if isinstance(usage, dict):
            state.prompt_tokens = as_int(usage.get("prompt_tokens"))
            state.completion_tokens = as_int(usage.get("completion_tokens"))
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""  # the usage chunk, or a chunk without news
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        if delta.get("reasoning") or delta.get("reasoning_content"):
            state.had_reasoning = True
        if choice.get("finish_reason"):
            state.finish_reason = str(choice["finish_reason"])
        if state.finish_reason == _CONTENT_FILTER:
            # Cut by the provider's filter: what came before it is not an answer.
            raise content_filtered(target, "finish reason content_filter")
        return join_content(delta.get("content"))
