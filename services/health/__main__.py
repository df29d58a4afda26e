"""Runs the health worker: `python -m services.health`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiselector.v1 import model_store_pb2_grpc, selector_pb2_grpc
from services.common import secrets
from services.common.channels import open_channel
from services.common.logging import configure
from services.common.metrics import serve_metrics
from services.common.names import MODEL_STORE_SERVICE, SELECTOR_SERVICE
from services.common.server import wait_for_signal
from services.health.jobs import utc_now
from services.health.metrics import HealthMetrics
from services.health.readiness import wait_until_serving
from services.health.scheduler import build_scheduler
from services.health.settings import HealthSettings
from services.health.shutdown import RunningJobs, stop_gracefully

log = logging.getLogger("services.health")


async def main() -> None:
    """Waits for the Selector and ModelStore, runs the jobs, and stops cleanly on SIGTERM/SIGINT."""
    settings = HealthSettings()
    configure("health", settings.log_level)
    secrets.register_from_environment()
    secrets.register(settings.admin_api_token.get_secret_value())
    if not settings.admin_api_token.get_secret_value():
        log.warning("ADMIN_API_TOKEN is not set: the Selector will refuse every probe run")
    serve_metrics(settings.metrics_port, settings.metrics_host)
    metrics = HealthMetrics()
    stop = asyncio.ensure_future(wait_for_signal())
    async with (
        open_channel(settings.selector_address) as selector_channel,
        open_channel(settings.model_store_address) as model_store_channel,
    ):
        ready = asyncio.gather(
            wait_until_serving(selector_channel, SELECTOR_SERVICE),
            wait_until_serving(model_store_channel, MODEL_STORE_SERVICE),
        )
        await asyncio.wait({ready, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stop.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            log.info("stopped before the dependencies were ready")
            return
        await ready
        scheduler = build_scheduler(
            selector_pb2_grpc.SelectorStub(selector_channel),
            model_store_pb2_grpc.ModelStoreStub(model_store_channel),
            settings,
            metrics,
            now=utc_now(),
        )
        running = RunningJobs(scheduler)
        scheduler.start()
        log.info(
            "health worker started",
            extra={
                "probe_interval_seconds": settings.health_check_interval,
                "discovery_interval_seconds": settings.model_discovery_interval,
                "history_retention_days": settings.history_retention_days,
            },
        )
        await stop
        await stop_gracefully(scheduler, running, settings.shutdown_grace_seconds)
    log.info("health worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
