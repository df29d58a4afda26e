"""Time the Selector loses on its own (a free connection, a stalled loop) is not the provider's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, ProviderClient, ProviderError
from services.selector.providers.stalls import LoopWatch
from tests.fakes import eventually

pb = common_pb2
OPENAI = ("groq", pb.API_FORMAT_OPENAI)


@pytest.fixture
async def one_connection() -> AsyncIterator[ProviderClient]:
    provider_client = await ProviderClient.open(max_connections=1)
    yield provider_client
    await provider_client.close()


def _scripts(sim, **models: dict) -> None:
    sim.set_scripts(
        {"default": {"latency": 0}, "scripts": {f"groq/{m}": s for m, s in models.items()}}
    )


async def test_the_timeout_starts_once_a_connection_is_free(sim, one_connection, target):
    _scripts(sim, m={"latency": 0.4})
    first = asyncio.create_task(
        one_connection.complete(target(OPENAI), ChatRequest.from_prompt("a"), timeout=5)
    )
    await eventually(sim.log, what="the first request to hold the only connection")
    # Waits about 0.4 s for the only connection, then gets its answer 0.4 s later: 0.8 s in all,
    # more than its 0.6 s timeout, but the provider took only 0.4 s of it.
    result = await one_connection.complete(
        target(OPENAI), ChatRequest.from_prompt("b"), timeout=0.6
    )
    assert result.text.startswith("[simulated]")
    await first


async def test_no_free_connection_before_the_deadline_is_abandoned(sim, one_connection, target):
    _scripts(sim, m={"behaviour": "silence"})
    holder = asyncio.create_task(
        one_connection.complete(target(OPENAI), ChatRequest.from_prompt("a"), timeout=5)
    )
    await eventually(sim.log, what="the first request to hold the only connection")
    deadline = asyncio.get_running_loop().time() + 0.3
    with pytest.raises(ProviderError) as caught:
        await one_connection.complete(
            target(OPENAI), ChatRequest.from_prompt("b"), timeout=5, deadline=deadline
        )
    assert caught.value.outcome == pb.OUTCOME_ABANDONED
    assert "free local connection" in caught.value.message
    assert len(sim.log()) == 1  # the second request never left
    holder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holder


async def test_a_deadline_before_the_models_timeout_is_abandoned(sim, client, target):
    _scripts(sim, m={"behaviour": "silence"})
    deadline = asyncio.get_running_loop().time() + 0.3
    with pytest.raises(ProviderError) as caught:
        await client.complete(
            target(OPENAI), ChatRequest.from_prompt("x"), timeout=5, deadline=deadline
        )
    assert caught.value.outcome == pb.OUTCOME_ABANDONED
    assert "deadline ran out" in caught.value.message


async def test_a_reused_connection_still_times_out(sim, one_connection, target):
    _scripts(sim, fast={}, silent={"behaviour": "silence"})
    await one_connection.complete(
        target(OPENAI, model="fast"), ChatRequest.from_prompt("x"), timeout=5
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await one_connection.complete(
            target(OPENAI, model="silent"), ChatRequest.from_prompt("x"), timeout=0.3
        )
    assert caught.value.outcome == pb.OUTCOME_TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_a_stall_when_the_time_runs_out_is_abandoned(sim, client, target):
    _scripts(sim, m={"behaviour": "silence"})
    asyncio.get_running_loop().call_later(0.2, time.sleep, 1.8)  # the whole process stands still
    with pytest.raises(ProviderError) as caught:
        await client.complete(target(OPENAI), ChatRequest.from_prompt("x"), timeout=1.5)
    assert caught.value.outcome == pb.OUTCOME_ABANDONED
    assert "selector was stalled" in caught.value.message


async def test_a_stall_that_ended_before_the_time_ran_out_excuses_nothing(sim, client, target):
    _scripts(sim, slow={"latency": 0.3}, silent={"behaviour": "silence"})
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, time.sleep, 1.2)
    # The answer that came during the stall is read after it, in time.
    answer = client.complete(target(OPENAI, model="slow"), ChatRequest.from_prompt("x"), timeout=2)
    silent = client.complete(
        target(OPENAI, model="silent"), ChatRequest.from_prompt("x"), timeout=2
    )
    result, timeout = await asyncio.gather(answer, silent, return_exceptions=True)
    assert not isinstance(result, BaseException)
    assert result.text.startswith("[simulated]")
    assert isinstance(timeout, ProviderError)
    assert timeout.outcome == pb.OUTCOME_TIMEOUT


def test_the_watch_measures_the_stall_in_progress_at_a_moment() -> None:
    watch = LoopWatch(tick=0.1)
    for moment in (0.1, 0.2, 0.3):
        watch.tick(moment)
    watch.tick(5.0)  # the tick due at 0.4 came at 5.0
    watch.tick(5.1)
    assert watch.stalled_for(0.35, now=5.1) == 0.0
    assert watch.stalled_for(2.4, now=5.1) == pytest.approx(2.0)
    assert watch.stalled_for(5.05, now=5.1) == 0.0
    # A stall not yet ended: the tick due at 5.2 has not come by 8.0.
    assert watch.stalled_for(7.2, now=8.0) == pytest.approx(2.0)
    assert watch.stalled_for(8.5, now=8.0) == 0.0


def test_the_watch_ignores_late_ticks_of_a_busy_loop() -> None:
    watch = LoopWatch(tick=0.1)
    moment = 0.0
    for _ in range(100):
        moment += 0.25  # every tick 0.15 s late: busy, not stalled
        watch.tick(moment)
    assert watch.stalled_for(10.0, now=moment) == 0.0
