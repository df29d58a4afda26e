"""A headless Chromium driven over the Chrome DevTools Protocol (a websocket, with aiohttp).

`find_or_install_chromium()` gives the Debian package's binary, installing it with apt-get when it
is missing (as root, else through `sudo -n`); None with the reason when that cannot be done.
`Browser.start()` runs it on a free loopback port (`--remote-debugging-port=0`, the port read from
`DevToolsActivePort`) and attaches to its first page; the page's console errors, uncaught
exceptions and failed loads are collected in `Browser.errors`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

BINARIES = ("chromium", "chromium-browser")
INSTALL_TIMEOUT_S = 900
CALL_TIMEOUT_S = 30.0


def _found() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


def find_or_install_chromium() -> tuple[str | None, str]:
    """(binary, "") or (None, why it could not be installed)."""
    found = _found()
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "Chromium is not installed and there is no apt-get to install it"
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return None, "Chromium is not installed; installing it needs root or sudo"
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y"]
    install += ["--no-install-recommends", "chromium"]
    attempts = [install, [*prefix, "apt-get", "update"], install]
    output = ""
    for command in attempts:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"`{' '.join(command)}` failed: {error}"
        output = (done.stdout + done.stderr)[-500:]
        if command is not attempts[1] and done.returncode == 0 and _found():
            return _found(), ""
    return None, f"`apt-get install chromium` failed: {output.strip()}"


class CdpError(RuntimeError):
    """A DevTools call failed or the page reported an error."""


class Browser:
    """One headless Chromium process and a DevTools session on its page."""

    def __init__(self, process: subprocess.Popen[bytes], profile: Path) -> None:
        self._process = process
        # Chromium's own children (renderer, GPU, zygote) share its process group.
        self._group = os.getpgid(process.pid)
        self._profile = profile
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []

    @classmethod
    async def start(cls, binary: str) -> Browser:
        profile = Path(tempfile.mkdtemp(prefix="aiselector-chromium-"))
        log = _log_file(profile)
        process = subprocess.Popen(  # noqa: ASYNC220 - starts at once; Chromium runs on its own
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        os.close(log)
        browser = cls(process, profile)
        try:
            await browser._attach()
        except BaseException:
            await browser.close()
            raise
        return browser

    async def _attach(self) -> None:
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text().strip()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self._profile / "chromium.log").read_text(errors="replace")[-2000:]
                raise CdpError(f"Chromium did not start its DevTools server:\n{log}")
            await asyncio.sleep(0.05)
        port = int(marker.read_text().split()[0])
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        page: dict[str, Any] | None = None
        while page is None:
            async with self._http.get(f"http://127.0.0.1:{port}/json/list") as reply:
                page = next((t for t in await reply.json() if t["type"] == "page"), None)
            if page is None:
                if time.monotonic() > deadline:
                    raise CdpError("Chromium opened no page")
                await asyncio.sleep(0.05)
        self._socket = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._event(data["method"], data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            values = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.errors.append(f"console.{params['type']}: {' '.join(values)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result, or CdpError."""
        assert self._socket is not None
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._socket.send_str(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str) -> None:
        """Navigates and waits until the document has loaded."""
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", timeout=15)

    async def wait_for(self, expression: str, timeout: float) -> Any:
        """Polls a JavaScript expression until it is truthy; its value, or TimeoutError."""
        return await poll(lambda: self.evaluate(expression), timeout)

    async def viewport(self, width: int, height: int, *, dark: bool = False) -> None:
        """The page's size (a phone when narrow) and its colour scheme."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        scheme = "dark" if dark else "light"
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    async def screenshot(self, path: Path) -> Path:
        """The whole page as a PNG."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        """Closes the session and stops Chromium (its process only)."""
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await self._reader
        if self._http is not None:
            await self._http.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._group, signal.SIGTERM)
        try:
            await asyncio.to_thread(self._process.wait, 10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._group, signal.SIGKILL)
            await asyncio.to_thread(self._process.wait)
        shutil.rmtree(self._profile, ignore_errors=True)


def _log_file(profile: Path) -> int:
    """A file descriptor for Chromium's stderr (the child keeps its own copy)."""
    return os.open(profile / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


async def poll(probe: Callable[[], Awaitable[Any]], timeout: float, every: float = 0.1) -> Any:
    """Calls `probe` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(every)
