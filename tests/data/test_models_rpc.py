"""Catalog RPCs through a real client: list/get/create/update, availability, and their errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2

from aiselector.v1 import common_pb2
from aiselector.v1 import model_store_pb2 as pb
from tests.data.rpc import error_reason, ts, violations


def new_model(name: str = "acme/tiny-1") -> common_pb2.Model:
    return common_pb2.Model(
        name=name,
        provider="acme",
        api_endpoint="http://127.0.0.1:9/acme/v1",
        api_format=common_pb2.API_FORMAT_OPENAI,
        provider_model_id="tiny-1",
        api_key_env="ACME_API_KEY",
        base_url_env="ACME_BASE_URL",
        limits=common_pb2.ModelLimits(requests_per_minute=5, tokens_per_day=10**6, timeout_ms=900),
        tags=["json", "code"],
        supports_json=True,
        is_active=True,
    )


async def test_list_models_pages_through_the_catalog_once_each(model_store_stub):
    everything = await model_store_stub.ListModels(pb.ListModelsRequest(page_size=1000))
    seen: list[int] = []
    token = ""
    while True:
        page = await model_store_stub.ListModels(
            pb.ListModelsRequest(page_size=4, page_token=token)
        )
        seen += [m.id for m in page.models]
        token = page.next_page_token
        if not token:
            break
    assert seen == [m.id for m in everything.models] == sorted(seen)
    assert len(seen) >= 13


async def test_active_only_hides_the_inactive_ollama_entry(model_store_stub):
    active = await model_store_stub.ListModels(pb.ListModelsRequest(active_only=True))
    names = {m.name for m in active.models}
    assert "ollama/llama3.2" not in names
    assert "gemini/gemini-3.6-flash" in names
    assert all(m.is_active for m in active.models)


async def test_catalog_models_carry_their_limits(model_store_stub):
    async def get(name: str) -> common_pb2.Model:
        return (await model_store_stub.GetModel(pb.GetModelRequest(name=name))).model

    gemini = await get("gemini/gemini-3.6-flash")
    assert (gemini.limits.requests_per_minute, gemini.limits.requests_per_day) == (10, 20)
    assert gemini.api_format == common_pb2.API_FORMAT_GEMINI
    assert gemini.api_key_env == "GOOGLE_AI_STUDIO_API_KEY"
    groq = await get("groq/gpt-oss-120b")
    assert (groq.limits.tokens_per_minute, groq.limits.max_output_tokens) == (8000, 2048)
    cerebras = await get("cerebras/gpt-oss-120b")
    assert (cerebras.limits.requests_per_minute, cerebras.limits.tokens_per_day) == (5, 10**6)
    cloudflare = await get("cloudflare/llama-3.3-70b-instruct-fp8-fast")
    assert "{CLOUDFLARE_ACCOUNT_ID}" in cloudflare.api_endpoint
    assert cloudflare.account_limits.requests_per_minute == 300
    openrouter = await get("openrouter/gemma-4-31b")
    assert (openrouter.limits.requests_per_minute, openrouter.limits.requests_per_day) == (0, 0)
    account = openrouter.account_limits
    assert (account.requests_per_minute, account.requests_per_day) == (20, 50)
    assert not (await get("sambanova/gpt-oss-120b")).is_active


async def test_create_then_get_by_id_and_name(model_store_stub):
    created = (await model_store_stub.CreateModel(pb.CreateModelRequest(model=new_model()))).model
    assert created.id > 0
    assert created.request_count == 0
    assert created.create_time.seconds > 0
    by_id = (await model_store_stub.GetModel(pb.GetModelRequest(id=created.id))).model
    by_name = (await model_store_stub.GetModel(pb.GetModelRequest(name="acme/tiny-1"))).model
    assert by_id == by_name == created
    assert list(by_id.tags) == ["json", "code"]
    assert by_id.limits.tokens_per_day == 10**6


async def test_create_duplicate_name_is_already_exists(model_store_stub):
    model = new_model("groq/gpt-oss-120b")
    model.provider = "groq"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.CreateModel(pb.CreateModelRequest(model=model))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(caught.value) == "ERROR_REASON_MODEL_ALREADY_EXISTS"


async def test_create_invalid_model_names_each_field(model_store_stub):
    model = new_model("no slash")
    model.api_format = common_pb2.API_FORMAT_UNSPECIFIED
    model.tags.append("telepathy")
    model.api_key_env = "lower-case"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.CreateModel(pb.CreateModelRequest(model=model))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(caught.value) == "ERROR_REASON_INVALID_ARGUMENT"
    fields = violations(caught.value)
    assert {"model.name", "model.api_format", "model.tags", "model.api_key_env"} <= set(fields)
    assert "telepathy" in fields["model.tags"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetModelRequest(), "model"),
        (pb.GetModelRequest(id=-3), "id"),
    ],
)
async def test_get_model_without_a_valid_key_is_invalid(model_store_stub, request_, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.GetModel(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(caught.value)


async def test_get_unknown_model_is_not_found(model_store_stub):
    for request in (pb.GetModelRequest(id=99999), pb.GetModelRequest(name="nobody/none")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await model_store_stub.GetModel(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "ERROR_REASON_MODEL_NOT_FOUND"


async def test_update_changes_only_the_masked_fields(model_store_stub):
    created = (await model_store_stub.CreateModel(pb.CreateModelRequest(model=new_model()))).model
    change = common_pb2.Model(
        id=created.id,
        is_active=False,
        provider="ignored-because-not-masked",
        limits=common_pb2.ModelLimits(requests_per_day=42),
    )
    mask = field_mask_pb2.FieldMask(paths=["is_active", "limits.requests_per_day"])
    updated = (
        await model_store_stub.UpdateModel(pb.UpdateModelRequest(model=change, update_mask=mask))
    ).model
    assert not updated.is_active
    assert updated.limits.requests_per_day == 42
    assert updated.limits.requests_per_minute == 5
    assert updated.provider == "acme"
    assert updated.update_time.ToDatetime() >= created.update_time.ToDatetime()


async def test_account_limits_are_stored_updated_and_only_budgets(model_store_stub):
    model = new_model()
    model.account_limits.CopyFrom(
        common_pb2.ModelLimits(requests_per_minute=20, requests_per_day=50, tokens_per_minute=8000)
    )
    created = (await model_store_stub.CreateModel(pb.CreateModelRequest(model=model))).model
    assert created.account_limits == model.account_limits
    change = common_pb2.Model(
        id=created.id, account_limits=common_pb2.ModelLimits(requests_per_day=1000)
    )
    mask = field_mask_pb2.FieldMask(paths=["account_limits.requests_per_day"])
    updated = (
        await model_store_stub.UpdateModel(pb.UpdateModelRequest(model=change, update_mask=mask))
    ).model
    assert (
        updated.account_limits.requests_per_minute,
        updated.account_limits.requests_per_day,
    ) == (
        20,
        1000,
    )
    sized = new_model("acme/tiny-2")
    sized.account_limits.context_tokens = 4096
    sized.account_limits.tokens_per_day = -1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.CreateModel(pb.CreateModelRequest(model=sized))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = violations(caught.value)
    assert "budgets, not sizes" in fields["model.account_limits.context_tokens"]
    assert "positive" in fields["model.account_limits.tokens_per_day"]


async def test_update_errors(model_store_stub):
    created = (await model_store_stub.CreateModel(pb.CreateModelRequest(model=new_model()))).model
    cases = [
        (
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=created.id, success_count=7),
                update_mask=field_mask_pb2.FieldMask(paths=["success_count"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "update_mask.paths",
        ),
        (
            pb.UpdateModelRequest(model=common_pb2.Model(id=created.id)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "update_mask.paths",
        ),
        (
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=created.id, api_endpoint="ftp://x"),
                update_mask=field_mask_pb2.FieldMask(paths=["api_endpoint"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model.api_endpoint",
        ),
        (
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=98765, is_active=True),
                update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
            ),
            grpc.StatusCode.NOT_FOUND,
            None,
        ),
        (
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=created.id, name="groq/gpt-oss-120b"),
                update_mask=field_mask_pb2.FieldMask(paths=["name", "provider"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model.provider",
        ),
    ]
    for request, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await model_store_stub.UpdateModel(request)
        assert caught.value.code() == code, request
        if field:
            assert field in violations(caught.value)


async def test_rename_onto_a_taken_name_is_already_exists(model_store_stub):
    created = (await model_store_stub.CreateModel(pb.CreateModelRequest(model=new_model()))).model
    await model_store_stub.CreateModel(pb.CreateModelRequest(model=new_model("acme/tiny-2")))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModel(
            pb.UpdateModelRequest(
                model=common_pb2.Model(id=created.id, name="acme/tiny-2"),
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            )
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_availability_is_stored_and_returned_with_the_model(model_store_stub):
    model = (await model_store_stub.GetModel(pb.GetModelRequest(name="groq/gpt-oss-120b"))).model
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    state = common_pb2.ModelAvailability(
        model_id=model.id,
        cooldown_until=ts(until),
        cooldown_reason="model not found at provider — update the catalog",
        cooldown_outcome=common_pb2.OUTCOME_PERMANENT,
        consecutive_failures=3,
        circuit_opened_at=ts(until - timedelta(minutes=5)),
    )
    reply = await model_store_stub.UpdateModelAvailability(
        pb.UpdateModelAvailabilityRequest(availabilities=[state])
    )
    assert reply.updated_count == 1
    stored = (await model_store_stub.GetModel(pb.GetModelRequest(id=model.id))).model
    assert stored.availability == state
    assert stored.update_time == model.update_time

    cleared = common_pb2.ModelAvailability(model_id=model.id)
    await model_store_stub.UpdateModelAvailability(
        pb.UpdateModelAvailabilityRequest(availabilities=[cleared])
    )
    stored = (await model_store_stub.GetModel(pb.GetModelRequest(id=model.id))).model
    assert stored.availability == cleared
    assert not stored.availability.HasField("cooldown_until")


async def test_availability_errors(model_store_stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelAvailability(
            pb.UpdateModelAvailabilityRequest(
                availabilities=[common_pb2.ModelAvailability(model_id=1, consecutive_failures=-1)]
            )
        )
    assert "availabilities[0].consecutive_failures" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelAvailability(pb.UpdateModelAvailabilityRequest())
    assert "availabilities" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.UpdateModelAvailability(
            pb.UpdateModelAvailabilityRequest(
                availabilities=[common_pb2.ModelAvailability(model_id=424242)]
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_models_rejects_bad_paging(model_store_stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.ListModels(pb.ListModelsRequest(page_size=1001))
    assert "page_size" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.ListModels(pb.ListModelsRequest(page_token="not-a-token!"))
    assert "page_token" in violations(caught.value)
    first = await model_store_stub.ListModels(pb.ListModelsRequest(page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.ListModels(
            pb.ListModelsRequest(page_size=2, active_only=True, page_token=first.next_page_token)
        )
    assert "page_token" in violations(caught.value)
