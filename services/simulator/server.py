"""The simulator's aiohttp server: provider endpoints, admin API, request log.

POST /{provider}/v1/chat/completions                 OpenAI-compatible provider `provider`
POST /openrouter/api/v1/chat/completions             OpenRouter in its real path layout
POST /client/v4/accounts/{account}/ai/v1/chat/completions   Cloudflare in its real layout
POST /gemini/v1beta/models/{model}:generateContent   Gemini
POST /gemini/v1beta/models/{model}:streamGenerateContent?alt=sse   Gemini, streamed
GET  /{provider}/v1/models, /openrouter/api/v1/models, /gemini/v1beta/models,
     /client/v4/accounts/{account}/ai/models/search, /cloudflare/models/search   model lists
     (how a configured base URL maps to them: `services/simulator/listing.py`)
PUT  /_sim/scripts    replace the scenario (JSON body, same shape as a scenario file)
GET  /_sim/log        every request received: time, provider, model, path, outcome, status,
                      stream, chunks (content chunks streamed), client_gone, …
POST /_sim/reset      clear the log and all quota / sequence state; models as the scenario says
GET  /_sim/models     the models each provider serves now
PUT  /_sim/providers/{provider}/models           replace them: `{"models": [...]}`
DELETE /_sim/providers/{provider}/models/{model}  retire one: unlisted, then unknown to requests

A chat request with `"stream": true` (OpenAI) or to `:streamGenerateContent` gets Server-Sent
Events (`streaming.py`); failures before the stream starts answer exactly as without streaming.
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
from pydantic import TypeAdapter, ValidationError

from services.simulator import environ
from services.simulator.call import GEMINI, Call, gemini_call, openai_call
from services.simulator.engine import Engine
from services.simulator.listing import (
    ListingError,
    cloudflare_search,
    gemini_list,
    openai_list,
)
from services.simulator.profiles import profile_named
from services.simulator.replies import ANSWERS, build_reply
from services.simulator.script import ModelSpec, load_scenario
from services.simulator.streaming import (
    KEEPALIVE_SECONDS,
    Hold,
    Ping,
    StreamDropped,
    stream_answer,
)

log = logging.getLogger(__name__)

_ENGINE = web.AppKey("engine", Engine)
_STATE = web.AppKey("state", "SimulatorState")
_MODELS = TypeAdapter(list[ModelSpec])
# How often a waiting request checks whether its client is still there.
_POLL_SECONDS = 0.05


@dataclass
class SimulatorState:
    """The request log and the event that releases waiting requests at shutdown."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)


def _log_entry(call: Call, request: web.Request) -> dict[str, Any]:
    body = call.body
    if call.wire == GEMINI:
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
        "stream": call.stream,
        "outcome": "",
        "status": 0,
        "chunks": 0,
        "client_gone": False,
    }


def _holder(request: web.Request, state: SimulatorState, entry: dict[str, Any]) -> Hold:
    """A wait for this request: `seconds` (None: forever), calling `ping` every KEEPALIVE_SECONDS;
    it returns True as soon as the simulator is closing or the client has gone."""

    async def hold(seconds: float | None, ping: Ping | None) -> bool:
        if seconds == 0:
            return state.closing.is_set()
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        next_ping = loop.time() + KEEPALIVE_SECONDS
        while not state.closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                entry["client_gone"] = True
                return True
            now = loop.time()
            if ping is not None and now >= next_ping:
                await ping()
                next_ping = now + KEEPALIVE_SECONDS
            if deadline is not None and now >= deadline:
                return False
            step = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - now)
            try:
                async with asyncio.timeout(step):
                    await state.closing.wait()
            except TimeoutError:
                pass
        return True

    return hold


async def _serve(request: web.Request, call: Call) -> web.StreamResponse:
    engine = request.app[_ENGINE]
    state = request.app[_STATE]
    decision = engine.decide(call)
    entry = _log_entry(call, request)
    state.entries.append(entry)
    behaviour = decision.behaviour
    silent = behaviour in ("silence", "stream_silent_before_headers")
    if silent:
        entry["outcome"] = behaviour
    hold = _holder(request, state, entry)
    ended = await hold(None if silent else decision.delay, None)
    if ended or behaviour == "reset":
        entry["outcome"] = entry["outcome"] or "reset"
        _reset(request)
        raise asyncio.CancelledError
    if call.stream and behaviour in ANSWERS:
        entry["outcome"] = str(behaviour)
        try:
            return await stream_answer(request, call, decision, entry, hold)
        except StreamDropped:
            _reset(request)
        except ConnectionError:
            entry["client_gone"] = True
        raise asyncio.CancelledError
    reply = build_reply(call, decision)
    entry["outcome"], entry["status"] = reply.outcome, reply.status
    return web.json_response(reply.body, status=reply.status, headers=reply.headers)


def _reset(request: web.Request) -> None:
    """Drops the connection with a TCP reset."""
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


async def _chat(request: web.Request, provider: str) -> web.StreamResponse:
    body = await _json_body(request)
    return await _serve(request, openai_call(provider, body, request.headers))


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _chat(request, request.match_info["provider"])


async def _openrouter_chat_completions(request: web.Request) -> web.StreamResponse:
    return await _chat(request, "openrouter")


async def _cloudflare_chat_completions(request: web.Request) -> web.StreamResponse:
    return await _chat(request, "cloudflare")


async def _generate_content(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["tail"].rpartition(":")
    if action not in ("generateContent", "streamGenerateContent") or not model:
        raise web.HTTPNotFound(
            text="[simulated] only models/{model}:generateContent and :streamGenerateContent"
        )
    stream = action == "streamGenerateContent"
    if stream and request.query.get("alt") != "sse":
        raise web.HTTPBadRequest(text="[simulated] only alt=sse streaming is simulated")
    body = await _json_body(request)
    return await _serve(request, gemini_call(model, body, request.headers, stream=stream))


def _declared(request: web.Request, provider: str) -> list[ModelSpec]:
    return list(request.app[_ENGINE].models.get(provider, {}).values())


async def _list_models(request: web.Request, provider: str) -> web.Response:
    engine = request.app[_ENGINE]
    profile = engine.scenario.profile_for(provider)
    if profile == "cloudflare":
        # Workers AI lists models at …/ai/models/search, not /models.
        body = profile_named(profile).envelope(404, "not_found", "No route for the URI.")
        return web.json_response(body, status=404)
    return web.json_response(openai_list(profile, provider, _declared(request, provider)))


async def _openai_models(request: web.Request) -> web.Response:
    return await _list_models(request, request.match_info["provider"])


async def _openrouter_models(request: web.Request) -> web.Response:
    return await _list_models(request, "openrouter")


async def _gemini_models(request: web.Request) -> web.Response:
    query = request.query
    try:
        body = gemini_list(
            _declared(request, GEMINI), query.get("pageSize"), query.get("pageToken")
        )
    except ListingError as exc:
        error = {"code": 400, "message": f"[simulated] {exc}", "status": "INVALID_ARGUMENT"}
        return web.json_response({"error": error}, status=400)
    return web.json_response(body)


async def _cloudflare_models(request: web.Request) -> web.Response:
    models = _declared(request, "cloudflare")
    query = request.query
    return web.json_response(cloudflare_search(models, query.get("task"), query.get("search")))


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


def _served(engine: Engine) -> dict[str, Any]:
    return {
        provider: [m.model_dump() for m in models.values()]
        for provider, models in engine.models.items()
    }


async def _get_models(request: web.Request) -> web.Response:
    return web.json_response({"providers": _served(request.app[_ENGINE])})


async def _put_models(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        models = _MODELS.validate_python(body.get("models"))
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"[simulated] invalid models: {exc}") from exc
    engine = request.app[_ENGINE]
    engine.set_models(request.match_info["provider"], models)
    return web.json_response({"providers": _served(engine)})


async def _delete_model(request: web.Request) -> web.Response:
    engine = request.app[_ENGINE]
    provider, model = request.match_info["provider"], request.match_info["model"]
    if not engine.retire(provider, model):
        raise web.HTTPNotFound(text=f"[simulated] {provider} declares no model {model!r}")
    return web.json_response({"providers": _served(engine)})


def build_app(engine: Engine, state: SimulatorState) -> web.Application:
    """The aiohttp application serving `engine`'s scripts and recording into `state`."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[_ENGINE] = engine
    app[_STATE] = state
    cloudflare = "/client/v4/accounts/{account}/ai"
    app.router.add_post("/gemini/v1beta/models/{tail:.+}", _generate_content)
    app.router.add_get("/gemini/v1beta/models", _gemini_models)
    app.router.add_post("/openrouter/api/v1/chat/completions", _openrouter_chat_completions)
    app.router.add_get("/openrouter/api/v1/models", _openrouter_models)
    app.router.add_post(f"{cloudflare}/v1/chat/completions", _cloudflare_chat_completions)
    app.router.add_get(f"{cloudflare}/models/search", _cloudflare_models)
    app.router.add_get("/cloudflare/models/search", _cloudflare_models)
    app.router.add_post("/{provider}/v1/chat/completions", _chat_completions)
    app.router.add_get("/{provider}/v1/models", _openai_models)
    app.router.add_put("/_sim/scripts", _put_scripts)
    app.router.add_get("/_sim/log", _get_log)
    app.router.add_post("/_sim/reset", _reset_state)
    app.router.add_get("/_sim/models", _get_models)
    app.router.add_put("/_sim/providers/{provider}/models", _put_models)
    app.router.add_delete("/_sim/providers/{provider}/models/{model:.+}", _delete_model)
    return app


class RunningSimulator:
    """A started simulator: its address, its scripts, the models it serves and its request log."""

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

    def set_models(self, provider: str, models: list[str | dict[str, Any]]) -> None:
        """From now on `provider` serves and lists exactly `models` (ids or model declarations);
        quota and sequence state are kept."""
        self._engine.set_models(provider, _MODELS.validate_python(models))

    def retire_model(self, provider: str, model: str) -> None:
        """`provider` stops listing and serving `model` (it answers it as an unknown model);
        raises KeyError if `provider` does not declare `model`."""
        if not self._engine.retire(provider, model):
            raise KeyError(f"{provider} declares no model {model!r}")

    def log(self) -> list[dict[str, Any]]:
        """Every request received so far, oldest first."""
        return [dict(entry) for entry in self._state.entries]

    def clear_log(self) -> None:
        """Forgets the requests received so far."""
        self._state.entries.clear()

    async def close(self) -> None:
        """Releases waiting requests and stops the server."""
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
