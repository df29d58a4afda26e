"""The live state Selector replicas share (ADR 0016): budget counters leased in slices, signals
(cooldowns, circuits) published by one replica for all, and half-open trial claims.

A slice is granted under the counter's row lock (`INSERT … ON CONFLICT DO UPDATE` locks the row
until the transaction ends), so replicas asking together are served one after the other and the
grants counted in a window never sum above its limit. A grant counts from when it is made until
`count_until`: for a sliding window, the end of its lease plus the window (every request sent
from it was sent before the lease ended, so the provider has forgotten it by then); for a
calendar window (a provider's day), the window's end. Unused parts given back stop counting at
once; a dead replica's grants simply count until `count_until`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aiselector.v1 import model_store_pb2
from services.common import errors
from services.data.schema import SharedBudget, SharedBudgetGrant, SharedSignal, SharedTrial

MAX_ITEMS = 1000
MAX_COUNTER = 200
MAX_REPLICA = 100
MAX_REASON = 500
# A replica that just started reads the signals of this long ago on.
NEW_REPLICA_LOOKBACK = timedelta(minutes=10)
# Signals older than this are deleted (every replica has read them long before).
SIGNAL_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class Ask:
    counter: str
    limit: int
    amount: int
    window_seconds: float
    window_end: datetime | None


def _problems_of_replica(name: str, field: str, problems: list[tuple[str, str]]) -> None:
    if not 0 < len(name) <= MAX_REPLICA:
        problems.append((field, f"must be 1..{MAX_REPLICA} characters"))


def _count(items: Sequence[object], field: str, problems: list[tuple[str, str]]) -> None:
    if len(items) > MAX_ITEMS:
        problems.append((field, f"at most {MAX_ITEMS} items, got {len(items)}"))


def _stamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _moment(message: object, field: str) -> datetime | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def check_sync(request: model_store_pb2.SyncSharedStateRequest) -> list[Ask]:
    """The request's asks, once every field is within its limits (InvalidArgument otherwise)."""
    problems: list[tuple[str, str]] = []
    _problems_of_replica(request.replica, "replica", problems)
    if request.after_signal_id < 0:
        problems.append(("after_signal_id", "must be >= 0"))
    for field in ("signals", "returns", "asks"):
        _count(getattr(request, field), field, problems)
    if (request.asks or request.returns) and not 0.1 <= request.lease_seconds <= 300:
        problems.append(("lease_seconds", "must be 0.1..300"))
    asks = []
    for i, ask in enumerate(request.asks):
        where = f"asks[{i}]"
        if not 0 < len(ask.counter) <= MAX_COUNTER:
            problems.append((f"{where}.counter", f"must be 1..{MAX_COUNTER} characters"))
        if ask.limit < 1:
            problems.append((f"{where}.limit", "must be >= 1"))
        if not 1 <= ask.amount <= max(1, ask.limit):
            problems.append((f"{where}.amount", "must be 1..limit"))
        end = _moment(ask, "window_end")
        if (ask.window_seconds > 0) == (end is not None) or ask.window_seconds < 0:
            problems.append(
                (f"{where}.window_seconds", "set either window_seconds (> 0) or window_end")
            )
        asks.append(Ask(ask.counter, ask.limit, ask.amount, ask.window_seconds, end))
    for i, back in enumerate(request.returns):
        if back.grant_id <= 0 or back.unused < 0:
            problems.append((f"returns[{i}]", "grant_id must be > 0 and unused >= 0"))
    for i, signal in enumerate(request.signals):
        if len(signal.reason) > MAX_REASON:
            problems.append((f"signals[{i}].reason", f"at most {MAX_REASON} characters"))
        if signal.kind == model_store_pb2.SHARED_SIGNAL_KIND_UNSPECIFIED:
            problems.append((f"signals[{i}].kind", "must be set"))
    if problems:
        raise errors.InvalidArgument(problems)
    return asks


async def sync(
    session: AsyncSession,
    request: model_store_pb2.SyncSharedStateRequest,
    asks: list[Ask],
    now: datetime,
) -> model_store_pb2.SyncSharedStateResponse:
    """Closes the returned grants, grants the asks, stores the signals, reads the new ones."""
    holder = request.replica
    for back in request.returns:
        await session.execute(
            update(SharedBudgetGrant)
            .where(SharedBudgetGrant.id == back.grant_id, SharedBudgetGrant.holder == holder)
            .values(
                amount=func.greatest(0, SharedBudgetGrant.amount - back.unused),
                lease_until=func.least(SharedBudgetGrant.lease_until, now),
            )
        )
    lease = timedelta(seconds=request.lease_seconds)
    reply = model_store_pb2.SyncSharedStateResponse()
    # Counters are locked in name order, so two replicas never wait for each other's locks.
    order = sorted(range(len(asks)), key=lambda i: asks[i].counter)
    grants: dict[int, model_store_pb2.BudgetGrant] = {}
    for i in order:
        grants[i] = await _grant(session, holder, asks[i], lease, now)
    reply.grants.extend(grants[i] for i in range(len(asks)))
    if request.signals:
        await session.execute(
            insert(SharedSignal),
            [_signal_row(holder, signal) for signal in request.signals],
        )
        await session.execute(
            delete(SharedSignal).where(SharedSignal.created_at < now - SIGNAL_RETENTION)
        )
    query = select(SharedSignal).order_by(SharedSignal.id).limit(MAX_ITEMS)
    if request.after_signal_id:
        query = query.where(SharedSignal.id > request.after_signal_id)
    else:
        query = query.where(SharedSignal.created_at >= now - NEW_REPLICA_LOOKBACK)
    rows = list((await session.scalars(query)).all())
    reply.signals.extend(_signal_proto(row) for row in rows)
    if rows:
        reply.last_signal_id = rows[-1].id
    elif request.after_signal_id:
        reply.last_signal_id = request.after_signal_id
    else:
        reply.last_signal_id = (
            await session.scalar(select(func.coalesce(func.max(SharedSignal.id), 0))) or 0
        )
    return reply


async def _grant(
    session: AsyncSession, holder: str, ask: Ask, lease: timedelta, now: datetime
) -> model_store_pb2.BudgetGrant:
    """Grants what the counter's window allows of the ask, under the counter's row lock."""
    statement = insert(SharedBudget).values(counter=ask.counter, limit_value=ask.limit)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["counter"], set_={"limit_value": statement.excluded.limit_value}
        )
    )
    grants = SharedBudgetGrant.__table__
    await session.execute(
        delete(SharedBudgetGrant).where(
            SharedBudgetGrant.counter == ask.counter,
            or_(SharedBudgetGrant.count_until <= now, SharedBudgetGrant.amount == 0),
        )
    )
    used, first_free = (
        await session.execute(
            select(
                func.coalesce(func.sum(grants.c.amount), 0), func.min(grants.c.count_until)
            ).where(and_(grants.c.counter == ask.counter, grants.c.count_until > now))
        )
    ).one()
    amount = min(ask.amount, ask.limit - int(used))
    if amount <= 0:
        wait = (first_free - now).total_seconds() if first_free is not None else 1.0
        return model_store_pb2.BudgetGrant(
            counter=ask.counter, retry_after_seconds=max(0.001, round(wait, 3))
        )
    lease_until = now + lease
    if ask.window_end is not None:
        lease_until = min(lease_until, ask.window_end)
        count_until = ask.window_end
    else:
        count_until = lease_until + timedelta(seconds=ask.window_seconds)
    if lease_until <= now:
        return model_store_pb2.BudgetGrant(counter=ask.counter, retry_after_seconds=0.001)
    grant_id = await session.scalar(
        insert(SharedBudgetGrant)
        .values(
            counter=ask.counter,
            holder=holder,
            amount=amount,
            lease_until=lease_until,
            count_until=count_until,
        )
        .returning(SharedBudgetGrant.id)
    )
    return model_store_pb2.BudgetGrant(
        counter=ask.counter,
        grant_id=grant_id or 0,
        amount=amount,
        lease_seconds=(lease_until - now).total_seconds(),
    )


def _signal_row(holder: str, signal: model_store_pb2.SharedSignal) -> dict[str, object]:
    return {
        "holder": holder,
        "model_id": signal.model_id,
        "kind": signal.kind,
        "account": signal.account[:MAX_COUNTER],
        "outcome": signal.outcome,
        "until": _moment(signal, "until"),
        "reason": signal.reason,
        "circuit_opened_at": _moment(signal, "circuit_opened_at"),
        "consecutive_failures": signal.consecutive_failures,
        "failed_trials": signal.failed_trials,
    }


def _signal_proto(row: SharedSignal) -> model_store_pb2.SharedSignal:
    return model_store_pb2.SharedSignal(
        id=row.id,
        replica=row.holder,
        model_id=row.model_id,
        kind=row.kind,  # type: ignore[arg-type]
        account=row.account,
        outcome=row.outcome,  # type: ignore[arg-type]
        until=_stamp(row.until),
        reason=row.reason,
        circuit_opened_at=_stamp(row.circuit_opened_at),
        consecutive_failures=row.consecutive_failures,
        failed_trials=row.failed_trials,
    )


def check_claim(request: model_store_pb2.ClaimTrialRequest) -> None:
    """InvalidArgument naming the field when the claim is malformed."""
    problems: list[tuple[str, str]] = []
    _problems_of_replica(request.replica, "replica", problems)
    if request.model_id <= 0:
        problems.append(("model_id", "must be > 0"))
    if not 0.1 <= request.seconds <= 600:
        problems.append(("seconds", "must be 0.1..600"))
    if problems:
        raise errors.InvalidArgument(problems)


async def claim_trial(
    session: AsyncSession, model_id: int, holder: str, seconds: float, now: datetime
) -> bool:
    """Whether `holder` holds the model's trial claim now: a new claim, its own renewed, or an
    expired one taken over, in one atomic statement (a live claim of another replica is left
    alone)."""
    expires = now + timedelta(seconds=seconds)
    statement = insert(SharedTrial).values(model_id=model_id, holder=holder, expires_at=expires)
    claimed = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["model_id"],
            set_={"holder": holder, "expires_at": expires},
            where=or_(SharedTrial.expires_at <= now, SharedTrial.holder == holder),
        ).returning(SharedTrial.holder)
    )
    return claimed == holder
