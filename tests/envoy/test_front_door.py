"""JSON and gRPC clients through the real Envoy: shapes, errors, routing limits, request ids."""

from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import pytest

from aiselector.v1 import model_store_pb2, model_store_pb2_grpc, selector_pb2, selector_pb2_grpc
from services.stack.envoy_config import WEB_DIR
from tests.envoy.harness import OVERSIZED_HEADER_PROMPT, SLOW_PROMPT, RunningEnvoy, Upstream
from tests.fakes import ADMIN_TOKEN, eventually

PROCESS = "/api/v1/prompts/process"
STATS = "/api/v1/models/stats"
TEST_PROVIDERS = "/api/v1/providers/test"


def assert_json_error(reply: httpx.Response, status: int, *needles: str) -> dict:
    """The reply has `status`, a JSON body, and the body mentions each needle."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    body = reply.json()
    text = json.dumps(body).lower()
    for needle in needles:
        assert needle.lower() in text, body
    return body


async def test_process_prompt_answers_with_snake_case_fields_and_zero_values(http):
    reply = await http.post(PROCESS, json={"prompt": "Hello"})

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["selected_model"] == "scripted/model"
    assert body["response"] == "scripted answer"
    assert body["success"] is True
    assert body["attempts"] == 1
    assert body["fallback_used"] is False
    assert body["response_time_seconds"] == 0
    assert body["pin_note"] == ""
    assert body["attempt_details"] == []


async def test_model_stats_prints_every_field(http):
    reply = await http.get(STATS)

    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["total_models"] == 1
    model = body["models"][0]
    assert model["name"] == "scripted/model"
    assert model["reliability_score"] == 0
    assert model["is_active"] is False
    assert model["state"] == "MODEL_STATE_UNSPECIFIED"
    assert model["total_requests"] == "0"


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "ERROR_REASON_UNAUTHENTICATED"),
        ({"authorization": "Bearer wrong-token"}, 403, "ERROR_REASON_PERMISSION_DENIED"),
    ],
)
async def test_test_providers_refuses_without_the_admin_token(http, headers, status, reason):
    reply = await http.post(TEST_PROVIDERS, json={}, headers=headers)

    assert_json_error(reply, status, reason)


async def test_test_providers_answers_with_the_admin_token(http):
    reply = await http.post(
        TEST_PROVIDERS, json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert reply.status_code == 200, reply.text
    assert reply.json()["total_providers"] == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"prompt": "unclosed', "closing quote expected"),
        ('{"prompt": {"nested": 1}}', "prompt"),
        ('{"prompt": ""}', "prompt"),
        (json.dumps({"prompt": "x" * 10_001}), "at most 10000"),
    ],
    ids=["malformed-json", "wrong-type", "empty-prompt", "over-long-prompt"],
)
async def test_bad_input_is_a_400_json_naming_the_problem(http, body, needle):
    reply = await http.post(PROCESS, content=body, headers={"content-type": "application/json"})

    assert_json_error(reply, 400, needle)


async def test_unknown_body_field_is_dropped_by_the_transcoder(http):
    # Envoy 1.40's transcoder has no option to reject unknown body fields (docs/adr/0001).
    reply = await http.post(PROCESS, json={"prompt": "hi", "colour": "blue"})

    assert reply.status_code == 200, reply.text
    assert "colour" not in reply.json()


async def test_misspelt_required_field_is_a_400_naming_it(http):
    reply = await http.post(PROCESS, json={"promt": "hi"})

    assert_json_error(reply, 400, "prompt", "must not be empty")


async def test_empty_prompt_carries_a_field_violation(http):
    reply = await http.post(PROCESS, json={"prompt": "  "})

    body = assert_json_error(reply, 400, "ERROR_REASON_INVALID_ARGUMENT")
    violations = [
        (v["field"], v["description"])
        for d in body["details"]
        if d["@type"].endswith("google.rpc.BadRequest")
        for v in d["field_violations"]
    ]
    assert violations == [("prompt", "must not be empty")]


async def test_over_size_body_is_a_413_json(http):
    body = json.dumps({"prompt": "x" * (1024 * 1024 + 1)})

    reply = await http.post(PROCESS, content=body, headers={"content-type": "application/json"})

    assert_json_error(reply, 413, "payload too large")


async def test_unknown_query_parameter_is_a_400_json(http):
    reply = await http.get(STATS, params={"verbose": "1"})

    assert_json_error(reply, 400, "verbose")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("GET", "/index.html"),
        ("GET", "/web/status.js"),
        ("GET", "/api/v1/history"),
        ("POST", "/api/v1/prompts"),
        ("POST", "/aiselector.v1.Selector/ProcessPrompt"),
        ("POST", "/aiselector.v1.ModelStore/ListModels"),
        ("POST", "/aiselector.v1.ModelStore/CreateModel"),
        ("POST", "/aiselector.v1.ModelStore/PurgeHistory"),
        ("POST", "/grpc.health.v1.Health/Check"),
    ],
)
async def test_unknown_and_internal_paths_are_404_json(http, method, path):
    reply = await http.request(method, path, json={})

    assert_json_error(reply, 404, '"code": 404')


@pytest.mark.parametrize(
    ("path", "file", "content_type"),
    [
        ("/", "index.html", "text/html"),
        ("/?refresh=5", "index.html", "text/html"),
        ("/status.js", "status.js", "text/javascript"),
        ("/status.css", "status.css", "text/css"),
    ],
)
async def test_the_status_page_files_are_served_as_they_are(http, path, file, content_type):
    reply = await http.get(path)

    assert reply.status_code == 200
    assert reply.content == (WEB_DIR / file).read_bytes()
    assert reply.headers["content-type"] == f"{content_type}; charset=utf-8"
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-request-id"]
    head = await http.head(path)
    assert (head.status_code, head.content) == (200, b"")


async def test_every_model_store_method_is_404_for_json_clients(http):
    service = model_store_pb2.DESCRIPTOR.services_by_name["ModelStore"]
    for method in service.methods:
        reply = await http.post(f"/{service.full_name}/{method.name}", json={})
        assert reply.status_code == 404, (method.name, reply.text)


@pytest.mark.parametrize(
    ("prompt", "status", "retry_after", "reason"),
    [
        ("limited", 429, "7", "ERROR_REASON_ALL_RATE_LIMITED"),
        ("unavailable", 503, "30", "ERROR_REASON_SERVICE_UNAVAILABLE"),
    ],
)
async def test_retryable_errors_carry_retry_after(http, prompt, status, retry_after, reason):
    reply = await http.post(PROCESS, json={"prompt": prompt})

    body = assert_json_error(reply, status, reason)
    assert reply.headers["retry-after"] == retry_after
    retry_info = [d for d in body["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry_info == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": f"{retry_after}s"}
    ]


async def test_native_grpc_client_reaches_selector_through_envoy(envoy: RunningEnvoy):
    async with grpc.aio.insecure_channel(envoy.grpc_target) as channel:
        stub = selector_pb2_grpc.SelectorStub(channel)
        reply = await stub.ProcessPrompt(selector_pb2.ProcessPromptRequest(prompt="hi"), timeout=5)

    assert reply.response == "scripted answer"


async def test_native_grpc_client_cannot_reach_model_store(envoy: RunningEnvoy, upstream: Upstream):
    async with grpc.aio.insecure_channel(upstream.address) as direct:
        await model_store_pb2_grpc.ModelStoreStub(direct).ListModels(
            model_store_pb2.ListModelsRequest(), timeout=5
        )
    async with grpc.aio.insecure_channel(envoy.grpc_target) as channel:
        stub = model_store_pb2_grpc.ModelStoreStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListModels(model_store_pb2.ListModelsRequest(), timeout=5)

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_native_grpc_errors_keep_their_code_and_retry_after(envoy: RunningEnvoy):
    async with grpc.aio.insecure_channel(envoy.grpc_target) as channel:
        stub = selector_pb2_grpc.SelectorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ProcessPrompt(selector_pb2.ProcessPromptRequest(prompt="limited"), timeout=5)

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("retry-after", "7") in tuple(raised.value.trailing_metadata() or ())


async def test_envoy_assigns_the_request_id_and_the_selector_sees_it(http, upstream: Upstream):
    reply = await http.post(
        PROCESS, json={"prompt": "trace me"}, headers={"x-request-id": "client-chosen"}
    )

    assert reply.status_code == 200, reply.text
    request_id = reply.headers["x-request-id"]
    assert request_id
    assert request_id != "client-chosen"
    seen = [c for c in upstream.selector.calls if c.request_id == request_id]
    assert [c.method for c in seen] == ["ProcessPrompt"]
    assert reply.json()["request_id"] == request_id


async def test_envoy_passes_client_metadata_to_the_selector(http, upstream: Upstream):
    reply = await http.post(
        PROCESS, json={"prompt": "who"}, headers={"x-client-id": "docs-example"}
    )

    request_id = reply.headers["x-request-id"]
    [call] = [c for c in upstream.selector.calls if c.request_id == request_id]
    assert call.metadata["x-client-id"] == "docs-example"


async def test_grpc_clients_also_get_an_edge_request_id(envoy: RunningEnvoy, upstream: Upstream):
    async with grpc.aio.insecure_channel(envoy.grpc_target) as channel:
        stub = selector_pb2_grpc.SelectorStub(channel)
        call = stub.GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
        await call
        initial = dict(await call.initial_metadata())

    request_id = initial["x-request-id"]
    assert [c.method for c in upstream.selector.calls if c.request_id == request_id] == [
        "GetModelStats"
    ]


async def test_access_log_is_json_with_the_request_id(http, envoy: RunningEnvoy):
    reply = await http.get(STATS)
    request_id = reply.headers["x-request-id"]

    def logged() -> list[dict]:
        entries = []
        for line in envoy.log_lines():
            if line.startswith("{") and request_id in line:
                entries.append(json.loads(line))
        return entries

    await eventually(lambda: bool(logged()))
    [entry] = logged()
    assert entry["status"] == 200
    assert entry["path"] == STATS
    assert entry["service"] == "envoy"


async def test_an_oversized_reply_header_fails_only_its_own_request(http, upstream: Upstream):
    # Every request shares Envoy's HTTP/2 connections to the Selector; a header field over
    # HTTP/2's default 64 KiB used to reset them, and every request in flight with them.
    started = len(upstream.selector.calls)
    normal = [
        asyncio.create_task(http.post(PROCESS, json={"prompt": SLOW_PROMPT})) for _ in range(20)
    ]
    await eventually(lambda: len(upstream.selector.calls) - started >= 20)

    oversized = await asyncio.gather(
        http.post(PROCESS, json={"prompt": OVERSIZED_HEADER_PROMPT}), return_exceptions=True
    )
    replies = await asyncio.gather(*normal)

    assert [r.status_code for r in replies] == [200] * 20
    assert isinstance(oversized[0], httpx.HTTPError) or oversized[0].status_code != 200


async def test_request_headers_either_reach_the_selector_or_get_431_never_429(http):
    # The Selector's gRPC server answers metadata over its limit with RESOURCE_EXHAUSTED (429, an
    # invitation to retry); Envoy's header limits must refuse such a request first.
    statuses = set()
    for size in [2_000, 8_000, *range(14_000, 16_800, 100), 20_000, 50_000]:
        headers = {f"x-filler-{i:02d}": "f" * 10 for i in range(40)}
        headers["x-client-id"] = "c" * size
        statuses.add((await http.post(PROCESS, json={"prompt": "hi"}, headers=headers)).status_code)

    assert statuses == {200, 431}


@pytest.mark.parametrize("value", ["zzz", "5x", "123456789S", "1.5S", ""])
async def test_a_malformed_grpc_timeout_is_a_400_naming_the_header(http, value):
    reply = await http.post(PROCESS, json={"prompt": "hi"}, headers={"grpc-timeout": value})

    assert_json_error(reply, 400, "grpc-timeout", "digits")


async def test_a_well_formed_grpc_timeout_passes(http):
    reply = await http.post(PROCESS, json={"prompt": "hi"}, headers={"grpc-timeout": "3S"})

    assert reply.status_code == 200, reply.text
