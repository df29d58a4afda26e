"""The living catalog in ModelStore: listing state, discovered models and the catalog file, and
the per-model reasoning effort."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
import yaml
from google.protobuf import field_mask_pb2

from aiselector.v1 import common_pb2, model_store_pb2_grpc
from aiselector.v1 import model_store_pb2 as pb
from services.data.app import start_model_store
from tests.data.rpc import applied_catalog, error_reason, ts, violations, write_catalog

SINCE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
REASON = "not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml"


async def _get(stub: model_store_pb2_grpc.ModelStoreStub, name: str) -> common_pb2.Model:
    return (await stub.GetModel(pb.GetModelRequest(name=name))).model


async def test_a_listing_is_stored_shown_and_cleared(model_store_stub):
    model = await _get(model_store_stub, "groq/gpt-oss-120b")
    assert model.listing.unlisted_reason == ""
    assert not model.listing.HasField("unlisted_since")
    assert model.origin == common_pb2.MODEL_ORIGIN_CATALOG

    reply = await model_store_stub.UpdateModelListings(
        pb.UpdateModelListingsRequest(
            listings=[
                common_pb2.ModelListing(
                    model_id=model.id, unlisted_reason=REASON, unlisted_since=ts(SINCE)
                )
            ]
        )
    )
    assert reply.updated_count == 1
    unlisted = await _get(model_store_stub, "groq/gpt-oss-120b")
    assert unlisted.listing.unlisted_reason == REASON
    assert unlisted.listing.unlisted_since.ToDatetime(tzinfo=UTC) == SINCE
    assert unlisted.listing.model_id == model.id
    assert unlisted.is_active  # set aside, not deactivated: the catalog still wants it

    await model_store_stub.UpdateModelListings(
        pb.UpdateModelListingsRequest(listings=[common_pb2.ModelListing(model_id=model.id)])
    )
    listed = await _get(model_store_stub, "groq/gpt-oss-120b")
    assert listed.listing.unlisted_reason == ""
    assert not listed.listing.HasField("unlisted_since")


async def test_bad_listings_name_the_field(model_store_stub):
    model = await _get(model_store_stub, "groq/gpt-oss-120b")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelListings(
            pb.UpdateModelListingsRequest(
                listings=[
                    common_pb2.ModelListing(model_id=0),
                    common_pb2.ModelListing(model_id=model.id, unlisted_reason="gone"),
                    common_pb2.ModelListing(
                        model_id=model.id, unlisted_reason="x" * 2001, unlisted_since=ts(SINCE)
                    ),
                ]
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value).keys() == {
        "listings[0].model_id",
        "listings[1].unlisted_since",
        "listings[2].unlisted_reason",
    }
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelListings(pb.UpdateModelListingsRequest())
    assert "listings" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelListings(
            pb.UpdateModelListingsRequest(listings=[common_pb2.ModelListing(model_id=999_999)])
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "ERROR_REASON_MODEL_NOT_FOUND"


async def test_a_discovered_model_gets_the_providers_defaults_and_nothing_more(model_store_stub):
    reply = await model_store_stub.CreateDiscoveredModel(
        pb.CreateDiscoveredModelRequest(
            provider="openrouter",
            provider_model_id="openai/gpt-oss-20b:free",
            context_tokens=131072,
        )
    )
    model = reply.model
    assert model.name == "openrouter/openai/gpt-oss-20b:free"
    assert model.origin == common_pb2.MODEL_ORIGIN_DISCOVERED
    assert model.is_active
    assert (model.provider, model.provider_model_id) == ("openrouter", "openai/gpt-oss-20b:free")
    assert (model.api_key_env, model.base_url_env) == ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")
    assert model.api_endpoint == "https://openrouter.ai/api/v1"
    assert model.limits.context_tokens == 131072
    assert model.limits.timeout_ms == 60000  # the provider's default
    assert model.limits.max_output_tokens == 0  # no model-level value is copied from a sibling
    assert (model.account_limits.requests_per_minute, model.account_limits.requests_per_day) == (
        20,
        50,
    )
    assert list(model.tags) == []
    assert not model.supports_json
    assert not model.reasoning
    assert not model.HasField("reasoning_effort")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.CreateDiscoveredModel(
            pb.CreateDiscoveredModelRequest(
                provider="openrouter", provider_model_id="openai/gpt-oss-20b:free"
            )
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_a_providers_declared_context_caps_the_listed_one(model_store_stub):
    # Cerebras declares a 65,536-token free context for every model; a list saying more is not
    # believed, and an `@` at the start of an id is dropped from the name.
    bigger = await model_store_stub.CreateDiscoveredModel(
        pb.CreateDiscoveredModelRequest(
            provider="cerebras", provider_model_id="gemma-4-31b", context_tokens=262144
        )
    )
    assert bigger.model.limits.context_tokens == 65536
    cloudflare = await model_store_stub.CreateDiscoveredModel(
        pb.CreateDiscoveredModelRequest(
            provider="cloudflare", provider_model_id="@cf/openai/gpt-oss-20b"
        )
    )
    assert cloudflare.model.name == "cloudflare/cf/openai/gpt-oss-20b"
    assert cloudflare.model.limits.context_tokens == 0


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"provider": "", "provider_model_id": "m"}, "provider", grpc.StatusCode.INVALID_ARGUMENT),
        (
            {"provider": "groq", "provider_model_id": ""},
            "provider_model_id",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"provider": "groq", "provider_model_id": "has space"},
            "provider_model_id",
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ({"provider": "nobody", "provider_model_id": "m"}, "", grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_a_bad_discovered_model_is_refused(model_store_stub, fields, field, code):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.CreateDiscoveredModel(pb.CreateDiscoveredModelRequest(**fields))
    assert caught.value.code() == code
    if field:
        assert field in violations(caught.value)


async def test_the_catalog_file_leaves_discovered_models_and_listings_alone(
    database_url, catalog_path, tmp_path
):
    store = await start_model_store(database_url, catalog_path=catalog_path)
    try:
        async with grpc.aio.insecure_channel(store.address) as channel:
            stub = model_store_pb2_grpc.ModelStoreStub(channel)
            added = await stub.CreateDiscoveredModel(
                pb.CreateDiscoveredModelRequest(
                    provider="openrouter", provider_model_id="openai/gpt-oss-20b:free"
                )
            )
            groq = await _get(stub, "groq/gpt-oss-20b")
            await stub.UpdateModelListings(
                pb.UpdateModelListingsRequest(
                    listings=[
                        common_pb2.ModelListing(
                            model_id=groq.id, unlisted_reason=REASON, unlisted_since=ts(SINCE)
                        )
                    ]
                )
            )
    finally:
        await store.stop()

    again = await applied_catalog(database_url, catalog_path)
    kept = again["openrouter/openai/gpt-oss-20b:free"]
    assert kept.is_active
    assert kept.origin == common_pb2.MODEL_ORIGIN_DISCOVERED
    assert kept.update_time == added.model.update_time
    assert again["groq/gpt-oss-20b"].listing.unlisted_reason == REASON

    # Once the file names it, the file owns it: its fields, and deactivation when it goes again.
    document = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    document["models"].append(
        {
            "name": "openrouter/openai/gpt-oss-20b:free",
            "provider": "openrouter",
            "provider_model_id": "openai/gpt-oss-20b:free",
            "tags": ["code"],
        }
    )
    adopted = (await applied_catalog(database_url, write_catalog(tmp_path, document)))[
        "openrouter/openai/gpt-oss-20b:free"
    ]
    assert adopted.origin == common_pb2.MODEL_ORIGIN_CATALOG
    assert list(adopted.tags) == ["code"]
    assert adopted.id == added.model.id
    dropped = (await applied_catalog(database_url, catalog_path))[
        "openrouter/openai/gpt-oss-20b:free"
    ]
    assert not dropped.is_active


async def test_reasoning_effort_absent_empty_or_a_value(model_store_stub):
    qwen = await _get(model_store_stub, "groq/qwen3.6-27b")
    assert qwen.HasField("reasoning_effort")
    assert qwen.reasoning_effort == "default"
    gpt = await _get(model_store_stub, "groq/gpt-oss-120b")
    assert not gpt.HasField("reasoning_effort")

    mask = field_mask_pb2.FieldMask(paths=["reasoning_effort"])
    cleared = await model_store_stub.UpdateModel(
        pb.UpdateModelRequest(
            model=common_pb2.Model(id=gpt.id, reasoning_effort=""), update_mask=mask
        )
    )
    assert cleared.model.HasField("reasoning_effort")
    assert cleared.model.reasoning_effort == ""
    unset = await model_store_stub.UpdateModel(
        pb.UpdateModelRequest(model=common_pb2.Model(id=gpt.id), update_mask=mask)
    )
    assert not unset.model.HasField("reasoning_effort")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModel(
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=gpt.id, reasoning_effort="very high"), update_mask=mask
            )
        )
    assert "model.reasoning_effort" in violations(caught.value)
