"""The provider simulator over real HTTP, default (OpenAI-compatible) profile: quotas, sequences,
outages, admin API, request log, the demo scenario."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.simulator import RunningSimulator, start_simulator
from services.simulator.environ import catalog_models, read_providers
from services.simulator.script import BEHAVIOURS, load_scenario

DEMO = Path(__file__).resolve().parents[2] / "services" / "simulator" / "scenarios" / "demo.yaml"


async def chat(
    http: aiohttp.ClientSession,
    sim: RunningSimulator,
    model: str,
    provider: str = "alpha",
    key: str = "k",
    **extra,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}
    url = f"{sim.base_url(provider)}/chat/completions"
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, dict(response.headers), await response.json()


async def gemini(
    http: aiohttp.ClientSession, sim: RunningSimulator, model: str
) -> tuple[int, dict[str, Any]]:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    url = f"{sim.base_url('gemini')}/models/{model}:generateContent"
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def test_per_minute_quota_answers_429_after_n_and_recovers_after_the_window(sim, http):
    sim.set_scripts(
        {"scripts": {"alpha/q": {"latency": 0, "quota": {"per_minute": 3, "window_seconds": 1}}}}
    )
    started = time.monotonic()

    replies = [await chat(http, sim, "q") for _ in range(4)]
    statuses = [status for status, _, _ in replies]
    status, headers, body = replies[3]
    assert statuses == [200, 200, 200, 429]
    assert headers["Retry-After"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert replies[2][1]["x-ratelimit-remaining-requests"] == "0"
    assert replies[0][1]["x-ratelimit-remaining-requests"] == "2"

    await asyncio.sleep(max(0.0, started + 1.05 - time.monotonic()))
    status, _, _ = await chat(http, sim, "q")
    assert status == 200

    entries = sim.log()
    assert [(e["provider"], e["model"], e["outcome"], e["status"]) for e in entries] == [
        ("alpha", "q", "ok", 200),
        ("alpha", "q", "ok", 200),
        ("alpha", "q", "ok", 200),
        ("alpha", "q", "rate_limited", 429),
        ("alpha", "q", "ok", 200),
    ]
    times = [e["time"] for e in entries]
    assert times == sorted(times)
    assert times[4] - times[3] >= 0.5
    async with http.get(f"{sim.url}/_sim/log") as response:
        assert (await response.json())["entries"] == entries


async def test_per_day_quota_answers_in_the_daily_shape(sim, http):
    sim.set_scripts(
        {"scripts": {"alpha/d": {"latency": 0, "quota": {"per_day": 1, "day_seconds": 3600}}}}
    )

    assert (await chat(http, sim, "d"))[0] == 200
    status, headers, body = await chat(http, sim, "d")

    assert status == 429
    assert "per day" in body["error"]["message"]
    assert 3590 <= float(headers["Retry-After"]) <= 3600
    assert headers["x-ratelimit-remaining-requests-day"] == "0"


async def test_gemini_quota_error_has_googles_shape_with_retry_info(sim, http):
    sim.set_scripts({"scripts": {"gemini/g": {"behaviour": "rate_limited", "retry_after": 7}}})

    status, body = await gemini(http, sim, "g")

    assert status == 429
    assert body["error"]["code"] == 429
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "7s",
    } in body["error"]["details"]


async def test_status_sequence_is_consumed_in_order_then_the_behaviour_applies(sim, http):
    sim.set_scripts({"scripts": {"alpha/s": {"sequence": [429, 500, "empty"], "behaviour": 404}}})

    statuses = [(await chat(http, sim, "s"))[0] for _ in range(5)]

    assert statuses == [429, 500, 200, 404, 404]
    assert [e["outcome"] for e in sim.log()] == ["429", "500", "empty", "404", "404"]


async def test_outage_window_starts_and_ends_at_its_offsets(sim, http):
    sim.set_scripts({"scripts": {"alpha/o": {"outage": {"start": 0.3, "end": 0.7}}}})
    loaded = time.monotonic()

    before = (await chat(http, sim, "o"))[0]
    await asyncio.sleep(max(0.0, loaded + 0.4 - time.monotonic()))
    during = (await chat(http, sim, "o"))[0]
    await asyncio.sleep(max(0.0, loaded + 0.8 - time.monotonic()))
    after = (await chat(http, sim, "o"))[0]

    assert (before, during, after) == (200, 503, 200)


async def test_error_rate_is_seeded_and_proportional(sim, http):
    sim.set_scripts({"seed": 3, "scripts": {"alpha/e": {"error_rate": 0.5, "error": 502}}})
    statuses = [(await chat(http, sim, "e"))[0] for _ in range(60)]
    sim.set_scripts({"seed": 3, "scripts": {"alpha/e": {"error_rate": 0.5, "error": 502}}})
    again = [(await chat(http, sim, "e"))[0] for _ in range(60)]

    assert set(statuses) == {200, 502}
    assert 15 <= statuses.count(502) <= 45
    assert statuses == again


async def test_latency_is_applied_before_the_reply(sim, http):
    sim.set_scripts({"scripts": {"alpha/slow": {"latency": {"min": 0.2, "max": 0.25}}}})
    started = time.monotonic()

    await chat(http, sim, "slow")

    assert time.monotonic() - started >= 0.2


async def test_reset_drops_the_connection_and_silence_never_answers(sim, http):
    sim.set_scripts(
        {"scripts": {"alpha/r": {"behaviour": "reset"}, "alpha/s": {"behaviour": "silence"}}}
    )

    with pytest.raises(aiohttp.ClientConnectionError):
        await chat(http, sim, "r")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await chat(http, sim, "s")

    assert [(e["outcome"], e["status"]) for e in sim.log()] == [("reset", 0), ("silence", 0)]


async def test_every_answer_says_it_is_simulated(sim, http):
    sim.set_scripts({"scripts": {"alpha/x": {"text": "Paris is the capital."}}})

    _, _, plain = await chat(http, sim, "x")
    _, _, as_json = await chat(http, sim, "x", response_format={"type": "json_object"})
    _, _, unscripted = await chat(http, sim, "unscripted")
    sim.set_scripts({"default": {"behaviour": 404}})
    _, _, not_found = await chat(http, sim, "x")
    status, gemini_body = await gemini(http, sim, "y")

    assert plain["choices"][0]["message"]["content"] == "[simulated] Paris is the capital."
    payload = json.loads(as_json["choices"][0]["message"]["content"])
    assert payload["simulated"] is True
    assert payload["answer"].startswith("[simulated]")
    assert unscripted["choices"][0]["message"]["content"].startswith("[simulated] alpha/unscripted")
    assert not_found["error"]["message"].startswith("[simulated]")
    assert (status, gemini_body["error"]["status"]) == (404, "NOT_FOUND")
    assert gemini_body["error"]["message"].startswith("[simulated]")


async def test_echo_authorization_and_required_key(sim, http):
    sim.set_scripts(
        {
            "scripts": {
                "alpha/echo": {"behaviour": "echo_authorization"},
                "alpha/k": {"api_key": "k2"},
            }
        }
    )

    status, _, body = await chat(http, sim, "echo")
    assert (status, body["error"]["message"]) == (401, "[simulated] Invalid API key provided: k")
    assert (await chat(http, sim, "k"))[0] == 401  # the helper sends key "k", not "k2"


async def test_each_key_has_its_own_quota_and_may_have_its_own_script(sim, http):
    sim.set_scripts(
        {
            "scripts": {
                "alpha/q": {
                    "latency": 0,
                    "quota": {"per_minute": 1},
                    "per_key": {"revoked": {"behaviour": 401}},
                }
            }
        }
    )

    assert [(await chat(http, sim, "q", key=key))[0] for key in ("k1", "k2", "k1", "k2")] == [
        200,
        200,
        429,
        429,
    ]
    status, _, body = await chat(http, sim, "q", key="revoked")
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"


async def test_admin_endpoints_replace_scripts_reject_bad_ones_and_reset(sim, http):
    new = {"scripts": {"alpha/a": {"behaviour": 503}}}
    async with http.put(f"{sim.url}/_sim/scripts", json=new) as response:
        assert response.status == 200
    assert (await chat(http, sim, "a"))[0] == 503

    bad = {"scripts": {"alpha/a": {"behavior": "typo"}}}
    async with http.put(f"{sim.url}/_sim/scripts", json=bad) as response:
        assert response.status == 400
        assert "behavior" in await response.text()
    assert (await chat(http, sim, "a"))[0] == 503  # the old scripts still apply

    async with http.post(f"{sim.url}/_sim/reset") as response:
        assert response.status == 200
    assert sim.log() == []


def test_reference_scenario_uses_every_behaviour():
    scenario = load_scenario(DEMO.with_name("failures.yaml"))

    used = {s.behaviour for s in scenario.scripts.values()}
    used |= {b for s in scenario.scripts.values() for b in s.sequence}
    assert BEHAVIOURS - {"ok"} <= used


def test_invalid_scenarios_are_refused():
    for bad in (
        {"scripts": {"no-slash": {}}},
        {"default": {"behaviour": "explode"}},
        {"default": {"sequence": [99]}},
        {"default": {"error_rate": 2}},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - pydantic's message varies
            load_scenario(bad)


async def test_demo_scenario_serves_every_catalog_model_and_answers_quickly(http):
    sim = await start_simulator(DEMO)
    try:
        environ = sim.provider_environ()
        assert environ["GROQ_BASE_URL"] == sim.base_url("groq")
        assert environ["GEMINI_BASE_URL"].endswith("/gemini/v1beta")
        started = time.monotonic()

        async def ask(provider: str, model: str) -> tuple[int, str]:
            if provider == "gemini":
                status, body = await gemini(http, sim, model)
                return status, body["candidates"][0]["content"]["parts"][-1]["text"]
            status, _, body = await chat(http, sim, model, provider=provider)
            return status, body["choices"][0]["message"]["content"]

        served = [(p, m["id"]) for p, models in catalog_models().items() for m in models]
        replies = await asyncio.gather(*(ask(p, m) for p, m in served))

        assert time.monotonic() - started < 10
        for (provider, model), (status, text) in zip(served, replies, strict=True):
            assert status == 200, (provider, model)
            assert text.startswith("[simulated]"), (provider, model)
        providers = {p.name for p in read_providers()}
        assert {f"{p}/*" for p in providers} <= set(load_scenario(DEMO).scripts)
        status, _, body = await chat(http, sim, "not-in-the-catalog", provider="groq")
        assert (status, body["error"]["code"]) == (404, "model_not_found")
    finally:
        await sim.close()
