"""A database that cannot be reached is UNAVAILABLE with a retry delay, not INTERNAL."""

from __future__ import annotations

import socket

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc
from services.common.channels import open_channel
from services.common.server import Registration, start_grpc_server
from services.data import db
from services.data.server import SERVICE_NAME, ModelStoreServicer


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_database_is_unavailable_with_retry_info():
    engine = db.create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/x")
    server = await start_grpc_server(
        [
            Registration(
                SERVICE_NAME,
                model_store_pb2_grpc.add_ModelStoreServicer_to_server,
                ModelStoreServicer(db.session_factory(engine)),
            )
        ],
        "127.0.0.1:0",
    )
    try:
        async with open_channel(f"127.0.0.1:{server.port}", private=True) as channel:
            stub = model_store_pb2_grpc.ModelStoreStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListModels(model_store_pb2.ListModelsRequest(), timeout=10)
    finally:
        await server.stop(0)
        await engine.dispose()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = rpc_status.from_call(caught.value).details
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert details[0].Unpack(info)
    assert info.reason == "ERROR_REASON_DEPENDENCY_UNAVAILABLE"
    assert details[1].Unpack(retry)
    assert retry.retry_delay.seconds > 0
