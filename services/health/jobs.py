"""The worker's jobs: a synthetic probe run and model discovery through the Selector, and
prompt-history retention."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from aiselector.v1 import (
    common_pb2,
    model_store_pb2,
    model_store_pb2_grpc,
    selector_pb2,
    selector_pb2_grpc,
)
from services.common.interceptors import REQUEST_ID_KEY
from services.common.logging import bound_request_id
from services.health.metrics import HealthMetrics, probe_status_label

log = logging.getLogger(__name__)

PROBE_JOB = "probe_providers"
DISCOVERY_JOB = "discover_models"
RETENTION_JOB = "purge_history"

Clock = Callable[[], datetime]
Reply = TypeVar("Reply", bound=Message)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@contextmanager
def _fresh_request_id() -> Iterator[str]:
    """A new request id for one job run, bound into every log line of the run."""
    request_id = uuid.uuid4().hex
    with bound_request_id(request_id):
        yield request_id


def _outcome_name(outcome: int) -> str:
    """`OUTCOME_SUCCESS` and so on; a value newer than this build → its number."""
    if outcome not in common_pb2.Outcome.values():
        return str(outcome)
    return common_pb2.Outcome.Name(outcome)  # type: ignore[arg-type]


def _job_failed(job: str, error: grpc.aio.AioRpcError, metrics: HealthMetrics) -> None:
    """Logs a run whose RPC failed and counts it; the worker carries on."""
    log.warning(
        "job run failed",
        extra={"job": job, "code": error.code().name, "error": error.details() or ""},
    )
    metrics.job_finished(job, ok=False)


async def _call_admin(
    job: str,
    method: Callable[..., Awaitable[Reply]],
    request: Message,
    *,
    admin_token: str,
    request_id: str,
    timeout_seconds: float,
    metrics: HealthMetrics,
) -> Reply | None:
    """One run's call of an admin method of the Selector, with the bearer token and the run's
    request id; None when it failed (logged and counted)."""
    try:
        return await method(
            request,
            metadata=(("authorization", f"Bearer {admin_token}"), (REQUEST_ID_KEY, request_id)),
            timeout=timeout_seconds,
        )
    except grpc.aio.AioRpcError as error:
        _job_failed(job, error, metrics)
        return None


async def probe_providers(
    selector: selector_pb2_grpc.SelectorStub,
    *,
    admin_token: str,
    timeout_seconds: float,
    metrics: HealthMetrics,
) -> selector_pb2.TestProvidersResponse | None:
    """Probes every model through `Selector.TestProviders` and logs each result.

    The Selector records every probe as an attempt, so the results move routing exactly like real
    traffic. Returns the reply, or None when the call failed (logged and counted, never raised).
    """
    with _fresh_request_id() as request_id:
        started = time.monotonic()
        reply = await _call_admin(
            PROBE_JOB,
            selector.TestProviders,
            selector_pb2.TestProvidersRequest(),
            admin_token=admin_token,
            request_id=request_id,
            timeout_seconds=timeout_seconds,
            metrics=metrics,
        )
        if reply is None:
            return None
        for result in reply.results:
            log.info(
                "probe result",
                extra={
                    "job": PROBE_JOB,
                    "model": result.model,
                    "provider": result.provider,
                    "status": probe_status_label(result.status),
                    "outcome": _outcome_name(result.outcome),
                    "response_time_seconds": round(result.response_time_seconds, 3),
                    "error": result.error,
                },
            )
        log.info(
            "probe run finished",
            extra={
                "job": PROBE_JOB,
                "total": reply.total_providers,
                "successful": reply.successful,
                "failed": reply.failed,
                "skipped": reply.skipped,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        metrics.probes_reported(reply)
        metrics.job_finished(PROBE_JOB, ok=True)
        return reply


async def discover_models(
    selector: selector_pb2_grpc.SelectorStub,
    *,
    admin_token: str,
    timeout_seconds: float,
    metrics: HealthMetrics,
) -> selector_pb2.DiscoverModelsResponse | None:
    """Has the Selector compare every provider's model list with the catalog
    (`Selector.DiscoverModels`) and logs what each list said, as a warning when the catalog needs
    the operator: models set aside, free models it lacks.

    Returns the reply, or None when the call failed (logged and counted, never raised).
    """
    with _fresh_request_id() as request_id:
        started = time.monotonic()
        reply = await _call_admin(
            DISCOVERY_JOB,
            selector.DiscoverModels,
            selector_pb2.DiscoverModelsRequest(),
            admin_token=admin_token,
            request_id=request_id,
            timeout_seconds=timeout_seconds,
            metrics=metrics,
        )
        if reply is None:
            return None
        for report in reply.providers:
            fields = {
                "job": DISCOVERY_JOB,
                "provider": report.provider,
                "listed_models": report.listed_models,
                "unlisted": [f"{row.model}: {row.reason}" for row in report.unlisted],
                "relisted": list(report.relisted),
                "new_free_models": [
                    f"{row.provider_model_id}: {row.model if row.added else row.note}"
                    for row in report.new_free_models
                ],
                "error": report.error,
            }
            # A warning when the catalog needs the operator's hand; a list not read is already a
            # warning at the Selector (and a provider without a key is the operator's choice).
            attention = report.unlisted or report.new_free_models
            level = logging.WARNING if attention else logging.INFO
            log.log(level, "model list compared", extra=fields)
        log.info(
            "model discovery finished",
            extra={
                "job": DISCOVERY_JOB,
                "providers": len(reply.providers),
                "not_read": sum(bool(r.error) for r in reply.providers),
                "unlisted": sum(len(r.unlisted) for r in reply.providers),
                "new_free_models": sum(len(r.new_free_models) for r in reply.providers),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        metrics.job_finished(DISCOVERY_JOB, ok=True)
        return reply


async def purge_history(
    model_store: model_store_pb2_grpc.ModelStoreStub,
    *,
    retention_days: float,
    clock: Clock,
    timeout_seconds: float,
    metrics: HealthMetrics,
) -> model_store_pb2.PurgeHistoryResponse | None:
    """Deletes prompt history and attempts older than `retention_days` before `clock()`.

    Returns the reply, or None when the call failed (logged and counted, never raised).
    """
    with _fresh_request_id() as request_id:
        cutoff = clock() - timedelta(days=retention_days)
        older_than = timestamp_pb2.Timestamp()
        older_than.FromDatetime(cutoff)
        try:
            reply = await model_store.PurgeHistory(
                model_store_pb2.PurgeHistoryRequest(older_than=older_than),
                metadata=((REQUEST_ID_KEY, request_id),),
                timeout=timeout_seconds,
            )
        except grpc.aio.AioRpcError as error:
            _job_failed(RETENTION_JOB, error, metrics)
            return None
        log.info(
            "history purged",
            extra={
                "job": RETENTION_JOB,
                "older_than": cutoff.isoformat(),
                "deleted_prompts": reply.deleted_prompts,
                "deleted_attempts": reply.deleted_attempts,
            },
        )
        metrics.purge_reported(reply)
        metrics.job_finished(RETENTION_JOB, ok=True)
        return reply
