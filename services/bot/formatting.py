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
    pieces, rest = _cut_pieces(text, limit, lookahead=1)
    return [*pieces, rest] if rest.strip() else pieces


def settled_pieces(text: str, limit: int = MESSAGE_LIMIT) -> tuple[list[str], str]:
    """For a text that is still growing: the pieces `split_text` gives whatever text is appended,
    and the rest after them, still open.

    A cut looks at the characters up to the longest separator past the part that fits, so a piece
    is settled once that many characters follow it.
    """
    return _cut_pieces(text, limit, lookahead=max(map(len, _SEPARATORS)))


def _cut_pieces(text: str, limit: int, lookahead: int) -> tuple[list[str], str]:
    """Cuts pieces off `text` while `lookahead` more characters follow the part that fits."""
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}")
    pieces: list[str] = []
    rest = text
    while rest:
        fit = _fit(rest, limit)
        if len(rest) < fit + lookahead:
            break
        end, start = _cut(rest, fit)
        pieces.append(rest[:end].rstrip())
        rest = rest[start:].lstrip("\n")
    return [piece for piece in pieces if piece.strip()], rest


def _fit(text: str, limit: int) -> int:
    """How many characters from the start of `text` fit in `limit` UTF-16 code units."""
    used = 0
    for count, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return count
    return len(text)


def _cut(rest: str, fit: int) -> tuple[int, int]:
    """Where to cut `rest`, whose first `fit` characters fit: the piece's end, the rest's start."""
    for separator in _SEPARATORS:
        if rest.startswith(separator, fit):
            return fit, fit + len(separator)
        position = rest.rfind(separator, 0, fit)
        if position >= fit // 2:
            return position, position + len(separator)
    return fit, fit


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
