"""Fixtures: the scripted Selector on a loopback port, a recording bot, and a live polling bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from aiogram import Bot, Dispatcher

from services.bot.app import build_bot, build_dispatcher
from services.bot.limiter import UserRateLimiter
from services.bot.selector_client import SelectorClient
from services.common.server import GrpcServer
from tests.bot.fake_telegram import FakeBotApi, RecordingSession, callback_update, message_update
from tests.fakes import ADMIN_TOKEN, ScriptedSelector, free_port, serve

TOKEN = "123456:TEST-bot-token-for-tests"
ADMIN_ID = 777
PROMPT_TIMEOUT_SECONDS = 75.0
PROMPTS_PER_MINUTE = 3
# The least time between edits of a streamed answer's message in tests (1 s in production).
EDIT_INTERVAL = 0.2


@pytest.fixture(scope="session")
async def selector_server() -> AsyncIterator[tuple[ScriptedSelector, GrpcServer]]:
    servicer = ScriptedSelector()
    server = await serve(servicer)
    yield servicer, server
    await server.stop(0)


@pytest.fixture
def selector(selector_server: tuple[ScriptedSelector, GrpcServer]) -> ScriptedSelector:
    """The scripted Selector, reset for this test."""
    servicer, _ = selector_server
    servicer.reset()
    return servicer


@pytest.fixture
def selector_address(selector_server: tuple[ScriptedSelector, GrpcServer]) -> str:
    """Where the bot finds the Selector (override to run against the real Selector)."""
    return f"127.0.0.1:{selector_server[1].port}"


@pytest.fixture
async def channel(selector_address: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(selector_address) as ch:
        yield ch


@pytest.fixture
def client(channel: grpc.aio.Channel) -> SelectorClient:
    return SelectorClient(
        channel, prompt_timeout_seconds=PROMPT_TIMEOUT_SECONDS, admin_token=ADMIN_TOKEN
    )


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Chat:
    """Drives a Dispatcher with raw updates and reads what the bot sent through its session."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, session: RecordingSession) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.session = session
        self.state = session.state
        self._update_id = 0

    async def feed(self, update: dict[str, Any]) -> None:
        self._update_id += 1
        await self.dispatcher.feed_raw_update(self.bot, {**update, "update_id": self._update_id})

    async def send(self, text: str, **kwargs: Any) -> list[str]:
        """Sends `text` as a user; returns what the messages the bot answered with show in the end
        (after the edits of a streamed answer)."""
        before = len(self.state.calls)
        await self.feed(message_update(text, **kwargs))
        sent = [
            c.result["message_id"]
            for c in self.state.calls[before:]
            if c.method == "sendMessage" and not c.error
        ]
        return [self.state.messages[message_id][1] for message_id in sent]

    async def press(self, data: str, *, message_id: int, **kwargs: Any) -> list[Any]:
        """Presses an inline button; returns the calls the bot made in response."""
        before = len(self.session.requests)
        await self.feed(callback_update(data, message_id=message_id, **kwargs))
        return self.session.requests[before:]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_chat(client: SelectorClient, clock: FakeClock | None = None) -> Chat:
    """A fresh bot (recording session) and dispatcher: empty pins, empty per-user limits."""
    session = RecordingSession()
    dispatcher = build_dispatcher(
        client,
        admin_ids={ADMIN_ID},
        limiter=UserRateLimiter(PROMPTS_PER_MINUTE, clock=clock or FakeClock()),
        typing_interval=0.1,
        edit_interval=EDIT_INTERVAL,
    )
    return Chat(dispatcher, build_bot(TOKEN, session=session), session)


@pytest.fixture
def chat(client: SelectorClient, clock: FakeClock) -> Iterator[Chat]:
    """A fresh chat; at the end, nothing the bot sent was refused by Telegram's rules."""
    chat = make_chat(client, clock)
    yield chat
    assert chat.state.provoked == []


@pytest.fixture
def unused_address() -> str:
    """A loopback address where nothing listens."""
    return f"127.0.0.1:{free_port()}"


@asynccontextmanager
async def running_bot(
    selector_address: str, *, prompts_per_minute: int = 5, edit_interval: float = EDIT_INTERVAL
) -> AsyncIterator[FakeBotApi]:
    """The real bot long-polling a loopback fake Bot API, talking to the Selector at the address.

    Yields the fake Bot API once the bot has started (its startup deleted the webhook); at the
    end, nothing the bot sent was refused by Telegram's rules.
    """
    api = FakeBotApi(TOKEN)
    await api.start()
    try:
        async with grpc.aio.insecure_channel(selector_address) as channel:
            client = SelectorClient(
                channel, prompt_timeout_seconds=PROMPT_TIMEOUT_SECONDS, admin_token=ADMIN_TOKEN
            )
            bot = build_bot(TOKEN, api_base_url=api.base_url)
            dispatcher = build_dispatcher(
                client,
                admin_ids={ADMIN_ID},
                prompts_per_minute=prompts_per_minute,
                edit_interval=edit_interval,
            )
            polling = asyncio.create_task(
                dispatcher.start_polling(
                    bot,
                    handle_signals=False,
                    polling_timeout=1,
                    allowed_updates=dispatcher.resolve_used_update_types(),
                )
            )
            try:
                await api.wait_for("deleteWebhook")
                yield api
                assert api.state.provoked == []
            finally:
                if not polling.done():
                    await dispatcher.stop_polling()
                await polling
    finally:
        await api.stop()
