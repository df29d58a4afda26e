"""Parses an OpenAI chat-completions request body into a validated request, naming bad fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.common import errors
from services.selector.providers.messages import Message
from services.selector.validation import NAME_MAX_CHARS, PromptInput

AUTO_MODEL = "auto"
#: Total characters of all message contents. The JSON API's 10000 + 5000 fit one typed prompt; a
#: conversation carries its history, and each model's context window is checked on top of this.
CONVERSATION_MAX_CHARS = 100_000
MAX_MESSAGES = 500
MAX_MODELS = 20
MAX_STOP_SEQUENCES = 4
STOP_MAX_CHARS = 255
MAX_OUTPUT_TOKENS = 1_000_000
#: Violations listed in one error at most: the error travels in a header (openai_reply).
MAX_VIOLATIONS = 20

# `developer` is OpenAI's newer name for `system`; providers know only `system`.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_TOOL_ROLES = ("tool", "function")
_TOOL_FIELDS = ("tools", "functions")
_TOOL_CHOICE_FIELDS = ("tool_choice", "function_call")
_NO_TOOL_CHOICES = (None, "none", "auto")


@dataclass(frozen=True)
class CompletionRequest:
    """A validated chat-completions request."""

    messages: tuple[Message, ...]
    #: Catalog names to try first, in order: `model` (unless automatic), then `models`.
    preferred_models: tuple[str, ...]
    #: True when `models` was given: only `preferred_models` may answer.
    only_preferred: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: tuple[str, ...]
    json_mode: bool
    user: str
    stream: bool
    include_usage: bool


def parse_request(body: bytes) -> CompletionRequest:
    """The request in `body`, or InvalidArgument naming each bad field (`messages[2].content`)."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        problem = f"must be a JSON object in UTF-8: {error}"
        raise errors.InvalidArgument([("body", problem)]) from None
    if not isinstance(data, dict):
        raise errors.InvalidArgument([("body", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    messages = _messages(data.get("messages"), problems)
    preferred, only_preferred = _models(data, problems)
    max_tokens = _max_tokens(data, problems)
    temperature = _number(data, "temperature", 0.0, 2.0, problems)
    top_p = _number(data, "top_p", 0.0, 1.0, problems)
    stop = _stop(data.get("stop"), problems)
    json_mode = _json_mode(data.get("response_format"), problems)
    user = _name(data.get("user"), "user", problems)
    stream = _flag(data.get("stream"), "stream", problems)
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        problems.append(("stream_options", "must be an object"))
        options = None
    include_usage = _flag(
        (options or {}).get("include_usage"), "stream_options.include_usage", problems
    )
    _unsupported(data, problems)
    if problems:
        raise errors.InvalidArgument(_capped(problems))
    return CompletionRequest(
        messages=messages,
        preferred_models=preferred,
        only_preferred=only_preferred,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stop,
        json_mode=json_mode,
        user=user,
        stream=stream,
        include_usage=include_usage,
    )


def prompt_input(request: CompletionRequest) -> PromptInput:
    """What the engine answers for `request`."""
    return PromptInput(
        messages=request.messages,
        json_mode=request.json_mode,
        model_names=request.preferred_models,
        only_named=request.only_preferred,
        user_id=request.user,
        max_output_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop,
        names_field="model",
        names_listed_at="GET /v1/models",
    )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _capped(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if len(problems) <= MAX_VIOLATIONS:
        return problems
    more = len(problems) - MAX_VIOLATIONS
    return [*problems[:MAX_VIOLATIONS], ("body", f"and {more} more problems")]


def _messages(value: Any, problems: list[tuple[str, str]]) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        problems.append(("messages", "required: a non-empty array of messages"))
        return ()
    if len(value) > MAX_MESSAGES:
        problems.append(("messages", f"at most {MAX_MESSAGES} messages, got {len(value)}"))
        return ()
    messages = [_message(item, f"messages[{i}]", problems) for i, item in enumerate(value)]
    parsed = tuple(m for m in messages if m is not None)
    if len(parsed) < len(messages):
        return ()
    total = sum(len(m.content) for m in parsed)
    if total > CONVERSATION_MAX_CHARS:
        problems.append(
            (
                "messages",
                f"total content must be at most {CONVERSATION_MAX_CHARS} characters, got {total}",
            )
        )
    if not any(m.role == "user" and m.content.strip() for m in parsed):
        problems.append(("messages", "must contain a user message with text"))
    return parsed


def _message(item: Any, where: str, problems: list[tuple[str, str]]) -> Message | None:
    if not isinstance(item, dict):
        problems.append((where, "must be an object with `role` and `content`"))
        return None
    role = item.get("role")
    if role in _TOOL_ROLES:
        problems.append((f"{where}.role", f"{role!r} messages are not supported (no tool calls)"))
        return None
    if not isinstance(role, str) or role not in _ROLES:
        problems.append((f"{where}.role", f"required: one of {', '.join(_ROLES)}; got {role!r}"))
        return None
    if item.get("tool_calls") or item.get("function_call"):
        problems.append((f"{where}.tool_calls", "tool calls are not supported"))
        return None
    content = _content(item.get("content"), f"{where}.content", problems)
    return None if content is None else Message(_ROLES[role], content)


def _content(value: Any, where: str, problems: list[tuple[str, str]]) -> str | None:
    if isinstance(value, list):
        if not value:
            problems.append((where, "must not be an empty array"))
            return None
        texts = [_text_part(part, f"{where}[{j}]", problems) for j, part in enumerate(value)]
        if any(text is None for text in texts):
            return None
        # Parts are separate pieces of one message: a newline keeps their words apart.
        value = "\n".join(t for t in texts if t is not None)
    elif not isinstance(value, str):
        problems.append((where, "required: a string or an array of text parts"))
        return None
    if "\x00" in value:
        problems.append((where, "must not contain NUL characters"))
        return None
    return value


def _text_part(part: Any, where: str, problems: list[tuple[str, str]]) -> str | None:
    if not isinstance(part, dict):
        problems.append((where, 'must be an object like {"type": "text", "text": ...}'))
        return None
    kind = part.get("type")
    if kind != "text":
        problems.append((f"{where}.type", f"only text parts are supported; got {kind!r}"))
        return None
    text = part.get("text")
    if not isinstance(text, str):
        problems.append((f"{where}.text", "required: a string"))
        return None
    return text


def _models(data: dict[str, Any], problems: list[tuple[str, str]]) -> tuple[tuple[str, ...], bool]:
    names: list[str] = []
    model = data.get("model")
    if model not in (None, "", AUTO_MODEL):
        names.append(_name(model, "model", problems))
    listed = data.get("models")
    if listed is None:
        listed = []
    elif not isinstance(listed, list):
        problems.append(("models", "must be an array of model names"))
        listed = []
    elif len(listed) > MAX_MODELS:
        problems.append(("models", f"at most {MAX_MODELS} names, got {len(listed)}"))
        listed = []
    for index, name in enumerate(listed):
        where = f"models[{index}]"
        if name in ("", AUTO_MODEL) or not isinstance(name, str):
            problems.append((where, "must be a model name from GET /v1/models (not `auto`)"))
        else:
            names.append(_name(name, where, problems))
    return tuple(dict.fromkeys(n for n in names if n)), bool(listed)


def _name(value: Any, where: str, problems: list[tuple[str, str]]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append((where, "must be a string"))
    elif len(value) > NAME_MAX_CHARS:
        problems.append((where, f"must be at most {NAME_MAX_CHARS} characters"))
    elif "\x00" in value:
        problems.append((where, "must not contain NUL characters"))
    else:
        return value
    return ""


def _max_tokens(data: dict[str, Any], problems: list[tuple[str, str]]) -> int | None:
    # `max_completion_tokens` replaced `max_tokens` in OpenAI's API; it wins when both are sent.
    for field in ("max_completion_tokens", "max_tokens"):
        value = data.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((field, "must be an integer"))
        elif not 1 <= value <= MAX_OUTPUT_TOKENS:
            problems.append((field, f"must be 1..{MAX_OUTPUT_TOKENS}, got {value}"))
        else:
            return value
        return None
    return None


def _number(
    data: dict[str, Any], field: str, low: float, high: float, problems: list[tuple[str, str]]
) -> float | None:
    value = data.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append((field, "must be a number"))
    elif not low <= value <= high:
        problems.append((field, f"must be {low:g}..{high:g}, got {value}"))
    else:
        return float(value)
    return None


def _stop(value: Any, problems: list[tuple[str, str]]) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_STOP_SEQUENCES:
        problems.append(("stop", f"must be a string or an array of at most {MAX_STOP_SEQUENCES}"))
        return ()
    for index, item in enumerate(items):
        where = "stop" if isinstance(value, str) else f"stop[{index}]"
        if not isinstance(item, str) or not 0 < len(item) <= STOP_MAX_CHARS or "\x00" in item:
            problems.append((where, f"must be 1..{STOP_MAX_CHARS} characters (no NUL)"))
            return ()
    return tuple(items)


def _json_mode(value: Any, problems: list[tuple[str, str]]) -> bool:
    if value is None:
        return False
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_schema":
        # Honouring a schema needs per-provider support we do not have; a 400 is honest, while
        # silently answering with unchecked JSON is not.
        problems.append(("response_format.type", "json_schema is not supported; use json_object"))
    elif kind not in ("text", "json_object"):
        problems.append(("response_format", 'must be {"type": "text"} or {"type": "json_object"}'))
    return kind == "json_object"


def _flag(value: Any, field: str, problems: list[tuple[str, str]]) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    problems.append((field, "must be true or false"))
    return False


def _unsupported(data: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    n = data.get("n")
    if n is not None and n != 1:
        problems.append(("n", f"only n = 1 is supported, got {n!r}"))
    for field in _TOOL_FIELDS:
        if data.get(field) not in (None, []):
            problems.append((field, "tools and functions are not supported"))
    for field in _TOOL_CHOICE_FIELDS:
        if data.get(field) not in _NO_TOOL_CHOICES:
            problems.append((field, "tools and functions are not supported"))
