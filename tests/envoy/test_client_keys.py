"""Client keys on the real stack behind the real Envoy: open and required modes, 401/403/429 in the
shape of each route, revocation within the cache time, limits shared by two Selector replicas,
usage per key, the OpenAI SDK with a client key, and no key in any log or reply."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import grpc
import httpx
import openai
import pytest

from aiselector.v1 import model_store_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from services.selector.client_keys import KEY_PREFIX, key_sha256
from tests.stacks import ADMIN_TOKEN, _selector

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PROMPT = {"prompt": "Say hello."}
CACHE_SECONDS = 0.5


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def create_key(http: httpx.AsyncClient, name: str = "my-app", **limits: int) -> dict:
    reply = await http.post("/api/v1/admin/keys", headers=ADMIN, json={"name": name, **limits})
    assert reply.status_code == 200, reply.text
    return reply.json()


def reason(reply: httpx.Response) -> str:
    [info] = [d for d in reply.json()["details"] if d["@type"].endswith("ErrorInfo")]
    return info["reason"]


async def test_open_on_loopback_until_the_first_key_exists(front):
    stack, _, http = await front()
    assert stack.selector.servicer._gate.required is False

    anonymous = await http.post("/api/v1/prompts/process", json=PROMPT)
    assert anonymous.status_code == 200, anonymous.text
    # A key that is not one is ignored in open mode (the OpenAI SDKs need some api_key).
    assert (await http.get("/v1/models", headers=bearer("unused"))).status_code == 200

    created = await create_key(http)

    refused = await http.post("/api/v1/prompts/process", json=PROMPT)
    assert refused.status_code == 401
    assert reason(refused) == "ERROR_REASON_CLIENT_KEY_REQUIRED"
    keyed = await http.post("/api/v1/prompts/process", json=PROMPT, headers=bearer(created["key"]))
    assert keyed.status_code == 200, keyed.text


async def test_required_mode_refuses_missing_and_wrong_keys_in_each_routes_shape(front):
    stack, _, http = await front(allow_anonymous=False)
    wrong = bearer(KEY_PREFIX + "x" * 43)

    missing = await http.post("/api/v1/prompts/process", json=PROMPT)
    assert missing.status_code == 401
    assert reason(missing) == "ERROR_REASON_CLIENT_KEY_REQUIRED"
    assert "authorization: Bearer" in missing.json()["message"]
    denied = await http.post("/api/v1/prompts/process", json=PROMPT, headers=wrong)
    assert denied.status_code == 403
    assert reason(denied) == "ERROR_REASON_CLIENT_KEY_INVALID"
    assert (await http.get("/api/v1/models/stats")).status_code == 401

    chat = {"messages": [{"role": "user", "content": "hi"}]}
    openai_missing = await http.post("/v1/chat/completions", json=chat)
    assert openai_missing.status_code == 401
    assert openai_missing.json()["error"]["code"] == "client_key_required"
    openai_denied = await http.post("/v1/chat/completions", json=chat, headers=wrong)
    assert openai_denied.status_code == 403
    assert openai_denied.json()["error"]["type"] == "permission_error"
    assert (await http.get("/v1/models")).json()["error"]["code"] == "client_key_required"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub().ProcessPrompt(selector_pb2.ProcessPromptRequest(prompt="hi"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stack.sim.log() == []

    key = (await create_key(http))["key"]
    reply = await stack.stub().ProcessPrompt(
        selector_pb2.ProcessPromptRequest(prompt="hi"),
        timeout=5,
        metadata=(("authorization", f"Bearer {key}"),),
    )
    assert reply.success
    # The admin token is a credential too (the bot and the health worker use it).
    assert (
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=ADMIN)
    ).status_code == 200


async def test_a_key_revoked_elsewhere_is_refused_within_the_cache_time(front):
    stack, _, http = await front(allow_anonymous=False, client_key_cache_seconds=CACHE_SECONDS)
    created = await create_key(http)
    headers = bearer(created["key"])
    assert (
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
    ).status_code == 200

    # Revoked in ModelStore directly, as another replica (or the CLI through it) would.
    await stack.store_stub().MarkClientKeyRevoked(
        model_store_pb2.MarkClientKeyRevokedRequest(client_key_id=int(created["client_key"]["id"])),
        timeout=5,
    )
    revoked_at = time.monotonic()
    while True:
        reply = await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
        if reply.status_code == 403:
            break
        assert reply.status_code == 200
        assert time.monotonic() - revoked_at < CACHE_SECONDS + 0.5, "still admitted"
        await asyncio.sleep(0.05)
    assert reason(reply) == "ERROR_REASON_CLIENT_KEY_INVALID"


async def test_revoked_through_the_selector_is_refused_at_once(front):
    _, _, http = await front(allow_anonymous=False, client_key_cache_seconds=60)
    created = await create_key(http)
    headers = bearer(created["key"])
    assert (
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
    ).status_code == 200

    key_id = created["client_key"]["id"]
    revoked = await http.post(f"/api/v1/admin/keys/{key_id}:revoke", headers=ADMIN, json={})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["client_key"]["revoke_time"]

    assert (
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
    ).status_code == 403
    listed = await http.get("/api/v1/admin/keys", headers=ADMIN, params={"include_revoked": "true"})
    [entry] = listed.json()["client_keys"]
    assert entry["revoke_time"]
    assert entry["key_prefix"] == created["key"][:9]
    assert (await http.get("/api/v1/admin/keys", headers=ADMIN)).json()["client_keys"] == []


async def test_a_3_rpm_key_gets_429_on_its_4th_request_and_no_provider_sees_it(front):
    stack, _, http = await front(allow_anonymous=False)
    created = await create_key(http, requests_per_minute=3)
    headers = bearer(created["key"])

    answered = []
    for _ in range(3):
        reply = await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
        assert reply.status_code == 200, reply.text
        answered.append(reply.json())
    over = await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)

    assert over.status_code == 429
    assert reason(over) == "ERROR_REASON_CLIENT_KEY_LIMIT"
    assert "3 requests per minute" in over.json()["message"]
    assert 1 <= int(over.headers["retry-after"]) <= 20
    assert len(stack.sim.log()) == 3
    # Another key is not held back by this one's limit.
    other = bearer((await create_key(http, "other"))["key"])
    assert (
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=other)
    ).status_code == 200

    await stack.selector.recorder.flush()
    key_id = created["client_key"]["id"]
    usage = await http.get(
        "/api/v1/admin/keys/usage", headers=ADMIN, params={"client_key_id": key_id}
    )
    [day] = usage.json()["usages"]
    tokens = sum(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in answered)
    assert (day["name"], day["requests"], day["failures"]) == ("my-app", "3", "0")
    assert int(day["tokens"]) == tokens > 0
    history = await stack.history()
    assert sorted(r.client_key_id for r in history) == sorted([int(key_id)] * 3 + [int(key_id) + 1])


async def test_limits_are_shared_by_two_selector_replicas(front):
    stack, _, http = await front(allow_anonymous=False)
    key = (await create_key(http, requests_per_minute=6))["key"]
    second = await _selector(stack.store.address, stack.environ, stack.settings)
    try:
        metadata = (("authorization", f"Bearer {key}"),)
        stubs = [stack.stub(), stack.stub()]
        channel = open_channel(second.address, private=True)
        stack.channels.append(channel)
        stubs.append(selector_pb2_grpc.SelectorStub(channel))
        codes = []
        for index in range(12):
            try:
                await stubs[index % 3].ProcessPrompt(
                    selector_pb2.ProcessPromptRequest(prompt="hi"), timeout=5, metadata=metadata
                )
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
    finally:
        await second.stop()
    assert codes.count("OK") == 6, codes
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}
    assert len(stack.sim.log()) == 6


async def test_a_daily_request_limit_holds_until_midnight(front):
    _, _, http = await front(allow_anonymous=False)
    headers = bearer((await create_key(http, requests_per_day=2))["key"])
    for _ in range(2):
        assert (
            await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
        ).status_code == 200
    over = await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers)
    assert over.status_code == 429
    assert "2 requests per day" in over.json()["message"]
    assert 0 < int(over.headers["retry-after"]) <= 86_400


async def test_the_openai_sdk_works_with_a_client_key(front):
    _, envoy, http = await front(allow_anonymous=False)
    key = (await create_key(http, requests_per_minute=2))["key"]

    def client(api_key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{envoy.url}/v1", api_key=api_key, max_retries=0)

    sdk = client(key)
    messages: list[Any] = [{"role": "user", "content": "Say something."}]
    completion = await sdk.chat.completions.create(model="auto", messages=messages)
    assert completion.choices[0].message.content
    assert next(m.id for m in (await sdk.models.list()).data) == "auto"
    with pytest.raises(openai.PermissionDeniedError):
        await client(KEY_PREFIX + "y" * 43).chat.completions.create(model="auto", messages=messages)
    streamed = await sdk.chat.completions.create(model="auto", messages=messages, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.chat.completions.create(model="auto", messages=messages)
    assert limited.value.response.headers["retry-after"]
    assert limited.value.body["code"] == "client_key_limit"
    await sdk.close()


async def test_a_key_never_appears_in_logs_or_replies(front, caplog):
    caplog.set_level(logging.DEBUG)
    stack, envoy, http = await front(allow_anonymous=False)
    created = await create_key(http, requests_per_minute=1)
    key = created["key"]
    headers = bearer(key)
    replies = [
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers),
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers),  # 429
        await http.post(
            "/v1/chat/completions",
            headers=headers,
            json={"messages": [{"role": "user", "content": "x"}]},
        ),
        await http.get("/api/v1/admin/keys", headers=ADMIN),
        await http.get("/api/v1/admin/keys/usage", headers=ADMIN),
        await http.post(
            f"/api/v1/admin/keys/{created['client_key']['id']}:revoke", headers=ADMIN, json={}
        ),
        await http.post("/api/v1/prompts/process", json=PROMPT, headers=headers),  # 403
    ]
    assert [r.status_code for r in replies] == [200, 429, 429, 200, 200, 200, 403]
    await stack.selector.recorder.flush()

    seen = [r.text + json.dumps(dict(r.headers)) for r in replies]
    seen += [caplog.text, *(json.dumps(vars(r), default=str) for r in caplog.records)]
    seen += envoy.log_lines()
    seen += [str(record) for record in await stack.history()]
    for text in seen:
        assert key not in text
        assert key[len(KEY_PREFIX) :] not in text
    # Only the hash is stored.
    found = await stack.store_stub().LookupClientKey(
        model_store_pb2.LookupClientKeyRequest(key_sha256=key_sha256(key)), timeout=5
    )
    assert found.client_key.key_prefix == key[:9]


async def test_an_api_beyond_loopback_requires_keys_unless_the_operator_opts_out(front):
    # Nothing binds beyond loopback here: the Selector is told where Envoy publishes the API.
    _, _, exposed = await front(envoy_listen_host="0.0.0.0")
    _, _, opted_out = await front(envoy_listen_host="0.0.0.0", allow_anonymous=True)

    refused = await exposed.post("/api/v1/prompts/process", json=PROMPT)
    assert refused.status_code == 401
    assert (await opted_out.post("/api/v1/prompts/process", json=PROMPT)).status_code == 200
