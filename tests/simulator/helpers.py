"""Helpers for the simulator tests: requests in both wire formats, recorded replies, SSE reading."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from services.simulator import RunningSimulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"
PREFIX = "[simulated] "


def recorded(name: str) -> dict[str, Any]:
    """The fixture `provider/case`."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def unmark(body: Any) -> Any:
    """`body` without the `[simulated]` prefixes of its messages and its `simulated` flag."""
    if isinstance(body, dict):
        return {
            key: value.removeprefix(PREFIX) if isinstance(value, str) else unmark(value)
            for key, value in body.items()
            if key != "simulated"
        }
    if isinstance(body, list):
        return [unmark(item) for item in body]
    return body


def keys(value: Any) -> Any:
    """The shape of a JSON value: its dict keys (but `simulated`), list items' shape (the first
    item's), and scalar type names."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items() if key != "simulated"}
    if isinstance(value, list):
        return [keys(item) for item in value[:1]]
    return type(value).__name__


def chat_url(sim: RunningSimulator, provider: str, model: str = "", *, stream: bool = False) -> str:
    """The chat URL of `provider` (Gemini's per model)."""
    if provider == "gemini":
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{sim.base_url('gemini')}/models/{model}:{action}"
    return f"{sim.base_url(provider)}/chat/completions"


def chat_body(provider: str, model: str, **extra: Any) -> dict[str, Any]:
    """A minimal chat request in `provider`'s wire format."""
    if provider == "gemini":
        return {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], **extra}
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


def key_headers(provider: str, key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    return {"x-goog-api-key": key} if provider == "gemini" else {"Authorization": f"Bearer {key}"}


async def ask(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    provider: str,
    model: str,
    *,
    key: str | None = "k",
    **extra: Any,
) -> tuple[int, dict[str, str], Any]:
    """One non-streamed chat request: status, headers (lower-case names), JSON body."""
    url = chat_url(sim, provider, model)
    body = chat_body(provider, model, **extra)
    async with http.post(url, json=body, headers=key_headers(provider, key)) as response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return response.status, headers, await response.json()


@dataclass
class Stream:
    """What a client reading a stream saw within its deadline."""

    status: int
    headers: dict[str, str]
    text: str = ""
    ended: bool = False  # the server closed the stream cleanly
    broken: bool = False  # the connection failed mid-body
    reads: list[tuple[float, str]] = field(default_factory=list)  # (seconds after headers, text)

    def data(self, separator: str = "\n\n") -> list[str]:
        """The `data:` payloads, in order."""
        events = [event for event in self.text.split(separator) if event]
        return [e.removeprefix("data: ") for e in events if e.startswith("data: ")]

    def chunks(self, separator: str = "\n\n") -> list[dict[str, Any]]:
        """The JSON payloads (every data line but `[DONE]`)."""
        return [json.loads(d) for d in self.data(separator) if d != "[DONE]"]


async def read_stream(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    within: float = 5.0,
) -> Stream:
    """Posts `body` and reads the reply until it ends, breaks, or `within` seconds pass."""
    deadline = time.monotonic() + within
    async with asyncio.timeout(within):
        response = await http.post(url, json=body, headers=headers)
    seen = Stream(response.status, {k.lower(): v for k, v in response.headers.items()})
    started = time.monotonic()
    try:
        async with asyncio.timeout(max(0.0, deadline - started)):
            async for data in response.content.iter_any():
                seen.text += data.decode()
                seen.reads.append((time.monotonic() - started, data.decode()))
        seen.ended = True
    except TimeoutError:
        pass
    except aiohttp.ClientPayloadError:
        seen.broken = True
    finally:
        response.close()
    return seen


def missing(
    ours: Any, theirs: Any, ignore: frozenset[str] = frozenset(), path: str = ""
) -> list[str]:
    """Paths of `theirs` (a recorded JSON value) that `ours` lacks or holds with another type;
    keys in `ignore` (provider extras a client does not read) are skipped."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [path or "."]
        return [
            gap
            for key, value in theirs.items()
            if key not in ignore
            for gap in (
                missing(ours[key], value, ignore, f"{path}.{key}")
                if key in ours
                else [f"{path}.{key}"]
            )
        ]
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [path]
        return missing(ours[0], theirs[0], ignore, f"{path}[0]") if theirs and ours else []
    if theirs is None or isinstance(ours, type(theirs)):
        return []
    return [path]
