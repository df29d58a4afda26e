"""The supervisor with stand-in services: order, readiness, failure reports, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from services.stack import environment
from services.stack.app import run_stack
from services.stack.plan import Stack, free_port
from services.stack.readiness import GrpcServing
from services.stack.supervisor import ServiceSpec, StartupFailed, Supervisor
from tests.stack.processes import marked_processes, new_marker

ROOT = Path(__file__).resolve().parent.parent.parent
STANDIN = str(Path(__file__).with_name("standin.py"))


@pytest.fixture
def marker() -> tuple[str, str]:
    return new_marker()


@pytest.fixture
def standin(marker, tmp_path):
    env = {
        **os.environ,
        marker[0]: marker[1],
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}",
    }

    def make(name: str, *args: str, timeout: float = 20.0) -> ServiceSpec:
        port = free_port()
        return ServiceSpec(
            name=name,
            argv=[sys.executable, STANDIN, "--name", name, "--port", str(port), *args],
            ready=GrpcServing(f"127.0.0.1:{port}"),
            env=env,
            ready_timeout_seconds=timeout,
        )

    return make


@pytest.fixture
async def supervisor(tmp_path, marker):
    running = Supervisor(tmp_path / "logs", stop_grace_seconds=2.0, poll_seconds=0.05)
    yield running
    await running.stop_all()
    assert marked_processes(marker) == []


async def test_start_returns_once_the_service_is_serving(supervisor, standin):
    spec = standin("slow", "--ready-after", "0.5")

    await supervisor.start(spec)

    assert await spec.ready()
    assert "slow serving" in (supervisor.log_dir / "slow.log").read_text()


async def test_a_service_that_exits_is_reported_by_name_with_its_log(supervisor, standin):
    spec = standin("broken", "--exit-after", "0", "--exit-code", "3")

    with pytest.raises(StartupFailed) as failed:
        await supervisor.start(spec)

    assert failed.value.service == "broken"
    assert "exited with code 3" in str(failed.value)
    assert "broken giving up with code 3" in failed.value.log_tail


async def test_a_service_that_never_gets_ready_times_out(supervisor, standin):
    spec = standin("stuck", "--ready-after", "600", timeout=0.5)

    with pytest.raises(StartupFailed) as failed:
        await supervisor.start(spec)

    assert "not ready after 0.5 s" in failed.value.reason
    assert "gRPC health SERVING" in failed.value.reason


async def test_stop_all_stops_in_reverse_order(supervisor, standin, tmp_path):
    events = tmp_path / "events"
    for name in ("first", "second", "third"):
        await supervisor.start(standin(name, "--events", str(events)))

    await supervisor.stop_all()

    lines = [line.split()[1:] for line in events.read_text().splitlines()]
    assert lines == [
        ["start", "first"],
        ["start", "second"],
        ["start", "third"],
        ["stop", "third"],
        ["stop", "second"],
        ["stop", "first"],
    ]


async def test_a_child_ignoring_sigterm_is_killed_with_its_whole_group(supervisor, standin, marker):
    await supervisor.start(standin("stubborn", "--ignore-sigterm", "--grandchild"))
    assert len(marked_processes(marker)) == 2

    await supervisor.stop_all()

    assert marked_processes(marker) == []
    assert "ignoring SIGTERM" in (supervisor.log_dir / "stubborn.log").read_text()


async def test_a_daemon_that_left_the_group_is_stopped_too(supervisor, standin, marker):
    await supervisor.start(standin("data", "--daemon"))
    assert len(marked_processes(marker)) == 2

    await supervisor.stop_all()

    assert marked_processes(marker) == []


def _stack(services: tuple[ServiceSpec, ...], tmp_path: Path) -> Stack:
    admin = environment.AdminToken("not-printed-token", "$(cat .data/admin_token)")
    return Stack(services, "http://127.0.0.1:1", False, admin, tmp_path / "logs")


async def test_run_stack_prints_how_to_use_it_and_stops_on_sigterm(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    ready = asyncio.Event()

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("Free AI Selector is ready"):
            ready.set()

    stack = _stack((standin("one"), standin("two")), tmp_path)
    running = asyncio.ensure_future(run_stack(stack, supervisor, say))
    await asyncio.wait_for(ready.wait(), 30)
    assert len(marked_processes(marker)) == 2

    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(running, 30)

    assert code == 0
    assert marked_processes(marker) == []
    assert any("curl -s http://127.0.0.1:1/api/v1/prompts/process" in line for line in said)
    assert not any("not-printed-token" in line for line in said)
    assert said[-1] == "stopped"


async def test_run_stack_names_the_service_that_failed_and_stops_the_others(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    stack = _stack(
        (standin("data"), standin("selector", "--exit-after", "0.2", "--exit-code", "2")),
        tmp_path,
    )

    code = await run_stack(stack, supervisor, said.append)

    assert code == 1
    assert any(line.startswith("selector failed to start: exited with code 2") for line in said)
    assert any("selector giving up with code 2" in line for line in said)
    assert not any(line.startswith("Free AI Selector is ready") for line in said)
    assert marked_processes(marker) == []


async def test_run_stack_stops_everything_when_a_running_service_dies(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    ready = asyncio.Event()

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("Free AI Selector is ready"):
            ready.set()

    stack = _stack((standin("data"), standin("selector")), tmp_path)
    running = asyncio.ensure_future(run_stack(stack, supervisor, say))
    await asyncio.wait_for(ready.wait(), 30)
    selector = supervisor.children[1]

    os.kill(selector.pid, signal.SIGKILL)
    code = await asyncio.wait_for(running, 30)

    assert code == 1
    assert any("selector exited unexpectedly with code -9" in line for line in said)
    assert marked_processes(marker) == []
