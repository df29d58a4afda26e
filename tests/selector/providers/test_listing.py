"""Model lists: each recorded list parsed, and each wire read from the simulator over HTTP (paging,
error replies, silence, an empty list, a closed port)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from aiselector.v1 import common_pb2 as pb
from services.selector.providers.listing import (
    Listed,
    ListingError,
    fetch_listing,
    parse_cloudflare,
    parse_gemini,
    parse_openai,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
GEMINI = ("gemini", pb.API_FORMAT_GEMINI)


def _body(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())["body"]


def test_groq_list_gives_activity_context_and_output_limit():
    assert parse_openai(_body("groq/models_list")) == [
        Listed("openai/gpt-oss-20b", context_tokens=131072, max_output_tokens=65536),
        Listed("groq/compound", context_tokens=131072, max_output_tokens=8192),
    ]


def test_openrouter_list_says_which_models_are_free():
    assert parse_openai(_body("openrouter/models_list")) == [
        Listed("openai/gpt-oss-120b:free", context_tokens=131072, free=True)
    ]


def test_cerebras_and_huggingface_lists_give_ids_and_say_nothing_about_price():
    assert parse_openai(_body("cerebras/models_list")) == [
        Listed("gpt-oss-120b"),
        Listed("gemma-4-31b"),
        Listed("qwen-3.8-27b"),
    ]
    assert parse_openai(_body("huggingface/models_list")) == [Listed("openai/gpt-oss-120b")]


def test_gemini_list_keeps_chat_models_without_their_prefix():
    models, token = parse_gemini(_body("gemini/models_list"))

    assert models == [
        Listed("gemini-3.1-flash-lite", context_tokens=1048576),
        Listed("gemini-flash-latest"),
    ]
    assert token == ""


def test_cloudflare_search_gives_text_generation_models_with_their_context():
    assert parse_cloudflare(_body("cloudflare/models_search")) == [
        Listed("@cf/zai-org/glm-4.7-flash", context_tokens=131072)
    ]


@pytest.mark.parametrize(
    ("entry", "free"),
    [
        ({"id": "a/b:free", "pricing": {"prompt": "0", "completion": "0"}}, True),
        ({"id": "a/b:free", "pricing": {"prompt": "0", "completion": "0.0000004"}}, False),
        ({"id": "a/b", "pricing": {"prompt": "0", "completion": "0"}}, False),
        ({"id": "a/b:free", "pricing": {"prompt": "-1", "completion": "0"}}, False),
        ({"id": "a/b:free"}, None),
    ],
)
def test_free_means_a_free_id_at_price_zero(entry, free):
    [listed] = parse_openai({"data": [entry]})

    assert listed.free is free


def test_inactive_and_expiring_models_are_marked():
    listed = parse_openai(
        {
            "data": [
                {"id": "old", "active": False},
                {"id": "going", "expiration_date": "2026-12-31"},
                {"id": "going-at", "expiration_date": "2027-01-15T00:00:00Z"},
                {"id": "unreadable", "expiration_date": "soon"},
                {"object": "model"},
            ]
        }
    )
    cloudflare = parse_cloudflare(
        {
            "success": True,
            "result": [
                {
                    "name": "@cf/x/y",
                    "properties": [
                        {"property_id": "planned_deprecation_date", "value": "2027-02-01"}
                    ],
                },
                {"name": "@cf/x/speech", "task": {"name": "Automatic Speech Recognition"}},
            ],
        }
    )

    assert [(m.id, m.active, m.expires) for m in listed] == [
        ("old", False, None),
        ("going", True, date(2026, 12, 31)),
        ("going-at", True, date(2027, 1, 15)),
        ("unreadable", True, None),
    ]
    assert cloudflare == [Listed("@cf/x/y", expires=date(2027, 2, 1))]


@pytest.mark.parametrize(
    ("parse", "body", "words"),
    [
        (parse_openai, {"object": "list"}, "no `data` list"),
        (parse_openai, ["not", "an", "object"], "no `data` list"),
        (parse_gemini, {"models": "none"}, "no `models` list"),
        (parse_cloudflare, {"result": None}, "no `result` list"),
        (
            parse_cloudflare,
            {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]},
            "Authentication error",
        ),
    ],
)
def test_a_reply_that_is_no_list_is_an_error(parse, body, words):
    with pytest.raises(ListingError, match=words):
        parse(body)


# ----- over HTTP, against the simulator -----


async def test_groq_list_over_http_includes_inactive_models(sim, client, target):
    sim.set_models(
        "groq",
        [
            {"id": "openai/gpt-oss-120b", "context": 131072, "max_output": 65536},
            {"id": "old", "active": False},
        ],
    )

    listed = await fetch_listing(client, target(("groq", pb.API_FORMAT_OPENAI)), timeout=5)

    assert listed == [
        Listed("openai/gpt-oss-120b", context_tokens=131072, max_output_tokens=65536),
        Listed("old", active=False),
    ]


async def test_openrouter_list_over_http_tells_free_from_paid(sim, client, target):
    sim.set_models(
        "openrouter",
        [
            {"id": "openai/gpt-oss-20b:free", "context": 131072, "expires": "2027-03-01"},
            {"id": "openai/gpt-oss-120b", "free": False},
        ],
    )

    listed = await fetch_listing(client, target(("openrouter", pb.API_FORMAT_OPENAI)), timeout=5)

    assert [(m.id, m.free, m.context_tokens, m.expires) for m in listed] == [
        ("openai/gpt-oss-20b:free", True, 131072, date(2027, 3, 1)),
        ("openai/gpt-oss-120b", False, 0, None),
    ]


async def test_gemini_list_is_read_page_by_page(sim, client, target):
    sim.set_models(
        "gemini",
        [
            "gemini-3.6-flash",
            {"id": "text-embedding", "methods": ["embedContent"]},
            "gemini-3.5-flash-lite",
            {"id": "gemini-3.1-flash-lite", "context": 1048576},
        ],
    )

    one_by_one = await fetch_listing(
        client, target(GEMINI), timeout=5, first_params={"pageSize": "1"}
    )
    at_once = await fetch_listing(client, target(GEMINI), timeout=5)

    assert [m.id for m in one_by_one] == [
        "gemini-3.6-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
    ]
    assert one_by_one == at_once
    assert at_once[2].context_tokens == 1048576


async def test_cloudflare_list_is_its_model_search(sim, client, target):
    sim.set_models(
        "cloudflare",
        [
            {"id": "@cf/zai-org/glm-4.7-flash", "context": 131072},
            {"id": "@cf/meta/old", "expires": "2026-05-30"},
        ],
    )
    # The simulator's layout and Cloudflare's own: `…/ai/v1` → `…/ai/models/search`.
    real_layout = f"{sim.url}/client/v4/accounts/acc42/ai/v1"

    short = await fetch_listing(client, target(("cloudflare", pb.API_FORMAT_OPENAI)), timeout=5)
    real = await fetch_listing(
        client, target(("cloudflare", pb.API_FORMAT_OPENAI), base_url=real_layout), timeout=5
    )

    assert (
        short
        == real
        == [
            Listed("@cf/zai-org/glm-4.7-flash", context_tokens=131072),
            Listed("@cf/meta/old", expires=date(2026, 5, 30)),
        ]
    )


def _down(sim, provider: str, behaviour: str | int) -> None:
    sim.set_scripts(
        {
            "default": {"latency": 0},
            "providers": {provider: {"models": ["m"]}},
            "scripts": {
                f"{provider}/*": {"outage": {"start": 0, "end": 3600, "behaviour": behaviour}}
            },
        }
    )


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (("groq", pb.API_FORMAT_OPENAI), "model list: HTTP 500 from groq"),
        (GEMINI, "model list: HTTP 500 from gemini"),
        (("cloudflare", pb.API_FORMAT_OPENAI), "model list: HTTP 500 from cloudflare"),
    ],
)
async def test_an_error_reply_is_a_listing_error(sim, client, target, wire, words):
    _down(sim, wire[0], 500)

    with pytest.raises(ListingError, match=words):
        await fetch_listing(client, target(wire), timeout=5)


async def test_a_silent_list_ends_at_the_timeout(sim, client, target):
    _down(sim, "groq", "silence")

    with pytest.raises(ListingError, match=r"did not come within 0\.3 s"):
        await fetch_listing(client, target(("groq", pb.API_FORMAT_OPENAI)), timeout=0.3)


async def test_an_empty_list_is_not_believed(sim, client, target):
    sim.set_models("groq", [])

    with pytest.raises(ListingError, match="groq listed no chat model; nothing was changed"):
        await fetch_listing(client, target(("groq", pb.API_FORMAT_OPENAI)), timeout=5)


async def test_a_closed_port_is_a_connection_error(client, target):
    wire = ("groq", pb.API_FORMAT_OPENAI)

    with pytest.raises(ListingError, match="connection failed"):
        await fetch_listing(client, target(wire, base_url="http://127.0.0.1:9/groq/v1"), timeout=5)
