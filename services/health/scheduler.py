"""The one place that wires the jobs into an APScheduler `AsyncIOScheduler`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aiselector.v1 import model_store_pb2_grpc, selector_pb2_grpc
from services.health.jobs import (
    DISCOVERY_JOB,
    PROBE_JOB,
    RETENTION_JOB,
    Clock,
    discover_models,
    probe_providers,
    purge_history,
    utc_now,
)
from services.health.metrics import HealthMetrics
from services.health.settings import HealthSettings

RETENTION_INTERVAL = timedelta(days=1)
# A run that is late by up to this much (event loop busy, clock jump) still runs, once.
MISFIRE_GRACE_SECONDS = 600
RETENTION_TIMEOUT_SECONDS = 300.0
# Deadline of one DiscoverModels call: the Selector reads every list within 20 s (by default).
DISCOVERY_TIMEOUT_SECONDS = 60.0


def build_scheduler(
    selector: selector_pb2_grpc.SelectorStub,
    model_store: model_store_pb2_grpc.ModelStoreStub,
    settings: HealthSettings,
    metrics: HealthMetrics,
    *,
    now: datetime,
    clock: Clock = utc_now,
) -> AsyncIOScheduler:
    """A scheduler (not started) with the probe job, the model discovery job and the daily
    retention job.

    All first run at `now`: the probe so that routing has fresh results right after a deploy,
    discovery so that a model the provider retired while the stack was down is set aside at once,
    the retention so that a worker restarted more often than daily still purges. At most one run
    of a job at a time; runs missed while one was busy collapse into one.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    once_at_a_time = {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        "next_run_time": now,
    }
    scheduler.add_job(
        probe_providers,
        IntervalTrigger(seconds=settings.health_check_interval, timezone=UTC),
        id=PROBE_JOB,
        name="synthetic probes through Selector.TestProviders",
        kwargs={
            "selector": selector,
            "admin_token": settings.admin_api_token.get_secret_value(),
            "timeout_seconds": settings.health_probe_timeout_seconds,
            "metrics": metrics,
        },
        **once_at_a_time,
    )
    scheduler.add_job(
        discover_models,
        IntervalTrigger(seconds=settings.model_discovery_interval, timezone=UTC),
        id=DISCOVERY_JOB,
        name="model lists against the catalog through Selector.DiscoverModels",
        kwargs={
            "selector": selector,
            "admin_token": settings.admin_api_token.get_secret_value(),
            "timeout_seconds": DISCOVERY_TIMEOUT_SECONDS,
            "metrics": metrics,
        },
        **once_at_a_time,
    )
    scheduler.add_job(
        purge_history,
        IntervalTrigger(seconds=RETENTION_INTERVAL.total_seconds(), timezone=UTC),
        id=RETENTION_JOB,
        name="prompt-history retention through ModelStore.PurgeHistory",
        kwargs={
            "model_store": model_store,
            "retention_days": settings.history_retention_days,
            "clock": clock,
            "timeout_seconds": RETENTION_TIMEOUT_SECONDS,
            "metrics": metrics,
        },
        **once_at_a_time,
    )
    return scheduler
