"""Startup: wait until a dependency reports SERVING, retrying with capped exponential backoff."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger(__name__)


async def wait_until_serving(
    channel: grpc.aio.Channel,
    service: str,
    *,
    initial_delay: float = 0.5,
    max_delay: float = 30.0,
    check_timeout: float = 5.0,
) -> int:
    """Returns once `service` on `channel` reports SERVING; the number of checks it took.

    Unreachable or not serving yet is logged and retried after a delay that doubles up to
    `max_delay`; it is never an error, so a worker started before its dependencies just waits.
    """
    stub = health_pb2_grpc.HealthStub(channel)
    delay = initial_delay
    checks = 0
    while True:
        checks += 1
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=check_timeout
            )
        except grpc.aio.AioRpcError as error:
            reason = error.code().name
        else:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                log.info("dependency serving", extra={"dependency": service, "checks": checks})
                return checks
            reason = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        log.warning(
            "waiting for dependency",
            extra={"dependency": service, "reason": reason, "retry_in_seconds": delay},
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
