"""ProcessPrompt and TestProviders input checks: each names the field and the limit."""

from __future__ import annotations

import pytest

from aiselector.v1 import selector_pb2
from services.common import errors
from services.selector.validation import is_blank, validate_model_names, validate_prompt

KNOWN_TAGS = frozenset({"json", "code"})


def violations_of(caller: str = "", **fields) -> list[tuple[str, str]]:
    request = selector_pb2.ProcessPromptRequest(**{"prompt": "hi", **fields})
    with pytest.raises(errors.InvalidArgument) as raised:
        validate_prompt(request, KNOWN_TAGS, caller)
    return raised.value.violations


def test_valid_input_passes_with_duplicate_tags_counted_once():
    request = selector_pb2.ProcessPromptRequest(prompt="hi", tags=["json", "json"], user_id="u")

    prompt = validate_prompt(request, KNOWN_TAGS, "app")

    assert prompt.tags == frozenset({"json"})
    assert prompt.user_id == "u"


@pytest.mark.parametrize(
    "prompt", ["", "   \n\t", "\u200b\u200b", "\ufeff", "\u200e \u2060", "\x01\x02"]
)
def test_a_prompt_that_shows_nothing_is_empty(prompt):
    assert is_blank(prompt)
    assert ("prompt", "must not be empty") in violations_of(prompt=prompt)


def test_visible_text_around_invisible_characters_is_not_blank():
    assert not is_blank("\u200bhi\u200b")
    assert not is_blank("🙂")


@pytest.mark.parametrize("field", ["prompt", "system_prompt", "user_id", "model_name"])
def test_nul_is_refused_in_every_field_that_reaches_the_database(field):
    value = "a\x00b"

    assert (field, "must not contain NUL characters") in violations_of(**{field: value})


def test_nul_in_the_client_id_is_refused():
    assert ("x-client-id", "must not contain NUL characters") in violations_of(caller="a\x00")


@pytest.mark.parametrize(
    ("fields", "caller", "field", "limit"),
    [
        ({"prompt": "x" * 10_001}, "", "prompt", "at most 10000 characters, got 10001"),
        ({"system_prompt": "s" * 5_001}, "", "system_prompt", "at most 5000"),
        ({"user_id": "u" * 256}, "", "user_id", "at most 255"),
        ({"model_name": "m" * 256}, "", "model_name", "at most 255"),
        ({}, "c" * 256, "x-client-id", "at most 255"),
        ({"tags": ["json"] * 11}, "", "tags", "at most 10 tags, got 11"),
        ({"tags": ["t" * 65]}, "", "tags", "tag 0 must be at most 64 characters, got 65"),
        ({"tags": ["json", "a\x00"]}, "", "tags", "tag 1 must not contain NUL"),
    ],
)
def test_every_string_is_bounded(fields, caller, field, limit):
    [(got_field, description)] = violations_of(caller, **fields)

    assert got_field == field
    assert limit in description


def test_an_unknown_tag_is_quoted_at_most_64_characters_long():
    [(field, description)] = violations_of(tags=["t" * 64, "json"])
    assert field == "tags"
    assert description == f"unknown tag {'t' * 64!r}; known: code, json"

    [(_, description)] = violations_of(tags=["\U0001f600" * 64])
    assert len(description) < 200


def test_every_violation_is_reported_at_once():
    fields = [f for f, _ in violations_of(prompt="", user_id="\x00", tags=["nope"])]

    assert fields == ["prompt", "tags", "user_id"]


def test_model_names_are_deduplicated_in_order():
    assert validate_model_names(["b", "a", "b", "b"], catalog_size=3) == ["b", "a"]
    assert validate_model_names(["a"] * 200, catalog_size=3) == ["a"]


def test_more_distinct_model_names_than_the_catalog_has_are_refused():
    with pytest.raises(errors.InvalidArgument) as raised:
        validate_model_names([f"m{i}" for i in range(4)], catalog_size=3)

    assert raised.value.violations == [
        ("model_names", "must name at most 3 models (the catalog's size), got 4")
    ]


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("m" * 256, "name 0 must be at most 255 characters"),
        ("a\x00", "name 0 must not contain NUL"),
    ],
)
def test_each_model_name_is_bounded(name, limit):
    with pytest.raises(errors.InvalidArgument) as raised:
        validate_model_names([name], catalog_size=3)

    [(field, description)] = raised.value.violations
    assert field == "model_names"
    assert limit in description
