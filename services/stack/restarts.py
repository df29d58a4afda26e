"""Restarting a service that died: the wait before each restart, when to give up, and the loop."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from services.stack.supervisor import (
    Child,
    ServiceFailed,
    StartupFailed,
    Supervisor,
    exit_reason,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class RestartPolicy:
    """Up to `limit` restarts of a service within `window_seconds`; the next death gives up.

    The wait before a restart doubles with each death within the window, from
    `first_delay_seconds` up to `max_delay_seconds`; deaths older than the window are forgotten,
    so a service that stayed up that long is restarted quickly again.
    """

    limit: int = 5
    window_seconds: float = 300.0
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0


class Deaths:
    """The recent deaths of one service."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.times: deque[float] = deque()

    def record(self, now: float) -> float | None:
        """Notes a death at `now`: the seconds to wait before restarting, or None to give up."""
        self.times.append(now)
        while self.times[0] <= now - self.policy.window_seconds:
            self.times.popleft()
        if len(self.times) > self.policy.limit:
            return None
        delay = self.policy.first_delay_seconds * 2 ** (len(self.times) - 1)
        return min(delay, self.policy.max_delay_seconds)


class KeepsDying(ServiceFailed):
    """A service died more often than the policy allows."""

    def __init__(self, child: Child, reason: str, deaths: Deaths) -> None:
        policy = deaths.policy
        super().__init__(
            child,
            f"{child.spec.name} {reason}: {len(deaths.times)} deaths within "
            f"{policy.window_seconds:g} s, more than the {policy.limit} restarts allowed "
            f"(STACK_RESTART_LIMIT); giving up (log: {child.log_path})",
        )


async def keep_running(supervisor: Supervisor, name: str, policy: RestartPolicy, say: Say) -> None:
    """Restarts service `name` whenever it dies, waiting for it to be ready again.

    Returns only by raising KeepsDying. What the dead child left behind (a daemon such as the
    data service's PostgreSQL) is stopped before the new one starts, so it starts as on a fresh
    `make run`. Services that depend on it keep running and reconnect.
    """
    deaths = Deaths(policy)
    child = supervisor.children[name]
    # Not `await child.exited`: cancelling this loop must not cancel that task.
    await asyncio.wait({child.exited})
    reason = exit_reason(child.exited.result())
    while True:
        delay = deaths.record(time.monotonic())
        if delay is None:
            raise KeepsDying(child, reason, deaths)
        say(f"{name} {reason} (log: {child.log_path}); restarting it in {delay:g} s")
        await supervisor.stop(child)
        await asyncio.sleep(delay)
        began = time.monotonic()
        try:
            child = await supervisor.start(child.spec)
        except StartupFailed as failure:
            child, reason = failure.child, failure.reason
            continue
        say(f"{name} is back, ready in {time.monotonic() - began:.1f} s")
        await asyncio.wait({child.exited})
        reason = exit_reason(child.exited.result())
