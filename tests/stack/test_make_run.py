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
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.simulator.environ import read_providers
from services.stack.plan import MODEL_STORE_SERVICE, free_port
from services.stack.readiness import GrpcServing
from tests.fakes import eventually
from tests.stack.load import Load
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
        # One Selector whatever the machine's cores (tests/stack/test_replicas.py runs three).
        SELECTOR_REPLICAS="1",
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

    def logged() -> bool:
        lines = log.read_text().splitlines()
        return request_id in {json.loads(li).get("request_id") for li in lines if li[:1] == "{"}

    await eventually(logged, timeout=10, what=f"{request_id} in {log}", interval=0.2)


async def assert_the_status_page_is_served(output: list[str]) -> None:
    """The printed status page answers, and so does the timeline it draws (with the probes)."""
    [line] = [line for line in output if line.startswith("Status page: ")]
    url = line.removeprefix("Status page: ").strip()
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(url)
        timeline = await client.get(f"{url}api/v1/models/timeline", params={"hours": 1})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/status.js"' in page.text
    assert timeline.status_code == 200, timeline.text
    hours = [m["hours"][-1] for m in timeline.json()["models"]]
    assert sum(int(h["successes"]) for h in hours) > 0


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
        await assert_the_status_page_is_served(output)
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


async def wait_until_gone(marker: tuple[str, str], seconds: float) -> None:
    await eventually(
        lambda: not marked_processes(marker), seconds, "the stack's processes to end", 0.1
    )


def database_url(data_dir: Path) -> str:
    """The embedded PostgreSQL of `make run`, over its Unix socket (postmaster.pid, line 5)."""
    socket_dir = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[4]
    return f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"


async def ledger(data_dir: Path, request_ids: list[str]) -> tuple[Counter[str], Counter[str]]:
    """History rows per prompt text of the load, and attempt rows per request id."""
    engine = create_async_engine(database_url(data_dir), poolclass=NullPool)
    prompts = "SELECT prompt_text, count(*) FROM prompt_history WHERE user_id = 'load' GROUP BY 1"
    attempts = (
        "SELECT request_id, count(*) FROM model_attempts WHERE request_id = ANY(:ids) GROUP BY 1"
    )
    try:
        async with engine.connect() as db:
            rows = await db.execute(text(prompts))
            counts = await db.execute(text(attempts), {"ids": request_ids})
            return Counter(dict(rows.all())), Counter(dict(counts.all()))
    finally:
        await engine.dispose()


async def assert_every_answer_recorded_once(data_dir: Path, load: Load) -> None:
    """Every answered prompt has one history row and as many attempt rows as its reply says."""
    prompts = Counter(r.prompt for r in load.answered())
    attempts = Counter({r.body["request_id"]: r.body["attempts"] for r in load.answered()})
    deadline = time.monotonic() + 60
    while True:
        try:
            stored = await ledger(data_dir, list(attempts))
        except (OSError, SQLAlchemyError):
            stored = (Counter(), Counter())
        if stored == (prompts, attempts) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    missing = len(prompts - stored[0])
    assert stored[0] == prompts, f"{missing} of {len(prompts)} answered prompts not in history"
    assert stored[1] == attempts, "attempt rows differ from the replies' attempt counts"


async def test_model_store_killed_under_load_loses_no_record_and_killed_supervisor_leaves_nothing(
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
        async with httpx.AsyncClient(timeout=90) as client:
            load = Load(client, url)
            load.start(workers=6)
            await load.until_answered(60)
            [data] = marked_processes(marker, b"services.data")

            killed = time.monotonic()
            os.kill(data, signal.SIGKILL)
            await read_until(process, output, "data is back")
            print(f"data service SERVING again {time.monotonic() - killed:.1f} s after kill -9")
            await load.until_answered(len(load.answered()) + 60)
            await load.stop()

            log = data_dir / "logs" / "data.log"
            assert f"data was killed by SIGKILL (log: {log}); restarting it in 0.5 s" in output
            assert await GrpcServing(model_store, MODEL_STORE_SERVICE)()
            assert marked_processes(marker, b"services.data") not in ([], [data])
            assert {name: marked_processes(marker, name.encode()) for name in others} == others
            assert load.failures() == [], load.failures()[:5]
            await assert_every_answer_recorded_once(data_dir, load)
            print(f"{len(load.answered())} prompts answered under load, every one recorded once")

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
