"""Catalog queries: list, get, create, update, and the persisted availability and listing state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import errors
from services.data.catalog import ModelSpec
from services.data.schema import AiModel


@dataclass(frozen=True)
class Availability:
    """Cooldown and circuit state of one model as the Selector persists it."""

    model_id: int
    cooldown_until: datetime | None
    cooldown_reason: str
    cooldown_outcome: str
    consecutive_failures: int
    circuit_opened_at: datetime | None


@dataclass(frozen=True)
class Listing:
    """What model discovery concluded about one model: set aside (a reason and since when), or
    listed (an empty reason, no time)."""

    model_id: int
    unlisted_reason: str
    unlisted_since: datetime | None


async def list_models(
    session: AsyncSession, *, active_only: bool, after_id: int, limit: int
) -> list[AiModel]:
    """Up to `limit` models with id > `after_id`, ordered by id."""
    query = select(AiModel).where(AiModel.id > after_id).order_by(AiModel.id).limit(limit)
    if active_only:
        query = query.where(AiModel.is_active.is_(True))
    return list((await session.scalars(query)).all())


async def get_model(session: AsyncSession, *, model_id: int = 0, name: str = "") -> AiModel:
    """The model with this id (or name); NotFound otherwise."""
    query = select(AiModel).where(AiModel.id == model_id if model_id else AiModel.name == name)
    row = await session.scalar(query)
    if row is None:
        what = f"id {model_id}" if model_id else f"name {name!r}"
        raise errors.NotFound(f"no model with {what}")
    return row


async def _name_taken(session: AsyncSession, name: str, except_id: int = 0) -> bool:
    query = select(AiModel.id).where(AiModel.name == name, AiModel.id != except_id)
    return await session.scalar(query) is not None


async def create_model(session: AsyncSession, spec: ModelSpec) -> AiModel:
    """Inserts a model; AlreadyExists when the name is taken."""
    if await _name_taken(session, spec.name):
        raise errors.AlreadyExists(f"a model named {spec.name!r} exists already")
    row = AiModel(**spec.columns())
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def update_model(session: AsyncSession, model_id: int, changes: Mapping[str, Any]) -> AiModel:
    """Sets the catalog `changes` (column → value) on a model; NotFound / AlreadyExists."""
    row = await get_model(session, model_id=model_id)
    new_name = changes.get("name")
    if new_name is not None and await _name_taken(session, new_name, except_id=model_id):
        raise errors.AlreadyExists(f"a model named {new_name!r} exists already")
    for column, value in changes.items():
        setattr(row, column, value)
    row.updated_at = func.now()
    await session.flush()
    await session.refresh(row)
    return row


async def existing_ids(session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Those of `ids` that name a model."""
    if not ids:
        return set()
    return set((await session.scalars(select(AiModel.id).where(AiModel.id.in_(ids)))).all())


async def require_models(session: AsyncSession, ids: Sequence[int]) -> None:
    """NotFound naming the first of `ids` that is no model."""
    missing = sorted(set(ids) - await existing_ids(session, ids))
    if missing:
        raise errors.NotFound(f"no model with id {missing[0]}")


async def all_model_ids(session: AsyncSession) -> list[int]:
    """Every model id, ascending."""
    return list((await session.scalars(select(AiModel.id).order_by(AiModel.id))).all())


async def _store_each(session: AsyncSession, states: Sequence[Availability | Listing]) -> int:
    """Sets each state's fields on its model (in id order, so concurrent batches cannot deadlock);
    NotFound when one does not exist. Returns how many models were named."""
    await require_models(session, [state.model_id for state in states])
    for state in sorted(states, key=lambda s: s.model_id):
        values = {k: v for k, v in asdict(state).items() if k != "model_id"}
        await session.execute(update(AiModel).where(AiModel.id == state.model_id).values(values))
    return len({state.model_id for state in states})


async def store_availability(session: AsyncSession, states: Sequence[Availability]) -> int:
    """Replaces the availability of each model named; NotFound when one does not exist."""
    return await _store_each(session, states)


async def store_listings(session: AsyncSession, listings: Sequence[Listing]) -> int:
    """Replaces the listing state of each model named; NotFound when one does not exist."""
    return await _store_each(session, listings)
