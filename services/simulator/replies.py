"""Answers in the OpenAI-compatible and Gemini wire shapes; failures are worded by the profile.

Answer bodies (and stream chunks) carry `"simulated": true` next to the provider's fields: OpenAI
and Google clients ignore unknown fields. Error bodies do not (see `profiles.py`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from services.simulator.call import GEMINI, Call, Reply
from services.simulator.engine import Decision
from services.simulator.profiles import profile_named
from services.simulator.recorded import template
from services.simulator.script import SIMULATED_PREFIX, STREAM_FAULTS

# Behaviours answered with HTTP 200 and an answer (stream faults are answers cut by the stream).
ANSWERS = frozenset(
    {"ok", "empty", "reasoning_only", "harmony", "think", "invalid_json", "safety"} | STREAM_FAULTS
)
# OpenAI finish reasons in Gemini's words.
GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


@dataclass(frozen=True)
class Answer:
    """What an answer says and how it ends (`finish` in OpenAI's words)."""

    text: str
    reasoning: str = ""
    finish: str = "stop"


def answer_for(call: Call, decision: Decision) -> Answer:
    """The answer an answering behaviour gives to `call`."""
    behaviour = decision.behaviour
    script = decision.script
    text = script.answer_text(call.provider, call.model)
    if behaviour == "empty":
        return Answer("")
    if behaviour == "reasoning_only":
        return Answer("", script.reasoning, "length")
    if behaviour == "safety":
        return Answer("", finish="content_filter")
    if behaviour == "harmony":
        return Answer(
            f"<|channel|>analysis<|message|>{script.reasoning}<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>{text}<|return|>"
        )
    if behaviour == "think":
        return Answer(f"<think>{script.reasoning}</think>\n{text}")
    if behaviour == "invalid_json":
        return Answer(
            f'{SIMULATED_PREFIX} Sure! Here is the JSON you asked for: {{"answer": "unfinished'
        )
    if call.json_asked:
        payload = {"simulated": True, "provider": call.provider, "model": call.model}
        text = json.dumps({**payload, "answer": text})
    return Answer(text, script.reasoning if call.reasoning_asked else "")


def usage_counts(call: Call, answer: Answer) -> tuple[int, int]:
    """(prompt, completion) tokens, estimated at about 4 bytes a token."""
    return call.prompt_tokens, max(1, (len(answer.text) + len(answer.reasoning)) // 4)


def success_headers(decision: Decision) -> dict[str, str]:
    """Headers of a 200: the script's own and the profile's rate-limit headers."""
    return {**decision.headers, **profile_named(decision.profile).limit_headers(decision)}


def build_reply(call: Call, decision: Decision) -> Reply:
    """The whole (non-streamed) reply for `decision` (not for `silence`/`reset`)."""
    if decision.behaviour not in ANSWERS:
        return profile_named(decision.profile).reply(call, decision)
    answer = answer_for(call, decision)
    if call.wire == GEMINI:
        body = _gemini_body(call, answer, usage=decision.script.usage)
    else:
        body = _openai_body(call, answer, usage=decision.script.usage)
    return Reply(200, body, str(decision.behaviour), success_headers(decision))


def _gemini_body(call: Call, answer: Answer, *, usage: bool) -> dict[str, Any]:
    if answer.finish == "content_filter":
        # A candidate blocked for safety has no content at all (gemini/safety_block_candidate).
        return {**template("gemini/safety_block_candidate")[1], "simulated": True}
    parts: list[dict[str, Any]] = []
    if answer.reasoning:
        parts.append({"text": answer.reasoning, "thought": True})
    parts.append({"text": answer.text})
    body: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": GEMINI_FINISH[answer.finish],
                "index": 0,
            }
        ],
        "modelVersion": call.model,
        "simulated": True,
    }
    if usage:
        body["usageMetadata"] = gemini_usage(*usage_counts(call, answer))
    return body


def gemini_usage(prompt: int, completion: int) -> dict[str, int]:
    """Gemini's `usageMetadata` for these token counts."""
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
    }


def openai_usage(prompt: int, completion: int) -> dict[str, int]:
    """OpenAI's `usage` for these token counts."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _openai_body(call: Call, answer: Answer, *, usage: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.reasoning:
        message["reasoning"] = answer.reasoning
    body: dict[str, Any] = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [{"index": 0, "message": message, "finish_reason": answer.finish}],
        "simulated": True,
    }
    if usage:
        body["usage"] = openai_usage(*usage_counts(call, answer))
    return body


def completion_id() -> str:
    """A fresh `chatcmpl-…` id."""
    return f"chatcmpl-sim-{time.monotonic_ns()}"
