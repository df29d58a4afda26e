"""The record buffer: bounded, overflow counted, nothing lost while ModelStore is back in time."""

from __future__ import annotations

import grpc

from aiselector.v1 import common_pb2
from services.selector.bookkeeping import Recorder


class FlakyStore:
    """Answers RecordAttempts/RecordPrompts like ModelStore, or fails while `down`."""

    def __init__(self) -> None:
        self.down = True
        self.attempts: list[str] = []
        self.prompts: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )

    async def RecordAttempts(self, request, timeout):
        self._check()
        self.attempts += [a.attempt_id for a in request.attempts]

    async def RecordPrompts(self, request, timeout):
        self._check()
        self.prompts += [r.record_id for r in request.records]

    async def UpdateModelAvailability(self, request, timeout):
        self._check()


async def test_records_wait_for_the_store_and_arrive_in_order():
    store = FlakyStore()
    recorder = Recorder(store, capacity=100, interval=0.01)
    for i in range(7):
        recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
        recorder.add_prompt(common_pb2.PromptRecord(record_id=f"p{i}"))
    assert await recorder.flush() is False
    assert recorder.depth() == 14
    store.down = False
    assert await recorder.flush() is True
    assert store.attempts == [f"a{i}" for i in range(7)]
    assert store.prompts == [f"p{i}" for i in range(7)]
    assert recorder.depth() == 0


async def test_overflow_drops_the_oldest_and_counts_them():
    store = FlakyStore()
    recorder = Recorder(store, capacity=10, interval=0.01)
    for i in range(15):
        recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
    assert recorder.depth() == 10
    assert recorder.dropped == 5
    store.down = False
    await recorder.flush()
    assert store.attempts == [f"a{i}" for i in range(5, 15)]
