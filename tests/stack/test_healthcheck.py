"""The container healthcheck probe against a real gRPC server and a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from aiohttp import web

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common.server import Registration, start_grpc_server
from services.stack.plan import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
SELECTOR = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name


async def probe(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.stack.healthcheck",
        *args,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}", "PATH": ""},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    return process.returncode or 0, stderr.decode()


@pytest.fixture
async def grpc_server():
    server = await start_grpc_server(
        [
            Registration(
                SELECTOR,
                selector_pb2_grpc.add_SelectorServicer_to_server,
                selector_pb2_grpc.SelectorServicer(),
            )
        ],
        "127.0.0.1:0",
        serving=False,
    )
    yield server
    await server.stop(0)


async def test_grpc_probe_follows_the_health_status(grpc_server):
    address = f"127.0.0.1:{grpc_server.port}"
    code, stderr = await probe(address, SELECTOR)
    assert code == 1
    assert "not ready" in stderr

    await grpc_server.set_serving(True)

    assert await probe(address, SELECTOR) == (0, "")


async def test_grpc_probe_fails_when_nothing_listens():
    code, _ = await probe(f"127.0.0.1:{free_port()}")

    assert code == 1


async def test_http_probe_needs_a_200():
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert (await probe(f"http://127.0.0.1:{port}/metrics"))[0] == 0
        assert (await probe(f"http://127.0.0.1:{port}/missing"))[0] == 1
    finally:
        await runner.cleanup()
