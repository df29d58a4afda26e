"""Per-user sliding-window limit on prompts, so one person cannot spend the shared free quotas."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class UserRateLimiter:
    """Allows each user at most `limit` prompts in any `window_seconds`; `limit=0` allows all.

    State is in memory: it is per bot process and starts empty after a restart.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._sent: dict[int, deque[float]] = {}
        self._last_sweep = clock()

    def acquire(self, user_id: int) -> float | None:
        """Counts one prompt and returns None, or returns the seconds to wait and counts nothing."""
        if self.limit <= 0:
            return None
        now = self._clock()
        sent = self._sent.setdefault(user_id, deque())
        while sent and sent[0] <= now - self.window_seconds:
            sent.popleft()
        if len(sent) >= self.limit:
            return sent[0] + self.window_seconds - now
        sent.append(now)
        self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        """Once per window, drops users whose window has passed: memory follows active users."""
        if now - self._last_sweep < self.window_seconds:
            return
        self._last_sweep = now
        idle = [
            user
            for user, sent in self._sent.items()
            if not sent or sent[-1] <= now - self.window_seconds
        ]
        for user in idle:
            del self._sent[user]
