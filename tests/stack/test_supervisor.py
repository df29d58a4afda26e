"""The supervisor with stand-in services: order, readiness, failure reports, clean stop."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from services.stack import environment
from services.stack.app import output_closed, run_stack
from services.stack.plan import Stack, free_port
from services.stack.readiness import GrpcServing
from services.stack.restarts import Deaths, RestartPolicy
from services.stack.supervisor import ServiceSpec, StartupFailed, Supervisor
from tests.fakes import eventually
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


def _until_ready(said: list[str]) -> tuple[asyncio.Event, Callable[[str], None]]:
    """An event set once run_stack says the stack is ready, and the `say` that sets it."""
    ready = asyncio.Event()

    def say(line: str) -> None:
        said.append(line)
        if line.startswith("Free AI Selector is ready"):
            ready.set()

    return ready, say


async def _wait_for_line(said: list[str], start: str, timeout: float = 30.0) -> str:
    return await eventually(
        lambda: next((line for line in said if line.startswith(start)), ""),
        timeout,
        f"a line starting {start!r}",
    )


async def test_a_service_that_dies_is_restarted_and_the_others_keep_running(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    ready, say = _until_ready(said)
    stack = _stack((standin("data"), standin("selector", "--daemon")), tmp_path)
    policy = RestartPolicy(first_delay_seconds=0.1)
    running = asyncio.ensure_future(run_stack(stack, supervisor, say, policy))
    await asyncio.wait_for(ready.wait(), 30)
    data, selector = supervisor.children["data"], supervisor.children["selector"]
    first_generation = set(marked_processes(marker))
    assert len(first_generation) == 3

    os.kill(selector.pid, signal.SIGKILL)
    await _wait_for_line(said, "selector is back")

    restarted = supervisor.children["selector"]
    assert restarted.pid != selector.pid
    assert await restarted.spec.ready()
    assert supervisor.children["data"] is data
    assert data.exited.done() is False
    log = selector.log_path
    assert f"selector was killed by SIGKILL (log: {log}); restarting it in 0.1 s" in said
    # The daemon the killed selector left behind was stopped before the new one started its own.
    now = set(marked_processes(marker))
    assert len(now) == 3
    assert now & first_generation == {data.pid}
    assert log.read_text().count("selector serving") == 2
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(running, 30) == 0
    assert marked_processes(marker) == []


async def test_a_service_that_keeps_dying_makes_the_stack_give_up(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    flaky = standin("flaky", "--serve-for", "0.2", "--exit-code", "4")
    stack = _stack((standin("data"), flaky), tmp_path)
    policy = RestartPolicy(limit=2, window_seconds=60, first_delay_seconds=0.05)

    code = await asyncio.wait_for(run_stack(stack, supervisor, said.append, policy), 60)

    assert code == 1
    log = supervisor.log_dir / "flaky.log"
    assert [line for line in said if line.startswith("flaky exited")] == [
        f"flaky exited with code 4 (log: {log}); restarting it in 0.05 s",
        f"flaky exited with code 4 (log: {log}); restarting it in 0.1 s",
        "flaky exited with code 4: 3 deaths within 60 s, more than the 2 restarts allowed "
        f"(STACK_RESTART_LIMIT); giving up (log: {log})",
    ]
    assert "  | flaky dying with code 4" in said
    assert said[-2:] == ["stopping ...", "stopped"]
    assert marked_processes(marker) == []


def _later_starts(spec: ServiceSpec, flag: Path, later: str) -> ServiceSpec:
    """`spec`, but every start after the first runs the shell code `later` ("$@": the command)."""
    script = f'if test -e {flag}; then {later}; fi; touch {flag}; exec "$@"'
    return dataclasses.replace(spec, argv=["/bin/sh", "-c", script, "sh", *spec.argv])


async def test_a_restart_that_fails_to_start_counts_as_a_death(supervisor, standin, tmp_path):
    said: list[str] = []
    ready, say = _until_ready(said)
    spec = _later_starts(standin("once"), tmp_path / "started", "exit 5")
    policy = RestartPolicy(limit=1, window_seconds=60, first_delay_seconds=0.05)
    running = asyncio.ensure_future(run_stack(_stack((spec,), tmp_path), supervisor, say, policy))
    await asyncio.wait_for(ready.wait(), 30)

    os.kill(supervisor.children["once"].pid, signal.SIGKILL)
    code = await asyncio.wait_for(running, 30)

    assert code == 1
    assert any(line.startswith("once was killed by SIGKILL") for line in said)
    assert any(
        line.startswith("once exited with code 5 before it was ready: 2 deaths within 60 s")
        for line in said
    )


async def test_stopping_while_a_service_restarts_leaves_nothing(
    supervisor, standin, tmp_path, marker
):
    said: list[str] = []
    ready, say = _until_ready(said)
    spec = _later_starts(standin("slow"), tmp_path / "started", 'exec "$@" --ready-after 600')
    policy = RestartPolicy(first_delay_seconds=0.05)
    running = asyncio.ensure_future(run_stack(_stack((spec,), tmp_path), supervisor, say, policy))
    await asyncio.wait_for(ready.wait(), 30)
    first = supervisor.children["slow"]

    os.kill(first.pid, signal.SIGKILL)
    await eventually(
        lambda: first.log_path.read_text().count("slow starting") >= 2, 30, "a second start"
    )
    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(running, 30)

    assert code == 0
    assert not any(line.startswith("slow is back") for line in said)
    assert said[-2:] == ["stopping ...", "stopped"]
    assert marked_processes(marker) == []


async def test_a_closed_output_pipe_stops_the_stack(supervisor, standin, tmp_path, marker):
    said: list[str] = []
    ready, say = _until_ready(said)
    reader, writer = os.pipe()
    stack = _stack((standin("data"), standin("selector")), tmp_path)
    try:
        running = asyncio.ensure_future(
            run_stack(stack, supervisor, say, output=writer, output_poll_seconds=0.05)
        )
        await asyncio.wait_for(ready.wait(), 30)
        assert not output_closed(writer)

        os.close(reader)
        code = await asyncio.wait_for(running, 30)
    finally:
        os.close(writer)

    assert code == 0
    assert said[-1] == "stopped"
    assert marked_processes(marker) == []


async def test_a_failing_say_stops_the_stack_and_is_not_fatal(
    supervisor, standin, tmp_path, marker
):
    ready = asyncio.Event()
    lines = 0

    def say(line: str) -> None:
        nonlocal lines
        lines += 1
        if line.startswith("Free AI Selector is ready"):
            ready.set()
        if ready.is_set():
            raise BrokenPipeError(32, "Broken pipe")

    stack = _stack((standin("data"),), tmp_path)
    code = await asyncio.wait_for(run_stack(stack, supervisor, say), 30)

    assert code == 0
    assert ready.is_set()
    assert lines > 3
    assert marked_processes(marker) == []


async def test_what_a_dead_supervisor_left_is_stopped_by_the_next_one(
    supervisor, standin, tmp_path, marker
):
    await supervisor.start(standin("stubborn", "--ignore-sigterm"))
    dead = supervisor.children.pop("stubborn")
    next_one = Supervisor(tmp_path / "logs", stop_grace_seconds=0.5, poll_seconds=0.05)

    assert await next_one.sweep_stack(supervisor.stack_id) == 1

    assert marked_processes(marker) == []
    assert await asyncio.wait_for(dead.exited, 10) == -signal.SIGKILL


async def test_log_files_and_their_folder_are_private_even_if_they_were_not(supervisor, standin):
    supervisor.log_dir.mkdir(mode=0o755)
    supervisor.log_dir.chmod(0o755)
    log = supervisor.log_dir / "one.log"
    log.write_text("an earlier run\n")
    log.chmod(0o644)

    await supervisor.start(standin("one"))

    assert stat.S_IMODE(supervisor.log_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().startswith("an earlier run\none starting")


def test_the_wait_before_a_restart_doubles_up_to_the_cap_and_resets_after_the_window():
    deaths = Deaths(RestartPolicy(limit=8, window_seconds=100, max_delay_seconds=3))

    delays = [deaths.record(now) for now in range(7)]

    assert delays == [0.5, 1, 2, 3, 3, 3, 3]
    assert deaths.record(150) == 0.5


def test_a_death_beyond_the_limit_within_the_window_gives_up():
    deaths = Deaths(RestartPolicy(limit=2, window_seconds=10))

    assert deaths.record(0) is not None
    assert deaths.record(5) is not None
    assert deaths.record(9) is None
    assert Deaths(RestartPolicy(limit=2, window_seconds=10)).record(0) == 0.5


def test_output_closed_sees_a_pipe_without_reader():
    reader, writer = os.pipe()
    try:
        assert not output_closed(writer)
        os.close(reader)
        assert output_closed(writer)
    finally:
        os.close(writer)
