"""`python -m services.bot` as a process: exits 0 without a token; serves, then stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from services.common import errors
from tests.bot.conftest import ADMIN_ID, TOKEN
from tests.bot.fake_telegram import FakeBotApi, message_update
from tests.fakes import ScriptedSelector

REPO = Path(__file__).resolve().parents[2]


def _environment(**values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'gen'}", **values}


async def _start(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    # The working directory is empty, so no `.env` file of the checkout is read.
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_without_a_token_it_says_so_and_exits_0(tmp_path: Path) -> None:
    process = await _start(tmp_path, _environment())
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert stdout.decode().strip() == (
        "Telegram bot is not configured (TELEGRAM_BOT_TOKEN is not set); not starting."
    )


async def test_with_a_token_it_answers_and_stops_on_sigterm(
    tmp_path: Path, selector: ScriptedSelector, selector_address: str
) -> None:
    selector.prompt_script = [errors.Unavailable("no model can answer", retry_after_seconds=90)]
    api = FakeBotApi(TOKEN)
    await api.start()
    process = await _start(
        tmp_path,
        _environment(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=api.base_url,
            SELECTOR_ADDRESS=selector_address,
            BOT_ADMIN_IDS=f"{ADMIN_ID}, 1",
        ),
    )
    try:
        await api.wait_for("deleteWebhook", within=60)
        await api.push(message_update("hi", user_id=41, language_code="en"))
        sent = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 41, within=10)
        assert sent.params["text"] == (
            "😔 No model can answer right now. Please try again in 2 minutes."
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await api.stop()
    assert process.returncode == 0
    log = stderr.decode()
    assert '"message": "bot started"' in log
    assert TOKEN not in log
    assert TOKEN.split(":")[1] not in log
