"""Three Selector replicas share one truth through ModelStore (ADR 0016): budgets, Retry-After,
circuits, trials. Real servers on loopback: the simulator, ModelStore on PostgreSQL, and three
Selectors on their own ports."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from aiselector.v1 import model_store_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from tests.fakes import eventually
from tests.stacks import Stack, _selector

SHARED = {"shared_state_interval_seconds": 0.2}


async def _replicas(make_stack, scripts=None, **settings: Any) -> tuple[Stack, list]:
    """A stack whose Selector is replica 0, and two more replicas on the same ModelStore."""
    stack = await make_stack(scripts, **SHARED, **settings)
    others = [
        await _selector(stack.store.address, stack.environ, {**SHARED, **settings})
        for _ in range(2)
    ]
    return stack, [stack.selector, *others]


def _stubs(stack: Stack, replicas: list) -> list[selector_pb2_grpc.SelectorStub]:
    stubs = []
    for replica in replicas:
        channel = open_channel(replica.address, private=True)
        stack.channels.append(channel)
        stubs.append(selector_pb2_grpc.SelectorStub(channel))
    return stubs


async def _stop(replicas: list) -> None:
    for replica in replicas[1:]:
        await replica.stop()


async def _ask(stub, model: str) -> selector_pb2.ProcessPromptResponse:
    return await stub.ProcessPrompt(
        selector_pb2.ProcessPromptRequest(prompt="Hello", model_name=model), timeout=10
    )


async def _state(stub, model: str) -> selector_pb2.ModelStats:
    reply = await stub.GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    return next(m for m in reply.models if m.name == model)


async def test_a_per_minute_budget_holds_across_three_replicas(make_stack):
    stack, replicas = await _replicas(
        make_stack,
        {"alpha/m1": {"quota": {"per_minute": 10}}},
        models={"alpha/m1": {"limits": {"rpm": 10}}},
    )
    try:
        stubs = _stubs(stack, replicas)
        replies = []
        for batch in range(10):  # 60 prompts, 6 at a time, spread over the replicas
            replies += await asyncio.gather(
                *(_ask(stubs[(batch + i) % 3], "alpha/m1") for i in range(6))
            )
        alpha = stack.requests_to("alpha")
        assert len(alpha) == 10
        assert all(e["status"] == 200 for e in alpha)  # no 429 from it
        assert all(r.success for r in replies)
        chosen = Counter(r.selected_model for r in replies)
        assert chosen["alpha/m1"] == 10
        assert chosen["beta/m1"] + chosen["gamma/m1"] == 50
    finally:
        await _stop(replicas)


async def test_a_retry_after_seen_by_one_replica_holds_for_every_replica(make_stack):
    stack, replicas = await _replicas(
        make_stack, {"beta/m1": {"sequence": [429], "retry_after": 5}}
    )
    try:
        stubs = _stubs(stack, replicas)
        reply = await _ask(stubs[0], "beta/m1")
        assert reply.selected_model != "beta/m1"  # beta said 429, another model answered
        limited = [e for e in stack.requests_to("beta") if e["status"] == 429]
        assert len(limited) == 1
        seen = limited[0]["time"]
        await asyncio.sleep(0.6)  # the interval (0.2 s) and the calls, with room
        asked = 0
        while time.time() < seen + 4.5:
            for stub in stubs[1:]:
                reply = await _ask(stub, "beta/m1")
                assert reply.success
                assert reply.selected_model != "beta/m1"
                asked += 1
            await asyncio.sleep(0.1)
        assert asked >= 10
        assert len(stack.requests_to("beta")) == 1  # nobody sent there during the wait
        state = await _state(stubs[2], "beta/m1")
        assert state.state == selector_pb2.MODEL_STATE_COOLING_DOWN
        assert "retry after 5 s" in state.state_reason
        await asyncio.sleep(max(0.0, seen + 5.2 - time.time()))
        reply = await _ask(stubs[1], "beta/m1")
        assert reply.selected_model == "beta/m1"  # the wait is over for the other replicas too
    finally:
        await _stop(replicas)


async def test_a_circuit_opened_by_one_replica_is_open_for_all_and_one_replica_tries_it(
    make_stack,
):
    stack, replicas = await _replicas(
        make_stack,
        {"alpha/m1": {"sequence": [503, 503, 503]}},
        circuit_failure_threshold=3,
        circuit_open_seconds=2.0,
        circuit_max_open_seconds=2.0,
    )
    try:
        stubs = _stubs(stack, replicas)
        for _ in range(3):
            reply = await _ask(stubs[0], "alpha/m1")
            assert reply.success
            assert reply.selected_model != "alpha/m1"
        opened = time.time()
        await asyncio.sleep(0.5)
        for stub in stubs:
            state = await _state(stub, "alpha/m1")
            assert state.state == selector_pb2.MODEL_STATE_CIRCUIT_OPEN, state.state_reason
        for stub in stubs[1:]:
            reply = await _ask(stub, "alpha/m1")
            assert reply.selected_model != "alpha/m1"
        assert len(stack.requests_to("alpha")) == 3
        # Half-open after 2 s: every replica's trial loop wants the trial; one makes it.
        async with asyncio.timeout(10):
            while True:
                states = [(await _state(stub, "alpha/m1")).state for stub in stubs]
                if all(s == selector_pb2.MODEL_STATE_READY for s in states):
                    break
                await asyncio.sleep(0.1)
        trials = [e for e in stack.requests_to("alpha") if e["time"] > opened]
        assert len(trials) == 1
        assert trials[0]["status"] == 200
        for stub in stubs:
            assert (await _ask(stub, "alpha/m1")).selected_model == "alpha/m1"
    finally:
        await _stop(replicas)


async def test_the_leases_of_a_replica_that_died_come_back(make_stack):
    lease, window = 1.0, 2.0
    stack, replicas = await _replicas(
        make_stack,
        models={"alpha/m1": {"limits": {"rpm": 10}}},
        shared_lease_seconds=lease,
        budget_minute_seconds=window,
    )
    stubs = _stubs(stack, replicas)
    for stub in stubs:  # each replica spends from its slice, and leases another
        # A replica's first request to alpha waits at most SETTLE_SECONDS for its first slice;
        # on a slow machine it may go to another model meanwhile, so ask until alpha answers.
        async def alpha_answers(stub=stub) -> bool:
            return (await _ask(stub, "alpha/m1")).selected_model == "alpha/m1"

        await eventually(alpha_answers, timeout=10, what="alpha answering", interval=0.1)
    dead = replicas[2]
    await asyncio.sleep(0.3)
    held = sum(h.left(time.time()) for h in dead.shared.slices.held.values())
    assert held >= 1
    died = time.time()
    await dead.stop(give_back=False)  # its leases are not given back
    await replicas[1].stop()  # replica 0 (the stack's) stays: used no more, it keeps nothing
    store = stack.store_stub()
    counter = next(iter(dead.shared.slices.held))
    ask = model_store_pb2.BudgetAsk(counter=counter, limit=10, amount=10, window_seconds=window)
    last: list[model_store_pb2.BudgetGrant] = []

    async def grantable() -> int:
        """What a fresh replica is granted of the 10 now (given back at once next time)."""
        returns = [model_store_pb2.BudgetReturn(grant_id=g.grant_id, unused=g.amount) for g in last]
        request = model_store_pb2.SyncSharedStateRequest(
            replica="test", asks=[ask], returns=returns, lease_seconds=0.1
        )
        last[:] = [g for g in (await store.SyncSharedState(request, timeout=5)).grants if g.amount]
        return sum(g.amount for g in last)

    assert await grantable() <= 10 - held  # what the dead replica held still counts
    async with asyncio.timeout(lease + window + 5):
        while True:
            if await grantable() == 10:
                break
            await asyncio.sleep(0.2)
    assert time.time() - died <= lease + window + 1.5
