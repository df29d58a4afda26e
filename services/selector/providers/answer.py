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


_THINK_OPEN = "<think>"
_HARMONY_START = "<|"
_HARMONY_FINAL_START = re.compile(
    r"<\|channel\|>\s*final\s*(?:<\|constrain\|>\S*\s*)?<\|message\|>", re.IGNORECASE
)
_HARMONY_END = re.compile(r"<\|(?:end|return|call)\|>")
# Longest harmony tag (`<|constrain|>`), in characters.
_HARMONY_TAG_CHARS = 13
# Longest tail of held text that can still hold the start of a harmony `final` header.
_HARMONY_TAIL = 200


class ReasoningFilter:
    """`strip_reasoning` for a stream: feed raw content as it arrives, get the answer text it makes
    certain, so reasoning never reaches a client.

    Held back is only what may still turn out to be reasoning: a possible tag start, a `<think>`
    block until it closes, harmony output until its `final` channel opens, and trailing whitespace
    (the answer is stripped). `hold_untagged` (a reasoning model that sent no reasoning apart from
    its content) holds the whole answer until a `</think>` without an opening tag ends the
    reasoning before it, or the stream ends; without it, such a late `</think>` cannot be undone.
    Only the first harmony `final` channel is the answer (`strip_reasoning` takes the last).
    """

    def __init__(self, *, hold_untagged: bool = False) -> None:
        self._hold_untagged = hold_untagged
        self._mode = "start"
        self._buffer = ""
        self._space = ""
        #: Whether any non-blank content arrived (reasoning or answer).
        self.saw_content = False

    def feed(self, text: str) -> str:
        """The answer text that the next raw content `text` makes certain."""
        if text.strip():
            self.saw_content = True
        self._buffer += text
        return self._run(final=False)

    def flush(self) -> str:
        """The rest of the answer, once the stream has ended."""
        return self._run(final=True)

    def _run(self, *, final: bool) -> str:
        out: list[str] = []
        while True:
            text, progressed = getattr(self, f"_{self._mode}")(final)
            out.append(text)
            if not progressed:
                return "".join(out)

    def _start(self, final: bool) -> tuple[str, bool]:
        self._buffer = self._buffer.lstrip()
        head = self._buffer[: len(_THINK_OPEN)].lower()
        if not self._buffer:
            return "", False
        if head == _THINK_OPEN:
            self._buffer = self._buffer[len(_THINK_OPEN) :]
            self._mode = "think"
        elif self._buffer.startswith(_HARMONY_START):
            self._mode = "harmony"
        elif not final and (_THINK_OPEN.startswith(head) or _HARMONY_START.startswith(head)):
            return "", False
        else:
            self._mode = "hold" if self._hold_untagged else "answer"
        return "", True

    def _think(self, final: bool) -> tuple[str, bool]:
        end = self._buffer.lower().find(_THINK_END)
        if end < 0:
            # Only a tail that may hold the start of the closing tag is worth keeping.
            self._buffer = "" if final else self._buffer[-len(_THINK_END) :]
            return "", False
        self._buffer = self._buffer[end + len(_THINK_END) :]
        self._hold_untagged = False
        self._mode = "start"
        return "", True

    def _harmony(self, final: bool) -> tuple[str, bool]:
        header = _HARMONY_FINAL_START.search(self._buffer)
        if header is None:
            self._buffer = "" if final else self._buffer[-_HARMONY_TAIL:]
            return "", False
        self._buffer = self._buffer[header.end() :]
        self._mode = "final"
        return "", True

    def _final(self, final: bool) -> tuple[str, bool]:
        end = _HARMONY_END.search(self._buffer)
        if end is not None:
            text, self._buffer, self._mode = self._buffer[: end.start()], "", "done"
            return self._emit(_HARMONY_TAG.sub("", text), final=True), True
        cut = len(self._buffer) if final else _open_tag(self._buffer)
        text, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._emit(_HARMONY_TAG.sub("", text), final=final), False

    def _done(self, final: bool) -> tuple[str, bool]:
        self._buffer = ""
        return "", False

    def _hold(self, final: bool) -> tuple[str, bool]:
        end = self._buffer.lower().rfind(_THINK_END)
        if end >= 0:
            self._buffer = self._buffer[end + len(_THINK_END) :]
            self._hold_untagged = False
            self._mode = "start"
            return "", True
        if final:
            self._mode = "answer"
            return "", True
        return "", False

    def _answer(self, final: bool) -> tuple[str, bool]:
        opened = self._buffer.lower().find(_THINK_OPEN)
        if opened >= 0:
            # A model may think again mid-answer: that block is dropped too.
            text, self._buffer = self._buffer[:opened], self._buffer[opened + len(_THINK_OPEN) :]
            self._mode = "think"
            return self._emit(text, final=False), True
        cut = len(self._buffer) if final else _partial_tag(self._buffer, _THINK_OPEN)
        text, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._emit(text, final=final), False

    def _emit(self, text: str, *, final: bool) -> str:
        text = self._space + text
        kept = text.rstrip()
        self._space = "" if final else text[len(kept) :]
        return kept


def _open_tag(text: str) -> int:
    """Where a harmony tag that has begun but not ended at the end of `text` starts."""
    start = text.rfind("<")
    if start >= 0 and ">" not in text[start:] and len(text) - start <= _HARMONY_TAG_CHARS:
        return start
    return len(text)


def _partial_tag(text: str, tag: str) -> int:
    """Where a suffix of `text` that may be the start of `tag` begins (`len(text)` if none)."""
    lowered = text.lower()
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(lowered[-size:]):
            return len(text) - size
    return len(text)
