"""The simulator's aiohttp server: OpenAI-compatible and Gemini endpoints, admin API, request log.

POST /{provider}/v1/chat/completions                 OpenAI-compatible provider `provider`
POST /gemini/v1beta/models/{model}:generateContent   Gemini
PUT  /_sim/scripts    replace the scenario (JSON body, same shape as a scenario file)
GET  /_sim/log        every request received: time, provider, model, outcome, status, …
POST /_sim/reset      clear the log and all quota / sequence state
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from services.simulator import environ
from services.simulator.engine import Engine
from services.simulator.replies import Call, build_reply
from services.simulator.script import load_scenario

log = logging.getLogger(__name__)

GEMINI = "gemini"
_ENGINE = web.AppKey("engine", Engine)
_STATE = web.AppKey("state", "SimulatorState")


@dataclass
class SimulatorState:
    """The request log and the event that releases silent requests at shutdown."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)


def _mentions_json(texts: list[str]) -> bool:
    return any("JSON" in text for text in texts)


def _openai_call(provider: str, body: dict[str, Any], request: web.Request) -> Call:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    texts = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    response_format = body.get("response_format")
    wire_json = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    return Call(
        provider=provider,
        model=str(body.get("model", "")),
        wire="openai",
        body=body,
        credential=request.headers.get("Authorization", "").removeprefix("Bearer "),
        json_asked=wire_json or _mentions_json(texts),
        reasoning_asked=bool(body.get("reasoning_effort") or body.get("reasoning")),
    )


def _gemini_call(model: str, body: dict[str, Any], request: web.Request) -> Call:
    config = body.get("generationConfig") or {}
    texts = [
        part.get("text", "")
        for holder in [*(body.get("contents") or []), body.get("systemInstruction") or {}]
        for part in (holder.get("parts") or [] if isinstance(holder, dict) else [])
        if isinstance(part, dict)
    ]
    return Call(
        provider=GEMINI,
        model=model,
        wire="gemini",
        body=body,
        credential=request.headers.get("x-goog-api-key", ""),
        json_asked=config.get("responseMimeType") == "application/json" or _mentions_json(texts),
        reasoning_asked=bool(config.get("thinkingConfig")),
    )


def _log_entry(call: Call, request: web.Request) -> dict[str, Any]:
    body = call.body
    if call.wire == "gemini":
        config = body.get("generationConfig") or {}
        system_parts = (body.get("systemInstruction") or {}).get("parts") or []
        system = "".join(p.get("text", "") for p in system_parts if isinstance(p, dict))
        max_tokens = config.get("maxOutputTokens")
        wire_json = config.get("responseMimeType") == "application/json"
        reasoning = config.get("thinkingConfig")
    else:
        messages = body.get("messages") or []
        system = "".join(
            m.get("content", "")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "system"
        )
        max_tokens = body.get("max_tokens")
        wire_json = "response_format" in body
        reasoning = body.get("reasoning_effort")
    return {
        "time": time.time(),
        "provider": call.provider,
        "model": call.model,
        "path": request.path_qs,
        "credential_sent": bool(call.credential),
        "system_prompt": system,
        "max_tokens": max_tokens,
        "response_format": wire_json,
        "reasoning": reasoning,
        "outcome": "",
        "status": 0,
    }


async def _serve(request: web.Request, call: Call) -> web.StreamResponse:
    engine = request.app[_ENGINE]
    state = request.app[_STATE]
    decision = engine.decide(call.provider, call.model, call.credential)
    entry = _log_entry(call, request)
    state.entries.append(entry)
    silent = decision.behaviour == "silence"
    if silent:
        entry["outcome"] = "silence"
    closed = await _wait_unless_closing(state, None if silent else decision.delay)
    if closed or decision.behaviour == "reset":
        entry["outcome"] = entry["outcome"] or "reset"
        _reset(request)
        raise asyncio.CancelledError
    reply = build_reply(call, decision)
    entry["outcome"], entry["status"] = reply.outcome, reply.status
    return web.json_response(reply.body, status=reply.status, headers=reply.headers)


async def _wait_unless_closing(state: SimulatorState, seconds: float | None) -> bool:
    """Waits `seconds` (None: forever); True if the simulator began closing meanwhile."""
    if seconds == 0:
        return state.closing.is_set()
    try:
        async with asyncio.timeout(seconds):
            await state.closing.wait()
    except TimeoutError:
        return False
    return True


def _reset(request: web.Request) -> None:
    """Drops the connection with a TCP reset, before any header is sent."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"[simulated] body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="[simulated] body must be a JSON object")
    return body


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    return await _serve(request, _openai_call(request.match_info["provider"], body, request))


async def _cloudflare_chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    return await _serve(request, _openai_call("cloudflare", body, request))


async def _generate_content(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["tail"].rpartition(":")
    if action != "generateContent" or not model:
        raise web.HTTPNotFound(text="[simulated] only models/{model}:generateContent is served")
    body = await _json_body(request)
    return await _serve(request, _gemini_call(model, body, request))


async def _put_scripts(request: web.Request) -> web.Response:
    try:
        scenario = load_scenario(await _json_body(request))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"[simulated] invalid scenario: {exc}") from exc
    request.app[_ENGINE].replace(scenario)
    return web.json_response({"scripts": sorted(scenario.scripts)})


async def _get_log(request: web.Request) -> web.Response:
    return web.json_response({"entries": request.app[_STATE].entries})


async def _reset_state(request: web.Request) -> web.Response:
    request.app[_STATE].entries.clear()
    engine = request.app[_ENGINE]
    engine.replace(engine.scenario)
    return web.json_response({})


def build_app(engine: Engine, state: SimulatorState) -> web.Application:
    """The aiohttp application serving `engine`'s scripts and recording into `state`."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[_ENGINE] = engine
    app[_STATE] = state
    app.router.add_post("/gemini/v1beta/models/{tail:.+}", _generate_content)
    app.router.add_post("/{provider}/v1/chat/completions", _chat_completions)
    app.router.add_post(
        "/client/v4/accounts/{account}/ai/v1/chat/completions", _cloudflare_chat_completions
    )
    app.router.add_put("/_sim/scripts", _put_scripts)
    app.router.add_get("/_sim/log", _get_log)
    app.router.add_post("/_sim/reset", _reset_state)
    return app


class RunningSimulator:
    """A started simulator: its address, its scripts and its request log."""

    def __init__(
        self, runner: web.AppRunner, engine: Engine, state: SimulatorState, host: str, port: int
    ) -> None:
        self._runner = runner
        self._engine = engine
        self._state = state
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """Root URL, e.g. `http://127.0.0.1:41234`."""
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str) -> str:
        """Base URL to configure for `provider`: OpenAI-compatible, or Gemini's for `gemini`."""
        return environ.base_url(self.url, provider, gemini=provider == GEMINI)

    def provider_environ(self, catalog_path: Path = environ.CATALOG) -> dict[str, str]:
        """Environment that points every provider of the catalog at this simulator, with
        placeholder keys (for a demo run without real keys)."""
        return environ.demo_overrides(environ.read_providers(catalog_path), self.url)

    def set_scripts(self, scenario: dict[str, Any]) -> None:
        """Replaces the scenario (same shape as a file) and forgets quota and sequence state."""
        self._engine.replace(load_scenario(scenario))

    def log(self) -> list[dict[str, Any]]:
        """Every request received so far, oldest first."""
        return [dict(entry) for entry in self._state.entries]

    def clear_log(self) -> None:
        """Forgets the requests received so far."""
        self._state.entries.clear()

    async def close(self) -> None:
        """Releases silent requests and stops the server."""
        self._state.closing.set()
        await self._runner.cleanup()
        log.info("simulator stopped", extra={"port": self.port})


async def start_simulator(
    scenario: dict[str, Any] | Path, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Starts a simulator for `scenario` (a dict or YAML file) on `host:port` (0 = a free port)."""
    engine = Engine(load_scenario(scenario))
    state = SimulatorState()
    runner = web.AppRunner(build_app(engine, state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1])
    log.info("simulator started", extra={"host": host, "port": bound})
    return RunningSimulator(runner, engine, state, host, bound)
