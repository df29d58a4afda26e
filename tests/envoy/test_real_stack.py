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
