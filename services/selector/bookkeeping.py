"""Sends attempts, history rows and availability to ModelStore in background batches.

The request path only appends to bounded in-memory buffers; a background task delivers them. While
ModelStore is unreachable the records wait (up to the buffer size; beyond it the oldest are dropped,
counted, logged and exported as a metric) and are delivered when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc
from services.selector import metrics

log = logging.getLogger(__name__)

BATCH = 500
# Batches stay well under the 4 MiB gRPC message limit (a prompt record can be ~40 KB).
BATCH_BYTES = 2 * 1024 * 1024
# Failures after which a batch is kept and sent again; any other refusal is about the records.
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
RPC_TIMEOUT = 5.0


class Recorder:
    """Bounded buffers of records plus the task that flushes them."""

    def __init__(
        self,
        stub: model_store_pb2_grpc.ModelStoreStub,
        *,
        capacity: int,
        interval: float,
        availability_source: Callable[[], list[common_pb2.ModelAvailability]] | None = None,
    ) -> None:
        self._stub = stub
        self._capacity = capacity
        self._interval = interval
        self._availability_source = availability_source
        self._attempts: deque[common_pb2.Attempt] = deque()
        self._prompts: deque[common_pb2.PromptRecord] = deque()
        self._availability: dict[int, common_pb2.ModelAvailability] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self.dropped = 0

    def add_attempt(self, attempt: common_pb2.Attempt) -> None:
        """Queues one attempt outcome."""
        self._push(self._attempts, attempt, "attempt")

    def add_prompt(self, record: common_pb2.PromptRecord) -> None:
        """Queues one history row."""
        self._push(self._prompts, record, "prompt")

    def pending_attempts(self) -> list[common_pb2.Attempt]:
        """Attempts not yet delivered (the snapshot re-applies them after a reload).

        A batch in flight is not included: after a reload it counts once the store has it.
        """
        return list(self._attempts)

    def depth(self) -> int:
        """Records waiting for delivery."""
        return len(self._attempts) + len(self._prompts)

    def _push(self, queue: deque, item: object, kind: str) -> None:
        if self.depth() >= self._capacity:
            (queue or self._attempts or self._prompts).popleft()
            self.dropped += 1
            metrics.BUFFER_DROPPED.labels(kind).inc()
            log.warning(
                "record buffer full, oldest record dropped", extra={"dropped": self.dropped}
            )
        queue.append(item)
        metrics.BUFFER_DEPTH.set(self.depth())
        if len(queue) >= BATCH:
            self._wake.set()

    def start(self) -> None:
        """Starts the background flusher."""
        self._task = asyncio.create_task(self._run(), name="record-flusher")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stops the flusher and delivers what is left, within `timeout`."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.depth() or self._collect_availability():
                    if not await self.flush():
                        break
        if self.depth():
            log.error("records not delivered at shutdown", extra={"records": self.depth()})

    async def _run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            try:
                delivered = await self.flush()
            except Exception:
                log.exception("record flush failed unexpectedly; will retry")
                delivered = False
            backoff = self._interval if delivered else min(backoff * 2, 5.0)

    def _collect_availability(self) -> bool:
        if self._availability_source:
            for item in self._availability_source():
                self._availability[item.model_id] = item
        return bool(self._availability)

    async def flush(self) -> bool:
        """Delivers what is buffered; False when ModelStore could not be reached."""
        async with self._flushing:
            try:
                self._collect_availability()
                if self._availability:
                    batch = list(self._availability.values())
                    await self._deliver(
                        batch,
                        lambda b: self._stub.UpdateModelAvailability(
                            model_store_pb2.UpdateModelAvailabilityRequest(availabilities=b),
                            timeout=RPC_TIMEOUT,
                        ),
                        "availability",
                    )
                    for item in batch:
                        if self._availability.get(item.model_id) is item:
                            del self._availability[item.model_id]
                await self._send(
                    self._attempts,
                    lambda b: self._stub.RecordAttempts(
                        model_store_pb2.RecordAttemptsRequest(attempts=b), timeout=RPC_TIMEOUT
                    ),
                    "attempt",
                )
                await self._send(
                    self._prompts,
                    lambda b: self._stub.RecordPrompts(
                        model_store_pb2.RecordPromptsRequest(records=b), timeout=RPC_TIMEOUT
                    ),
                    "prompt",
                )
            except grpc.aio.AioRpcError as error:
                metrics.FLUSH_FAILURES.inc()
                log.warning(
                    "ModelStore unreachable; records kept for later",
                    extra={"code": error.code().name, "records": self.depth()},
                )
                return False
            finally:
                metrics.BUFFER_DEPTH.set(self.depth())
            return True

    async def _send(
        self, queue: deque, send: Callable[[list], Awaitable[object]], kind: str
    ) -> None:
        """Sends `queue` in batches; a batch that could not be delivered goes back to the front."""
        while queue:
            batch = _take_batch(queue)
            try:
                await self._deliver(batch, send, kind)
            except BaseException:
                queue.extendleft(reversed(batch))
                raise

    async def _deliver(
        self, batch: list, send: Callable[[list], Awaitable[object]], kind: str
    ) -> None:
        """Sends one batch. A batch ModelStore refuses (not a transport failure) is split in
        halves until the refused records are isolated; those are dropped, counted and logged, so
        one bad record never blocks the others."""
        try:
            await send(batch)
        except grpc.aio.AioRpcError as error:
            if error.code() in RETRYABLE:
                raise
            if len(batch) == 1:
                metrics.RECORDS_REJECTED.labels(kind).inc()
                log.error(
                    "ModelStore refused a record; dropped",
                    extra={"kind": kind, "code": error.code().name, "details": error.details()},
                )
                return
            half = len(batch) // 2
            await self._deliver(batch[:half], send, kind)
            await self._deliver(batch[half:], send, kind)


def _take_batch(queue: deque) -> list:
    """Up to BATCH records from the front of `queue`, at most BATCH_BYTES of them (one at least)."""
    batch: list = []
    size = 0
    while queue and len(batch) < BATCH:
        item_size = queue[0].ByteSize()
        if batch and size + item_size > BATCH_BYTES:
            break
        batch.append(queue.popleft())
        size += item_size
    return batch
