"""Readiness probes the supervisor and the compose healthchecks use: gRPC health, HTTP, TCP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROBE_TIMEOUT_SECONDS = 2.0


class Readiness(Protocol):
    """Answers whether a service is ready now; never raises for a service that is not."""

    @property
    def description(self) -> str: ...

    async def __call__(self) -> bool: ...


@dataclass(frozen=True)
class GrpcServing:
    """Ready when `grpc.health.v1.Health/Check` for `service` says SERVING."""

    address: str
    service: str = ""

    @property
    def description(self) -> str:
        return f"gRPC health SERVING at {self.address} ({self.service or 'server'})"

    async def __call__(self) -> bool:
        async with grpc.aio.insecure_channel(self.address) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=self.service),
                    timeout=PROBE_TIMEOUT_SECONDS,
                )
            except grpc.aio.AioRpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class HttpOk:
    """Ready when GET `url` answers 200."""

    url: str

    @property
    def description(self) -> str:
        return f"HTTP 200 from {self.url}"

    async def __call__(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
                reply = await client.get(self.url)
        except httpx.HTTPError:
            return False
        return reply.status_code == 200


@dataclass(frozen=True)
class TcpOpen:
    """Ready when a TCP connection to `host:port` succeeds."""

    host: str
    port: int

    @property
    def description(self) -> str:
        return f"TCP connection to {self.host}:{self.port}"

    async def __call__(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), PROBE_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
        return True
