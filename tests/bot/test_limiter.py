"""The per-user sliding-window limit."""

from __future__ import annotations

import pytest

from services.bot.limiter import UserRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_allows_the_limit_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = UserRateLimiter(2, window_seconds=60, clock=clock)
    assert limiter.acquire(1) is None
    clock.now = 10
    assert limiter.acquire(1) is None
    clock.now = 20
    assert limiter.acquire(1) == pytest.approx(40)
    assert limiter.acquire(2) is None
    clock.now = 60
    assert limiter.acquire(1) is None
    assert limiter.acquire(1) == pytest.approx(10)


def test_refused_prompts_do_not_count() -> None:
    clock = Clock()
    limiter = UserRateLimiter(1, window_seconds=60, clock=clock)
    assert limiter.acquire(1) is None
    for second in range(1, 59):
        clock.now = second
        assert limiter.acquire(1) is not None
    clock.now = 60
    assert limiter.acquire(1) is None


def test_zero_turns_the_limit_off() -> None:
    limiter = UserRateLimiter(0)
    assert all(limiter.acquire(1) is None for _ in range(100))


def test_idle_users_are_forgotten() -> None:
    clock = Clock()
    limiter = UserRateLimiter(1, window_seconds=60, clock=clock)
    for user in range(1000):
        limiter.acquire(user)
    clock.now = 200
    limiter.acquire(5000)
    assert len(limiter._sent) == 1
