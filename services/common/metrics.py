"""Prometheus metrics endpoint for a service."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serves the default registry as Prometheus text on `host:port` (0 disables it)."""
    if port:
        start_http_server(port, addr=host)
        log.info("metrics endpoint started", extra={"port": port})
