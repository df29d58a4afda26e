"""A scripted ModelStore gRPC servicer."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc

MODEL_STORE = model_store_pb2.DESCRIPTOR.services_by_name["ModelStore"].full_name


@dataclass
class ScriptedModelStore(model_store_pb2_grpc.ModelStoreServicer):
    """Lists no models; answers PurgeHistory with fixed counts and remembers each purge request."""

    purges: list[model_store_pb2.PurgeHistoryRequest] = field(default_factory=list)

    async def ListModels(
        self, request: model_store_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> model_store_pb2.ListModelsResponse:
        return model_store_pb2.ListModelsResponse()

    async def PurgeHistory(
        self, request: model_store_pb2.PurgeHistoryRequest, context: grpc.aio.ServicerContext
    ) -> model_store_pb2.PurgeHistoryResponse:
        self.purges.append(request)
        return model_store_pb2.PurgeHistoryResponse(deleted_prompts=3, deleted_attempts=7)
