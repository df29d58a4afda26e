"""Extracts the answer from model output: drops reasoning, joins parts, checks JSON mode."""

from __future__ import annotations

import json
import re
from typing import Any

_HARMONY_FINAL = re.compile(
    r"<\|channel\|>\s*final\s*(?:<\|constrain\|>\S*\s*)?<\|message\|>(.*?)(?:<\|(?:end|return|call)\|>|$)",
    re.DOTALL,
)
_HARMONY_TAG = re.compile(r"<\|[a-z_]+\|>")
_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_THINK_END = "</think>"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def clean_text(text: str) -> str:
    """`text` as valid UTF-8 without NUL characters (JSON escapes can smuggle in both)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def join_content(content: Any) -> str:
    """Text of a message `content` that is a string, or a list of text parts, or null."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""


def strip_reasoning(text: str) -> str:
    """The answer part of `text`: harmony `final` channel only, `<think>` blocks removed."""
    if "<|channel|>" in text or "<|message|>" in text:
        finals = _HARMONY_FINAL.findall(text)
        text = finals[-1] if finals else ""
        text = _HARMONY_TAG.sub("", text)
    if _THINK_END in text.lower():
        text = text[text.lower().rfind(_THINK_END) + len(_THINK_END) :]
    text = _THINK_BLOCK.sub("", text)
    return text.strip()


def json_answer(text: str) -> str | None:
    """The JSON object in `text` (a ```json fence is unwrapped), or None if it is not one."""
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1).strip()
    try:
        value = json.loads(candidate)
    except ValueError:
        return None
    return candidate if isinstance(value, dict) else None
