"""The record buffer: bounded, nothing lost while ModelStore is away, spilled before dropped."""

from __future__ import annotations

import asyncio

import grpc

from aiselector.v1 import common_pb2
from services.selector.bookkeeping import Recorder
from services.selector.spool import Records, Spool, decode
from tests.fakes import eventually


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


class PickyStore(FlakyStore):
    """Up, but refuses any batch holding attempt `bad` (as ModelStore refuses invalid input)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.batch_sizes: list[int] = []

    async def RecordAttempts(self, request, timeout):
        self.batch_sizes.append(len(request.attempts))
        if any(a.attempt_id == "bad" for a in request.attempts):
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        await super().RecordAttempts(request, timeout)


async def test_a_refused_record_is_dropped_alone_and_the_rest_delivered():
    store = PickyStore()
    recorder = Recorder(store, capacity=100, interval=0.01)
    ids = [f"a{i}" for i in range(9)]
    ids.insert(4, "bad")
    for attempt_id in ids:
        recorder.add_attempt(common_pb2.Attempt(attempt_id=attempt_id))
    assert await recorder.flush() is True
    assert store.attempts == [i for i in ids if i != "bad"]
    assert recorder.depth() == 0


async def test_batches_stay_under_the_message_size_limit():
    store = PickyStore()
    recorder = Recorder(store, capacity=1000, interval=0.01)
    for i in range(300):
        recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}", error="x" * 20_000))
    assert await recorder.flush() is True
    assert len(store.attempts) == 300
    assert max(store.batch_sizes) * 20_000 <= 2 * 1024 * 1024


class AvailabilityStore(FlakyStore):
    """FlakyStore that also keeps the availability it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.availability: list[int] = []

    async def UpdateModelAvailability(self, request, timeout):
        self._check()
        self.availability += [a.model_id for a in request.availabilities]


async def test_stop_while_the_store_is_down_spills_and_the_next_start_delivers(tmp_path, caplog):
    store = AvailabilityStore()
    spool = Spool(tmp_path, max_bytes=1 << 20)
    dirty = [common_pb2.ModelAvailability(model_id=3, consecutive_failures=1)]
    recorder = Recorder(
        store,
        capacity=100,
        interval=0.01,
        availability_source=lambda: [dirty.pop()] if dirty else [],
        spool=spool,
    )
    recorder.start()
    for i in range(5):
        recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
        recorder.add_prompt(common_pb2.PromptRecord(record_id=f"p{i}"))
    await recorder.stop(timeout=1)
    assert recorder.depth() == 0
    assert "records not delivered at shutdown" not in caplog.text
    [path] = spool.files()
    records, problem = decode(path.read_bytes())
    assert problem == ""
    assert [a.attempt_id for a in records.attempts] == [f"a{i}" for i in range(5)]
    assert [p.record_id for p in records.prompts] == [f"p{i}" for i in range(5)]
    assert [a.model_id for a in records.availability] == [3]

    store.down = False
    await Recorder(store, capacity=100, interval=0.01, spool=spool).replay_spool()
    assert store.attempts == [f"a{i}" for i in range(5)]
    assert store.prompts == [f"p{i}" for i in range(5)]
    assert store.availability == [3]
    assert spool.files() == []


async def test_stop_without_a_spool_says_what_was_lost(caplog):
    recorder = Recorder(FlakyStore(), capacity=100, interval=0.01)
    recorder.add_attempt(common_pb2.Attempt(attempt_id="a"))
    await recorder.stop(timeout=1)
    assert "records not delivered at shutdown" in caplog.text


async def test_a_long_outage_spills_instead_of_dropping_and_delivers_once_back(tmp_path):
    store = FlakyStore()
    spool = Spool(tmp_path, max_bytes=1 << 20)
    recorder = Recorder(store, capacity=20, interval=0.01, spool=spool)
    recorder.start()
    try:
        for round_ in range(3):
            for i in range(round_ * 10, round_ * 10 + 10):
                recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
            await eventually(lambda n=round_ + 1: len(spool.files()) == n)
        assert recorder.dropped == 0
        store.down = False
        assert await recorder.flush() is True
    finally:
        await recorder.stop(timeout=1)
    assert store.attempts == [f"a{i}" for i in range(30)]
    assert spool.files() == []


async def test_beyond_the_spool_cap_the_oldest_are_dropped_and_counted(tmp_path, caplog):
    store = FlakyStore()
    spool = Spool(tmp_path, max_bytes=0)
    recorder = Recorder(store, capacity=10, interval=0.01, spool=spool)
    recorder.start()
    try:
        for i in range(6):
            recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
        await eventually(lambda: "spool full" in caplog.text)
        for i in range(6, 15):
            recorder.add_attempt(common_pb2.Attempt(attempt_id=f"a{i}"))
        assert recorder.dropped == 5
        assert spool.files() == []
        store.down = False
        assert await recorder.flush() is True
    finally:
        await recorder.stop(timeout=1)
    assert store.attempts == [f"a{i}" for i in range(5, 15)]


class SlowStore(FlakyStore):
    """An up FlakyStore whose calls yield to other tasks, as network calls do."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def RecordAttempts(self, request, timeout):
        await asyncio.sleep(0.01)
        await super().RecordAttempts(request, timeout)


async def test_two_processes_replaying_one_folder_deliver_each_file_once(tmp_path):
    writer = Spool(tmp_path, max_bytes=1 << 20)
    for f in range(6):
        attempts = [common_pb2.Attempt(attempt_id=f"f{f}-a{i}") for i in range(3)]
        writer.write(Records(attempts=attempts))
    store = SlowStore()
    # Each recorder opens the files on its own, so their claims conflict as two processes' do.
    replicas = [
        Recorder(store, capacity=100, interval=0.01, spool=Spool(tmp_path, max_bytes=1 << 20))
        for _ in range(2)
    ]
    await asyncio.gather(*(r.replay_spool() for r in replicas))
    assert sorted(store.attempts) == sorted(f"f{f}-a{i}" for f in range(6) for i in range(3))
    assert writer.files() == []
