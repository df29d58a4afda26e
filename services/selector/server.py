"""The Selector gRPC servicer: proto in, engine call, proto out."""

from __future__ import annotations

import asyncio

import grpc

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common import errors
from services.common.interceptors import metadata_value
from services.common.logging import request_id_var
from services.selector.auth import check_admin
from services.selector.engine import Engine
from services.selector.validation import CLIENT_ID_KEY, validate_model_names, validate_prompt

# Time kept back from the client's deadline so the reply (or error) still reaches it, in seconds.
REPLY_MARGIN_SECONDS = 0.25
# A client's own deadline is honoured up to this many seconds.
MAX_DEADLINE_SECONDS = 600.0


class SelectorServicer(selector_pb2_grpc.SelectorServicer):
    """Thin servicer over the engine."""

    def __init__(self, engine: Engine, *, default_deadline: float, admin_token: str | None) -> None:
        self._engine = engine
        self._default_deadline = default_deadline
        self._admin_token = admin_token
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Whether the catalog snapshot has loaded."""
        return self._ready.is_set()

    def mark_ready(self) -> None:
        """Starts answering: the catalog snapshot has loaded."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Returns once the catalog snapshot has loaded."""
        await self._ready.wait()

    def _require_ready(self) -> None:
        if not self.ready:
            raise errors.Unavailable(
                "the selector is starting: the model catalog is not loaded yet",
                retry_after_seconds=5,
                reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            )

    async def ProcessPrompt(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.ProcessPromptResponse:
        self._require_ready()
        caller = metadata_value(context, CLIENT_ID_KEY)
        prompt = validate_prompt(request, self._engine.catalog.known_tags, caller)
        return await self._engine.process(
            prompt,
            deadline=self._deadline(context),
            request_id=request_id_var.get(),
            caller=caller,
        )

    async def GetModelStats(
        self, request: selector_pb2.GetModelStatsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetModelStatsResponse:
        self._require_ready()
        return self._engine.model_stats()

    async def TestProviders(
        self, request: selector_pb2.TestProvidersRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.TestProvidersResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        self._require_ready()
        names = validate_model_names(request.model_names, len(self._engine.catalog.by_name))
        return await self._engine.probe(
            names, request_id_var.get(), deadline=self._deadline(context)
        )

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The call's deadline in loop time: the client's (less a margin), else the default."""
        remaining = context.time_remaining()
        budget = (
            self._default_deadline
            if remaining is None
            else min(MAX_DEADLINE_SECONDS, remaining - REPLY_MARGIN_SECONDS)
        )
        return asyncio.get_running_loop().time() + budget
