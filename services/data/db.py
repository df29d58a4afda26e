"""Engine and per-RPC sessions; a lost database becomes UNAVAILABLE for the caller."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from aiselector.v1 import common_pb2
from services.common import errors

log = logging.getLogger(__name__)

# Seconds to wait for a connection before the database counts as unreachable.
CONNECT_TIMEOUT_SECONDS = 5.0
# Seconds a client is told to wait before retrying after the database was unreachable.
RETRY_AFTER_SECONDS = 2.0


def async_url(url: str) -> str:
    """`url` with the asyncpg driver (accepts `postgres://`, `postgresql://`, `postgresql+…://`)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine that re-checks pooled connections and gives up connecting quickly."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The process's one session factory."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _unreachable(error: BaseException) -> bool:
    if isinstance(error, OSError | TimeoutError | exc.TimeoutError):
        return True
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, exc.OperationalError | exc.InterfaceError
        )
    return False


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session in one transaction for one RPC; connection failures become UNAVAILABLE."""
    try:
        async with sessions() as session, session.begin():
            yield session
    except errors.ServiceError:
        raise
    except Exception as error:
        if not _unreachable(error):
            raise
        log.warning("database unreachable", extra={"error": type(error).__name__})
        raise errors.Unavailable(
            "the database is unreachable; try again shortly",
            retry_after_seconds=RETRY_AFTER_SECONDS,
            reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
        ) from error
