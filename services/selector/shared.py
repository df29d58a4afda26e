"""The live state Selector replicas share through ModelStore (docs/adr/0016-shared-state.md).

`Slices` holds the slices of the shared budget counters this replica leased: the hot path
(`LiveState`) checks and spends them in memory. `SharedState` runs beside it: once per interval,
or at once when a slice runs low or the replica learned something, one `SyncSharedState` call
gives back what lapsed unused, leases new slices, publishes the cooldowns and circuits learned
here and applies those learned by the others. `claim_trial` makes one replica the one that probes
a half-open circuit. When ModelStore cannot be reached the replica keeps spending only what it
holds (never more than the limits allow) and says so in its log and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc
from services.selector import metrics
from services.selector.state import LiveState, Need, Signal

log = logging.getLogger(__name__)

# Share of a sliding-window counter's limit leased at once (at least what one request needs).
SLICE_SHARE = 0.1
# Share of a calendar-day counter's limit leased at once. Small: what a replica that dies leased
# of a day counter stays counted until the day ends (ModelStore cannot know how much of it was
# sent), so this bounds that loss per dead replica and counter.
DAY_SLICE_SHARE = 0.005
# Most requests leased at once.
MAX_REQUEST_SLICE = 50
# A counter with no slice (being leased) is retried this soon, in seconds.
LEASE_WAIT_SECONDS = 0.1
# Longest wait for ModelStore in one exchange, in seconds.
STORE_TIMEOUT_SECONDS = 2.0
# Longest a request waits for a slice being leased before it is planned, in seconds.
SETTLE_SECONDS = 0.25

_KINDS = {
    Signal.KEY: model_store_pb2.SHARED_SIGNAL_KIND_KEY_COOLDOWN,
    Signal.ACCOUNT: model_store_pb2.SHARED_SIGNAL_KIND_ACCOUNT_COOLDOWN,
    Signal.MODEL: model_store_pb2.SHARED_SIGNAL_KIND_MODEL_COOLDOWN,
    Signal.CIRCUIT: model_store_pb2.SHARED_SIGNAL_KIND_CIRCUIT,
}
_KIND_NAMES = {value: name for name, value in _KINDS.items()}


def replica_name() -> str:
    """A name no other replica shares: host, process and a random part (several Selectors may
    run in one process, as in tests)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def slice_size(need: Need) -> int:
    """How much of a counter to lease at once."""
    share = SLICE_SHARE if need.window_seconds else DAY_SLICE_SHARE
    size = max(need.amount, math.ceil(need.limit * share))
    if need.label.startswith("requests"):
        size = min(size, MAX_REQUEST_SLICE)
    return min(max(size, need.amount), need.limit)


@dataclass
class _Grant:
    grant_id: int
    left: int
    expires: float


@dataclass
class _Slice:
    need: Need
    grants: list[_Grant] = field(default_factory=list)
    blocked_until: float = 0.0
    wanted: bool = False
    asking: bool = False
    last_used: float = 0.0

    def left(self, now: float) -> int:
        return sum(g.left for g in self.grants if g.expires > now)


class Slices:
    """The slices of shared budget counters this replica holds (LiveState's `Allowance`)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.held: dict[str, _Slice] = {}
        self.reachable = True

    def block(self, needs: Sequence[Need], now: float) -> tuple[str, float | None] | None:
        for need in needs:
            held = self.held.get(need.counter)
            if held is None:
                held = self.held[need.counter] = _Slice(need)
            held.need = need
            if held.blocked_until > now:
                return (
                    f"{need.label} budget spent ({need.limit}, counted across replicas)",
                    held.blocked_until,
                )
            if held.left(now) < need.amount:
                if not self.reachable:
                    return (
                        f"{need.label} budget: ModelStore unreachable and the slice this "
                        "replica held is spent",
                        now + LEASE_WAIT_SECONDS,
                    )
                # Being leased: the model shows as it is; `covers` refuses to admit meanwhile.
                held.wanted = True
                self._wake()
        return None

    def covers(self, needs: Sequence[Need], now: float) -> bool:
        for need in needs:
            held = self.held.get(need.counter)
            if held is None or held.left(now) < need.amount:
                if held is not None:
                    held.wanted = True
                self._wake()
                return False
        return True

    def spend(self, needs: Sequence[Need], now: float) -> None:
        for need in needs:
            held = self.held.get(need.counter)
            if held is None:
                continue
            amount = need.amount
            for grant in sorted(held.grants, key=lambda g: g.expires):
                if grant.expires <= now or amount <= 0:
                    continue
                taken = min(grant.left, amount)
                grant.left -= taken
                amount -= taken
            held.last_used = now
            if held.left(now) < max(need.amount, slice_size(need) // 2 + 1):
                held.wanted = True
                self._wake()

    def pending(self) -> bool:
        """Whether some counter waits for a slice."""
        return any(h.wanted or h.asking for h in self.held.values())


class SharedState:
    """Keeps the replica's slices and signals in step with ModelStore's shared state."""

    def __init__(
        self,
        store: model_store_pb2_grpc.ModelStoreStub,
        live: LiveState,
        *,
        replica: str,
        interval: float,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._live = live
        self.replica = replica
        self.interval = interval
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._event = asyncio.Event()
        self.slices = Slices(self.wake)
        self.cursor = 0
        self.syncs = 0
        self._synced: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        live.allowance = self.slices
        live.on_signal = self.wake

    def wake(self) -> None:
        """Asks for an exchange now (a slice ran low, or something was learned)."""
        self._event.set()

    async def settled(self) -> None:
        """Returns at once unless a counter waits for a slice: then after the next exchange (at
        most SETTLE_SECONDS), so that a request is planned over the slices leased for it. In the
        common case (slices held) it costs nothing."""
        if not self.slices.pending() or not self.slices.reachable:
            return
        if self._synced is None:
            self._synced = asyncio.get_running_loop().create_future()
        synced = self._synced
        self.wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(synced), SETTLE_SECONDS)

    async def run(self) -> None:
        """Forever: one exchange per interval, or sooner when woken."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), self.interval)
            self._event.clear()
            synced, self._synced = self._synced, None
            try:
                await self.sync_once()
            except Exception:
                log.exception("shared state exchange failed unexpectedly")
            finally:
                if synced is not None and not synced.done():
                    synced.set_result(None)
            # At most one exchange per 5 ms however often it is woken.
            await asyncio.sleep(0.005)

    async def sync_once(self, *, give_back_all: bool = False) -> None:
        """One exchange with ModelStore (one at a time)."""
        async with self._lock:
            await self._sync(give_back_all)

    async def _sync(self, give_back_all: bool) -> None:
        now = self._clock()
        signals = self._live.take_signals()
        returns, asks = self._plan(now, give_back_all)
        request = model_store_pb2.SyncSharedStateRequest(
            replica=self.replica,
            after_signal_id=self.cursor,
            signals=[_signal_proto(s) for s in signals],
            returns=[model_store_pb2.BudgetReturn(grant_id=i, unused=u) for i, u in returns],
            asks=[_ask_proto(need, amount) for need, amount in asks],
            lease_seconds=self.lease_seconds,
        )
        try:
            reply = await self._store.SyncSharedState(request, timeout=STORE_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            for need, _ in asks:
                held = self.slices.held.get(need.counter)
                if held is not None:
                    held.asking = False
            self._live.outbox[:0] = signals[-1000:]
            metrics.SHARED_SYNC_FAILURES.inc()
            if self.slices.reachable:
                log.warning(
                    "shared state unreachable: spending only the budget slices held",
                    extra={"code": error.code().name},
                )
            self.slices.reachable = False
            metrics.SHARED_STATE_UP.set(0)
            return
        if not self.slices.reachable:
            log.info("shared state reachable again")
        self.slices.reachable = True
        metrics.SHARED_STATE_UP.set(1)
        self.syncs += 1
        for (need, _), grant in zip(asks, reply.grants, strict=True):
            held = self.slices.held.get(need.counter)
            if held is None:
                continue
            held.asking = False
            if grant.amount > 0:
                held.grants.append(_Grant(grant.grant_id, grant.amount, now + grant.lease_seconds))
                held.blocked_until = 0.0
            else:
                held.blocked_until = now + grant.retry_after_seconds
        applied = self._clock()
        for message in reply.signals:
            if message.replica != self.replica:
                self._live.apply(_signal(message), applied)
        self.cursor = reply.last_signal_id

    def _plan(self, now: float, give_back_all: bool) -> tuple[list[tuple[int, int]], list]:
        """(grants to give back, slices to ask for): grants about to lapse go back with what is
        left of them; a counter used within the lease (or waiting for a slice) gets a new one."""
        margin = self.interval * 1.5 + STORE_TIMEOUT_SECONDS / 4
        returns: list[tuple[int, int]] = []
        asks: list[tuple[Need, int]] = []
        for counter, held in list(self.slices.held.items()):
            keep = []
            for grant in held.grants:
                if give_back_all or grant.expires - margin <= now:
                    returns.append((grant.grant_id, max(0, grant.left)))
                else:
                    keep.append(grant)
            held.grants = keep
            if give_back_all:
                continue
            need = held.need
            if held.need.window_seconds == 0 and held.need.window_end <= now:
                del self.slices.held[counter]
                continue
            recent = held.last_used > now - self.lease_seconds
            low = held.left(now) < max(need.amount, slice_size(need) // 2 + 1)
            if held.blocked_until > now or not low or not (held.wanted or recent):
                if not (held.grants or held.wanted or held.asking or recent):
                    del self.slices.held[counter]
                continue
            held.wanted = False
            held.asking = True
            asks.append((need, slice_size(need)))
        return returns, asks

    async def claim_trial(self, model_id: int, seconds: float) -> bool:
        """Whether this replica makes the model's half-open trial (True, logged, when ModelStore
        cannot say: a trial is a single probe)."""
        try:
            reply = await self._store.ClaimTrial(
                model_store_pb2.ClaimTrialRequest(
                    model_id=model_id, replica=self.replica, seconds=max(0.1, min(600, seconds))
                ),
                timeout=STORE_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError:
            log.warning("trial claim failed: ModelStore unreachable; probing from this replica")
            return True
        return reply.claimed


def _ask_proto(need: Need, amount: int) -> model_store_pb2.BudgetAsk:
    ask = model_store_pb2.BudgetAsk(
        counter=need.counter[:200], limit=need.limit, amount=max(1, min(amount, need.limit))
    )
    if need.window_seconds > 0:
        ask.window_seconds = need.window_seconds
    else:
        ask.window_end.FromNanoseconds(int(need.window_end * 1e9))
    return ask


def _stamp_seconds(message: object, name: str) -> float | None:
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    return getattr(message, name).ToNanoseconds() / 1e9


def _signal_proto(signal: Signal) -> model_store_pb2.SharedSignal:
    message = model_store_pb2.SharedSignal(
        model_id=signal.model_id,
        kind=_KINDS[signal.kind],
        account=signal.account,
        outcome=signal.outcome,  # type: ignore[arg-type]
        reason=signal.reason[:500],
        consecutive_failures=signal.consecutive_failures,
        failed_trials=signal.failed_trials,
    )
    if signal.until is not None:
        message.until.FromNanoseconds(int(signal.until * 1e9))
    if signal.opened_at is not None:
        message.circuit_opened_at.FromNanoseconds(int(signal.opened_at * 1e9))
    return message


def _signal(message: model_store_pb2.SharedSignal) -> Signal:
    return Signal(
        model_id=message.model_id,
        kind=_KIND_NAMES.get(message.kind, Signal.MODEL),
        account=message.account,
        outcome=message.outcome,
        until=_stamp_seconds(message, "until"),
        reason=message.reason,
        opened_at=_stamp_seconds(message, "circuit_opened_at"),
        consecutive_failures=message.consecutive_failures,
        failed_trials=message.failed_trials,
    )
