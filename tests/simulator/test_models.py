"""Declared models over real HTTP: strict model ids, parameter rejections, each provider's model
list (Gemini's paging, Cloudflare's search), and retiring a model through the admin API."""

from __future__ import annotations

from typing import Any

import pytest

from services.simulator.environ import catalog_models
from services.simulator.script import load_scenario
from tests.simulator.helpers import PREFIX, ask, keys, recorded, unmark


async def get(http, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


def declare(sim, provider: str, *entries: Any, **scripts: Any) -> None:
    sim.set_scripts(
        {
            "default": {"latency": 0},
            "providers": {provider: {"models": list(entries)}},
            "scripts": scripts,
        }
    )


async def test_without_declared_models_any_id_is_served(sim, http):
    for provider in ("groq", "cerebras", "gemini", "alpha"):
        status, _, _ = await ask(http, sim, provider, "anything-at-all")
        assert status == 200, provider


async def test_a_declared_provider_serves_only_its_active_models(sim, http):
    declare(sim, "groq", "openai/gpt-oss-120b", {"id": "llama-3.3-70b-versatile", "active": False})

    served, _, _ = await ask(http, sim, "groq", "openai/gpt-oss-120b")
    retired, _, body = await ask(http, sim, "groq", "llama-3.3-70b-versatile")
    other, _, _ = await ask(http, sim, "beta", "llama-3.3-70b-versatile")

    assert (served, retired, other) == (200, 404, 200)
    assert body["error"]["code"] == "model_not_found"
    assert [(e["model"], e["outcome"], e["status"]) for e in sim.log()][1] == (
        "llama-3.3-70b-versatile",
        "unknown_model",
        404,
    )


@pytest.mark.parametrize(
    ("effort", "status"), [("low", 200), ("high", 200), ("none", 400), ("default", 400)]
)
async def test_groq_gpt_oss_accepts_only_low_medium_high_reasoning_effort(
    sim, http, effort, status
):
    got, _, body = await ask(http, sim, "groq", "openai/gpt-oss-120b", reasoning_effort=effort)

    assert got == status
    if status == 400:
        assert body == {
            "error": {
                "message": f"{PREFIX}`reasoning_effort` must be one of `low`, `medium`, or `high`",
                "type": "invalid_request_error",
            }
        }
        assert sim.log()[-1]["outcome"] == "invalid_parameter"


async def test_reasoning_effort_none_is_only_refused_where_documented(sim, http):
    for provider, model in (("groq", "qwen/qwen3.6-27b"), ("cerebras", "qwen-3.8-27b")):
        status, _, _ = await ask(http, sim, provider, model, reasoning_effort="none")
        assert status == 200, provider


async def test_cerebras_refuses_prediction(sim, http):
    prediction = {"type": "content", "content": "x"}

    status, _, body = await ask(http, sim, "cerebras", "gpt-oss-120b", prediction=prediction)
    accepted, _, _ = await ask(http, sim, "groq", "openai/gpt-oss-120b", prediction=prediction)

    assert (status, accepted) == (400, 200)
    assert unmark(body) == {
        "message": '"prediction" is not currently supported',
        "type": "invalid_request_error",
        "param": "prediction",
        "code": "wrong_api_format",
    }


async def test_an_undeclared_model_is_refused_before_its_parameters(sim, http):
    declare(sim, "cerebras", "gpt-oss-120b")

    status, _, body = await ask(http, sim, "cerebras", "gone", prediction={"type": "content"})

    assert (status, body["code"]) == (404, "model_not_found")


async def test_groq_list_has_activity_context_and_output_limits(sim, http):
    declare(
        sim,
        "groq",
        {"id": "openai/gpt-oss-20b", "context": 131072, "max_output": 65536},
        {"id": "groq/compound", "context": 131072, "max_output": 8192, "active": False},
    )

    status, body = await get(http, f"{sim.base_url('groq')}/models")

    assert status == 200
    assert keys(body) == keys(recorded("groq/models_list")["body"])
    first, second = body["data"]
    assert (first["id"], first["active"], first["context_window"]) == (
        "openai/gpt-oss-20b",
        True,
        131072,
    )
    assert (first["max_completion_tokens"], first["owned_by"]) == (65536, "openai")
    assert (second["id"], second["active"]) == ("groq/compound", False)


async def test_cerebras_list_is_the_recorded_plain_list(sim, http):
    ids = [m["id"] for m in recorded("cerebras/models_list")["body"]["data"]]
    declare(sim, "cerebras", *ids)

    status, body = await get(http, f"{sim.base_url('cerebras')}/models")

    assert status == 200
    assert body.pop("simulated") is True
    assert body == recorded("cerebras/models_list")["body"]


async def test_openrouter_list_at_both_layouts_with_prices_as_strings(sim, http):
    declare(
        sim,
        "openrouter",
        {"id": "openai/gpt-oss-120b:free", "context": 131072},
        {"id": "openai/gpt-5", "free": False, "expires": "2027-01-01"},
    )

    status, body = await get(http, f"{sim.url}/openrouter/api/v1/models")
    _, same = await get(http, f"{sim.base_url('openrouter')}/models")

    assert status == 200
    assert body == same
    assert keys(body) == keys(recorded("openrouter/models_list")["body"])
    free, paid = body["data"]
    assert free["pricing"] == {"prompt": "0", "completion": "0", "request": "0", "image": "0"}
    assert (free["canonical_slug"], free["context_length"]) == ("openai/gpt-oss-120b", 131072)
    assert float(paid["pricing"]["prompt"]) > 0
    assert all(isinstance(price, str) for price in paid["pricing"].values())
    assert paid["expiration_date"] == "2027-01-01"


async def test_openrouter_chat_at_its_real_layout(sim, http):
    headers = {"Authorization": "Bearer k"}
    body = {"model": "x:free", "messages": [{"role": "user", "content": "Hi"}]}

    async with http.post(
        f"{sim.url}/openrouter/api/v1/chat/completions", json=body, headers=headers
    ) as response:
        assert response.status == 200
    assert sim.log()[-1]["provider"] == "openrouter"


async def test_huggingface_list_has_the_recorded_fields(sim, http):
    declare(sim, "huggingface", {"id": "openai/gpt-oss-120b", "context": 131072, "free": False})

    _, body = await get(http, f"{sim.base_url('huggingface')}/models")

    assert keys(body) == keys(recorded("huggingface/models_list")["body"])
    [provider] = body["data"][0]["providers"]
    assert (provider["status"], provider["context_length"]) == ("live", 131072)
    assert provider["pricing"]["input"] > 0


async def test_gemini_list_pages_with_page_size_and_token(sim, http):
    ids = [f"gemini-m{i}" for i in range(5)]
    declare(sim, "gemini", *ids, {"id": "gemini-embedding-001", "methods": ["embedContent"]})
    url = f"{sim.base_url('gemini')}/models"

    pages: list[dict[str, Any]] = []
    token = ""
    while True:
        status, page = await get(
            http, f"{url}?pageSize=2" + (f"&pageToken={token}" if token else "")
        )
        assert status == 200
        pages.append(page)
        token = page.get("nextPageToken", "")
        if not token or len(pages) > 5:
            break

    assert [len(p["models"]) for p in pages] == [2, 2, 2]
    names = [m["name"] for p in pages for m in p["models"]]
    assert names == [f"models/{i}" for i in [*ids, "gemini-embedding-001"]]
    assert "nextPageToken" not in pages[-1]
    listed = recorded("gemini/models_list")["body"]["models"][0]
    assert set(listed) <= set(pages[0]["models"][0]) | {"inputTokenLimit"}
    embedding = pages[-1]["models"][-1]
    assert embedding["supportedGenerationMethods"] == ["embedContent"]
    status, _, body = await ask(http, sim, "gemini", "gemini-embedding-001")
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")


async def test_gemini_page_size_defaults_to_50_and_is_capped_at_1000(sim, http):
    declare(sim, "gemini", *[f"g{i}" for i in range(1005)])
    url = f"{sim.base_url('gemini')}/models"

    _, default = await get(http, url)
    _, capped = await get(http, f"{url}?pageSize=5000")
    bad_size, size_error = await get(http, f"{url}?pageSize=many")
    bad_token, token_error = await get(http, f"{url}?pageToken=not-a-token")

    assert len(default["models"]) == 50
    assert len(capped["models"]) == 1000
    assert (bad_size, size_error["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert (bad_token, token_error["error"]["status"]) == (400, "INVALID_ARGUMENT")


async def test_cloudflare_search_in_the_v4_envelope_at_both_paths(sim, http):
    declare(
        sim,
        "cloudflare",
        {"id": "@cf/zai-org/glm-4.7-flash", "context": 131072},
        {"id": "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "expires": "2027-02-01"},
    )
    real = f"{sim.url}/client/v4/accounts/acc42/ai/models/search?task=Text%20Generation"

    status, body = await get(http, real)
    _, same = await get(http, f"{sim.url}/cloudflare/models/search?task=Text%20Generation")
    _, searched = await get(http, f"{sim.url}/cloudflare/models/search?search=glm")
    _, other_task = await get(http, f"{sim.url}/cloudflare/models/search?task=Translation")
    no_list, not_there = await get(http, f"{sim.base_url('cloudflare')}/models")

    assert status == 200
    assert body == same
    assert keys(body) == keys(recorded("cloudflare/models_search")["body"])
    glm, llama = body["result"]
    assert glm["name"] == "@cf/zai-org/glm-4.7-flash"
    assert {"property_id": "context_window", "value": "131072"} in glm["properties"]
    assert {"property_id": "planned_deprecation_date", "value": "2027-02-01"} in llama["properties"]
    assert [m["name"] for m in searched["result"]] == ["@cf/zai-org/glm-4.7-flash"]
    assert other_task["result"] == []
    assert (no_list, not_there["success"]) == (404, False)


async def test_retiring_a_model_through_the_admin_api(sim, http):
    declare(sim, "groq", "openai/gpt-oss-120b", "openai/gpt-oss-20b")
    url = f"{sim.base_url('groq')}/models"

    async with http.delete(f"{sim.url}/_sim/providers/groq/models/openai/gpt-oss-20b") as reply:
        assert reply.status == 200
        served = (await reply.json())["providers"]["groq"]
    _, listed = await get(http, url)
    status, _, body = await ask(http, sim, "groq", "openai/gpt-oss-20b")
    async with http.delete(f"{sim.url}/_sim/providers/groq/models/never-there") as reply:
        unknown = reply.status

    assert [m["id"] for m in served] == ["openai/gpt-oss-120b"]
    assert [m["id"] for m in listed["data"]] == ["openai/gpt-oss-120b"]
    assert (status, body["error"]["code"]) == (404, "model_not_found")
    assert unknown == 404


async def test_replacing_a_providers_models_keeps_quota_state(sim, http):
    sim.set_scripts({"scripts": {"groq/*": {"quota": {"per_day": 1}}}})
    new = {"models": ["openai/gpt-oss-120b", {"id": "qwen/qwen3.6-27b", "context": 131072}]}

    assert (await ask(http, sim, "groq", "openai/gpt-oss-120b"))[0] == 200
    async with http.put(f"{sim.url}/_sim/providers/groq/models", json=new) as reply:
        assert reply.status == 200
    async with http.put(
        f"{sim.url}/_sim/providers/groq/models", json={"models": [{"context": 5}]}
    ) as reply:
        refused = (reply.status, await reply.text())
    _, served = await get(http, f"{sim.url}/_sim/models")

    assert (await ask(http, sim, "groq", "openai/gpt-oss-120b"))[0] == 429  # still spent
    assert (await ask(http, sim, "groq", "unlisted"))[0] == 404
    assert refused[0] == 400
    assert "id" in refused[1]
    assert [m["id"] for m in served["providers"]["groq"]] == [
        "openai/gpt-oss-120b",
        "qwen/qwen3.6-27b",
    ]


async def test_running_simulator_sets_and_retires_models(sim, http):
    sim.set_models("cerebras", ["gpt-oss-120b", {"id": "qwen-3.8-27b", "context": 65536}])
    sim.retire_model("cerebras", "gpt-oss-120b")

    status, _, _ = await ask(http, sim, "cerebras", "gpt-oss-120b")
    _, listed = await get(http, f"{sim.base_url('cerebras')}/models")

    assert status == 404
    assert [m["id"] for m in listed["data"]] == ["qwen-3.8-27b"]
    with pytest.raises(KeyError):
        sim.retire_model("cerebras", "gpt-oss-120b")


async def test_reset_restores_the_scenarios_models(sim, http):
    declare(sim, "groq", "a", "b")
    sim.retire_model("groq", "b")

    async with http.post(f"{sim.url}/_sim/reset") as reply:
        assert reply.status == 200

    assert (await ask(http, sim, "groq", "b"))[0] == 200


def test_models_from_the_catalog_with_explicit_providers_taking_precedence():
    scenario = load_scenario(
        {"models_from_catalog": True, "providers": {"groq": {"models": ["only-this"]}}}
    )

    declared = {p: [m.id for m in spec.models] for p, spec in scenario.providers.items()}
    expected = {p: [m["id"] for m in ms] for p, ms in catalog_models().items()}
    assert declared == {**expected, "groq": ["only-this"]}
    assert expected  # the catalog declares models
