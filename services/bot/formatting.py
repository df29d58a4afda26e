"""Telegram HTML escaping and splitting of long texts under the 4096-character message limit."""

from __future__ import annotations

import html
import re

# Telegram's limit on a message's text.
MESSAGE_LIMIT = 4096
_SEPARATORS = ("\n\n", "\n", " ")
_MIN_LIMIT = 10
_TAG = re.compile(r"<[^>]*>")


def escape(text: str) -> str:
    """`text` made safe to send with parse_mode=HTML (`<`, `>`, `&`)."""
    return html.escape(text, quote=False)


def telegram_length(html_text: str) -> int:
    """Length of a message as Telegram limits it: after entity parsing, in UTF-16 code units.

    Tags do not count and `&lt;` counts as one character. Only our own HTML is measured (every
    value in it is escaped), so removing `<…>` tags is exact.
    """
    return _utf16_length(html.unescape(_TAG.sub("", html_text)))


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cuts plain `text` into pieces of at most `limit` UTF-16 code units.

    Cuts at the last paragraph break that fits, else the last line break, else the last space
    (each only when it leaves at least half a message before it), else anywhere. Whitespace at a
    cut is dropped; indentation at the start of a line is kept. Empty pieces are left out.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}")
    pieces: list[str] = []
    rest = text
    while rest:
        fit, used = 0, 0
        for char in rest:
            used += 2 if ord(char) > 0xFFFF else 1
            if used > limit:
                break
            fit += 1
        if fit == len(rest):
            pieces.append(rest)
            break
        cut, skip = fit, 0
        for separator in _SEPARATORS:
            if rest.startswith(separator, fit):
                cut, skip = fit, len(separator)
                break
            position = rest.rfind(separator, 0, fit)
            if position >= fit // 2:
                cut, skip = position, len(separator)
                break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut + skip :].lstrip("\n")
    return [piece for piece in pieces if piece.strip()]


def compose(body: str, footer_html: str = "", limit: int = MESSAGE_LIMIT) -> list[str]:
    """Messages (HTML) for a plain-text `body` followed by an HTML footer.

    The footer joins the last piece of the body when it fits there, else it is its own message.
    """
    messages = [escape(piece) for piece in split_text(body, limit)]
    if not footer_html:
        return messages
    if messages and telegram_length(f"{messages[-1]}\n\n{footer_html}") <= limit:
        messages[-1] = f"{messages[-1]}\n\n{footer_html}"
    else:
        messages.append(footer_html)
    return messages


def join_lines(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Packs ready HTML lines into as few messages as fit `limit`, never cutting inside a line."""
    messages: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if current and telegram_length(candidate) > limit:
            messages.append(current)
            candidate = line
        current = candidate
    if current:
        messages.append(current)
    return messages
