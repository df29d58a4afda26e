"""What one model call takes and gives back, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: role `system`, `user` or `assistant`, and its text."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A conversation to answer and the options the answer must follow."""

    messages: tuple[Message, ...]
    json_mode: bool = False
    max_output_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def from_prompt(cls, prompt: str, system_prompt: str = "", **options: object) -> ChatRequest:
        """The conversation of a prompt and its optional system prompt."""
        return cls(messages=prompt_messages(prompt, system_prompt), **options)  # type: ignore[arg-type]


def prompt_messages(prompt: str, system_prompt: str = "") -> tuple[Message, ...]:
    """A prompt as a conversation: the system prompt (when given), then the prompt."""
    system = (Message("system", system_prompt),) if system_prompt else ()
    return (*system, Message("user", prompt))


@dataclass(frozen=True)
class ChatResult:
    """A usable answer: the answer text only (never reasoning) and token usage when reported.

    `finish_reason` is in OpenAI's words: `stop`, or `length` when the output limit cut it.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    http_status: int = 200
    finish_reason: str = "stop"
