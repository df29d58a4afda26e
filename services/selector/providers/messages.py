"""What one model call takes and gives back, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatRequest:
    """One prompt to answer."""

    prompt: str
    system_prompt: str = ""
    json_mode: bool = False
    max_output_tokens: int = 1024


@dataclass(frozen=True)
class ChatResult:
    """A usable answer: the answer text only (never reasoning) and token usage when reported."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    http_status: int = 200
