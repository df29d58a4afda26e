"""A provider that echoes the credential back: the key appears in no exception and no log record."""

from __future__ import annotations

import logging
import traceback

import aiohttp
import pytest

from aiselector.v1 import common_pb2 as pb
from services.common.logging import JsonFormatter
from services.selector.providers import ChatRequest, ProviderError, resolve_targets
from tests.selector.providers.helpers import KEY, WIRES, script


@pytest.mark.parametrize("wire", WIRES)
async def test_echoed_key_never_leaks(sim, client, target, wire, caplog):
    script(sim, wire, behaviour="echo_authorization")
    caplog.set_level(logging.DEBUG)
    echo_target = target(wire)
    call = ChatRequest.from_prompt("x")

    # The provider really does echo the key: the test could fail.
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {KEY}", "x-goog-api-key": KEY}
        url = (
            f"{echo_target.base_url}/models/m:generateContent"
            if wire[0] == "gemini"
            else f"{echo_target.base_url}/chat/completions"
        )
        async with session.post(url, json={"model": "m"}, headers=headers) as response:
            assert KEY in await response.text()

    with pytest.raises(ProviderError) as caught:
        await client.complete(echo_target, call, timeout=5)

    error = caught.value
    assert error.http_status == 401
    assert "[REDACTED]" in error.message
    texts = [
        str(error),
        repr(error),
        error.message,
        "".join(traceback.format_exception(error)),
        repr(echo_target),
    ]
    formatter = JsonFormatter("test")
    texts += [formatter.format(record) for record in caplog.records]
    texts += [record.getMessage() for record in caplog.records]
    assert any("provider call failed" in text for text in texts)
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in texts:
        assert KEY not in text
    assert all(KEY not in entry["path"] for entry in sim.log())


KEYS = ("sk-list-first-7d1e2a9c", "sk-list-second-3b8f0c61")


@pytest.mark.parametrize("wire", WIRES)
async def test_keys_listed_in_one_variable_never_leak(sim, client, wire, caplog):
    script(sim, wire, behaviour="echo_authorization")
    caplog.set_level(logging.DEBUG)
    provider, api_format = wire
    model = pb.Model(
        name=f"{provider}/m",
        provider=provider,
        api_format=api_format,
        provider_model_id="m",
        api_endpoint="https://provider.invalid/v1",
        api_key_env="LISTED_API_KEY",
        base_url_env="LISTED_BASE_URL",
    )
    environ = {
        "LISTED_API_KEY": f" {KEYS[0]} ,{KEYS[1]}",
        "LISTED_BASE_URL": sim.base_url(provider),
    }
    targets = resolve_targets(model, environ)
    assert [t.key_id for t in targets] == ["LISTED_API_KEY#1", "LISTED_API_KEY#2"]

    texts = []
    for listed in targets:
        with pytest.raises(ProviderError) as caught:
            await client.complete(listed, ChatRequest.from_prompt("x"), timeout=5)
        error = caught.value
        assert error.http_status == 401
        assert "[REDACTED]" in error.message  # the provider did echo the key it was sent
        texts += [str(error), repr(error), error.message, repr(listed)]
        texts.append("".join(traceback.format_exception(error)))
    formatter = JsonFormatter("test")
    texts += [formatter.format(record) for record in caplog.records]
    for text in texts:
        for key in (*KEYS, environ["LISTED_API_KEY"]):
            assert key not in text
