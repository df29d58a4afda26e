"""The scheduler wiring: job ids, intervals, first run at start, one instance at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import SecretStr

from aiselector.v1 import model_store_pb2_grpc
from services.common.channels import open_channel
from services.health.jobs import (
    DISCOVERY_JOB,
    PROBE_JOB,
    RETENTION_JOB,
    discover_models,
    probe_providers,
    purge_history,
)
from services.health.scheduler import (
    DISCOVERY_TIMEOUT_SECONDS,
    MISFIRE_GRACE_SECONDS,
    build_scheduler,
)
from services.health.settings import HealthSettings
from tests.fakes import ADMIN_TOKEN, ScriptedSelector, eventually, free_port

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def _settings(interval: float = 3600.0, discovery_interval: float = 21600.0) -> HealthSettings:
    return HealthSettings(
        admin_api_token=SecretStr(ADMIN_TOKEN),
        health_check_interval=interval,
        model_discovery_interval=discovery_interval,
        history_retention_days=30,
        health_probe_timeout_seconds=5,
    )


def _clock() -> datetime:
    return NOW


@pytest.fixture
async def unreachable_model_store() -> AsyncIterator[model_store_pb2_grpc.ModelStoreStub]:
    async with open_channel(f"127.0.0.1:{free_port()}") as channel:
        yield model_store_pb2_grpc.ModelStoreStub(channel)


async def test_wires_the_probe_discovery_and_retention_jobs(
    selector_stub, unreachable_model_store, metrics
):
    scheduler = build_scheduler(
        selector_stub, unreachable_model_store, _settings(), metrics, now=NOW, clock=_clock
    )

    jobs = {job.id: job for job in scheduler.get_jobs()}

    assert set(jobs) == {PROBE_JOB, DISCOVERY_JOB, RETENTION_JOB}
    probe, discovery, retention = jobs[PROBE_JOB], jobs[DISCOVERY_JOB], jobs[RETENTION_JOB]
    assert probe.func is probe_providers
    assert discovery.func is discover_models
    assert retention.func is purge_history
    assert isinstance(probe.trigger, IntervalTrigger)
    assert probe.trigger.interval == timedelta(hours=1)
    assert discovery.trigger.interval == timedelta(hours=6)
    assert retention.trigger.interval == timedelta(days=1)
    assert discovery.kwargs == {
        "selector": selector_stub,
        "admin_token": ADMIN_TOKEN,
        "timeout_seconds": DISCOVERY_TIMEOUT_SECONDS,
        "metrics": metrics,
    }
    for job in (probe, discovery, retention):
        assert job.next_run_time == NOW
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.misfire_grace_time == MISFIRE_GRACE_SECONDS
    assert probe.kwargs == {
        "selector": selector_stub,
        "admin_token": ADMIN_TOKEN,
        "timeout_seconds": 5,
        "metrics": metrics,
    }
    assert retention.kwargs["retention_days"] == 30
    assert retention.kwargs["clock"] is _clock
    assert probe.trigger.get_next_fire_time(NOW, NOW) == NOW + timedelta(hours=1)


async def test_the_probe_and_discovery_intervals_follow_the_settings(
    selector_stub, unreachable_model_store, metrics
):
    settings = _settings(interval=90, discovery_interval=600)
    scheduler = build_scheduler(selector_stub, unreachable_model_store, settings, metrics, now=NOW)

    assert scheduler.get_job(PROBE_JOB).trigger.interval == timedelta(seconds=90)
    assert scheduler.get_job(DISCOVERY_JOB).trigger.interval == timedelta(minutes=10)


async def test_started_scheduler_probes_at_once_and_survives_an_unreachable_model_store(
    fake_selector: ScriptedSelector, selector_stub, unreachable_model_store, metrics, caplog
):
    caplog.set_level(logging.INFO, logger="services.health")
    scheduler = build_scheduler(
        selector_stub, unreachable_model_store, _settings(), metrics, now=datetime.now(UTC)
    )
    scheduler.start()
    try:
        for message in ("probe run finished", "model discovery finished", "job run failed"):
            await eventually(
                lambda message=message: any(r.getMessage() == message for r in caplog.records)
            )
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)

    assert (
        len(fake_selector.calls_to("TestProviders")),
        len(fake_selector.calls_to("DiscoverModels")),
    ) == (1, 1)
    [failure] = [r for r in caplog.records if r.getMessage() == "job run failed"]
    assert (failure.job, failure.code) == (RETENTION_JOB, "UNAVAILABLE")


async def test_a_probe_still_running_is_not_started_twice(
    fake_selector: ScriptedSelector, selector_stub, unreachable_model_store, metrics
):
    fake_selector.holds["TestProviders"] = asyncio.Event()
    skipped: list[JobSubmissionEvent] = []
    scheduler = build_scheduler(
        selector_stub, unreachable_model_store, _settings(), metrics, now=datetime.now(UTC)
    )
    scheduler.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        await eventually(lambda: fake_selector.calls_to("TestProviders"), timeout=10)
        scheduler.modify_job(PROBE_JOB, next_run_time=datetime.now(UTC))
        await eventually(lambda: len(skipped) == 1)
        assert len(fake_selector.calls_to("TestProviders")) == 1
    finally:
        fake_selector.holds["TestProviders"].set()
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)

    assert skipped[0].job_id == PROBE_JOB
