"""`python -m services.simulator --scenario FILE --port 0` starts, serves, and stops on SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


async def test_module_runs_a_scenario_file_and_stops_cleanly(tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text('scripts:\n  groq/m:\n    latency: 0\n    text: "from the file"\n')
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'gen'}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.simulator",
        "--scenario",
        str(scenario),
        "--port",
        "0",
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/groq/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
                headers={"Authorization": "Bearer k"},
            ) as response,
        ):
            body = await response.json()
        assert body["choices"][0]["message"]["content"] == "[simulated] from the file"
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
