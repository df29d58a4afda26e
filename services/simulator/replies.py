"""Reply bodies in the OpenAI-compatible and Gemini wire shapes for each scripted behaviour."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from services.simulator.engine import Decision, go_duration
from services.simulator.script import SIMULATED_PREFIX

_STATUS_TEXT = {
    400: ("invalid_request_error", "Invalid request.", "INVALID_ARGUMENT"),
    401: ("invalid_api_key", "Invalid API key.", "UNAUTHENTICATED"),
    402: ("payment_required", "Payment required: the free credit is spent.", "FAILED_PRECONDITION"),
    403: ("permission_denied", "Access to this model is denied.", "PERMISSION_DENIED"),
    404: ("model_not_found", "The model `{model}` does not exist.", "NOT_FOUND"),
    410: ("model_gone", "The model `{model}` has been removed.", "NOT_FOUND"),
    413: ("request_too_large", "Request too large for model `{model}`.", "INVALID_ARGUMENT"),
    422: ("unprocessable_entity", "Unprocessable request.", "INVALID_ARGUMENT"),
    429: ("rate_limit_exceeded", "Rate limit reached for model `{model}`.", "RESOURCE_EXHAUSTED"),
    500: ("internal_error", "Internal server error.", "INTERNAL"),
    502: ("bad_gateway", "Bad gateway.", "UNAVAILABLE"),
    503: ("service_unavailable", "The service is overloaded.", "UNAVAILABLE"),
    504: ("gateway_timeout", "Gateway timeout.", "DEADLINE_EXCEEDED"),
}
_GOOGLE = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class Call:
    """What the simulator read from one request."""

    provider: str
    model: str
    wire: str  # "openai" or "gemini"
    body: dict[str, Any]
    credential: str
    json_asked: bool  # JSON asked for on the wire or in the prompt
    reasoning_asked: bool


@dataclass
class Reply:
    """Status, JSON body, headers and the log outcome name of one reply."""

    status: int
    body: dict[str, Any]
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)


def build_reply(call: Call, decision: Decision) -> Reply:
    """The reply for `decision` in the wire shape of `call` (not for `silence`/`reset`)."""
    behaviour = decision.behaviour
    script = decision.script
    answer = script.answer_text(call.provider, call.model)
    if behaviour == "ok":
        if call.json_asked:
            answer = json.dumps(
                {
                    "simulated": True,
                    "provider": call.provider,
                    "model": call.model,
                    "answer": answer,
                }
            )
        reasoning = script.reasoning if call.reasoning_asked else ""
        return _answer(call, decision, answer, reasoning=reasoning, outcome="ok")
    if behaviour == "empty":
        return _answer(call, decision, "", outcome="empty")
    if behaviour == "reasoning_only":
        return _answer(call, decision, "", reasoning=script.reasoning, cut=True, outcome=behaviour)
    if behaviour == "harmony":
        text = (
            f"<|channel|>analysis<|message|>{script.reasoning}<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
        )
        return _answer(call, decision, text, outcome=behaviour)
    if behaviour == "think":
        return _answer(
            call, decision, f"<think>{script.reasoning}</think>\n{answer}", outcome="think"
        )
    if behaviour == "invalid_json":
        text = f'{SIMULATED_PREFIX} Sure! Here is the JSON you asked for: {{"answer": "unfinished'
        return _answer(call, decision, text, outcome=behaviour)
    if behaviour == "content_filter" and call.wire == "gemini":
        body = {"promptFeedback": {"blockReason": "SAFETY"}, "simulated": True}
        return Reply(200, body, behaviour, dict(decision.headers))
    return _error(call, decision)


def _answer(
    call: Call,
    decision: Decision,
    text: str,
    *,
    reasoning: str = "",
    cut: bool = False,
    outcome: str,
) -> Reply:
    prompt_tokens = max(1, len(json.dumps(call.body)) // 4)
    completion_tokens = max(1, (len(text) + len(reasoning)) // 4)
    usage = decision.script.usage
    if call.wire == "gemini":
        parts: list[dict[str, Any]] = [{"text": reasoning, "thought": True}] if reasoning else []
        parts.append({"text": text})
        body: dict[str, Any] = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "MAX_TOKENS" if cut else "STOP",
                    "index": 0,
                }
            ],
            "modelVersion": call.model,
            "simulated": True,
        }
        if usage:
            body["usageMetadata"] = {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            }
    else:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning"] = reasoning
        body = {
            "id": f"chatcmpl-sim-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "length" if cut else "stop"}
            ],
            "simulated": True,
        }
        if usage:
            body["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
    return Reply(200, body, outcome, dict(decision.headers))


def _error(call: Call, decision: Decision) -> Reply:
    behaviour = decision.behaviour
    headers = dict(decision.headers)
    retry_after = decision.retry_after
    wait_text = f" Please try again in {go_duration(retry_after)}." if retry_after else ""
    code: str
    if behaviour == "rate_limited":
        status, code = 429, "rate_limit_exceeded"
        message = f"Rate limit reached for model `{call.model}` on requests per minute (RPM)."
        message += wait_text
    elif behaviour == "daily_quota":
        status, code = 429, "rate_limit_exceeded"
        message = f"Rate limit reached for model `{call.model}` on requests per day (RPD)."
        message += wait_text
    elif behaviour == "context_length_exceeded":
        status, code = 400, "context_length_exceeded"
        message = (
            "This model's maximum context length is 8192 tokens. "
            "However, your messages resulted in 9100 tokens."
        )
    elif behaviour == "content_filter":
        status, code = 400, "content_filter"
        message = "The prompt was filtered due to the content management policy."
    elif behaviour == "echo_authorization":
        status, code = 401, "invalid_api_key"
        message = f"Invalid API key provided: {call.credential}"
    else:
        status = int(behaviour)
        code, template, _ = _STATUS_TEXT.get(status, ("error", f"HTTP {status}.", "UNKNOWN"))
        message = template.replace("{model}", call.model)
        if status == 429:
            message += wait_text
    message = f"{SIMULATED_PREFIX} {message}"
    if call.wire == "gemini":
        return Reply(
            status, _google_error(status, message, behaviour, retry_after), str(behaviour), headers
        )
    if status == 429 and retry_after is not None:
        headers["retry-after"] = _retry_after_header(
            retry_after, decision.script.retry_after_format
        )
    error = {"message": message, "type": code, "code": code}
    return Reply(status, {"error": error}, str(behaviour), headers)


def _google_error(
    status: int, message: str, behaviour: str | int, retry_after: float | None
) -> dict[str, Any]:
    google_status = _STATUS_TEXT.get(status, ("", "", "UNKNOWN"))[2]
    details: list[dict[str, Any]] = []
    if status == 429:
        per = "Day" if behaviour == "daily_quota" else "Minute"
        details.append(
            {
                "@type": _GOOGLE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel-FreeTier",
                    }
                ],
            }
        )
        if retry_after is not None:
            details.append({"@type": _GOOGLE + "RetryInfo", "retryDelay": f"{retry_after:g}s"})
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    if details:
        error["details"] = details
    return {"error": error}


def _retry_after_header(seconds: float, form: str) -> str:
    if form == "http_date":
        return formatdate(time.time() + seconds, usegmt=True)
    return f"{seconds:g}"
