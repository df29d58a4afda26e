"""Helpers for the ModelStore tests: timestamps, attempts, catalog files, and reading rich gRPC
errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc
import yaml
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc
from services.data.app import start_model_store


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def write_catalog(folder: Path, document: dict) -> Path:
    """`document` written as `folder/catalog.yaml`."""
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


async def applied_catalog(database_url: str, catalog_path: Path) -> dict[str, common_pb2.Model]:
    """Every model by name once a ModelStore has applied `catalog_path` at its start (it is
    stopped again)."""
    store = await start_model_store(database_url, catalog_path=catalog_path)
    try:
        async with grpc.aio.insecure_channel(store.address) as channel:
            reply = await model_store_pb2_grpc.ModelStoreStub(channel).ListModels(
                model_store_pb2.ListModelsRequest(page_size=1000)
            )
    finally:
        await store.stop()
    return {m.name: m for m in reply.models}


def attempt(
    model_id: int,
    start: datetime,
    outcome: int = common_pb2.OUTCOME_SUCCESS,
    latency_ms: int = 200,
    tokens: int = 0,
    attempt_id: str | None = None,
) -> common_pb2.Attempt:
    """One attempt of a user prompt."""
    return common_pb2.Attempt(
        attempt_id=attempt_id or uuid.uuid4().hex,
        model_id=model_id,
        start_time=ts(start),
        latency_ms=latency_ms,
        outcome=outcome,
        http_status=200 if outcome == common_pb2.OUTCOME_SUCCESS else 500,
        source=common_pb2.ATTEMPT_SOURCE_USER,
        request_id="req",
        prompt_tokens=tokens,
    )


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo.reason of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError("no ErrorInfo in the status")


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """Field → description of the BadRequest detail of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest in the status")
