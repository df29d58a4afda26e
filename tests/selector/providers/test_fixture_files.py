"""The recorded provider replies under tests/fixtures/providers are well-formed and consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiselector.v1 import common_pb2

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
FILES = sorted(FIXTURES.rglob("*.json"))
OUTCOMES = {
    name.removeprefix("OUTCOME_") for name in common_pb2.Outcome.DESCRIPTOR.values_by_name
} - {"UNSPECIFIED"}
FIELDS = {"source", "retrieved", "note", "kind", "status", "headers", "body", "expect"}


def test_there_are_fixtures_for_every_provider() -> None:
    providers = {path.parent.name for path in FILES}
    assert {"gemini", "groq", "cerebras", "cloudflare", "openrouter"} <= providers
    assert len(FILES) >= 50


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_is_well_formed(path: Path) -> None:
    fixture = json.loads(path.read_text())
    assert fixture.keys() >= FIELDS, f"missing {FIELDS - fixture.keys()}"
    assert fixture["source"].strip()
    assert fixture["kind"] in {"chat", "models"}
    assert isinstance(fixture["status"], int)
    assert 200 <= fixture["status"] < 600
    assert all(name == name.lower() for name in fixture["headers"])
    if "stream" in fixture:
        assert fixture["body"] is None
        assert all(isinstance(line, str) for line in fixture["stream"])
    else:
        assert fixture["body"] is not None
    expect = fixture["expect"]
    assert expect["outcome"] in OUTCOMES
    assert expect["scope"] in {"model", "account"}
    assert expect["why"].strip()
    wait = expect["wait_seconds"]
    assert wait is None or isinstance(wait, int | float)
    assert wait is None or wait >= 0
    if expect["outcome"] == "SUCCESS":
        assert wait is None
