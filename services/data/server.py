"""The ModelStore gRPC servicer: proto in, one session per call, domain functions, proto out."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc
from services.common import errors
from services.common.logging import bound_request_id
from services.common.names import MODEL_STORE_SERVICE
from services.data import (
    attempts,
    client_keys,
    convert,
    history,
    metrics,
    models,
    paging,
    shared_state,
)
from services.data.catalog import Catalog, CatalogError
from services.data.db import transaction

log = logging.getLogger(__name__)

SERVICE_NAME = MODEL_STORE_SERVICE
MODELS_PAGE = 100
HISTORY_PAGE = 50

Context = grpc.aio.ServicerContext


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ModelStoreServicer(model_store_pb2_grpc.ModelStoreServicer):
    """Every RPC of the ModelStore contract."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = _utcnow,
        catalog: Catalog | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        # The catalog file applied at start: its providers give discovered models their defaults.
        self._catalog = catalog or Catalog(())

    async def ListModels(
        self, request: model_store_pb2.ListModelsRequest, context: Context
    ) -> model_store_pb2.ListModelsResponse:
        limit = convert.page_size(request.page_size, MODELS_PAGE)
        filters = paging.fingerprint("models", request.active_only)
        after = paging.model_cursor(request.page_token, filters)
        async with transaction(self._sessions) as session:
            rows = await models.list_models(
                session, active_only=request.active_only, after_id=after, limit=limit + 1
            )
        token = paging.model_token(rows[limit - 1].id, filters) if len(rows) > limit else ""
        return model_store_pb2.ListModelsResponse(
            models=[convert.model_proto(row) for row in rows[:limit]], next_page_token=token
        )

    async def GetModel(
        self, request: model_store_pb2.GetModelRequest, context: Context
    ) -> model_store_pb2.GetModelResponse:
        model_id, name = convert.get_model_key(request)
        async with transaction(self._sessions) as session:
            row = await models.get_model(session, model_id=model_id, name=name)
        return model_store_pb2.GetModelResponse(model=convert.model_proto(row))

    async def CreateModel(
        self, request: model_store_pb2.CreateModelRequest, context: Context
    ) -> model_store_pb2.CreateModelResponse:
        spec = convert.model_spec(request)
        async with transaction(self._sessions) as session:
            row = await models.create_model(session, spec)
        return model_store_pb2.CreateModelResponse(model=convert.model_proto(row))

    async def UpdateModel(
        self, request: model_store_pb2.UpdateModelRequest, context: Context
    ) -> model_store_pb2.UpdateModelResponse:
        model_id = convert.update_target(request)
        async with transaction(self._sessions) as session:
            current = await models.get_model(session, model_id=model_id)
            changes = convert.model_changes(request, current)
            row = await models.update_model(session, model_id, changes)
        return model_store_pb2.UpdateModelResponse(model=convert.model_proto(row))

    async def RecordAttempts(
        self, request: model_store_pb2.RecordAttemptsRequest, context: Context
    ) -> model_store_pb2.RecordAttemptsResponse:
        records = convert.attempt_records(request)
        async with transaction(self._sessions) as session:
            result = await attempts.record_attempts(session, records)
        metrics.ATTEMPTS_RECORDED.inc(result.recorded)
        metrics.ATTEMPTS_DUPLICATE.inc(result.duplicates)
        per_request = Counter(a.request_id for a in request.attempts if a.request_id)
        for request_id, count in per_request.items():
            with bound_request_id(request_id):
                log.info("attempts recorded", extra={"attempts": count})
        return model_store_pb2.RecordAttemptsResponse(
            recorded_count=result.recorded, duplicate_count=result.duplicates
        )

    async def RecordPrompts(
        self, request: model_store_pb2.RecordPromptsRequest, context: Context
    ) -> model_store_pb2.RecordPromptsResponse:
        entries = convert.prompt_entries(request)
        async with transaction(self._sessions) as session:
            recorded = await history.record_prompts(session, entries)
        metrics.PROMPTS_RECORDED.inc(recorded)
        return model_store_pb2.RecordPromptsResponse(
            recorded_count=recorded, duplicate_count=len(entries) - recorded
        )

    async def GetModelStatistics(
        self, request: model_store_pb2.GetModelStatisticsRequest, context: Context
    ) -> model_store_pb2.GetModelStatisticsResponse:
        now = self._clock()
        model_ids, start, end = convert.statistics_window(request, now)
        async with transaction(self._sessions) as session:
            windows = await attempts.statistics(session, model_ids, start, end, now)
        return convert.statistics_response(windows, start, end)

    async def GetPromptCounts(
        self, request: model_store_pb2.GetPromptCountsRequest, context: Context
    ) -> model_store_pb2.GetPromptCountsResponse:
        start, end = convert.prompt_counts_window(request, self._clock())
        async with transaction(self._sessions) as session:
            total, hours = await history.prompt_counts(session, start, end)
        return convert.prompt_counts_response(total, hours, start, end)

    async def ListPromptHistory(
        self, request: model_store_pb2.ListPromptHistoryRequest, context: Context
    ) -> model_store_pb2.ListPromptHistoryResponse:
        limit = convert.page_size(request.page_size, HISTORY_PAGE)
        where = convert.history_filter(request)
        filters = paging.fingerprint("history", where)
        after = paging.history_cursor(request.page_token, filters)
        async with transaction(self._sessions) as session:
            rows, cursor = await history.list_history(session, where, after, limit)
        return model_store_pb2.ListPromptHistoryResponse(
            records=[convert.prompt_proto(row) for row in rows],
            next_page_token=paging.history_token(cursor, filters) if cursor else "",
        )

    async def GetPromptHistory(
        self, request: model_store_pb2.GetPromptHistoryRequest, context: Context
    ) -> model_store_pb2.GetPromptHistoryResponse:
        if request.id <= 0:
            raise errors.InvalidArgument([("id", "must be > 0")])
        async with transaction(self._sessions) as session:
            row = await history.get_history(session, request.id)
        return model_store_pb2.GetPromptHistoryResponse(record=convert.prompt_proto(row))

    async def PurgeHistory(
        self, request: model_store_pb2.PurgeHistoryRequest, context: Context
    ) -> model_store_pb2.PurgeHistoryResponse:
        older_than, keep_latest = convert.purge_limits(request)
        async with transaction(self._sessions) as session:
            prompts, attempt_rows = await history.purge(session, older_than, keep_latest)
        return model_store_pb2.PurgeHistoryResponse(
            deleted_prompts=prompts, deleted_attempts=attempt_rows
        )

    async def UpdateModelAvailability(
        self, request: model_store_pb2.UpdateModelAvailabilityRequest, context: Context
    ) -> model_store_pb2.UpdateModelAvailabilityResponse:
        states = convert.availabilities(request)
        async with transaction(self._sessions) as session:
            updated = await models.store_availability(session, states)
        return model_store_pb2.UpdateModelAvailabilityResponse(updated_count=updated)

    async def UpdateModelListings(
        self, request: model_store_pb2.UpdateModelListingsRequest, context: Context
    ) -> model_store_pb2.UpdateModelListingsResponse:
        listings = convert.listings(request)
        async with transaction(self._sessions) as session:
            updated = await models.store_listings(session, listings)
        return model_store_pb2.UpdateModelListingsResponse(updated_count=updated)

    async def CreateDiscoveredModel(
        self, request: model_store_pb2.CreateDiscoveredModelRequest, context: Context
    ) -> model_store_pb2.CreateDiscoveredModelResponse:
        provider, model_id, context_tokens = convert.discovered_model(request)
        try:
            spec = self._catalog.discovered(provider, model_id, context_tokens)
        except KeyError:
            raise errors.NotFound(
                f"provider: the catalog file has no provider {errors.echo(provider)}"
            ) from None
        except CatalogError as error:
            raise errors.InvalidArgument([("provider_model_id", str(error))]) from None
        async with transaction(self._sessions) as session:
            row = await models.create_model(session, spec)
        log.info("discovered model added", extra={"model": spec.name, "provider": provider})
        return model_store_pb2.CreateDiscoveredModelResponse(model=convert.model_proto(row))

    async def AddClientKey(
        self, request: model_store_pb2.AddClientKeyRequest, context: Context
    ) -> model_store_pb2.AddClientKeyResponse:
        name, prefix, sha256 = convert.new_client_key(request)
        limits = convert.client_key_limits(request.limits)
        async with transaction(self._sessions) as session:
            row = await client_keys.add_key(session, name, prefix, sha256, limits)
        log.info("client key added", extra={"client_key_id": row.id, "key_prefix": prefix})
        return model_store_pb2.AddClientKeyResponse(client_key=convert.client_key_proto(row))

    async def LookupClientKey(
        self, request: model_store_pb2.LookupClientKeyRequest, context: Context
    ) -> model_store_pb2.LookupClientKeyResponse:
        sha256 = convert.key_sha256(request.key_sha256)
        async with transaction(self._sessions) as session:
            row = await client_keys.lookup(session, sha256)
        return model_store_pb2.LookupClientKeyResponse(client_key=convert.client_key_proto(row))

    async def ReadClientKeys(
        self, request: model_store_pb2.ReadClientKeysRequest, context: Context
    ) -> model_store_pb2.ReadClientKeysResponse:
        async with transaction(self._sessions) as session:
            rows = await client_keys.list_keys(session, include_revoked=request.include_revoked)
        return model_store_pb2.ReadClientKeysResponse(
            client_keys=[convert.client_key_proto(row) for row in rows]
        )

    async def MarkClientKeyRevoked(
        self, request: model_store_pb2.MarkClientKeyRevokedRequest, context: Context
    ) -> model_store_pb2.MarkClientKeyRevokedResponse:
        key_id = convert.key_id(request.client_key_id)
        async with transaction(self._sessions) as session:
            row = await client_keys.revoke(session, key_id, self._clock())
        log.info("client key revoked", extra={"client_key_id": key_id})
        return model_store_pb2.MarkClientKeyRevokedResponse(
            client_key=convert.client_key_proto(row)
        )

    async def AcquireClientQuota(
        self, request: model_store_pb2.AcquireClientQuotaRequest, context: Context
    ) -> model_store_pb2.AcquireClientQuotaResponse:
        key_id, wanted = convert.quota_request(request)
        async with transaction(self._sessions) as session:
            grant = await client_keys.acquire(session, key_id, wanted, self._clock())
        return model_store_pb2.AcquireClientQuotaResponse(
            granted=grant.granted,
            retry_after_seconds=grant.retry_after_seconds,
            limit=grant.limit,
            revoked=grant.revoked,
        )

    async def ReadClientKeyUsage(
        self, request: model_store_pb2.ReadClientKeyUsageRequest, context: Context
    ) -> model_store_pb2.ReadClientKeyUsageResponse:
        days = convert.usage_days(request.days)
        if request.client_key_id < 0:
            raise errors.InvalidArgument([("client_key_id", "must be >= 0 (0 = every key)")])
        since = self._clock().date() - timedelta(days=days - 1)
        async with transaction(self._sessions) as session:
            rows = await client_keys.usage(session, request.client_key_id, since)
        return model_store_pb2.ReadClientKeyUsageResponse(
            usages=[convert.usage_proto(row) for row in rows]
        )

    async def SyncSharedState(
        self, request: model_store_pb2.SyncSharedStateRequest, context: Context
    ) -> model_store_pb2.SyncSharedStateResponse:
        asks = shared_state.check_sync(request)
        async with transaction(self._sessions) as session:
            return await shared_state.sync(session, request, asks, self._clock())

    async def ClaimTrial(
        self, request: model_store_pb2.ClaimTrialRequest, context: Context
    ) -> model_store_pb2.ClaimTrialResponse:
        shared_state.check_claim(request)
        async with transaction(self._sessions) as session:
            claimed = await shared_state.claim_trial(
                session, request.model_id, request.replica, request.seconds, self._clock()
            )
        return model_store_pb2.ClaimTrialResponse(claimed=claimed)
