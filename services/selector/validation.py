"""Validation of client input: every violation names the field and the limit, and quotes of the
client's own values are cut short (`errors.echo`), so a bad request can only fail itself."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiselector.v1 import selector_pb2
from services.common import errors
from services.selector.providers.messages import Message, prompt_messages

PROMPT_MAX_CHARS = 10_000
SYSTEM_PROMPT_MAX_CHARS = 5_000
NAME_MAX_CHARS = 255
TAG_MAX_CHARS = 64
MAX_TAGS = 10
RESPONSE_FORMATS = ("", "text", "json_object")
CLIENT_ID_KEY = "x-client-id"
# Unicode categories that show nothing: controls, format characters (zero-width space, BOM,
# direction marks), spaces and separators. A prompt made only of them is empty.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

Violations = list[tuple[str, str]]


@dataclass(frozen=True)
class PromptInput:
    """A validated request to answer: a conversation and what its answer must be."""

    messages: tuple[Message, ...]
    json_mode: bool = False
    tags: frozenset[str] = frozenset()
    #: Catalog names to try first, in this order.
    model_names: tuple[str, ...] = ()
    #: Only `model_names` may answer.
    only_named: bool = False
    user_id: str = ""
    #: The client's output-token limit (the model's own applies when lower or unset).
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    #: The request field holding model names, and where the names are listed, for a 404.
    names_field: str = "model_name"
    names_listed_at: str = "GET /api/v1/models/stats"

    @property
    def prompt_text(self) -> str:
        """The prompt as the history and a reply echo it: the last user message."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: empty, or only invisible characters."""
    return all(unicodedata.category(ch) in _INVISIBLE for ch in text)


def _text(field: str, value: str, max_chars: int, subject: str = "") -> Violations:
    """Violations of one string: too long, or NUL characters (PostgreSQL refuses them).

    `subject` names an item of a list field (`tag 2`), so the violation still names the field.
    """
    prefix = f"{subject} " if subject else ""
    problems = []
    if len(value) > max_chars:
        problems.append(
            (field, f"{prefix}must be at most {max_chars} characters, got {len(value)}")
        )
    if "\x00" in value:
        problems.append((field, f"{prefix}must not contain NUL characters"))
    return problems


def _tags(tags: Sequence[str], known_tags: Collection[str]) -> Violations:
    """Violations of `tags`: too many, or one too long, with NUL, or not a known tag."""
    if len(tags) > MAX_TAGS:
        return [("tags", f"must be at most {MAX_TAGS} tags, got {len(tags)}")]
    problems = []
    known = ", ".join(sorted(known_tags))
    for index, tag in enumerate(tags):
        invalid = _text("tags", tag, TAG_MAX_CHARS, f"tag {index}")
        if invalid:
            problems += invalid
        elif tag not in known_tags:
            problems.append(("tags", f"unknown tag {errors.echo(tag)}; known: {known}"))
    return problems


def validate_prompt(
    request: selector_pb2.ProcessPromptRequest, known_tags: Collection[str], caller: str
) -> PromptInput:
    """Returns the validated input, or raises InvalidArgument listing every violation.

    `caller` is the `x-client-id` metadata value, checked like the fields (it is stored in the
    history too). Duplicate tags count once.
    """
    violations: Violations = []
    if is_blank(request.prompt):
        violations.append(("prompt", "must not be empty"))
    violations += _text("prompt", request.prompt, PROMPT_MAX_CHARS)
    violations += _text("system_prompt", request.system_prompt, SYSTEM_PROMPT_MAX_CHARS)
    format_type = request.response_format.type
    if format_type not in RESPONSE_FORMATS:
        violations.append(("response_format.type", "must be 'json_object' or 'text' (or empty)"))
    violations += _tags(request.tags, known_tags)
    violations += _text("model_name", request.model_name, NAME_MAX_CHARS)
    violations += _text("user_id", request.user_id, NAME_MAX_CHARS)
    violations += _text(CLIENT_ID_KEY, caller, NAME_MAX_CHARS)
    if violations:
        raise errors.InvalidArgument(violations)
    return PromptInput(
        messages=prompt_messages(request.prompt, request.system_prompt),
        json_mode=format_type == "json_object",
        tags=frozenset(request.tags),
        model_names=(request.model_name,) if request.model_name else (),
        user_id=request.user_id,
    )


def validate_caller(caller: str) -> None:
    """Raises InvalidArgument when the `x-client-id` value cannot be stored with the history."""
    violations = _text(CLIENT_ID_KEY, caller, NAME_MAX_CHARS)
    if violations:
        raise errors.InvalidArgument(violations)


def validate_model_names(names: Sequence[str], catalog_size: int) -> list[str]:
    """TestProviders' `model_names`, each bounded and without NUL, duplicates dropped (first kept).

    More distinct names than the catalog has models cannot all exist: refused before any probe.
    """
    unique = list(dict.fromkeys(names))
    if len(unique) > catalog_size:
        raise errors.InvalidArgument(
            [
                (
                    "model_names",
                    f"must name at most {catalog_size} models (the catalog's size), "
                    f"got {len(unique)}",
                )
            ]
        )
    violations: Violations = []
    for index, name in enumerate(unique):
        violations += _text("model_names", name, NAME_MAX_CHARS, f"name {index}")
    if violations:
        raise errors.InvalidArgument(violations)
    return unique
