"""End to end against the real stack: the polling bot → real Selector → simulated providers.

ModelStore runs over a fresh embedded-PostgreSQL database with the repo's catalog (root
conftest); every provider points at the provider simulator with placeholder keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.data.app import RunningModelStore
from services.selector.app import RunningSelector, start_selector
from services.selector.settings import SelectorSettings
from services.simulator.server import start_simulator
from tests.bot.conftest import running_bot
from tests.bot.fake_selector import ADMIN_TOKEN
from tests.bot.fake_telegram import message_update


@asynccontextmanager
async def real_selector(
    model_store: RunningModelStore, scenario: dict[str, Any]
) -> AsyncIterator[RunningSelector]:
    """A Selector over `model_store` whose providers are a simulator playing `scenario`."""
    simulator = await start_simulator(scenario)
    settings = SelectorSettings(
        _env_file=None,
        selector_listen_address="127.0.0.1:0",
        model_store_address=model_store.address,
        admin_api_token=ADMIN_TOKEN,
        max_retry_wait_seconds=0,
    )
    selector = await start_selector(settings, simulator.provider_environ())
    try:
        async with grpc.aio.insecure_channel(selector.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            async with asyncio.timeout(30):
                while True:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                    await asyncio.sleep(0.05)
        yield selector
    finally:
        await selector.stop()
        await simulator.close()


async def test_a_users_text_is_answered_by_a_simulated_model(
    model_store: RunningModelStore,
) -> None:
    async with (
        real_selector(model_store, {"default": {"behaviour": "ok"}}) as selector,
        running_bot(selector.address) as api,
    ):
        await api.push(message_update("Hello there", user_id=51, language_code="en"))
        sent = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 51, within=30)
    answer, footer = sent.params["text"].rsplit("\n\n", 1)
    assert answer.startswith("[simulated] ")
    assert footer.startswith("<i>🤖 ")
    assert footer.endswith(" s</i>")


async def test_every_provider_rate_limited_gives_the_rate_limit_message(
    model_store: RunningModelStore,
) -> None:
    scenario = {"default": {"behaviour": "rate_limited", "retry_after": 600}}
    async with (
        real_selector(model_store, scenario) as selector,
        running_bot(selector.address) as api,
    ):
        await api.push(message_update("Hello", user_id=52, language_code="en"))
        sent = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 52, within=30)
    assert sent.params["text"] == (
        "⏳ Every free model has hit its request limit right now. Please try again in 10 minutes."
    )
