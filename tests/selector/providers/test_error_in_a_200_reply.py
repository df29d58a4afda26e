"""A 2xx reply whose body is an error (OpenRouter) is a failed attempt, read over real HTTP."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, ProviderError, Scope, Target
from services.selector.providers.waits import local_day

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "openrouter"


class _Replies:
    """A loopback HTTP server that answers every chat request with one status and JSON body."""

    def __init__(self) -> None:
        self.status, self.body = 200, {}
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def replies() -> AsyncIterator[tuple[_Replies, str]]:
    server = _Replies()
    app = web.Application()
    app.router.add_post("/api/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}/api/v1"
    await runner.cleanup()


def _openrouter(base_url: str) -> Target:
    return Target(
        provider="openrouter",
        model="google/gemma-4-31b-it:free",
        api_format=common_pb2.API_FORMAT_OPENAI,
        base_url=base_url,
        api_key="sk-or-v1-0123456789abcdef",
    )


def _recorded(case: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{case}.json").read_text(encoding="utf-8"))["body"]


async def test_the_daily_cap_in_a_200_reply_cools_the_account_until_utc_midnight(
    replies, client
) -> None:
    server, base_url = replies
    body = copy.deepcopy(_recorded("429_free_daily_50"))
    # The recorded reset lies in the past: put it at the next UTC midnight, as OpenRouter would.
    midnight = local_day(datetime.now(UTC).timestamp())[1]
    body["error"]["metadata"]["headers"]["X-RateLimit-Reset"] = str(int(midnight * 1000))
    server.body = body

    with pytest.raises(ProviderError) as caught:
        await client.complete(_openrouter(base_url), ChatRequest.from_prompt("Hi"), timeout=5)

    error = caught.value
    assert (error.outcome, error.scope) == (common_pb2.OUTCOME_QUOTA_EXHAUSTED, Scope.ACCOUNT)
    assert error.http_status == 200
    assert error.retry_after == pytest.approx(midnight - datetime.now(UTC).timestamp(), abs=5)
    assert "free-model daily cap" in error.message
    assert server.requests == 1


async def test_a_normal_200_answer_is_still_an_answer(replies, client) -> None:
    server, base_url = replies
    server.body = {
        "choices": [
            {"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        "error": None,
    }

    result = await client.complete(_openrouter(base_url), ChatRequest.from_prompt("Hi"), timeout=5)

    assert result.text == "Hello"
