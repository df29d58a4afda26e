"""Two keys for one provider on the real stack (simulator over HTTP, ModelStore, Selector over
gRPC): a 429 on one key moves traffic to the other, a 401 retires that key only, stats show each
key's budget by its id, and neither key appears in logs, replies or stats."""

from __future__ import annotations

import logging

from google.protobuf import json_format

from aiselector.v1 import common_pb2, selector_pb2
from services.common.logging import JsonFormatter

KEY_ONE = "sk-alpha-first-0123456789"
KEY_TWO = "sk-alpha-second-9876543210"
TWO_KEYS = {"ALPHA_API_KEY": f"{KEY_ONE},{KEY_TWO}"}


def _alpha(stats: selector_pb2.GetModelStatsResponse) -> selector_pb2.ModelStats:
    return next(m for m in stats.models if m.name == "alpha/m1")


def _texts(caplog, *messages) -> list[str]:
    formatter = JsonFormatter("test")
    texts = [formatter.format(record) for record in caplog.records]
    texts += [json_format.MessageToJson(m, preserving_proto_field_name=True) for m in messages]
    return texts


async def test_a_429_on_one_key_moves_traffic_to_the_other(make_stack, caplog) -> None:
    caplog.set_level(logging.INFO)
    stack = await make_stack(
        {
            "alpha/*": {
                "per_key": {
                    # One request a minute on the first key; the second key has room.
                    KEY_ONE: {"quota": {"per_minute": 1}, "text": "key one answers"},
                    KEY_TWO: {"text": "key two answers"},
                }
            }
        },
        keys=("beta",),
        environ=TWO_KEYS,
    )
    # alpha first; beta could answer too, but the other key of alpha is tried before it.
    replies = [await stack.ask(f"question {i}", model_name="alpha/m1") for i in range(5)]

    texts = [r.response.split("] ", 1)[1] for r in replies]
    # Least recently used first: one, two, then one again — whose 429 hands it to two.
    assert texts == ["key one answers", "key two answers"] + ["key two answers"] * 3
    third = replies[2]
    assert [a.outcome for a in third.attempt_details] == [
        common_pb2.OUTCOME_RATE_LIMITED,
        common_pb2.OUTCOME_SUCCESS,
    ]
    assert [a.model for a in third.attempt_details] == ["alpha/m1", "alpha/m1"]
    assert stack.requests_to("beta") == []
    statuses = [e["status"] for e in stack.requests_to("alpha")]
    # Not one request to the first key during its Retry-After.
    assert statuses == [200, 200, 429, 200, 200, 200]

    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    alpha = _alpha(stats)
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    one, two = alpha.keys
    assert (one.key_id, one.account) == ("ALPHA_API_KEY#1", "alpha/ALPHA_API_KEY#1")
    assert (two.key_id, two.account) == ("ALPHA_API_KEY#2", "alpha/ALPHA_API_KEY#2")
    assert one.state == selector_pb2.MODEL_STATE_COOLING_DOWN
    assert one.state_reason.startswith("key ALPHA_API_KEY#1: rate limited by provider (HTTP 429)")
    assert one.available_at.seconds > 0
    assert two.state == selector_pb2.MODEL_STATE_READY
    assert (one.budget.requests_today, two.budget.requests_today) == (2, 4)
    assert (one.account_budget.requests_today, two.account_budget.requests_today) == (2, 4)
    assert alpha.budget.requests_today == 6

    for text in _texts(caplog, stats, *replies):
        assert KEY_ONE not in text
        assert KEY_TWO not in text
    assert any('"key": "ALPHA_API_KEY#1"' in text for text in _texts(caplog))


async def test_a_401_on_one_key_retires_that_key_only(make_stack, caplog) -> None:
    caplog.set_level(logging.INFO)
    stack = await make_stack(
        # The second key is rejected, and the provider echoes it back in its 401.
        {"alpha/*": {"per_key": {KEY_TWO: {"behaviour": "echo_authorization"}}}},
        keys=(),
        environ=TWO_KEYS,
    )
    replies = [await stack.ask(f"question {i}") for i in range(4)]

    assert all(r.success and r.selected_model == "alpha/m1" for r in replies)
    second = replies[1]
    assert [a.http_status for a in second.attempt_details] == [401, 200]
    assert "[REDACTED]" in second.attempt_details[0].error
    # After the 401 nothing more is sent with the second key: every later request is one attempt.
    assert [r.attempts for r in replies] == [1, 2, 1, 1]
    assert [e["status"] for e in stack.requests_to("alpha")] == [200, 401, 200, 200, 200]

    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    alpha = _alpha(stats)
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    one, two = alpha.keys
    assert one.state == selector_pb2.MODEL_STATE_READY
    assert two.state == selector_pb2.MODEL_STATE_COOLING_DOWN
    assert two.state_reason.startswith(
        "key ALPHA_API_KEY#2: API key rejected by provider (HTTP 401) — check the key"
    )
    assert (one.budget.requests_today, two.budget.requests_today) == (4, 1)

    for text in _texts(caplog, stats, *replies):
        assert KEY_ONE not in text
        assert KEY_TWO not in text
