"""The Selector gRPC servicer: proto (or OpenAI's JSON) in, engine call, proto (or JSON) out."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.api import httpbody_pb2

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common import errors
from services.common.interceptors import abort, metadata_value
from services.common.logging import request_id_var
from services.selector import openai_reply
from services.selector.answering import CallerGone
from services.selector.auth import check_admin
from services.selector.client_keys import ClientGate, ClientKeyAdmin
from services.selector.discovery import Discovery
from services.selector.engine import Engine
from services.selector.faces import JSON, ChatChunks, PromptEvents
from services.selector.openai_request import parse_request, prompt_input
from services.selector.timeline import Timeline
from services.selector.validation import (
    CLIENT_ID_KEY,
    validate_caller,
    validate_model_names,
    validate_prompt,
)

log = logging.getLogger(__name__)

# Time kept back from the client's deadline so the reply (or error) still reaches it, in seconds.
REPLY_MARGIN_SECONDS = 0.25
# A client's own deadline is honoured up to this many seconds.
MAX_DEADLINE_SECONDS = 600.0


class SelectorServicer(selector_pb2_grpc.SelectorServicer):
    """Thin servicer over the engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        default_deadline: float,
        admin_token: str | None,
        discovery: Discovery,
        gate: ClientGate,
        keys: ClientKeyAdmin,
        timeline: Timeline,
    ) -> None:
        self._engine = engine
        self._discovery = discovery
        self._gate = gate
        self._keys = keys
        self._timeline = timeline
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
        client = await self._gate.identify(metadata_value(context, "authorization"))
        caller = metadata_value(context, CLIENT_ID_KEY)
        prompt = validate_prompt(request, self._engine.catalog.known_tags, caller)
        await self._gate.charge(client)
        return await self._engine.process(
            prompt,
            deadline=self._deadline(context),
            request_id=request_id_var.get(),
            caller=caller,
            client_key_id=client.key_id if client else 0,
        )

    async def StreamPrompt(
        self, request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
    ) -> None:
        self._require_ready()
        client = await self._gate.identify(metadata_value(context, "authorization"))
        caller = metadata_value(context, CLIENT_ID_KEY)
        prompt = validate_prompt(request, self._engine.catalog.known_tags, caller)
        await self._gate.charge(client)
        events = PromptEvents(context)
        try:
            answered = await self._engine.answer(
                prompt,
                deadline=self._deadline(context),
                request_id=request_id_var.get(),
                caller=caller,
                listener=events,
                client_key_id=client.key_id if client else 0,
            )
        except CallerGone:
            return
        except errors.ServiceError as error:
            await events.fail(error)
            raise
        except Exception:
            await events.fail(None)
            raise
        await events.finish(answered)

    async def ChatCompletions(
        self, request: httpbody_pb2.HttpBody, context: grpc.aio.ServicerContext
    ) -> None:
        chunks = ChatChunks(context, request_id_var.get(), int(time.time()))
        try:
            self._require_ready()
            client = await self._gate.identify(metadata_value(context, "authorization"))
            caller = metadata_value(context, CLIENT_ID_KEY)
            validate_caller(caller)
            completion = parse_request(request.data)
            chunks.configure(completion)
            await self._gate.charge(client)
            answered = await self._engine.answer(
                prompt_input(completion),
                deadline=self._deadline(context),
                request_id=request_id_var.get(),
                caller=caller,
                listener=chunks if completion.stream else None,
                client_key_id=client.key_id if client else 0,
            )
            await chunks.finish(answered)
        except CallerGone:
            return
        except errors.ServiceError as error:
            await chunks.fail(error)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("unexpected error", extra={"method": "ChatCompletions"})
            await chunks.fail(_internal_error())

    async def ListOpenAIModels(
        self, request: selector_pb2.ListOpenAIModelsRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        try:
            self._require_ready()
            await self._gate.identify(metadata_value(context, "authorization"))
        except errors.ServiceError as error:
            await abort(context, error, openai_reply.error_trailers(error))
        models = (entry.model for entry in self._engine.catalog.entries.values())
        return httpbody_pb2.HttpBody(content_type=JSON, data=openai_reply.models_body(models))

    async def GetModelStats(
        self, request: selector_pb2.GetModelStatsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetModelStatsResponse:
        self._require_ready()
        await self._gate.identify(metadata_value(context, "authorization"))
        return self._engine.model_stats()

    async def GetModelTimeline(
        self, request: selector_pb2.GetModelTimelineRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetModelTimelineResponse:
        self._require_ready()
        await self._gate.identify(metadata_value(context, "authorization"))
        return await self._timeline.read(request.hours, self._deadline(context))

    async def TestProviders(
        self, request: selector_pb2.TestProvidersRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.TestProvidersResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        self._require_ready()
        names = validate_model_names(request.model_names, len(self._engine.catalog.by_name))
        return await self._engine.probe(
            names, request_id_var.get(), deadline=self._deadline(context)
        )

    async def DiscoverModels(
        self, request: selector_pb2.DiscoverModelsRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.DiscoverModelsResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        self._require_ready()
        return await self._discovery.run(self._deadline(context))

    async def CreateClientKey(
        self, request: selector_pb2.CreateClientKeyRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.CreateClientKeyResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        return await self._keys.create(request, self._deadline(context))

    async def ListClientKeys(
        self, request: selector_pb2.ListClientKeysRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.ListClientKeysResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        return await self._keys.list(request, self._deadline(context))

    async def RevokeClientKey(
        self, request: selector_pb2.RevokeClientKeyRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.RevokeClientKeyResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        return await self._keys.revoke(request, self._deadline(context))

    async def GetClientKeyUsage(
        self, request: selector_pb2.GetClientKeyUsageRequest, context: grpc.aio.ServicerContext
    ) -> selector_pb2.GetClientKeyUsageResponse:
        check_admin(metadata_value(context, "authorization"), self._admin_token)
        return await self._keys.usage(request, self._deadline(context))

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The call's deadline in loop time: the client's (less a margin), else the default."""
        remaining = context.time_remaining()
        budget = (
            self._default_deadline
            if remaining is None
            else min(MAX_DEADLINE_SECONDS, remaining - REPLY_MARGIN_SECONDS)
        )
        return asyncio.get_running_loop().time() + budget


def _internal_error() -> errors.ServiceError:
    """What a client sees of an unexpected exception: nothing of it (the log has it)."""
    return errors.ServiceError(errors.internal_status().message)
