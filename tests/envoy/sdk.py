"""The official `openai` SDK on the real stack behind the real Envoy: a client factory fixture and
a stream reader that keeps what arrived before a failure."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

from tests.envoy.harness import RunningEnvoy
from tests.stacks import Stack


@dataclass
class Streamed:
    """What a client read from a stream: the chunks, and the error that ended it, if any."""

    chunks: list[Any] = field(default_factory=list)
    error: openai.APIError | None = None

    @property
    def text(self) -> str:
        return "".join(c.choices[0].delta.content or "" for c in self.chunks if c.choices)

    @property
    def models(self) -> set[str]:
        return {c.model for c in self.chunks}


async def read(stream: AsyncIterable[Any]) -> Streamed:
    """Reads `stream` to its end or its error."""
    seen = Streamed()
    try:
        async for chunk in stream:
            seen.chunks.append(chunk)
    except openai.APIError as error:
        seen.error = error
    return seen


@pytest.fixture
async def sdk(front) -> AsyncIterator[Any]:
    """`await sdk(scripts, **stack)` → (stack, envoy, an AsyncOpenAI on /v1 without retries)."""
    clients: list[openai.AsyncOpenAI] = []

    async def open_sdk(
        scripts: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[Stack, RunningEnvoy, openai.AsyncOpenAI]:
        stack, envoy, _ = await front(scripts, **kwargs)
        client = openai.AsyncOpenAI(
            base_url=f"{envoy.url}/v1", api_key="unused", max_retries=0, timeout=15
        )
        clients.append(client)
        return stack, envoy, client

    yield open_sdk
    for client in clients:
        await client.close()
