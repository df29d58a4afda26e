"""Validation of ProcessPrompt input: every violation names the field and the limit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from aiselector.v1 import selector_pb2
from services.common import errors

PROMPT_MAX_CHARS = 10_000
SYSTEM_PROMPT_MAX_CHARS = 5_000
NAME_MAX_CHARS = 255
MAX_TAGS = 10
RESPONSE_FORMATS = ("", "text", "json_object")


@dataclass(frozen=True)
class PromptInput:
    """A validated prompt request."""

    prompt: str
    system_prompt: str
    json_mode: bool
    tags: frozenset[str]
    model_name: str
    user_id: str


def validate_prompt(
    request: selector_pb2.ProcessPromptRequest, known_tags: Collection[str]
) -> PromptInput:
    """Returns the validated input, or raises InvalidArgument listing every violation."""
    violations: list[tuple[str, str]] = []
    for field in ("prompt", "system_prompt"):
        if "\x00" in getattr(request, field):
            violations.append((field, "must not contain NUL characters"))
    if not request.prompt.strip():
        violations.append(("prompt", "must not be empty"))
    elif len(request.prompt) > PROMPT_MAX_CHARS:
        violations.append(
            ("prompt", f"must be at most {PROMPT_MAX_CHARS} characters, got {len(request.prompt)}")
        )
    if len(request.system_prompt) > SYSTEM_PROMPT_MAX_CHARS:
        violations.append(
            (
                "system_prompt",
                f"must be at most {SYSTEM_PROMPT_MAX_CHARS} characters, "
                f"got {len(request.system_prompt)}",
            )
        )
    format_type = request.response_format.type
    if format_type not in RESPONSE_FORMATS:
        violations.append(("response_format.type", "must be 'json_object' or 'text' (or empty)"))
    if len(request.tags) > MAX_TAGS:
        violations.append(("tags", f"at most {MAX_TAGS} tags"))
    unknown = sorted(set(request.tags) - set(known_tags))
    if unknown:
        violations.append(("tags", f"unknown tag(s) {unknown}; known: {sorted(known_tags)}"))
    for field in ("model_name", "user_id"):
        if len(getattr(request, field)) > NAME_MAX_CHARS:
            violations.append((field, f"must be at most {NAME_MAX_CHARS} characters"))
    if violations:
        raise errors.InvalidArgument(violations)
    return PromptInput(
        prompt=request.prompt,
        system_prompt=request.system_prompt,
        json_mode=format_type == "json_object",
        tags=frozenset(request.tags),
        model_name=request.model_name,
        user_id=request.user_id,
    )
