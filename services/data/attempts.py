"""Recording attempt outcomes (idempotent, exact under concurrency) and reading statistics windows.

A batch is recorded in one transaction: the attempt rows are inserted with
`ON CONFLICT (attempt_id) DO NOTHING RETURNING`, and only the rows that were new are added to the
hourly buckets (`x = x + excluded.x`) and to the lifetime counters (`SET x = x + n`). Every
statement takes its row locks in a sorted order (attempt id, bucket key, model id), so concurrent
batches wait for each other but cannot deadlock.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.data import models
from services.data.schema import (
    LATENCY_BOUNDS_MS,
    LATENCY_COLUMNS,
    NOT_FAILURES,
    OUTCOMES,
    AiModel,
    ModelAttempt,
    ModelStatsHourly,
    outcome_column,
)

_COUNT_COLUMNS = (
    *(outcome_column(o) for o in OUTCOMES),
    "success_latency_ms_sum",
    *LATENCY_COLUMNS,
    "tokens",
)


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as the Selector reports it (outcome and source as lower-case names)."""

    attempt_id: str
    model_id: int
    start_time: datetime
    latency_ms: int
    outcome: str
    http_status: int
    source: str
    request_id: str
    tokens: int
    error: str


@dataclass(frozen=True)
class RecordResult:
    """How many attempts of a batch were new."""

    recorded: int
    duplicates: int


def hour_of(moment: datetime) -> datetime:
    """Start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def latency_column(latency_ms: int) -> str:
    """The histogram column a successful attempt of `latency_ms` falls into (bounds inclusive)."""
    return LATENCY_COLUMNS[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)]


def _bucket_increments(attempts: Sequence[AttemptRecord]) -> list[dict[str, object]]:
    buckets: dict[tuple[int, datetime], dict[str, int]] = {}
    for attempt in attempts:
        key = (attempt.model_id, hour_of(attempt.start_time))
        counts = buckets.setdefault(key, dict.fromkeys(_COUNT_COLUMNS, 0))
        counts[outcome_column(attempt.outcome)] += 1
        counts["tokens"] += attempt.tokens
        if attempt.outcome == "success":
            counts["success_latency_ms_sum"] += attempt.latency_ms
            counts[latency_column(attempt.latency_ms)] += 1
    return [
        {"model_id": model_id, "bucket_start": start, **counts}
        for (model_id, start), counts in sorted(buckets.items())
    ]


@dataclass
class _Totals:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    success_ms: int = 0
    newest: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))


def _model_increments(attempts: Sequence[AttemptRecord]) -> dict[int, _Totals]:
    totals: dict[int, _Totals] = defaultdict(_Totals)
    for attempt in attempts:
        total = totals[attempt.model_id]
        total.requests += 1
        if attempt.outcome == "success":
            total.successes += 1
            total.success_ms += attempt.latency_ms
        elif attempt.outcome not in NOT_FAILURES:
            total.failures += 1
        total.newest = max(total.newest, attempt.start_time)
    return totals


_INSERT_ATTEMPTS = (
    insert(ModelAttempt)
    .on_conflict_do_nothing(index_elements=["attempt_id"])
    .returning(ModelAttempt.attempt_id)
)
_bucket_insert = insert(ModelStatsHourly)
_UPSERT_BUCKETS = _bucket_insert.on_conflict_do_update(
    index_elements=["model_id", "bucket_start"],
    set_={c: ModelStatsHourly.__table__.c[c] + _bucket_insert.excluded[c] for c in _COUNT_COLUMNS},
)


async def record_attempts(session: AsyncSession, attempts: Sequence[AttemptRecord]) -> RecordResult:
    """Stores the new attempts of a batch and adds them to buckets and counters, in one go."""
    await models.require_models(session, [a.model_id for a in attempts])
    rows = [
        {
            "attempt_id": a.attempt_id,
            "model_id": a.model_id,
            "start_time": a.start_time,
            "latency_ms": a.latency_ms,
            "outcome": a.outcome,
            "http_status": a.http_status,
            "source": a.source,
            "request_id": a.request_id,
            "tokens": a.tokens,
            "error": a.error,
        }
        for a in sorted(attempts, key=lambda a: a.attempt_id)
    ]
    # Rows as parameters (executemany): the statement compiles once, whatever the batch size.
    new_ids = set((await session.scalars(_INSERT_ATTEMPTS, rows)).all())
    seen: set[str] = set()
    new: list[AttemptRecord] = []
    for attempt in attempts:
        if attempt.attempt_id in new_ids and attempt.attempt_id not in seen:
            seen.add(attempt.attempt_id)
            new.append(attempt)
    if new:
        await session.execute(_UPSERT_BUCKETS, _bucket_increments(new))
        for model_id, total in sorted(_model_increments(new).items()):
            await session.execute(
                update(AiModel)
                .where(AiModel.id == model_id)
                .values(
                    request_count=AiModel.request_count + total.requests,
                    success_count=AiModel.success_count + total.successes,
                    failure_count=AiModel.failure_count + total.failures,
                    total_response_time=AiModel.total_response_time
                    + Decimal(total.success_ms) / 1000,
                    last_checked=func.greatest(
                        func.coalesce(AiModel.last_checked, total.newest), total.newest
                    ),
                )
            )
    return RecordResult(recorded=len(new), duplicates=len(attempts) - len(new))


@dataclass(frozen=True)
class Bucket:
    """One model's hour: counts per outcome, success latency sum and histogram, tokens."""

    start_time: datetime
    outcome_counts: dict[str, int]
    success_latency_ms_sum: int
    success_latency_histogram: tuple[int, ...]
    tokens: int


@dataclass
class ModelWindow:
    """One model's statistics window and its budget use today and in the last minute."""

    model_id: int
    buckets: list[Bucket] = field(default_factory=list)
    requests_last_minute: int = 0
    requests_today: int = 0
    tokens_today: int = 0


_OUTCOME_COLUMNS = tuple(outcome_column(o) for o in OUTCOMES)
_READ_COLUMNS = (
    "model_id",
    "bucket_start",
    *_OUTCOME_COLUMNS,
    "success_latency_ms_sum",
    *LATENCY_COLUMNS,
    "tokens",
)
_HISTOGRAM = slice(3 + len(OUTCOMES), 3 + len(OUTCOMES) + len(LATENCY_COLUMNS))


def _bucket(row: Sequence[Any]) -> Bucket:
    counts = row[2 : 2 + len(OUTCOMES)]
    return Bucket(
        start_time=row[1],
        outcome_counts={o: n for o, n in zip(OUTCOMES, counts, strict=True) if n},
        success_latency_ms_sum=row[2 + len(OUTCOMES)],
        success_latency_histogram=tuple(row[_HISTOGRAM]),
        tokens=row[-1],
    )


async def statistics(
    session: AsyncSession,
    model_ids: Sequence[int],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[ModelWindow]:
    """Buckets with start in [start, end) per model, plus budget use (`now` is the server time).

    Cost depends on the number of models and hours, not on how much history is stored: buckets by
    primary key, the last minute by an index range on (model_id, start_time).
    """
    if model_ids:
        await models.require_models(session, model_ids)
        ids = sorted(set(model_ids))
    else:
        ids = await models.all_model_ids(session)
    windows = {model_id: ModelWindow(model_id) for model_id in ids}
    if not ids:
        return []
    table = ModelStatsHourly
    columns = table.__table__.c
    rows = await session.execute(
        select(*(columns[name] for name in _READ_COLUMNS))
        .where(table.model_id.in_(ids), table.bucket_start >= start, table.bucket_start < end)
        .order_by(table.model_id, table.bucket_start)
    )
    for row in rows:
        windows[row[0]].buckets.append(_bucket(row))
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    requests = sum((table.__table__.c[outcome_column(o)] for o in OUTCOMES), start=0)
    today_rows = await session.execute(
        select(table.model_id, func.sum(requests), func.sum(table.tokens))
        .where(table.model_id.in_(ids), table.bucket_start >= today)
        .group_by(table.model_id)
    )
    for model_id, request_sum, token_sum in today_rows:
        windows[model_id].requests_today = int(request_sum or 0)
        windows[model_id].tokens_today = int(token_sum or 0)
    minute_rows = await session.execute(
        select(ModelAttempt.model_id, func.count())
        .where(
            ModelAttempt.model_id.in_(ids),
            ModelAttempt.start_time >= now - timedelta(seconds=60),
        )
        .group_by(ModelAttempt.model_id)
    )
    for model_id, count in minute_rows:
        windows[model_id].requests_last_minute = int(count)
    return [windows[model_id] for model_id in ids]
