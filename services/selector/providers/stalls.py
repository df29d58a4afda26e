"""Notices when the Selector's own event loop stalls, so a wait it caused is not blamed on a model.

A task ticks every TICK_SECONDS; a tick that comes late means the loop did not run in between
(a long synchronous call, heavy swapping, SIGSTOP). While the loop stands still, a provider's
answer may arrive but cannot be read, and the attempt's timer fires as soon as the loop runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

TICK_SECONDS = 0.1
# A tick at least this late is remembered as a stall, in seconds.
MIN_STALL_SECONDS = 0.2
# Stalls are remembered this long, in seconds (longer than any attempt lasts).
MEMORY_SECONDS = 900.0


class LoopWatch:
    """Records the intervals (event-loop time) during which the loop did not run."""

    def __init__(self, tick: float = TICK_SECONDS) -> None:
        self._tick = tick
        self._stalls: deque[tuple[float, float]] = deque()
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls) -> LoopWatch:
        """A watch ticking on the running loop until `stop`."""
        watch = cls()
        watch._last = asyncio.get_running_loop().time()
        watch._task = asyncio.create_task(watch._run(), name="loop-watch")
        return watch

    async def stop(self) -> None:
        """Stops ticking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick)
            self.tick(loop.time())

    def tick(self, now: float) -> None:
        """Notes that the loop ran at `now`; a late tick records the stall before it."""
        if self._last is not None and now - (self._last + self._tick) >= MIN_STALL_SECONDS:
            self._stalls.append((self._last + self._tick, now))
        self._last = now
        while self._stalls and self._stalls[0][1] < now - MEMORY_SECONDS:
            self._stalls.popleft()

    def stalled_for(self, moment: float, now: float) -> float:
        """How long the loop had been stalled when `moment` came; 0 if it was running then.

        `now` is the current loop time: a stall the watch has not yet seen end (its tick is still
        due) counts as lasting until now.
        """
        spans = list(self._stalls)
        if self._last is not None:
            spans.append((self._last + self._tick, now))
        for start, end in reversed(spans):
            if start < moment <= end:
                return moment - start
            if end < moment:
                break
        return 0.0
