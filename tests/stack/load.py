"""Load for the real-stack tests: workers asking through Envoy without pause."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from tests.fakes import eventually


@dataclass
class Sent:
    """One request of the load: when it left and came back, and how."""

    prompt: str
    sent: float
    done: float = 0.0
    status: int = 0
    body: dict = field(default_factory=dict)
    text: str = ""


class Load:
    """Workers asking `url` without pause, each prompt with its own text (`<prefix> <worker>-<n>`);
    every request is kept with its timing."""

    def __init__(self, client: httpx.AsyncClient, url: str, prefix: str = "load") -> None:
        self.client = client
        self.url = url
        self.prefix = prefix
        self.requests: list[Sent] = []
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []

    def start(self, workers: int) -> None:
        self._workers = [asyncio.create_task(self._work(i)) for i in range(workers)]

    async def _work(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            request = Sent(f"{self.prefix} {worker}-{n}", time.monotonic())
            self.requests.append(request)
            reply = await self.client.post(
                self.url, json={"prompt": request.prompt, "user_id": "load"}
            )
            request.done, request.status = time.monotonic(), reply.status_code
            if reply.status_code == 200:
                request.body = reply.json()
            else:
                request.text = reply.text[:300]

    def answered(self) -> list[Sent]:
        return [r for r in self.requests if r.status == 200]

    def failures(self) -> list[str]:
        """Status and text of every request that came back without an answer."""
        return [f"{r.status} {r.text[:200]}" for r in self.requests if r.status not in (0, 200)]

    async def until_answered(self, count: int) -> None:
        await eventually(lambda: len(self.answered()) >= count, 120, f"{count} answered prompts")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._workers)
