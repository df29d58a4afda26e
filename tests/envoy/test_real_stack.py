"""Envoy in front of the real services: Selector, simulator, ModelStore on PostgreSQL."""

from __future__ import annotations

import json
import logging

from tests.stacks import ADMIN_TOKEN

MODELS = ("alpha/m1", "beta/m1", "gamma/m1")


async def test_prompt_answers_in_snake_case_with_zero_values(front):
    _, _, http = await front()
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "Hi", "user_id": "u"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["response"].startswith("[simulated]")
    assert body["selected_model"] in MODELS
    assert body["fallback_used"] is False
    assert body["attempts"] == 1
    assert body["pin_note"] == ""
    assert body["attempt_details"][0]["outcome"] == "OUTCOME_SUCCESS"
    assert body["request_id"] == reply.headers["x-request-id"]


async def test_stats_and_admin_probe_through_envoy(front):
    _, _, http = await front()
    stats = (await http.get("/api/v1/models/stats")).json()
    assert stats["total_models"] == 3
    assert {m["name"] for m in stats["models"]} == set(MODELS)
    assert all(m["state"] == "MODEL_STATE_READY" for m in stats["models"])
    assert (await http.post("/api/v1/providers/test", json={})).status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert (await http.post("/api/v1/providers/test", json={}, headers=wrong)).status_code == 403
    right = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    probe = await http.post("/api/v1/providers/test", json={}, headers=right)
    assert probe.status_code == 200
    assert probe.json()["successful"] == 3


async def test_timeline_through_envoy_names_hours_on_bad_input(front):
    _, _, http = await front()
    assert (await http.post("/api/v1/prompts/process", json={"prompt": "Hi"})).status_code == 200

    reply = await http.get("/api/v1/models/timeline", params={"hours": 2})

    assert reply.status_code == 200
    body = reply.json()
    assert body["hours"] == 2
    assert [m["name"] for m in body["models"]] == sorted(MODELS)
    assert all(len(m["hours"]) == 2 for m in body["models"])
    hour = body["models"][0]["hours"][0]
    assert set(hour) == {
        "start_time",
        "successes",
        "failures",
        "rate_limited",
        "other",
        "median_response_time",
        "average_response_time",
    }
    assert set(body["last_hour"]) == {"start_time", "prompts", "answered", "failovers"}
    assert "prompt_text" not in reply.text
    assert "user_id" not in reply.text
    assert (await http.get("/api/v1/models/timeline")).json()["hours"] == 24
    for hours, needle in [("500", "between 1 and 168"), ("-3", "between 1 and 168"), ("x", "")]:
        bad = await http.get("/api/v1/models/timeline", params={"hours": hours})
        assert bad.status_code == 400, bad.text
        assert "hours" in bad.json()["message"]
        assert needle in bad.json()["message"]


async def test_model_discovery_through_envoy(front):
    stack, _, http = await front()
    for provider in ("alpha", "beta", "gamma"):
        stack.sim.set_models(provider, ["m1"])
    stack.sim.set_models("beta", ["m2"])  # beta/m1 is gone from beta's list
    assert (await http.post("/api/v1/models/discover", json={})).status_code == 401
    right = {"authorization": f"Bearer {ADMIN_TOKEN}"}

    reply = await http.post("/api/v1/models/discover", json={}, headers=right)

    assert reply.status_code == 200
    reports = {r["provider"]: r for r in reply.json()["providers"]}
    assert reports["alpha"] == {
        "provider": "alpha",
        "listed_models": 1,
        "unlisted": [],
        "relisted": [],
        "new_free_models": [],
        "error": "",
    }
    [unlisted] = reports["beta"]["unlisted"]
    assert unlisted["model"] == "beta/m1"
    assert unlisted["reason"].startswith("not listed by beta since ")
    stats = (await http.get("/api/v1/models/stats")).json()
    beta = next(m for m in stats["models"] if m["name"] == "beta/m1")
    assert (beta["state"], beta["state_reason"]) == ("MODEL_STATE_UNLISTED", unlisted["reason"])


async def test_all_rate_limited_is_429_with_retry_after(front):
    _, _, http = await front({m: {"behaviour": "rate_limited", "retry_after": 40} for m in MODELS})
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "Hi"})
    assert reply.status_code == 429
    assert 39 <= int(reply.headers["retry-after"]) <= 40
    body = reply.json()
    reasons = [d.get("reason") for d in body["details"]]
    assert "ERROR_REASON_ALL_RATE_LIMITED" in reasons


async def test_no_key_is_503_with_retry_after_and_what_to_do(front):
    _, _, http = await front(keys=())
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "Hi"})
    assert reply.status_code == 503
    assert int(reply.headers["retry-after"]) > 0
    assert "ALPHA_API_KEY" in reply.json()["message"]


async def test_bad_input_is_400_naming_the_field(front):
    _, _, http = await front()
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "x" * 10_001})
    assert reply.status_code == 400
    body = reply.json()
    violations = next(
        d for d in body["details"] if "fieldViolations" in d or "field_violations" in d
    )
    text = json.dumps(violations)
    assert "prompt" in text
    assert "10000" in text


async def test_request_id_from_envoy_reaches_selector_and_model_store_logs(front, caplog):
    caplog.set_level(logging.INFO)
    stack, _, http = await front()
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "Hi"})
    request_id = reply.headers["x-request-id"]
    await stack.selector.recorder.flush()
    services = {r.name.split(".")[:2][-1] for r in caplog.records if r.request_id == request_id}
    assert {"selector", "data"} <= services
