"""Every recorded provider reply under tests/fixtures/providers, replayed through the classifier
(or, for a 2xx, the adapter's parser) must give exactly the outcome, wait and scope it records."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aiselector.v1 import common_pb2 as pb
from services.selector.providers import ChatRequest, ProviderError, Target
from services.selector.providers.classify import classify_error_body, classify_response
from services.selector.providers.gemini import GeminiFormat
from services.selector.providers.openai import OpenAIFormat

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
DEFAULT_NOW = "2026-12-01T12:00:00Z"
KEY = "sk-fixture-replay-7c1d"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _chat(stream: bool) -> list[Path]:
    """Chat fixtures (not model lists), streamed or not."""
    fixtures = {path: _load(path) for path in sorted(FIXTURES.rglob("*.json"))}
    return [p for p, f in fixtures.items() if f["kind"] == "chat" and ("stream" in f) == stream]


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _target(provider: str) -> Target:
    api_format = pb.API_FORMAT_GEMINI if provider == "gemini" else pb.API_FORMAT_OPENAI
    return Target(provider, "m", api_format, "http://provider.invalid", api_key=KEY)


def _replay(fixture: dict[str, Any], target: Target) -> ProviderError | None:
    """The error the adapters conclude from the fixture's reply, None for a usable answer."""
    now = datetime.fromisoformat(fixture.get("now", DEFAULT_NOW))
    raw = json.dumps(fixture["body"])
    status, headers = fixture["status"], fixture["headers"]
    if not 200 <= status < 300:
        return classify_response(target, status, headers, raw, now)
    error = classify_error_body(target, status, headers, raw, now)
    if error is not None:
        return error
    wire = GeminiFormat() if target.api_format == pb.API_FORMAT_GEMINI else OpenAIFormat()
    try:
        wire.parse(target, ChatRequest.from_prompt("x"), fixture["body"])
    except ProviderError as parse_error:
        return parse_error
    return None


@pytest.mark.parametrize("path", _chat(stream=False), ids=_name)
def test_reply_gives_the_recorded_outcome_wait_and_scope(path: Path) -> None:
    fixture = _load(path)
    expect = fixture["expect"]

    error = _replay(fixture, _target(path.parent.name))

    if expect["outcome"] == "SUCCESS":
        assert error is None, error
        return
    assert error is not None
    assert error.outcome_name == f"OUTCOME_{expect['outcome']}", error
    if expect["wait_seconds"] is None:
        assert error.retry_after is None, error
    else:
        assert error.retry_after == pytest.approx(expect["wait_seconds"], abs=0.01), error
    assert error.scope == expect["scope"], error
    assert error.http_status == fixture["status"]
    assert KEY not in error.message


def _events(fixture: dict[str, Any]) -> list[str]:
    return [
        line.removeprefix("data:").strip()
        for line in fixture["stream"]
        if line.startswith("data:") and line.strip() != "data: [DONE]"
    ]


SUCCESS_STREAMS = [p for p in _chat(stream=True) if _load(p)["expect"]["outcome"] == "SUCCESS"]


@pytest.mark.parametrize("path", SUCCESS_STREAMS, ids=_name)
def test_no_event_of_a_successful_stream_is_taken_for_an_error(path: Path) -> None:
    fixture = _load(path)
    target = _target(path.parent.name)
    now = datetime.fromisoformat(DEFAULT_NOW)

    assert [classify_error_body(target, 200, {}, event, now) for event in _events(fixture)] == [
        None
    ] * len(_events(fixture))


def test_an_error_event_in_an_openrouter_stream_is_a_failed_attempt() -> None:
    fixture = _load(FIXTURES / "openrouter" / "stream_mid_stream_error.json")
    target = _target("openrouter")
    now = datetime.fromisoformat(DEFAULT_NOW)
    first, second = _events(fixture)

    error = classify_error_body(target, 200, {}, second, now)

    assert classify_error_body(target, 200, {}, first, now) is None
    assert error is not None
    assert (error.outcome_name, error.scope) == (
        f"OUTCOME_{fixture['expect']['outcome']}",
        fixture["expect"]["scope"],
    )
    assert (error.http_status, error.retry_after) == (200, None)
    assert "Provider disconnected unexpectedly" in error.message
