"""ModelStore's shared state RPCs on a real PostgreSQL: concurrent grants never sum above a
limit, bad input is named, one trial claim holds at a time."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aiselector.v1 import model_store_pb2


def _ask(replica: str, amount: int, counter: str = "model/1/a/KEY:rpm"):
    return model_store_pb2.SyncSharedStateRequest(
        replica=replica,
        asks=[
            model_store_pb2.BudgetAsk(counter=counter, limit=10, amount=amount, window_seconds=60)
        ],
        lease_seconds=5,
    )


async def test_concurrent_asks_never_grant_more_than_the_limit(model_store_stub):
    replies = await asyncio.gather(
        *(model_store_stub.SyncSharedState(_ask(f"r{i}", 3), timeout=10) for i in range(12))
    )
    granted = [r.grants[0].amount for r in replies]
    assert sum(granted) == 10
    refused = [r.grants[0] for r in replies if r.grants[0].amount == 0]
    assert refused
    assert all(g.retry_after_seconds > 60 for g in refused)
    # What is given back unused is granted again.
    first = next(r.grants[0] for r in replies if r.grants[0].amount)
    back = model_store_pb2.SyncSharedStateRequest(
        replica=f"r{granted.index(first.amount)}",
        returns=[model_store_pb2.BudgetReturn(grant_id=first.grant_id, unused=first.amount)],
        lease_seconds=5,
    )
    await model_store_stub.SyncSharedState(back, timeout=5)
    again = await model_store_stub.SyncSharedState(_ask("late", 10), timeout=5)
    assert again.grants[0].amount == first.amount


async def test_signals_reach_every_replica_in_order(model_store_stub):
    signal = model_store_pb2.SharedSignal(
        model_id=3, kind=model_store_pb2.SHARED_SIGNAL_KIND_KEY_COOLDOWN, account="a/KEY"
    )
    signal.until.GetCurrentTime()
    pushed = await model_store_stub.SyncSharedState(
        model_store_pb2.SyncSharedStateRequest(replica="one", signals=[signal, signal]), timeout=5
    )
    assert [s.replica for s in pushed.signals] == ["one", "one"]
    other = await model_store_stub.SyncSharedState(
        model_store_pb2.SyncSharedStateRequest(replica="two"), timeout=5
    )
    assert [s.id for s in other.signals] == [s.id for s in pushed.signals]
    later = await model_store_stub.SyncSharedState(
        model_store_pb2.SyncSharedStateRequest(replica="two", after_signal_id=other.last_signal_id),
        timeout=5,
    )
    assert list(later.signals) == []
    assert later.last_signal_id == other.last_signal_id


async def test_one_trial_claim_at_a_time(model_store_stub):
    claims = await asyncio.gather(
        *(
            model_store_stub.ClaimTrial(
                model_store_pb2.ClaimTrialRequest(model_id=7, replica=f"r{i}", seconds=0.5),
                timeout=5,
            )
            for i in range(5)
        )
    )
    assert sum(c.claimed for c in claims) == 1
    await asyncio.sleep(0.6)
    late = await model_store_stub.ClaimTrial(
        model_store_pb2.ClaimTrialRequest(model_id=7, replica="late", seconds=0.5), timeout=5
    )
    assert late.claimed  # the claim expired


async def test_bad_asks_name_the_field(model_store_stub):
    request = _ask("r", 11)
    request.asks[0].window_seconds = 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.SyncSharedState(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "asks[0].amount" in caught.value.details()
    assert "asks[0].window_seconds" in caught.value.details()
