"""gRPC server factory: binds, registers health and reflection, and shuts down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.interceptors import ServiceInterceptor

log = logging.getLogger(__name__)

# Messages up to 4 MiB: a prompt is at most 10000 characters, history pages are bounded.
# Metadata up to 64 KiB (grpcio refuses 8-16 KiB by default, as RESOURCE_EXHAUSTED): Envoy admits
# 16 KiB of request headers (ADR 1), so what it forwards is never refused here.
_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ("grpc.max_metadata_size", 64 * 1024),
    ("grpc.absolute_max_metadata_size", 64 * 1024),
    ("grpc.so_reuseport", 0),
]


@dataclass(frozen=True)
class Registration:
    """One servicer to serve: its full service name, generated `add_…_to_server`, and instance."""

    service_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object


@dataclass
class GrpcServer:
    """A started server and the port it is bound to."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def stop(self, grace: float = 5.0) -> None:
        """Reports NOT_SERVING, lets in-flight calls finish within `grace`, then stops."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def set_serving(self, serving: bool) -> None:
        """Sets the health status of every service (and of the server as a whole)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.service_names):
            await self.health.set(name, status)


async def start_grpc_server(
    registrations: Sequence[Registration],
    address: str,
    *,
    serving: bool = True,
) -> GrpcServer:
    """Starts a server on `address` (`host:0` picks a free port) and returns it with its port."""
    server = grpc.aio.server(interceptors=[ServiceInterceptor()], options=_OPTIONS)
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(r.service_name for r in registrations)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    await server.start()
    running = GrpcServer(server, port, health_servicer, names)
    await running.set_serving(serving)
    log.info("grpc server started", extra={"address": address, "port": port, "services": names})
    return running


async def wait_for_signal() -> None:
    """Returns when the process receives SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutdown signal received")
