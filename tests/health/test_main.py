"""`python -m services.health` as a process: waits for its dependencies, probes, serves metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.common.server import GrpcServer
from tests.fakes import (
    ADMIN_TOKEN,
    MODEL_STORE,
    ScriptedModelStore,
    ScriptedSelector,
    eventually,
    free_port,
    serve,
)

REPO = Path(__file__).resolve().parents[2]


class Worker:
    """The worker process and every stderr line it has written so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode())

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def logged(self, message: str) -> list[dict]:
        return [e for e in self.entries() if e["message"] == message]

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 10)
        await self._reader
        return code


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator:
    workers: list[Worker] = []

    async def start(**env: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.health",
            cwd=tmp_path,
            env={
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'gen'}",
                "ADMIN_API_TOKEN": ADMIN_TOKEN,
                **env,
            },
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        workers.append(Worker(process))
        return workers[-1]

    yield start
    for worker in workers:
        if worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


@pytest.fixture
async def model_store_server() -> AsyncIterator[tuple[ScriptedModelStore, GrpcServer]]:
    fake = ScriptedModelStore()
    server = await serve(fake, serving=False)
    yield fake, server
    await server.stop(0)


async def test_worker_waits_for_model_store_then_probes_discovers_purges_and_stops_on_sigterm(
    start_worker, fake_selector: ScriptedSelector, selector_server, model_store_server
):
    fake_store, store_server = model_store_server
    metrics_port = free_port()
    worker = await start_worker(
        SELECTOR_ADDRESS=f"127.0.0.1:{selector_server.port}",
        MODEL_STORE_ADDRESS=f"127.0.0.1:{store_server.port}",
        HEALTH_METRICS_PORT=str(metrics_port),
    )

    def waiting_for_model_store() -> bool:
        waits = worker.logged("waiting for dependency")
        return any(e["dependency"] == MODEL_STORE for e in waits)

    await eventually(waiting_for_model_store, timeout=20)
    assert fake_selector.calls == []
    await store_server.set_serving(True)
    await eventually(
        lambda: bool(fake_selector.calls_to("TestProviders") and fake_store.purges), timeout=20
    )
    await eventually(lambda: bool(worker.logged("history purged")))
    await eventually(lambda: bool(worker.logged("model discovery finished")))

    async with httpx.AsyncClient() as client:
        scrape = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert 'health_job_runs_total{job="probe_providers",result="success"} 1.0' in scrape
    assert 'health_retention_deleted_rows_total{kind="attempts"} 7.0' in scrape

    assert await worker.terminate() == 0

    assert (
        fake_selector.calls_to("TestProviders")[0].metadata["authorization"]
        == f"Bearer {ADMIN_TOKEN}"
    )
    assert (
        fake_selector.calls_to("DiscoverModels")[0].metadata["authorization"]
        == f"Bearer {ADMIN_TOKEN}"
    )
    older_than = fake_store.purges[0].older_than.ToDatetime(tzinfo=UTC)
    expected = datetime.now(UTC) - timedelta(days=30)
    assert abs(older_than - expected) < timedelta(minutes=1)
    assert [e["model"] for e in worker.logged("probe result")] == [
        "llama-3.3-70b-versatile",
        "zai-glm-4.7",
    ]
    assert worker.logged("health worker stopped")
    assert [e for e in worker.entries() if e["level"] == "error"] == []
    assert all(ADMIN_TOKEN not in line for line in worker.lines)


async def test_sigterm_while_waiting_for_dependencies_exits_cleanly(start_worker):
    worker = await start_worker(
        SELECTOR_ADDRESS=f"127.0.0.1:{free_port()}",
        MODEL_STORE_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    await eventually(lambda: len(worker.logged("waiting for dependency")) >= 2, timeout=20)

    assert await worker.terminate() == 0
    assert worker.logged("stopped before the dependencies were ready")
    assert [e for e in worker.entries() if e["level"] == "error"] == []
