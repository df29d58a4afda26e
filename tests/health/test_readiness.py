"""Waiting for dependencies at startup: backoff while unreachable or not serving, no crash."""

from __future__ import annotations

import asyncio
import logging

from services.common.channels import open_channel
from services.health.readiness import wait_until_serving
from tests.fakes import (
    MODEL_STORE,
    SELECTOR,
    ScriptedModelStore,
    ScriptedSelector,
    eventually,
    free_port,
    serve,
)


def _waiting(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "waiting for dependency"]


async def test_waits_while_the_server_is_not_serving_yet(caplog):
    caplog.set_level(logging.INFO, logger="services.health")
    server = await serve(ScriptedModelStore(), serving=False)
    try:
        async with open_channel(f"127.0.0.1:{server.port}") as channel:
            waiting = asyncio.create_task(
                wait_until_serving(channel, MODEL_STORE, initial_delay=0.05)
            )
            await eventually(lambda: len(_waiting(caplog)) >= 2)
            assert not waiting.done()
            await server.set_serving(True)
            checks = await asyncio.wait_for(waiting, 10)
    finally:
        await server.stop(0)

    assert checks >= 3
    first, second = _waiting(caplog)[:2]
    assert first.reason == "NOT_SERVING"
    assert second.retry_in_seconds == 2 * first.retry_in_seconds


async def test_waits_while_unreachable_with_capped_backoff_then_proceeds(caplog):
    caplog.set_level(logging.INFO, logger="services.health")
    port = free_port()
    async with open_channel(f"127.0.0.1:{port}") as channel:
        waiting = asyncio.create_task(
            wait_until_serving(
                channel, SELECTOR, initial_delay=0.02, max_delay=0.08, check_timeout=1
            )
        )
        await eventually(lambda: len(_waiting(caplog)) >= 4)
        assert not waiting.done()
        server = await serve(ScriptedSelector(), port=port)
        try:
            await asyncio.wait_for(waiting, 15)
        finally:
            await server.stop(0)

    delays = [r.retry_in_seconds for r in _waiting(caplog)]
    assert delays[:4] == [0.02, 0.04, 0.08, 0.08]
    assert {r.reason for r in _waiting(caplog)} <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
