"""`make run` with three Selector replicas: one killed with SIGKILL under load (docs/adr/0015)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy.exc import SQLAlchemyError

from services.stack.plan import SELECTOR_SERVICE
from services.stack.readiness import GrpcServing
from tests.stack.load import Load
from tests.stack.processes import marked_processes, new_marker
from tests.stack.test_make_run import (
    ledger,
    read_until,
    read_until_ready,
    start_make_run,
    stop_whatever_is_left,
    user_environment,
)

REPLICAS = 3
# A Selector hands its records to ModelStore every 0.25 s: an answer older than this at the kill
# was delivered (ADR 6); a younger one may have died in the killed replica's memory.
DELIVERED_AFTER_SECONDS = 1.5


async def envoy_hosts(admin_port: str) -> dict[str, dict[str, str]]:
    """Envoy's view of each Selector replica: health flags and request counters."""
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{admin_port}/clusters")
    hosts: dict[str, dict[str, str]] = {}
    for match in re.finditer(r"^selector::([0-9.]+:\d+)::(\w+)::(.*)$", reply.text, re.M):
        hosts.setdefault(match[1], {})[match[2]] = match[3]
    return hosts


async def recorded(data_dir: Path, load: Load) -> Counter[str]:
    """History rows per prompt text of the load, once the count stops changing (or 60 s)."""
    deadline = time.monotonic() + 60
    previous: Counter[str] | None = None
    while True:
        try:
            rows, _ = await ledger(data_dir, [])
        except (OSError, SQLAlchemyError):
            rows = Counter()
        if rows == previous or time.monotonic() > deadline:
            return rows
        previous = rows
        await asyncio.sleep(1.0)


async def test_a_replica_killed_under_load_fails_only_its_requests_in_flight_and_comes_back(
    data_dir,
):
    marker = new_marker()
    env = user_environment(data_dir, marker)
    env["SELECTOR_REPLICAS"] = str(REPLICAS)
    output: list[str] = []
    process = await start_make_run(env)
    try:
        await read_until_ready(process, output)
        selectors = marked_processes(marker, b"services.selector")
        assert len(selectors) == REPLICAS, output
        hosts = await envoy_hosts(env["ENVOY_ADMIN_PORT"])
        assert len(hosts) == REPLICAS
        assert all(h["health_flags"] == "healthy" for h in hosts.values()), hosts
        url = f"http://127.0.0.1:{env['ENVOY_PORT']}/api/v1/prompts/process"
        # The second replica: its address and its process (the one listening there).
        base = int(env["SELECTOR_LISTEN_ADDRESS"].rsplit(":", 1)[1])
        victim_address = f"127.0.0.1:{base + 10}"
        [victim] = [pid for pid in selectors if _listen_address(pid) == victim_address]

        async with httpx.AsyncClient(timeout=90) as client:
            load = Load(client, url, prefix="replicas")
            load.start(workers=9)
            await load.until_answered(60)
            served = await envoy_hosts(env["ENVOY_ADMIN_PORT"])
            assert all(int(h["rq_success"]) > 0 for h in served.values()), served

            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            await read_until(process, output, "selector-2 is back")
            back = time.monotonic()
            print(f"selector-2 SERVING again {back - killed:.1f} s after kill -9")
            await load.until_answered(len(load.answered()) + 90)

            # Envoy sends to the restarted replica again once its health check passes.
            def revived(hosts: dict[str, dict[str, str]]) -> bool:
                host = hosts[victim_address]
                return host["health_flags"] == "healthy" and int(host["rq_success"]) > int(
                    served[victim_address]["rq_success"]
                )

            after = await envoy_hosts(env["ENVOY_ADMIN_PORT"])
            deadline = time.monotonic() + 60
            while not revived(after) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                after = await envoy_hosts(env["ENVOY_ADMIN_PORT"])
            await load.stop()

        assert revived(after), after
        log = data_dir / "logs" / "selector-2.log"
        assert f"selector-2 was killed by SIGKILL (log: {log}); restarting it in 0.5 s" in output
        assert await GrpcServing(victim_address, SELECTOR_SERVICE)()
        assert len(marked_processes(marker, b"services.selector")) == REPLICAS

        # Only requests in flight at the kill failed, each with a 503 from Envoy; everything
        # sent after it was answered (a connection refused by the dead replica was retried on
        # another one).
        failed = [r for r in load.requests if r.status != 200]
        assert all(r.status == 503 for r in failed), [(r.status, r.text) for r in failed]
        assert all(r.sent < killed <= r.done for r in failed), [(r.sent - killed) for r in failed]
        assert len(failed) <= 9
        later = [r for r in load.requests if r.sent > killed]
        assert len(later) >= 90
        assert all(r.status == 200 for r in later)
        print(
            f"{len(load.answered())} answered, {len(failed)} failed (in flight at the kill), "
            f"{len(later)} sent after the kill all answered"
        )

        # Nothing already recorded is lost: every answer older than a flush at the kill, and
        # every answer after it, is in the history once; younger ones at most once (ADR 6).
        stored = await recorded(data_dir, load)
        settled = [r for r in load.answered() if r.done < killed - DELIVERED_AFTER_SECONDS]
        survivors = [r for r in load.answered() if r.done > killed]
        for request in settled + survivors:
            assert stored[request.prompt] == 1, request.prompt
        assert all(count == 1 for count in stored.values())
        lost = len(load.answered()) - sum(stored[r.prompt] for r in load.answered())
        print(f"answers lost in the killed replica's memory (the last flush): {lost}")
    finally:
        await stop_whatever_is_left(process, marker)


def _listen_address(pid: int) -> str:
    """SELECTOR_LISTEN_ADDRESS in the environment of process `pid`."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"SELECTOR_LISTEN_ADDRESS="):
            return entry.split(b"=", 1)[1].decode()
    return ""
