"""Graceful stop: no new job runs, running ones get a grace period, then the scheduler stops."""

from __future__ import annotations

import asyncio
import logging

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

_FINISHED = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED


class RunningJobs:
    """Counts the job runs in progress from the scheduler's events (one end per submission,
    since every job coalesces its missed runs into one)."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | _FINISHED)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self.count += 1
        else:
            self.count = max(0, self.count - 1)
        if self.count:
            self._idle.clear()
        else:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Returns once no job is running."""
        await self._idle.wait()


async def stop_gracefully(
    scheduler: AsyncIOScheduler, running: RunningJobs, grace_seconds: float
) -> None:
    """Starts no new runs, waits up to `grace_seconds` for running ones, then stops the scheduler
    (cancelling whatever still runs)."""
    scheduler.pause()
    try:
        await asyncio.wait_for(running.wait_idle(), grace_seconds)
    except TimeoutError:
        log.warning(
            "job runs cancelled at shutdown",
            extra={"running": running.count, "grace_seconds": grace_seconds},
        )
    scheduler.shutdown(wait=False)
    # The scheduler shuts down (and cancels what still runs) on the next loop iteration.
    await asyncio.sleep(0)
