"""The catalog file: validation with clear messages, and the idempotent upsert at start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import yaml

from aiselector.v1 import model_store_pb2 as pb
from aiselector.v1 import model_store_pb2_grpc
from services.data.app import start_model_store
from services.data.catalog import TAGS, CatalogError, load_catalog
from tests.data.rpc import attempt


def _write(folder: Path, document: dict) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_repo_catalog_is_valid_and_covers_the_seed(catalog_path):
    specs = {spec.name: spec for spec in load_catalog(catalog_path)}
    providers = {spec.provider for spec in specs.values()}
    assert {"gemini", "groq", "cerebras", "sambanova", "huggingface", "cloudflare"} <= providers
    assert {"openrouter", "github", "ollama"} <= providers
    assert not specs["ollama/llama3.2"].is_active
    assert all(set(spec.tags) <= set(TAGS) for spec in specs.values())
    header = catalog_path.read_text(encoding="utf-8").split("\nproviders:")[0]
    assert all(tag in header for tag in TAGS)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["models"][0].update(provider="nobody"), "model `acme/one`: field `provider`"),
        (lambda d: d["models"][0].update(tags=["psychic"]), "model `acme/one`: field `tags`"),
        (lambda d: d["models"][0].update(limits={"rpm": -1}), "field `limits.requests_per_minute`"),
        (lambda d: d["models"][0].update(limits={"rps": 1}), "unknown field `limits.rps`"),
        (lambda d: d["models"][0].update(active="yes"), "model `acme/one`: field `active`"),
        (lambda d: d["providers"][0].update(api_format="soap"), "field `api_format`"),
        (lambda d: d["models"].append(dict(d["models"][0])), "field `name` is repeated"),
        (lambda d: d["models"][0].update(name="Bad Name"), "field `name`"),
    ],
)
def test_invalid_catalog_names_the_entry_and_field(tmp_path, mutate, message):
    document = {
        "providers": [
            {"name": "acme", "api_format": "openai", "api_endpoint": "http://127.0.0.1:9/v1"}
        ],
        "models": [{"name": "acme/one", "provider": "acme", "provider_model_id": "one"}],
    }
    load_catalog(_write(tmp_path, document))
    mutate(document)
    with pytest.raises(CatalogError) as caught:
        load_catalog(_write(tmp_path, document))
    assert message in str(caught.value)


async def _models(store) -> dict[str, object]:
    async with grpc.aio.insecure_channel(store.address) as channel:
        stub = model_store_pb2_grpc.ModelStoreStub(channel)
        reply = await stub.ListModels(pb.ListModelsRequest())
        return {m.name: m for m in reply.models}


async def test_reapplying_changes_nothing_and_removal_deactivates(
    database_url, catalog_path, tmp_path
):
    store = await start_model_store(database_url, catalog_path=catalog_path)
    try:
        before = await _models(store)
        groq = before["groq/llama-3.3-70b-versatile"]
        async with grpc.aio.insecure_channel(store.address) as channel:
            await model_store_pb2_grpc.ModelStoreStub(channel).RecordAttempts(
                pb.RecordAttemptsRequest(attempts=[attempt(groq.id, datetime.now(UTC))])
            )
    finally:
        await store.stop()

    store = await start_model_store(database_url, catalog_path=catalog_path)
    try:
        again = await _models(store)
    finally:
        await store.stop()
    assert again.keys() == before.keys()
    for name, model in before.items():
        assert again[name].update_time == model.update_time, name
        assert again[name].id == model.id
    assert again["groq/llama-3.3-70b-versatile"].request_count == 1

    document = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    document["models"] = [
        m for m in document["models"] if m["name"] != "groq/llama-3.3-70b-versatile"
    ]
    gemini = next(m for m in document["models"] if m["name"] == "gemini/gemini-2.5-flash")
    gemini["limits"]["rpd"] = 500
    store = await start_model_store(database_url, catalog_path=_write(tmp_path, document))
    try:
        after = await _models(store)
    finally:
        await store.stop()
    removed = after["groq/llama-3.3-70b-versatile"]
    assert not removed.is_active
    assert removed.request_count == 1
    assert after["gemini/gemini-2.5-flash"].limits.requests_per_day == 500
    assert (
        after["gemini/gemini-2.5-flash"].update_time
        != before["gemini/gemini-2.5-flash"].update_time
    )
    unchanged = after["sambanova/llama-3.3-70b"]
    assert unchanged.update_time == before["sambanova/llama-3.3-70b"].update_time


async def test_an_invalid_catalog_stops_the_start(database_url, tmp_path):
    path = _write(tmp_path, {"providers": [], "models": [{"name": "x/y", "provider": "x"}]})
    with pytest.raises(CatalogError, match="model `x/y`: field `provider`"):
        await start_model_store(database_url, catalog_path=path)
