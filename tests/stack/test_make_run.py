"""`make run` as a user runs it: ready, the printed curl answers, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx

from services.simulator.environ import read_providers
from services.stack.plan import free_port
from tests.stack.processes import marked_processes, new_marker

ROOT = Path(__file__).resolve().parent.parent.parent
READY_WITHIN_SECONDS = 240
STOP_WITHIN_SECONDS = 90
COMMAND = ("make", "--no-print-directory", "run")


def user_environment(data_dir: Path, marker: tuple[str, str]) -> dict[str, str]:
    """The shell of a user with no provider key, on ports nobody else uses."""
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_API_TOKEN"}
    for provider in read_providers(ROOT / "catalog.yaml"):
        for name in (provider.api_key_env, provider.base_url_env):
            if name:
                env[name] = ""
    ports = {
        "ENVOY_PORT": free_port(),
        "ENVOY_ADMIN_PORT": free_port(),
        "SELECTOR_METRICS_PORT": free_port(),
        "MODEL_STORE_METRICS_PORT": free_port(),
        "HEALTH_METRICS_PORT": free_port(),
        "BOT_METRICS_PORT": free_port(),
    }
    env.update({k: str(v) for k, v in ports.items()})
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL="",
        TELEGRAM_BOT_TOKEN="",
        SELECTOR_LISTEN_ADDRESS=f"127.0.0.1:{free_port()}",
        MODEL_STORE_LISTEN_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    env[marker[0]] = marker[1]
    return env


async def read_until_ready(process: asyncio.subprocess.Process, output: list[str]) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "not ready in time:\n" + "\n".join(output)
        line = await asyncio.wait_for(process.stdout.readline(), remaining)
        assert line, "make run ended before it was ready:\n" + "\n".join(output)
        output.append(line.decode().rstrip())
        if output[-1].startswith("Free AI Selector is ready"):
            return


async def run_printed(command: str) -> dict:
    """Runs a printed command line in a shell, as a user pasting it would, and parses its JSON."""
    shell = await asyncio.create_subprocess_shell(
        command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    body, errors = await asyncio.wait_for(shell.communicate(), 90)
    assert shell.returncode == 0, errors
    return json.loads(body)


async def assert_request_id_reaches_the_selector_log(curl: str, data_dir: Path) -> None:
    """The id Envoy assigns comes back to the client and is in the Selector's JSON log lines."""
    url = next(word for word in curl.split() if word.startswith("http://"))
    async with httpx.AsyncClient(timeout=90) as client:
        reply = await client.post(url, json={"prompt": "Which request is this?"})
    assert reply.status_code == 200, reply.text
    request_id = reply.headers["x-request-id"]
    assert reply.json()["request_id"] == request_id
    log = data_dir / "logs" / "selector.log"
    deadline = time.monotonic() + 10
    while True:
        ids = set()
        for line in log.read_text().splitlines():
            if line.startswith("{"):
                ids.add(json.loads(line).get("request_id"))
        if request_id in ids:
            return
        assert time.monotonic() < deadline, f"{request_id} not in {log}"
        await asyncio.sleep(0.2)


async def test_make_run_serves_the_printed_curl_and_stops_cleanly_on_ctrl_c(tmp_path):
    marker = new_marker()
    data_dir = tmp_path / "data"
    output: list[str] = []
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        cwd=ROOT,
        env=user_environment(data_dir, marker),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        await read_until_ready(process, output)
        print(f"make run ready after {time.monotonic() - started:.1f} s")
        assert any("SIMULATED" in line for line in output)
        while not output[-1].startswith("Logs:"):
            output.append((await process.stdout.readline()).decode().rstrip())  # type: ignore[union-attr]
        [curl] = [line.strip() for line in output if "/api/v1/prompts/process" in line]

        answer = await run_printed(curl)
        assert answer["response"], answer
        assert answer["selected_model"], answer
        assert answer["success"] is True
        admin_curl = next(line for line in output if "/api/v1/providers/test" in line)
        probes = await run_printed(admin_curl.strip())
        assert probes.get("total_providers", 0) > 0, probes
        await assert_request_id_reaches_the_selector_log(curl, data_dir)

        os.killpg(process.pid, signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), STOP_WITHIN_SECONDS)
        output += rest.decode().splitlines()

        assert output[-1] == "stopped", "\n".join(output)
        assert marked_processes(marker) == []
        logs = {p.stem for p in (data_dir / "logs").glob("*.log")}
        assert logs == {"simulator", "data", "selector", "health", "envoy"}
    finally:
        await stop_whatever_is_left(process, marker)


async def stop_whatever_is_left(
    process: asyncio.subprocess.Process, marker: tuple[str, str]
) -> None:
    """After a failure: Ctrl-C as a user would, then kill what still runs, so no test leaks."""
    if process.returncode is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_WITHIN_SECONDS)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    for pid in marked_processes(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
