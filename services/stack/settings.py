"""Settings of the `make run` supervisor (the same variables the services read)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


class StackSettings(ServiceSettings):
    """Where each process listens, where files go, and how long to wait for each step."""

    data_dir: Path = Path(".data")
    catalog_path: Path = Path("catalog.yaml")
    model_store_listen_address: str = "127.0.0.1:50052"
    selector_listen_address: str = "127.0.0.1:50051"
    # Selector processes behind Envoy (docs/adr/0015); unset: one per two cores, at least one.
    # Replica k (from 0) listens on SELECTOR_LISTEN_ADDRESS's port + 10·k and serves its metrics
    # on SELECTOR_METRICS_PORT + 10·k.
    selector_replicas: int | None = Field(None, ge=1, le=64)
    request_deadline_seconds: float = Field(60.0, gt=0)
    # Envoy's public listener: loopback by default for a local run; 0.0.0.0 to expose it.
    envoy_listen_host: str = "127.0.0.1"
    envoy_port: int = 8000
    envoy_admin_port: int = 9901
    selector_metrics_port: int = 9101
    model_store_metrics_port: int = 9102
    health_metrics_port: int = 9103
    bot_metrics_port: int = 9104
    # Seconds each service may take to report SERVING (the first run initialises PostgreSQL).
    stack_start_timeout_seconds: float = Field(120.0, gt=0)
    # Seconds each service gets to stop after SIGTERM before it is killed.
    stack_stop_grace_seconds: float = Field(10.0, gt=0)
    # A service that dies is restarted (after 0.5 s, doubling per death up to 30 s) at most this
    # many times within the window; one more death there stops the whole stack.
    stack_restart_limit: int = Field(5, ge=0)
    stack_restart_window_seconds: float = Field(300.0, gt=0)

    @property
    def replicas(self) -> int:
        """SELECTOR_REPLICAS, or one per two cores of this machine (at least one)."""
        return self.selector_replicas or default_replicas(os.cpu_count())


# Replica k listens on the first replica's port + REPLICA_PORT_STEP·k (its metrics likewise), so
# that ModelStore's port next to the Selector's (50051, 50052) stays free.
REPLICA_PORT_STEP = 10


def default_replicas(cores: int | None) -> int:
    """One Selector per two cores, at least one: the other half is for Envoy, ModelStore,
    PostgreSQL and the simulator (measured in `make bench-overhead`, docs/adr/0015)."""
    return max(1, (cores or 1) // 2)
