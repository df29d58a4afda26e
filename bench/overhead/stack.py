"""The system under test: simulator, ModelStore, Selector and Envoy as separate processes.

Reuses the `make run` pieces (Supervisor, ServiceSpec, readiness probes, the Envoy config), but
with its own temporary folder, catalog and scenario: one OpenAI-compatible model on the simulator
that answers at once and declares no rpm/rpd limits, so pacing never interferes. Streamed answers
(only those) follow a fixed timeline, so the first content chunk arrives a known time after the
response headers and well before the last one. The health worker is not started (it is idle
between hourly probes). Everything runs from the temporary folder, so a `.env` of the checkout
cannot redirect the benchmark (e.g. to another database).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.overhead.procs import children_of
from services.stack.envoy_config import EnvoyConfig, write
from services.stack.plan import (
    MODEL_STORE_SERVICE,
    ROOT,
    SELECTOR_SERVICE,
    envoy_binary,
    free_port,
    replica_name,
)
from services.stack.readiness import GrpcServing, HttpOk, Readiness, TcpOpen
from services.stack.supervisor import Child, ServiceSpec, Supervisor

PROVIDER = "bench"
MODEL_ID = "instant"
MODEL_NAME = f"{PROVIDER}/{MODEL_ID}"
API_KEY = "sk-bench-0123456789abcdef"
# The bench stack's admin token (loopback only, a fresh stack each run).
ADMIN_TOKEN = "bench-admin-token-0123456789"
MAX_OUTPUT_TOKENS = 64
# A streamed answer: headers at once, the first content chunk after FIRST_TOKEN_DELAY_SECONDS, the
# other STREAM_CHUNKS - 1 each CHUNK_DELAY_SECONDS later.
STREAM_CHUNKS = 4
FIRST_TOKEN_DELAY_SECONDS = 0.010
CHUNK_DELAY_SECONDS = 0.005
START_TIMEOUT_SECONDS = 60.0


def catalog() -> dict[str, object]:
    """One provider with one model, no declared request limits."""
    return {
        "providers": [
            {
                "name": PROVIDER,
                "api_format": "openai",
                "api_endpoint": f"https://{PROVIDER}.invalid/v1",
                "api_key_env": "BENCH_API_KEY",
                "base_url_env": "BENCH_BASE_URL",
                "limits": {"timeout_ms": 10_000, "max_output": MAX_OUTPUT_TOKENS},
            }
        ],
        "models": [{"name": MODEL_NAME, "provider": PROVIDER, "provider_model_id": MODEL_ID}],
    }


def scenario() -> dict[str, object]:
    """Every simulated model answers with no delay; a stream on the fixed timeline above."""
    stream = {
        "chunks": STREAM_CHUNKS,
        "first_token_delay": FIRST_TOKEN_DELAY_SECONDS,
        "chunk_delay": CHUNK_DELAY_SECONDS,
    }
    return {"seed": 1, "default": {"latency": 0, "stream": stream}}


@dataclass(frozen=True)
class Addresses:
    """Where each process listens."""

    simulator_port: int = field(default_factory=free_port)
    model_store_port: int = field(default_factory=free_port)
    selector_port: int = field(default_factory=free_port)
    envoy_port: int = field(default_factory=free_port)
    envoy_admin_port: int = field(default_factory=free_port)
    selector_metrics_port: int = field(default_factory=free_port)
    model_store_metrics_port: int = field(default_factory=free_port)
    # Replicas after the first (bench.overhead.replicas): (gRPC port, metrics port) each.
    more_selectors: tuple[tuple[int, int], ...] = ()

    @property
    def selector_ports(self) -> list[int]:
        return [self.selector_port, *(port for port, _ in self.more_selectors)]

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator_port}"

    @property
    def envoy_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_port}"


@dataclass
class RunningStack:
    """The started processes, their start-up times and how to reach them."""

    folder: Path
    addresses: Addresses
    supervisor: Supervisor
    children: dict[str, Child]
    ready_seconds: dict[str, float]

    @property
    def provider_url(self) -> str:
        """The chat completions URL of the benchmark model on the simulator."""
        return f"{self.addresses.simulator_url}/{PROVIDER}/v1/chat/completions"

    @property
    def process_url(self) -> str:
        """ProcessPrompt as JSON through Envoy."""
        return f"{self.addresses.envoy_url}/api/v1/prompts/process"

    @property
    def chat_url(self) -> str:
        """OpenAI's chat completions (whole or streamed) through Envoy."""
        return f"{self.addresses.envoy_url}/v1/chat/completions"

    @property
    def postgres_folder(self) -> Path:
        """The embedded PostgreSQL data folder the ModelStore created."""
        return self.folder / "data" / "postgres"

    def database_url(self) -> str:
        """asyncpg URL of the embedded PostgreSQL, over its Unix socket (from postmaster.pid)."""
        lines = (self.postgres_folder / "postmaster.pid").read_text().splitlines()
        return f"postgresql+asyncpg://postgres@/postgres?host={lines[4].strip()}"

    def postgres_pids(self) -> list[int]:
        """The postmaster and its children (backends, writer, WAL, autovacuum …)."""
        postmaster = int((self.postgres_folder / "postmaster.pid").read_text().split()[0])
        return [postmaster, *children_of(postmaster)]

    def pid(self, name: str) -> int:
        return self.children[name].pid

    @property
    def selector_names(self) -> list[str]:
        """The Selector replicas' process names: `selector`, `selector-2`, …"""
        return [name for name in self.children if name.startswith("selector")]

    async def stop(self) -> None:
        """Stops every process, the last started first."""
        await self.supervisor.stop_all()


def environment(folder: Path, addresses: Addresses) -> dict[str, str]:
    """The environment of every child: this one, minus a DATABASE_URL, plus the stack's own."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    python_path = [str(ROOT), str(ROOT / "gen"), *env.get("PYTHONPATH", "").split(os.pathsep)]
    model_store = f"127.0.0.1:{addresses.model_store_port}"
    selector = f"127.0.0.1:{addresses.selector_port}"
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in dict.fromkeys(python_path) if p),
        PYTHONUNBUFFERED="1",
        DATA_DIR=str(folder / "data"),
        CATALOG_PATH=str(folder / "catalog.yaml"),
        MODEL_STORE_LISTEN_ADDRESS=model_store,
        MODEL_STORE_ADDRESS=model_store,
        MODEL_STORE_METRICS_PORT=str(addresses.model_store_metrics_port),
        SELECTOR_LISTEN_ADDRESS=selector,
        SELECTOR_ADDRESS=selector,
        SELECTOR_METRICS_PORT=str(addresses.selector_metrics_port),
        BENCH_BASE_URL=f"{addresses.simulator_url}/{PROVIDER}/v1",
        BENCH_API_KEY=API_KEY,
        # Admin calls (creating the client key of bench.overhead.keys) and anonymous requests
        # beside keyed ones: a key sent is still checked and counted.
        ADMIN_API_TOKEN=ADMIN_TOKEN,
        ALLOW_ANONYMOUS="true",
    )
    return env


Spec = tuple[str, list[str], Readiness, dict[str, str]]


def specs(folder: Path, addresses: Addresses) -> list[Spec]:
    """(name, command, readiness, own environment) of each process, in start order."""
    python = sys.executable
    selectors = [f"127.0.0.1:{port}" for port in addresses.selector_ports]
    metrics = [addresses.selector_metrics_port, *(port for _, port in addresses.more_selectors)]
    envoy_config = write(
        EnvoyConfig(
            selector_address=",".join(selectors),
            listen_port=addresses.envoy_port,
            admin_port=addresses.envoy_admin_port,
        ),
        folder / "envoy.yaml",
    )
    return [
        (
            "simulator",
            [
                python,
                "-m",
                "services.simulator",
                "--scenario",
                str(folder / "scenario.yaml"),
                "--port",
                str(addresses.simulator_port),
            ],
            TcpOpen("127.0.0.1", addresses.simulator_port),
            {},
        ),
        (
            "data",
            [python, "-m", "services.data"],
            GrpcServing(f"127.0.0.1:{addresses.model_store_port}", MODEL_STORE_SERVICE),
            {},
        ),
        *(
            (
                replica_name(k),
                [python, "-m", "services.selector"],
                GrpcServing(address, SELECTOR_SERVICE),
                {"SELECTOR_LISTEN_ADDRESS": address, "SELECTOR_METRICS_PORT": str(metrics[k])},
            )
            for k, address in enumerate(selectors)
        ),
        (
            "envoy",
            [
                envoy_binary(),
                "-c",
                str(envoy_config),
                "--log-level",
                "warn",
                "--disable-hot-restart",
                "--file-flush-interval-msec",
                "1000",
            ],
            HttpOk(f"http://127.0.0.1:{addresses.envoy_admin_port}/ready"),
            {},
        ),
    ]


async def start(folder: Path, replicas: int = 1) -> RunningStack:
    """Writes the catalog and scenario into `folder` and starts the processes one after another,
    with `replicas` Selectors behind Envoy.

    `ready_seconds` holds each service's time from spawn to ready and `total`, the time from the
    first spawn until the last service is ready (gRPC health SERVING for ModelStore and Selector).
    """
    (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog()), encoding="utf-8")
    (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario()), encoding="utf-8")
    more = tuple((free_port(), free_port()) for _ in range(replicas - 1))
    addresses = Addresses(more_selectors=more)
    env = environment(folder, addresses)
    supervisor = Supervisor(folder / "logs", poll_seconds=0.02)
    stack = RunningStack(folder, addresses, supervisor, {}, {})
    began = time.monotonic()
    try:
        for name, argv, ready, own in specs(folder, addresses):
            step = time.monotonic()
            spec = ServiceSpec(
                name,
                argv,
                ready,
                {**env, **own},
                cwd=folder,
                ready_timeout_seconds=START_TIMEOUT_SECONDS,
            )
            stack.children[name] = await supervisor.start(spec)
            stack.ready_seconds[name] = time.monotonic() - step
    except BaseException:
        await supervisor.stop_all()
        raise
    stack.ready_seconds["total"] = time.monotonic() - began
    return stack
