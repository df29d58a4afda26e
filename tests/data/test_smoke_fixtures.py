"""The shared fixtures: a fresh database per test, and a ModelStore with the catalog applied."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from aiselector.v1 import model_store_pb2


async def _count_models(url: str) -> int:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM ai_models"))
    await engine.dispose()
    return int(count)


async def test_each_test_gets_an_empty_migrated_database(database_url):
    assert await _count_models(database_url) == 0


async def test_model_store_serves_the_repo_catalog(model_store, model_store_stub):
    reply = await model_store_stub.ListModels(model_store_pb2.ListModelsRequest(), timeout=5)
    names = {model.name for model in reply.models}
    assert "groq/gpt-oss-120b" in names
    assert model_store.port > 0
