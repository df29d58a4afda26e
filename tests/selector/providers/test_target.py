"""Keys and base URLs from the environment: overrides, placeholders, missing credentials."""

from __future__ import annotations

import pytest

from aiselector.v1 import common_pb2 as pb
from services.common import secrets
from services.selector.providers import ChatRequest, MissingCredentials, resolve_target

CLOUDFLARE_ENDPOINT = "https://api.cloudflare.com/client/v4/accounts/{CLOUDFLARE_ACCOUNT_ID}/ai/v1"


def _model(**fields: object) -> pb.Model:
    values: dict[str, object] = {
        "name": "groq/llama-3.3-70b-versatile",
        "provider": "groq",
        "api_endpoint": "https://api.groq.com/openai/v1",
        "api_format": pb.API_FORMAT_OPENAI,
        "provider_model_id": "llama-3.3-70b-versatile",
        "api_key_env": "GROQ_API_KEY",
        "base_url_env": "GROQ_BASE_URL",
        "supports_json": True,
    }
    values.update(fields)
    return pb.Model(**values)


def test_catalog_endpoint_and_key_are_used_and_the_key_is_hidden():
    target = resolve_target(_model(), {"GROQ_API_KEY": "gsk-live-123456"})

    assert target.base_url == "https://api.groq.com/openai/v1"
    assert (target.provider, target.model, target.api_key) == (
        "groq",
        "llama-3.3-70b-versatile",
        "gsk-live-123456",
    )
    assert "gsk-live-123456" not in repr(target)
    assert secrets.redact("echo gsk-live-123456") == "echo [REDACTED]"


def test_base_url_variable_overrides_the_endpoint():
    environ = {"GROQ_API_KEY": "k" * 10, "GROQ_BASE_URL": "http://127.0.0.1:9/groq/v1/"}

    assert resolve_target(_model(), environ).base_url == "http://127.0.0.1:9/groq/v1"


def test_missing_key_names_the_variable():
    with pytest.raises(MissingCredentials, match=r"^GROQ_API_KEY is not set$"):
        resolve_target(_model(), {"GROQ_API_KEY": ""})


def test_cloudflare_account_placeholder_is_filled_or_reported():
    model = _model(
        provider="cloudflare",
        api_endpoint=CLOUDFLARE_ENDPOINT,
        api_key_env="CLOUDFLARE_API_TOKEN",
        base_url_env="CLOUDFLARE_BASE_URL",
    )

    with pytest.raises(MissingCredentials) as caught:
        resolve_target(model, {})
    assert caught.value.variables == ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"]
    assert str(caught.value) == "CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID are not set"

    target = resolve_target(
        model, {"CLOUDFLARE_API_TOKEN": "cf-token-1", "CLOUDFLARE_ACCOUNT_ID": "acc42"}
    )
    assert target.base_url == "https://api.cloudflare.com/client/v4/accounts/acc42/ai/v1"


def test_keyless_model_needs_no_variable():
    model = _model(provider="ollama", api_key_env="", api_endpoint="http://localhost:11434/v1")

    assert resolve_target(model, {}).api_key == ""


@pytest.mark.parametrize(
    ("provider", "supports_json", "on_the_wire"),
    [("groq", True, True), ("groq", False, False), ("huggingface", True, False)],
)
def test_json_mode_on_the_wire_follows_the_catalog_and_provider(
    provider, supports_json, on_the_wire
):
    model = _model(provider=provider, supports_json=supports_json)

    target = resolve_target(model, {"GROQ_API_KEY": "k" * 10})

    assert target.json_response_format is on_the_wire


async def test_a_new_openai_compatible_provider_needs_only_a_catalog_entry(sim, client):
    model = _model(
        name="acme/tiny",
        provider="acme",
        api_endpoint="https://api.acme.example/v1",
        provider_model_id="tiny-1",
        api_key_env="ACME_API_KEY",
        base_url_env="ACME_BASE_URL",
    )
    environ = {"ACME_API_KEY": "acme-key-123", "ACME_BASE_URL": sim.base_url("acme")}

    result = await client.complete(
        resolve_target(model, environ), ChatRequest.from_prompt("Hi"), timeout=5
    )

    assert result.text.startswith("[simulated] acme/tiny-1")
    assert [(e["provider"], e["model"]) for e in sim.log()] == [("acme", "tiny-1")]


async def test_cloudflare_account_url_reaches_the_account_path(sim, client):
    model = _model(
        provider="cloudflare",
        api_endpoint=CLOUDFLARE_ENDPOINT,
        provider_model_id="@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        api_key_env="CLOUDFLARE_API_TOKEN",
        base_url_env="CLOUDFLARE_BASE_URL",
    )
    environ = {
        "CLOUDFLARE_API_TOKEN": "cf-token-123",
        "CLOUDFLARE_ACCOUNT_ID": "acc42",
        "CLOUDFLARE_BASE_URL": f"{sim.url}/client/v4/accounts/{{CLOUDFLARE_ACCOUNT_ID}}/ai/v1",
    }

    result = await client.complete(
        resolve_target(model, environ), ChatRequest.from_prompt("Hi"), timeout=5
    )

    assert result.text.startswith("[simulated]")
    [entry] = sim.log()
    assert entry["path"] == "/client/v4/accounts/acc42/ai/v1/chat/completions"
    assert entry["model"] == "@cf/meta/llama-3.3-70b-instruct-fp8-fast"


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ({"reasoning": True}, "low"),
        ({"reasoning": True, "reasoning_effort": "default"}, "default"),
        ({"reasoning": True, "reasoning_effort": ""}, None),
        ({}, None),
        ({"reasoning_effort": "high"}, "high"),
    ],
)
async def test_reasoning_effort_on_the_wire_follows_the_catalog(sim, client, fields, sent):
    environ = {"GROQ_API_KEY": "k" * 10, "GROQ_BASE_URL": sim.base_url("groq")}

    await client.complete(
        resolve_target(_model(**fields), environ), ChatRequest.from_prompt("Hi"), timeout=5
    )

    [entry] = sim.log()
    assert entry["reasoning"] == sent
