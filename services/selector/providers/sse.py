"""Splits a Server-Sent Events byte stream into its events (data and comment lines)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One event: its `data` lines joined by newlines; a comment (a keep-alive) when `comment`."""

    data: str
    comment: bool = False


class SseDecoder:
    """Feeds bytes in, takes whole events out; lines end in CRLF, LF or CR, events in a blank line.

    `max_event_bytes` bounds what one unfinished event may hold, so a stream that never sends a
    blank line cannot grow memory without end.
    """

    def __init__(self, max_event_bytes: int) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_event_bytes
        self._line = ""
        self._data: list[str] = []
        self._size = 0
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events `chunk` completes; ValueError when one grows past `max_event_bytes`."""
        text = self._decoder.decode(chunk)
        events: list[Event] = []
        start = 0
        for index, char in enumerate(text):
            if char not in "\r\n":
                continue
            if char == "\n" and self._after_cr and index == start:
                # The LF of a CRLF whose CR ended the previous line.
                self._after_cr = False
                start = index + 1
                continue
            self._line += text[start:index]
            start = index + 1
            self._after_cr = char == "\r"
            event = self._end_line()
            if event is not None:
                events.append(event)
        if start < len(text):
            self._after_cr = False
            self._line += text[start:]
        self._size = len(self._line) + sum(len(d) for d in self._data)
        if self._size > self._max:
            raise ValueError(f"a stream event is longer than {self._max} bytes")
        return events

    def _end_line(self) -> Event | None:
        line, self._line = self._line, ""
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return Event(data)
        if line.startswith(":"):
            return Event(line[1:].strip(), comment=True)
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        # Other fields (event, id, retry) say nothing an answer needs.
        return None
