"""Client keys: storing them by hash, revoking them, the shared counting of their request limits,
and their usage per day."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aiselector.v1 import common_pb2
from services.common import errors
from services.data.schema import ClientKey, ClientKeyUsage


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits; 0 = no limit."""

    requests_per_minute: int = 0
    requests_per_day: int = 0
    tokens_per_day: int = 0


@dataclass(frozen=True)
class Grant:
    """What AcquireClientQuota answers: requests granted, else when and which limit."""

    granted: int
    retry_after_seconds: float = 0.0
    limit: str = ""
    revoked: bool = False


@dataclass(frozen=True)
class Usage:
    """One key's use on one day."""

    client_key_id: int
    name: str
    day: date
    requests: int
    tokens: int
    failures: int


@dataclass(frozen=True)
class UsageDelta:
    """What one newly recorded history row adds to its key's day."""

    client_key_id: int
    day: date
    tokens: int
    failed: bool


def _not_found(key_id: int) -> errors.NotFound:
    return errors.NotFound(
        f"client_key_id: no client key with id {key_id}",
        reason=common_pb2.ERROR_REASON_CLIENT_KEY_NOT_FOUND,
    )


async def add_key(
    session: AsyncSession, name: str, prefix: str, sha256: str, limits: KeyLimits
) -> ClientKey:
    """Stores a new key; AlreadyExists when its hash is taken (a key generated twice)."""
    row = ClientKey(
        name=name,
        key_prefix=prefix,
        key_sha256=sha256,
        requests_per_minute=limits.requests_per_minute,
        requests_per_day=limits.requests_per_day,
        tokens_per_day=limits.tokens_per_day,
        bucket_requests=float(limits.requests_per_minute),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise errors.AlreadyExists(
            "key_sha256: a client key with this hash exists already",
            reason=common_pb2.ERROR_REASON_INVALID_ARGUMENT,
        ) from None
    await session.refresh(row)
    return row


async def lookup(session: AsyncSession, sha256: str) -> ClientKey:
    """The key with this hash (revoked or not); NotFound otherwise."""
    row = await session.scalar(select(ClientKey).where(ClientKey.key_sha256 == sha256))
    if row is None:
        raise errors.NotFound(
            "no client key has this hash", reason=common_pb2.ERROR_REASON_CLIENT_KEY_NOT_FOUND
        )
    return row


async def list_keys(session: AsyncSession, *, include_revoked: bool) -> list[ClientKey]:
    """Keys, newest first."""
    query = select(ClientKey).order_by(ClientKey.id.desc())
    if not include_revoked:
        query = query.where(ClientKey.revoked_at.is_(None))
    return list((await session.scalars(query)).all())


async def revoke(session: AsyncSession, key_id: int, now: datetime) -> ClientKey:
    """Marks the key revoked (keeping an earlier revocation's time); NotFound otherwise."""
    row = await session.get(ClientKey, key_id, with_for_update=True)
    if row is None:
        raise _not_found(key_id)
    if row.revoked_at is None:
        row.revoked_at = now
        await session.flush()
    return row


def _next_midnight(now: datetime) -> float:
    """Seconds from `now` to the next midnight UTC."""
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()


async def acquire(session: AsyncSession, key_id: int, wanted: int, now: datetime) -> Grant:
    """Grants up to `wanted` requests of the key's limits, counted at once (row lock: replicas
    asking together are served one after the other, and never grant more than the limits)."""
    row = await session.get(ClientKey, key_id, with_for_update=True)
    if row is None:
        raise _not_found(key_id)
    if row.revoked_at is not None:
        return Grant(0, revoked=True)
    today = now.date()
    if row.tokens_per_day:
        used = await session.scalar(
            select(ClientKeyUsage.tokens).where(
                ClientKeyUsage.client_key_id == key_id, ClientKeyUsage.day == today
            )
        )
        if (used or 0) >= row.tokens_per_day:
            return Grant(0, _next_midnight(now), f"{row.tokens_per_day} tokens per day")
    grant = wanted
    granted_today = row.granted_requests if row.granted_day == today else 0
    if row.requests_per_day:
        left = row.requests_per_day - granted_today
        if left <= 0:
            return Grant(0, _next_midnight(now), f"{row.requests_per_day} requests per day")
        grant = min(grant, left)
    bucket = 0.0
    if row.requests_per_minute:
        rpm = row.requests_per_minute
        elapsed = 0.0 if row.bucket_at is None else max(0.0, (now - row.bucket_at).total_seconds())
        bucket = min(float(rpm), row.bucket_requests + elapsed * rpm / 60.0)
        if bucket < 1.0:
            wait = (1.0 - bucket) * 60.0 / rpm
            return Grant(0, math.ceil(wait * 1000) / 1000, f"{rpm} requests per minute")
        grant = min(grant, int(bucket))
        row.bucket_requests = bucket - grant
        row.bucket_at = now
    row.granted_day = today
    row.granted_requests = granted_today + grant
    await session.flush()
    return Grant(grant)


async def add_usage(session: AsyncSession, deltas: Sequence[UsageDelta]) -> None:
    """Adds newly recorded history rows to their keys' days (one upsert per key and day)."""
    totals: dict[tuple[int, date], list[int]] = {}
    for delta in deltas:
        total = totals.setdefault((delta.client_key_id, delta.day), [0, 0, 0])
        total[0] += 1
        total[1] += delta.tokens
        total[2] += int(delta.failed)
    for (key_id, day), (requests, tokens, failures) in sorted(totals.items()):
        statement = insert(ClientKeyUsage).values(
            client_key_id=key_id, day=day, requests=requests, tokens=tokens, failures=failures
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["client_key_id", "day"],
                set_={
                    "requests": ClientKeyUsage.requests + statement.excluded.requests,
                    "tokens": ClientKeyUsage.tokens + statement.excluded.tokens,
                    "failures": ClientKeyUsage.failures + statement.excluded.failures,
                },
            )
        )


async def usage(session: AsyncSession, key_id: int, since: date) -> list[Usage]:
    """Usage rows from `since` on (one key, or every key when `key_id` is 0), newest day first."""
    query = (
        select(ClientKeyUsage, ClientKey.name)
        .join(ClientKey, ClientKey.id == ClientKeyUsage.client_key_id)
        .where(ClientKeyUsage.day >= since)
        .order_by(ClientKeyUsage.day.desc(), ClientKeyUsage.client_key_id)
    )
    if key_id:
        query = query.where(ClientKeyUsage.client_key_id == key_id)
    return [
        Usage(u.client_key_id, name, u.day, u.requests, u.tokens, u.failures)
        for u, name in (await session.execute(query)).all()
    ]
