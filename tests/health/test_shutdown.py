"""Graceful stop: a probe in flight may finish within the grace period; no new run starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from aiselector.v1 import model_store_pb2_grpc
from services.common.channels import open_channel
from services.health.scheduler import build_scheduler
from services.health.settings import HealthSettings
from services.health.shutdown import RunningJobs, stop_gracefully
from tests.fakes import ADMIN_TOKEN, ScriptedSelector, eventually, free_port


@pytest.fixture
async def started(fake_selector: ScriptedSelector, selector_stub, metrics) -> AsyncIterator[tuple]:
    fake_selector.holds["TestProviders"] = asyncio.Event()
    async with open_channel(f"127.0.0.1:{free_port()}") as dead_channel:
        scheduler = build_scheduler(
            selector_stub,
            model_store_pb2_grpc.ModelStoreStub(dead_channel),
            HealthSettings(admin_api_token=SecretStr(ADMIN_TOKEN), health_check_interval=3600),
            metrics,
            now=datetime.now(UTC),
        )
        running = RunningJobs(scheduler)
        scheduler.start()
        await eventually(lambda: fake_selector.calls_to("TestProviders"), timeout=10)
        yield scheduler, running
        fake_selector.holds["TestProviders"].set()
        if scheduler.running:
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)


async def test_a_probe_in_flight_finishes_before_the_scheduler_stops(
    fake_selector: ScriptedSelector, started, caplog
):
    scheduler, running = started
    caplog.set_level(logging.INFO)
    await eventually(lambda: running.count == 1)
    stopping = asyncio.create_task(stop_gracefully(scheduler, running, grace_seconds=10))
    await asyncio.sleep(0.1)
    assert not stopping.done()

    fake_selector.holds["TestProviders"].set()
    await asyncio.wait_for(stopping, 10)

    messages = [r.getMessage() for r in caplog.records]
    assert "probe run finished" in messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not scheduler.running
    assert len(fake_selector.calls_to("TestProviders")) == 1


async def test_a_probe_longer_than_the_grace_is_cancelled_with_a_warning(started, caplog):
    scheduler, running = started
    caplog.set_level(logging.INFO, logger="services.health")
    await eventually(lambda: running.count == 1)

    await asyncio.wait_for(stop_gracefully(scheduler, running, grace_seconds=0.1), 5)

    warning = next(r for r in caplog.records if r.getMessage() == "job runs cancelled at shutdown")
    assert warning.running == 1
    assert not scheduler.running
