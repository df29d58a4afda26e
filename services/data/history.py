"""Prompt history: idempotent recording (with per-minute counts), filtered keyset listing, lookup,
retention, and the counts of a window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Row, and_, delete, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aiselector.v1 import common_pb2
from services.common import errors
from services.data import client_keys, models
from services.data.schema import ClientKey, ModelAttempt, PromptCountsMinutely, PromptHistory


@dataclass(frozen=True)
class PromptEntry:
    """One history row to record; `created_at` None means "now"."""

    record_id: str
    user_id: str
    caller: str
    prompt_text: str
    selected_model_id: int | None
    response_text: str
    response_time_seconds: float
    success: bool
    error_message: str
    attempts: int
    fallback_used: bool
    requested_model: str
    status_code: str
    created_at: datetime | None
    client_key_id: int | None = None
    tokens: int = 0


@dataclass(frozen=True)
class HistoryFilter:
    """Filters of a history listing; every field is optional."""

    user_id: str = ""
    caller: str = ""
    success: bool | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the last row of the previous page (newest first)."""

    created_at: datetime
    id: int


@dataclass(frozen=True)
class PromptCounts:
    """Prompt records of a span: received, answered, answered after a failover."""

    start: datetime | None
    prompts: int = 0
    answered: int = 0
    failovers: int = 0


_INSERT_PROMPTS = (
    insert(PromptHistory)
    .on_conflict_do_nothing(index_elements=["record_id"])
    .returning(
        PromptHistory.created_at,
        PromptHistory.success,
        PromptHistory.fallback_used,
        PromptHistory.client_key_id,
        PromptHistory.tokens,
    )
)
_count_insert = insert(PromptCountsMinutely)
_COUNTED = ("prompts", "answered", "failovers")
_UPSERT_COUNTS = _count_insert.on_conflict_do_update(
    index_elements=["bucket_start"],
    set_={c: PromptCountsMinutely.__table__.c[c] + _count_insert.excluded[c] for c in _COUNTED},
)


def minute_of(moment: datetime) -> datetime:
    """Start of the UTC minute holding `moment`."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _minute_increments(stored: Sequence[Row]) -> list[dict[str, object]]:
    minutes: dict[datetime, list[int]] = {}
    for created_at, success, fallback_used, *_ in stored:
        counts = minutes.setdefault(minute_of(created_at), [0, 0, 0])
        counts[0] += 1
        counts[1] += int(success)
        counts[2] += int(success and fallback_used)
    return [
        {"bucket_start": start, **dict(zip(_COUNTED, counts, strict=True))}
        for start, counts in sorted(minutes.items())
    ]


async def record_prompts(session: AsyncSession, entries: Sequence[PromptEntry]) -> int:
    """Stores the entries whose record id is new, counts them in their minutes and adds the new
    ones of client keys to their keys' usage; returns how many were stored. A key id no key has is
    stored as none. Minutes are upserted in time order, so concurrent batches cannot deadlock."""
    await models.require_models(
        session, [e.selected_model_id for e in entries if e.selected_model_id]
    )
    named = {e.client_key_id for e in entries if e.client_key_id}
    known = (
        set((await session.scalars(select(ClientKey.id).where(ClientKey.id.in_(named)))).all())
        if named
        else set()
    )
    now = datetime.now(UTC)
    rows = [
        {
            "record_id": e.record_id,
            "user_id": e.user_id,
            "caller": e.caller,
            "prompt_text": e.prompt_text,
            "selected_model_id": e.selected_model_id,
            "response_text": e.response_text,
            "response_time": Decimal(str(round(e.response_time_seconds, 3))),
            "success": e.success,
            "error_message": e.error_message,
            "attempts": e.attempts,
            "fallback_used": e.fallback_used,
            "requested_model": e.requested_model,
            "status_code": e.status_code,
            "created_at": e.created_at if e.created_at is not None else now,
            "client_key_id": e.client_key_id if e.client_key_id in known else None,
            "tokens": e.tokens,
        }
        for e in sorted(entries, key=lambda e: e.record_id)
    ]
    # Rows as parameters (executemany): the statement compiles once, whatever the batch size.
    stored = (await session.execute(_INSERT_PROMPTS, rows)).all()
    if stored:
        await session.execute(_UPSERT_COUNTS, _minute_increments(stored))
    await client_keys.add_usage(
        session,
        [
            client_keys.UsageDelta(
                row.client_key_id,
                row.created_at.astimezone(UTC).date(),
                row.tokens,
                not row.success,
            )
            for row in stored
            if row.client_key_id is not None
        ],
    )
    return len(stored)


async def prompt_counts(
    session: AsyncSession, start: datetime, end: datetime
) -> tuple[PromptCounts, list[PromptCounts]]:
    """The window's total and its UTC hours with prompts, oldest first, from the minute counts.

    Cost depends on the minutes in the window (a primary-key range), not on the history stored.
    """
    table = PromptCountsMinutely
    hour = func.date_trunc("hour", table.bucket_start, "UTC").label("hour")
    rows = await session.execute(
        select(hour, func.sum(table.prompts), func.sum(table.answered), func.sum(table.failovers))
        .where(table.bucket_start >= start, table.bucket_start < end)
        .group_by(hour)
        .order_by(hour)
    )
    hours = [PromptCounts(at.astimezone(UTC), int(p), int(a), int(f)) for at, p, a, f in rows]
    total = PromptCounts(
        None,
        sum(h.prompts for h in hours),
        sum(h.answered for h in hours),
        sum(h.failovers for h in hours),
    )
    return total, hours


def _conditions(where: HistoryFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.user_id:
        conditions.append(PromptHistory.user_id == where.user_id)
    if where.caller:
        conditions.append(PromptHistory.caller == where.caller)
    if where.success is not None:
        conditions.append(PromptHistory.success.is_(where.success))
    if where.start_time is not None:
        conditions.append(PromptHistory.created_at >= where.start_time)
    if where.end_time is not None:
        conditions.append(PromptHistory.created_at < where.end_time)
    return conditions


async def list_history(
    session: AsyncSession, where: HistoryFilter, after: Cursor | None, limit: int
) -> tuple[list[PromptHistory], Cursor | None]:
    """One page, newest first, and the cursor of the next page (None on the last page)."""
    conditions = _conditions(where)
    if after is not None:
        conditions.append(
            tuple_(PromptHistory.created_at, PromptHistory.id) < tuple_(after.created_at, after.id)
        )
    query = (
        select(PromptHistory)
        .where(and_(True, *conditions))
        .order_by(PromptHistory.created_at.desc(), PromptHistory.id.desc())
        .limit(limit + 1)
    )
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Cursor(last.created_at, last.id)


async def get_history(session: AsyncSession, record_id: int) -> PromptHistory:
    """The history row with this id; NotFound otherwise."""
    row = await session.get(PromptHistory, record_id)
    if row is None:
        raise errors.NotFound(
            f"no prompt history record with id {record_id}",
            reason=common_pb2.ERROR_REASON_HISTORY_NOT_FOUND,
        )
    return row


async def purge(
    session: AsyncSession, older_than: datetime | None, keep_latest: int
) -> tuple[int, int]:
    """Deletes history and attempts before `older_than`, and history beyond the newest
    `keep_latest` (0 = no count limit). Hourly buckets and minute counts stay: they are the
    aggregate.
    Returns (prompts deleted, attempts deleted)."""
    prompts = attempts = 0
    if older_than is not None:
        result = await session.execute(
            delete(PromptHistory).where(PromptHistory.created_at < older_than)
        )
        prompts += result.rowcount
        result = await session.execute(
            delete(ModelAttempt).where(ModelAttempt.start_time < older_than)
        )
        attempts += result.rowcount
    if keep_latest > 0:
        boundary = (
            await session.execute(
                select(PromptHistory.created_at, PromptHistory.id)
                .order_by(PromptHistory.created_at.desc(), PromptHistory.id.desc())
                .offset(keep_latest - 1)
                .limit(1)
            )
        ).first()
        if boundary is not None:
            result = await session.execute(
                delete(PromptHistory).where(
                    or_(
                        PromptHistory.created_at < boundary.created_at,
                        and_(
                            PromptHistory.created_at == boundary.created_at,
                            PromptHistory.id < boundary.id,
                        ),
                    )
                )
            )
            prompts += result.rowcount
    return prompts, attempts
