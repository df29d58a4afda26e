"""Sends attempts, history rows and availability to ModelStore in background batches.

The request path only appends to bounded in-memory buffers; a background task delivers them. While
ModelStore is unreachable the records wait and are delivered when it is back. With a spool
(`services.selector.spool`, ADR 6): once half the buffer is waiting for an unreachable ModelStore,
the waiting records move to a spool file (while the spool is under its disk cap) and are delivered
from it when ModelStore is back; at shutdown, what cannot be delivered within
SHUTDOWN_DELIVERY_SECONDS is spilled too; files left in the folder are delivered at the next start.
Without a spool, or beyond its cap, a full buffer drops its oldest records (counted, logged and
exported as a metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc
from services.selector import metrics
from services.selector.spool import Records, Spool, decode

log = logging.getLogger(__name__)

BATCH = 500
# Batches stay well under the 4 MiB gRPC message limit (a prompt record can be ~40 KB).
BATCH_BYTES = 2 * 1024 * 1024
# Failures after which a batch is kept and sent again; any other refusal is about the records.
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
RPC_TIMEOUT = 5.0
# Delivery time at shutdown before the rest is spilled: after the gRPC server's grace (5 s) the
# spill still happens well before a supervisor's SIGKILL (`make run` and compose wait 10 s).
SHUTDOWN_DELIVERY_SECONDS = 3.0


class Recorder:
    """Bounded buffers of records plus the task that flushes them."""

    def __init__(
        self,
        stub: model_store_pb2_grpc.ModelStoreStub,
        *,
        capacity: int,
        interval: float,
        availability_source: Callable[[], list[common_pb2.ModelAvailability]] | None = None,
        spool: Spool | None = None,
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
        self._spool = spool
        # Waiting records that make the flusher spill them when ModelStore is unreachable.
        self._spill_at = max(1, capacity // 2)
        # Overflow files this process wrote; delivered (oldest first) once ModelStore is back.
        self._spilled: deque[Path] = deque()
        self._spool_full = False
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
        # `while`: records put back after a failed spill may have overfilled the buffer.
        while self.depth() >= self._capacity:
            (queue or self._attempts or self._prompts).popleft()
            self.dropped += 1
            metrics.BUFFER_DROPPED.labels(kind).inc()
            log.warning(
                "record buffer full, oldest record dropped", extra={"dropped": self.dropped}
            )
        queue.append(item)
        metrics.BUFFER_DEPTH.set(self.depth())
        if len(queue) >= BATCH or (self._spool and self.depth() >= self._spill_at):
            self._wake.set()

    def start(self) -> None:
        """Starts the background flusher."""
        self._task = asyncio.create_task(self._run(), name="record-flusher")

    async def stop(self, timeout: float = SHUTDOWN_DELIVERY_SECONDS) -> None:
        """Stops the flusher and delivers what is left within `timeout`; spills the rest."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.depth() or self._collect_availability():
                    if not await self.flush():
                        break
        self._collect_availability()
        left = Records(list(self._attempts), list(self._prompts), list(self._availability.values()))
        if not left:
            return
        if self._spool is not None:
            try:
                path = self._spool.write(left)
            except OSError:
                log.exception("records could not be spilled at shutdown")
            else:
                self._attempts.clear()
                self._prompts.clear()
                self._availability.clear()
                _count_spilled(left, "shutdown")
                log.warning(
                    "records spilled at shutdown; delivered at the next start",
                    extra={"records": len(left), "file": str(path)},
                )
                return
        log.error("records not delivered at shutdown", extra={"records": len(left)})

    async def _run(self) -> None:
        backoff = self._interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            try:
                delivered = await self.flush()
                if not delivered and self._spool and self.depth() >= self._spill_at:
                    await self._spill_overflow(self._spool)
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
        """Delivers what is buffered or spilled; False when ModelStore could not be reached."""
        async with self._flushing:
            try:
                self._collect_availability()
                if self._availability:
                    batch = list(self._availability.values())
                    await self._deliver(batch, self._update_availability, "availability")
                    for item in batch:
                        if self._availability.get(item.model_id) is item:
                            del self._availability[item.model_id]
                await self._send(self._attempts, self._record_attempts, "attempt")
                await self._send(self._prompts, self._record_prompts, "prompt")
                if self._spool and self._spilled:
                    await self._deliver_spilled(self._spool)
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

    async def replay_spool(self) -> None:
        """Delivers the spool files in the folder (this or an earlier process left), oldest first.

        AioRpcError when ModelStore cannot be reached (the files not delivered stay). A file another
        process is delivering is skipped; one that cannot be read or removed is logged and left.
        """
        if self._spool is None:
            return
        async with self._flushing:
            try:
                paths = self._spool.files()
            except OSError:
                log.exception("spool folder unreadable; nothing replayed")
                return
            for path in paths:
                records = await self._deliver_file(self._spool, path)
                if records:
                    log.info("spool file delivered", extra={"file": str(path), "records": records})
            metrics.SPOOL_BYTES.set(self._spool.size())

    async def _deliver_spilled(self, spool: Spool) -> None:
        """Delivers the overflow files this process wrote, oldest first."""
        try:
            while self._spilled:
                await self._deliver_file(spool, self._spilled[0])
                # Delivered, held by another process, or left for the next start.
                self._spilled.popleft()
        finally:
            metrics.SPOOL_BYTES.set(spool.size())

    async def _deliver_file(self, spool: Spool, path: Path) -> int:
        """Delivers one spool file, then removes (or, if damaged, quarantines) it; returns how many
        records it held, 0 when another process holds it or it is gone. A file that cannot be
        read or removed is logged and left where it is."""
        try:
            with spool.claim(path) as data:
                if data is None:
                    return 0
                records, problem = decode(data)
                if records.availability:
                    await self._deliver(
                        records.availability, self._update_availability, "availability"
                    )
                await self._send(deque(records.attempts), self._record_attempts, "attempt")
                await self._send(deque(records.prompts), self._record_prompts, "prompt")
                spool.settle(path, problem)
        except OSError:
            log.exception("spool file left in place", extra={"file": str(path)})
            return 0
        return len(records)

    async def _spill_overflow(self, spool: Spool) -> None:
        """Moves the buffered attempts and history rows to a spool file unless the spool is full."""
        async with self._flushing:
            if spool.size() >= spool.max_bytes:
                if not self._spool_full:
                    log.warning(
                        "spool full; a full record buffer drops its oldest records",
                        extra={"max_bytes": spool.max_bytes},
                    )
                self._spool_full = True
                return
            self._spool_full = False
            records = Records(list(self._attempts), list(self._prompts))
            self._attempts.clear()
            self._prompts.clear()
            try:
                path = await asyncio.to_thread(spool.write, records)
            except OSError:
                log.exception("records could not be spilled; kept in the buffer")
                self._attempts.extendleft(reversed(records.attempts))
                self._prompts.extendleft(reversed(records.prompts))
                return
            self._spilled.append(path)
            _count_spilled(records, "overflow")
            metrics.SPOOL_BYTES.set(spool.size())
            log.warning(
                "ModelStore unreachable; buffered records spilled",
                extra={"records": len(records), "file": str(path)},
            )

    def _update_availability(self, batch: list) -> Awaitable[object]:
        return self._stub.UpdateModelAvailability(
            model_store_pb2.UpdateModelAvailabilityRequest(availabilities=batch),
            timeout=RPC_TIMEOUT,
        )

    def _record_attempts(self, batch: list) -> Awaitable[object]:
        return self._stub.RecordAttempts(
            model_store_pb2.RecordAttemptsRequest(attempts=batch), timeout=RPC_TIMEOUT
        )

    def _record_prompts(self, batch: list) -> Awaitable[object]:
        return self._stub.RecordPrompts(
            model_store_pb2.RecordPromptsRequest(records=batch), timeout=RPC_TIMEOUT
        )

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


def _count_spilled(records: Records, reason: str) -> None:
    metrics.RECORDS_SPILLED.labels("attempt", reason).inc(len(records.attempts))
    metrics.RECORDS_SPILLED.labels("prompt", reason).inc(len(records.prompts))
    metrics.RECORDS_SPILLED.labels("availability", reason).inc(len(records.availability))


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
