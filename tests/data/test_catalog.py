"""The catalog file: validation with clear messages, and the idempotent upsert at start."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import yaml

from aiselector.v1 import model_store_pb2 as pb
from aiselector.v1 import model_store_pb2_grpc
from services.data.app import start_model_store
from services.data.catalog import (
    ACCOUNT_LIMIT_KEYS,
    LIMIT_KEYS,
    MODEL_FIELDS,
    PROVIDER_FIELDS,
    TAGS,
    CatalogError,
    load_catalog,
)
from tests.data.rpc import attempt


def _write(folder: Path, document: dict) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_repo_catalog_is_valid_and_current(catalog_path):
    specs = {spec.name: spec for spec in load_catalog(catalog_path)}
    active = [spec for spec in specs.values() if spec.is_active]
    per_provider = Counter(spec.provider for spec in active)
    # Every provider with a free tier today offers at least two models.
    assert set(per_provider) == {"gemini", "groq", "cerebras", "cloudflare", "openrouter"}
    assert min(per_provider.values()) >= 2
    assert not any(spec.provider == "github" for spec in specs.values())
    assert {spec.is_active for spec in specs.values() if spec.provider == "sambanova"} == {False}
    assert not specs["ollama/llama3.2"].is_active
    assert all(set(spec.tags) <= set(TAGS) for spec in specs.values())
    # OpenRouter's :free limits hold for the account, not for each model.
    router = [spec for spec in active if spec.provider == "openrouter"]
    assert {(s.account_requests_per_minute, s.account_requests_per_day) for s in router} == {
        (20, 50)
    }
    assert {s.requests_per_day for s in router} == {0}
    # Groq counts max_tokens against its 8K TPM: prompt + max_output must fit.
    groq = [spec for spec in active if spec.tokens_per_minute]
    assert all(s.max_output_tokens < s.tokens_per_minute / 2 for s in groq)


def test_catalog_header_documents_every_field(catalog_path):
    header = catalog_path.read_text(encoding="utf-8").split("\nproviders:")[0]
    fields = {*TAGS, *LIMIT_KEYS, *ACCOUNT_LIMIT_KEYS, *PROVIDER_FIELDS, *MODEL_FIELDS}
    assert {name for name in fields if name not in header} == set()


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
        (
            lambda d: d["providers"][0].update(account_limits={"context": 9}),
            "provider `acme`: unknown field `account_limits.context`",
        ),
        (
            lambda d: d["providers"][0].update(account_limits={"rpm": "many"}),
            "provider `acme` account_limits: field `rpm` must be an integer",
        ),
        (
            lambda d: d["providers"][0].update(account_limits={"tpd": -5}),
            "model `acme/one`: field `account_limits.tokens_per_day`",
        ),
        (lambda d: d["providers"][0].update(active="no"), "provider `acme`: field `active`"),
        (
            lambda d: (d["providers"][0].update(active=False), d["models"][0].update(active=True)),
            "model `acme/one`: field `active` is true, but its provider is inactive",
        ),
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


def test_provider_level_activity_and_account_limits_reach_every_model(tmp_path):
    document = {
        "providers": [
            {
                "name": "acme",
                "api_format": "openai",
                "api_endpoint": "http://127.0.0.1:9/v1",
                "api_key_env": "ACME_API_KEY",
                "limits": {"rpm": 5},
                "account_limits": {"rpm": 20, "rpd": 50, "tpm": 9000, "tpd": 10**6},
            },
            {
                "name": "gone",
                "api_format": "openai",
                "api_endpoint": "http://127.0.0.1:9/v1",
                "active": False,
            },
        ],
        "models": [
            {"name": "acme/one", "provider": "acme", "provider_model_id": "one"},
            {"name": "acme/two", "provider": "acme", "provider_model_id": "two"},
            {"name": "gone/old", "provider": "gone", "provider_model_id": "old"},
        ],
    }
    specs = {spec.name: spec for spec in load_catalog(_write(tmp_path, document))}
    for name in ("acme/one", "acme/two"):
        spec = specs[name]
        assert spec.is_active
        assert spec.requests_per_minute == 5
        assert (
            spec.account_requests_per_minute,
            spec.account_requests_per_day,
            spec.account_tokens_per_minute,
            spec.account_tokens_per_day,
        ) == (20, 50, 9000, 10**6)
    assert not specs["gone/old"].is_active
    assert specs["gone/old"].account_requests_per_minute == 0


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
        groq = before["groq/gpt-oss-120b"]
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
    assert again["groq/gpt-oss-120b"].request_count == 1

    document = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    document["models"] = [m for m in document["models"] if m["name"] != "groq/gpt-oss-120b"]
    gemini = next(m for m in document["models"] if m["name"] == "gemini/gemini-3.6-flash")
    gemini["limits"]["rpd"] = 500
    router = next(p for p in document["providers"] if p["name"] == "openrouter")
    router["account_limits"]["rpd"] = 1000
    store = await start_model_store(database_url, catalog_path=_write(tmp_path, document))
    try:
        after = await _models(store)
    finally:
        await store.stop()
    removed = after["groq/gpt-oss-120b"]
    assert not removed.is_active
    assert removed.request_count == 1
    assert after["gemini/gemini-3.6-flash"].limits.requests_per_day == 500
    assert (
        after["gemini/gemini-3.6-flash"].update_time
        != before["gemini/gemini-3.6-flash"].update_time
    )
    assert after["openrouter/gemma-4-31b"].account_limits.requests_per_day == 1000
    unchanged = after["sambanova/llama-3.3-70b"]
    assert unchanged.update_time == before["sambanova/llama-3.3-70b"].update_time


async def test_an_invalid_catalog_stops_the_start(database_url, tmp_path):
    path = _write(tmp_path, {"providers": [], "models": [{"name": "x/y", "provider": "x"}]})
    with pytest.raises(CatalogError, match="model `x/y`: field `provider`"):
        await start_model_store(database_url, catalog_path=path)
