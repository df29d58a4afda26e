"""The error mapping's bounds: whatever an error quotes, its status stays a few KiB."""

from __future__ import annotations

from google.rpc import error_details_pb2

from services.common import errors, secrets


def test_clip_keeps_short_text_and_cuts_long_text_on_a_character_boundary():
    assert errors.clip("short", 16) == "short"
    cut = errors.clip("é" * 100, 51)
    assert len(cut.encode()) <= 51
    assert cut == "é" * 24 + "…"


def test_echo_quotes_a_value_and_shows_at_most_64_of_its_characters():
    assert errors.echo("json") == "'json'"
    assert errors.echo("a\x00b") == "'a\\x00b'"
    long = errors.echo("t" * 40_000)
    assert long == f"{'t' * 64!r}… (40000 characters)"


def test_status_of_an_error_echoing_huge_values_is_bounded():
    violations = [(f"field{i}" * 1000, "d" * 100_000) for i in range(500)]
    error = errors.InvalidArgument(violations, metadata={f"k{i}": "v" * 10_000 for i in range(50)})

    status = errors.to_status(error)

    assert len(status.SerializeToString()) < 8 * 1024
    assert len(status.message.encode()) <= errors.MESSAGE_MAX_BYTES
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(bad)
    assert len(info.metadata) == errors.MAX_METADATA
    assert len(bad.field_violations) == errors.MAX_VIOLATIONS
    assert all(len(v.field.encode()) <= errors.NAME_MAX_BYTES for v in bad.field_violations)


def test_a_secret_is_redacted_before_the_message_is_cut():
    secret = "sk-live-0123456789abcdef"
    secrets.register(secret)
    message = "x" * (errors.MESSAGE_MAX_BYTES - 20) + secret

    status = errors.to_status(errors.Unavailable(message, retry_after_seconds=1))

    assert "sk-live" not in status.message
    assert status.message.endswith(secrets.REDACTED)
