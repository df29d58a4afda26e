"""`make run` as a user runs it: ready, usable, back after a crash, and leaving nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import time
from pathlib import Path

import grpc
import httpx

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc
from services.common.channels import open_channel
from services.simulator.environ import read_providers
from services.stack.plan import MODEL_STORE_SERVICE, free_port
from services.stack.readiness import GrpcServing
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


async def start_make_run(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


def assert_private(data_dir: Path) -> None:
    """Logs and the admin token are for their owner only; nobody else lists the data folder."""
    logs = data_dir / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for log in logs.glob("*.log"):
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
    assert stat.S_IMODE((data_dir / "admin_token").stat().st_mode) == 0o600
    # 0700, or 0711 when run as root: embedded PostgreSQL then runs as a user that must traverse.
    assert stat.S_IMODE(data_dir.stat().st_mode) & 0o066 == 0


async def assert_a_second_make_run_is_refused(
    env: dict[str, str], marker: tuple[str, str], data_dir: Path
) -> None:
    """Same data folder, same ports: refused before the admin token is touched, naming the lock."""
    [supervisor] = marked_processes(marker, b"services.stack")
    token = data_dir / "admin_token"
    before = token.read_bytes(), token.stat().st_mtime_ns
    second = await start_make_run(env)
    output, _ = await asyncio.wait_for(second.communicate(), STOP_WITHIN_SECONDS)

    text = output.decode()
    assert second.returncode != 0, text
    assert f"another `make run` (pid {supervisor}) is already running" in text, text
    assert str(data_dir / "stack.lock") in text
    assert (token.read_bytes(), token.stat().st_mtime_ns) == before
    assert marked_processes(marker, b"services.stack") == [supervisor]


async def test_make_run_serves_the_printed_curl_and_stops_cleanly_on_ctrl_c(data_dir):
    marker = new_marker()
    output: list[str] = []
    started = time.monotonic()
    env = user_environment(data_dir, marker)
    process = await start_make_run(env)
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
        assert_private(data_dir)

        await assert_a_second_make_run_is_refused(env, marker, data_dir)
        probes = await run_printed(admin_curl.strip())
        assert probes.get("total_providers", 0) > 0, probes

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


async def read_until(process: asyncio.subprocess.Process, output: list[str], start: str) -> str:
    """Reads make run's output until a line starts with `start`; returns that line."""
    assert process.stdout is not None
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while not output or not output[-1].startswith(start):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {start!r} in time:\n" + "\n".join(output)
        line = await asyncio.wait_for(process.stdout.readline(), remaining)
        assert line, f"make run ended before {start!r}:\n" + "\n".join(output)
        output.append(line.decode().rstrip())
    return output[-1]


async def ask(client: httpx.AsyncClient, url: str, user_id: str) -> None:
    reply = await client.post(url, json={"prompt": "Are you there?", "user_id": user_id})
    assert reply.status_code == 200, reply.text


async def wait_until_recorded(store: model_store_pb2_grpc.ModelStoreStub, user_id: str) -> None:
    """Waits until ModelStore holds a prompt record of `user_id` (it may be restarting)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = await store.ListPromptHistory(
                model_store_pb2.ListPromptHistoryRequest(user_id=user_id), timeout=5
            )
            if reply.records:
                return
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, f"no record of {user_id}"
        await asyncio.sleep(0.2)


async def wait_until_gone(marker: tuple[str, str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while left := marked_processes(marker):
        assert time.monotonic() < deadline, f"still running: {left}"
        await asyncio.sleep(0.1)


async def test_a_killed_model_store_comes_back_with_its_data_and_a_killed_supervisor_leaves_nothing(
    data_dir,
):
    marker = new_marker()
    env = user_environment(data_dir, marker)
    output: list[str] = []
    process = await start_make_run(env)
    try:
        await read_until_ready(process, output)
        url = f"http://127.0.0.1:{env['ENVOY_PORT']}/api/v1/prompts/process"
        model_store = env["MODEL_STORE_LISTEN_ADDRESS"]
        others = {
            name: marked_processes(marker, name.encode())
            for name in ("services.simulator", "services.selector", "services.health", "envoy.yaml")
        }
        assert all(len(pids) == 1 for pids in others.values()), others
        async with (
            httpx.AsyncClient(timeout=90) as client,
            open_channel(model_store, private=True) as channel,
        ):
            store = model_store_pb2_grpc.ModelStoreStub(channel)
            await ask(client, url, "before-the-kill")
            await wait_until_recorded(store, "before-the-kill")
            [data] = marked_processes(marker, b"services.data")

            killed = time.monotonic()
            os.kill(data, signal.SIGKILL)
            await read_until(process, output, "data is back")
            print(f"data service SERVING again {time.monotonic() - killed:.1f} s after kill -9")

            log = data_dir / "logs" / "data.log"
            assert f"data was killed by SIGKILL (log: {log}); restarting it in 0.5 s" in output
            assert await GrpcServing(model_store, MODEL_STORE_SERVICE)()
            assert marked_processes(marker, b"services.data") not in ([], [data])
            assert {name: marked_processes(marker, name.encode()) for name in others} == others
            await wait_until_recorded(store, "before-the-kill")
            await ask(client, url, "after-the-kill")
            await wait_until_recorded(store, "after-the-kill")

        [supervisor] = marked_processes(marker, b"services.stack")
        os.kill(supervisor, signal.SIGKILL)
        killed = time.monotonic()
        await wait_until_gone(marker, STOP_WITHIN_SECONDS)
        print(f"every child gone {time.monotonic() - killed:.1f} s after the supervisor's kill -9")
    finally:
        await stop_whatever_is_left(process, marker)


async def test_make_run_stops_everything_when_nobody_reads_its_output(data_dir):
    """`make run | head -3`: the reader goes away while the stack starts."""
    marker = new_marker()
    reader, writer = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        cwd=ROOT,
        env=user_environment(data_dir, marker),
        stdout=writer,
        stderr=writer,
        start_new_session=True,
    )
    os.close(writer)
    try:
        with os.fdopen(reader, "rb") as pipe:
            while b"DEMO MODE" not in await asyncio.wait_for(
                asyncio.to_thread(pipe.readline), READY_WITHIN_SECONDS
            ):
                pass

        assert await asyncio.wait_for(process.wait(), STOP_WITHIN_SECONDS) == 0
        await wait_until_gone(marker, STOP_WITHIN_SECONDS)
    finally:
        await stop_whatever_is_left(process, marker)


async def test_make_run_names_a_taken_port_and_starts_nothing(data_dir):
    marker = new_marker()
    env = user_environment(data_dir, marker)
    port = int(env["ENVOY_ADMIN_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        process = await start_make_run(env)
        output, _ = await asyncio.wait_for(process.communicate(), STOP_WITHIN_SECONDS)

    text = output.decode()
    assert process.returncode != 0, text
    assert (
        f"cannot listen on 127.0.0.1:{port} (set by ENVOY_ADMIN_PORT): Address already in use"
        in text
    )
    assert not (data_dir / "logs").exists()
    assert marked_processes(marker) == []
