"""Conduct on the real stack, asserted from the simulator's request log: a looser smoke test of
what tests/selector/test_conduct.py checks exactly on an injected clock (real gRPC, HTTP,
PostgreSQL; timings only as bounds)."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aiselector.v1 import common_pb2, model_store_pb2, selector_pb2
from tests.fakes import eventually
from tests.stacks import ADMIN_TOKEN, provider_key

MODELS = ("alpha/m1", "beta/m1", "gamma/m1")


def _details(error: grpc.aio.AioRpcError) -> tuple[str, float | None, list[tuple[str, str]]]:
    """(ErrorInfo.reason, RetryInfo seconds, BadRequest violations) of a failed call."""
    reason, retry, violations = "", None, []
    for detail in rpc_status.from_call(error).details:
        info, delay, bad = (
            error_details_pb2.ErrorInfo(),
            error_details_pb2.RetryInfo(),
            error_details_pb2.BadRequest(),
        )
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(delay):
            retry = delay.retry_delay.seconds + delay.retry_delay.nanos / 1e9
        elif detail.Unpack(bad):
            violations = [(v.field, v.description) for v in bad.field_violations]
    return reason, retry, violations


async def _stored_attempts(stack, count: int) -> None:
    """Waits until ModelStore holds at least `count` attempts (records reach it in batches)."""
    store = stack.store_stub()
    request = model_store_pb2.GetModelStatisticsRequest()
    request.start_time.FromSeconds(int(time.time()) - 7200)

    async def stored() -> bool:
        stats = await store.GetModelStatistics(request, timeout=5)
        counts = (c.count for s in stats.statistics for b in s.buckets for c in b.outcome_counts)
        return sum(counts) >= count

    await eventually(stored, timeout=10, what=f"{count} attempts in ModelStore", interval=0.05)


async def _model_stats(stack, name: str) -> selector_pb2.ModelStats:
    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    return next(m for m in stats.models if m.name == name)


async def test_answers_with_a_model_and_reports_how(make_stack):
    stack = await make_stack()
    reply = await stack.ask("What is 2+2?", user_id="u1")
    assert reply.success
    assert reply.response.startswith("[simulated]")
    assert reply.selected_model in {"alpha/m1", "beta/m1", "gamma/m1"}
    assert reply.attempts == 1
    assert not reply.fallback_used
    assert reply.attempt_details[0].outcome == common_pb2.OUTCOME_SUCCESS


async def test_429_with_retry_after_is_respected_and_answered_elsewhere(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": "rate_limited", "retry_after": 2}})
    first = await stack.ask(model_name="alpha/m1")
    assert first.selected_model != "alpha/m1"
    assert first.fallback_used
    assert first.attempt_details[0].outcome == common_pb2.OUTCOME_RATE_LIMITED
    for _ in range(5):
        reply = await stack.ask(model_name="alpha/m1")
        assert reply.selected_model != "alpha/m1"
        assert "rate limited" in reply.pin_note
    assert len(stack.requests_to("alpha")) == 1


async def test_persistent_429_without_retry_after_is_not_hammered(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 429}})
    for _ in range(30):
        reply = await stack.ask(model_name="alpha/m1")
        assert reply.selected_model != "alpha/m1"
    assert len(stack.requests_to("alpha")) == 1


async def test_persistent_503_opens_the_circuit_and_fallback_answers(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 503}}, circuit_failure_threshold=3)
    for _ in range(20):
        reply = await stack.ask(model_name="alpha/m1")
        assert reply.selected_model in {"beta/m1", "gamma/m1"}
        assert reply.fallback_used or "circuit open" in reply.pin_note
    assert len(stack.requests_to("alpha")) == 3
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_CIRCUIT_OPEN
    assert alpha.failed_requests == 3


async def test_connection_reset_before_headers_is_answered(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": "reset"}})
    reply = await stack.ask(model_name="alpha/m1")
    assert reply.selected_model != "alpha/m1"
    assert reply.attempt_details[0].outcome == common_pb2.OUTCOME_TRANSIENT


async def test_silent_provider_costs_one_attempt_timeout(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"behaviour": "silence"}, "beta/m1": {"latency": 0.1}},
        models={"alpha/m1": {"limits": {"timeout_ms": 1000}}},
    )
    started = time.monotonic()
    reply = await stack.ask(model_name="alpha/m1", timeout=10)
    elapsed = time.monotonic() - started
    assert reply.selected_model != "alpha/m1"
    assert reply.attempt_details[0].outcome == common_pb2.OUTCOME_TIMEOUT
    assert len(stack.requests_to("alpha")) == 1
    assert elapsed >= 1.0


async def test_silent_providers_never_overrun_the_client_deadline(make_stack):
    stack = await make_stack(
        {p: {"behaviour": "silence"} for p in ("alpha/m1", "beta/m1", "gamma/m1")}
    )
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask(timeout=2.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.8
    assert all(len(stack.requests_to(p)) <= 1 for p in ("alpha", "beta", "gamma"))


async def test_context_length_error_is_not_retried_and_not_punished(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": "context_length_exceeded"}})
    reply = await stack.ask(model_name="alpha/m1")
    assert reply.selected_model != "alpha/m1"
    assert reply.attempt_details[0].outcome == common_pb2.OUTCOME_BAD_REQUEST
    assert len(stack.requests_to("alpha")) == 1
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.failed_requests == 0


async def test_content_filter_reason_reaches_the_caller_when_nobody_answers(make_stack):
    stack = await make_stack(
        {p: {"behaviour": "content_filter"} for p in ("alpha/m1", "beta/m1", "gamma/m1")}
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask("something filtered")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, _, violations = _details(caught.value)
    assert reason == "ERROR_REASON_PROMPT_REJECTED"
    assert {field for field, _ in violations} == {"prompt"}
    assert "content" in caught.value.details().lower()
    for provider in ("alpha", "beta", "gamma"):
        assert len(stack.requests_to(provider)) == 1


async def test_an_outage_opens_the_circuit_and_a_probe_brings_the_model_back(make_stack):
    stack = await make_stack(
        {
            "alpha/m1": {"outage": {"start": 0, "end": 1.5, "behaviour": 503}},
            "beta/m1": {"latency": 0.05},
            "gamma/m1": {"latency": 0.05},
        },
        circuit_failure_threshold=2,
        circuit_open_seconds=0.4,
        circuit_max_open_seconds=0.8,
    )

    async def alpha_answered() -> bool:
        reply = await stack.ask(model_name="alpha/m1")  # a user's prompt, answered either way
        assert reply.success
        return any(e["status"] == 200 for e in stack.requests_to("alpha"))

    await eventually(alpha_answered, timeout=20, what="alpha answering again", interval=0.05)
    # Users met the outage only until the circuit opened; the recovery trials came from probes.
    log = stack.requests_to("alpha")
    probe_tokens = stack.settings.get("probe_max_output_tokens", 16)
    users_failed = [e for e in log if e["status"] != 200 and e["max_tokens"] != probe_tokens]
    probes_failed = [e for e in log if e["status"] != 200 and e["max_tokens"] == probe_tokens]
    assert 1 <= len(users_failed) <= 2  # the threshold; sequential prompts, no stragglers
    assert all(p["time"] > users_failed[-1]["time"] for p in probes_failed)
    reply = await stack.ask(model_name="alpha/m1")
    assert reply.selected_model == "alpha/m1"
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY


async def test_per_minute_budget_is_paced_and_survives_a_restart(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"quota": {"per_minute": 3}}},
        models={"alpha/m1": {"limits": {"rpm": 3, "rpd": 5}}},
    )
    for _ in range(6):
        await stack.ask(model_name="alpha/m1")
    alpha_log = stack.requests_to("alpha")
    assert len(alpha_log) == 3
    assert all(e["status"] == 200 for e in alpha_log)
    await _stored_attempts(stack, 6)
    await stack.restart_selector()
    for _ in range(3):
        reply = await stack.ask(model_name="alpha/m1")
        assert reply.selected_model != "alpha/m1"
    assert len(stack.requests_to("alpha")) == 3
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.budget.requests_today == 3
    assert alpha.state == selector_pb2.MODEL_STATE_OUT_OF_BUDGET


async def test_long_cooldown_survives_a_restart(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 404}})
    reply = await stack.ask(model_name="alpha/m1")
    assert reply.attempt_details[0].outcome == common_pb2.OUTCOME_PERMANENT
    await _stored_attempts(stack, 2)
    await stack.restart_selector()
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_COOLING_DOWN
    assert "catalog" in alpha.state_reason
    assert alpha.available_at.seconds > time.time() + 23 * 3600
    await stack.ask(model_name="alpha/m1")
    assert len(stack.requests_to("alpha")) == 1


async def test_all_rate_limited_is_resource_exhausted_with_retry_delay(make_stack):
    stack = await make_stack(
        {
            p: {"behaviour": "rate_limited", "retry_after": 30}
            for p in ("alpha/m1", "beta/m1", "gamma/m1")
        }
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reason, retry, _ = _details(caught.value)
    assert reason == "ERROR_REASON_ALL_RATE_LIMITED"
    assert retry is not None
    assert 25 <= retry <= 30
    assert dict(caught.value.trailing_metadata())["retry-after"] in {"29", "30"}


async def test_short_retry_after_is_waited_for_when_nothing_else_can_answer(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"sequence": [429], "retry_after": 1}},
        keys=("alpha",),
    )
    reply = await stack.ask()
    assert reply.selected_model == "alpha/m1"
    assert [a.outcome for a in reply.attempt_details] == [
        common_pb2.OUTCOME_RATE_LIMITED,
        common_pb2.OUTCOME_SUCCESS,
    ]
    log = stack.requests_to("alpha")
    assert log[1]["time"] - log[0]["time"] >= 1.0


async def test_no_key_set_is_unavailable_with_an_actionable_message(make_stack):
    stack = await make_stack(keys=())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    reason, retry, _ = _details(caught.value)
    assert reason == "ERROR_REASON_NO_CREDENTIALS"
    assert retry is not None
    assert "ALPHA_API_KEY" in caught.value.details()
    assert stack.sim.log() == []


@pytest.mark.parametrize(
    ("fields", "field", "limit"),
    [
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": "x" * 10001}, "prompt", "10000"),
        ({"prompt": "hi", "system_prompt": "s" * 5001}, "system_prompt", "5000"),
        ({"prompt": "hi", "tags": ["telepathy"]}, "tags", "unknown"),
        (
            {"prompt": "hi", "response_format": {"type": "xml"}},
            "response_format.type",
            "json_object",
        ),
    ],
)
async def test_invalid_input_names_the_field_and_the_limit(make_stack, fields, field, limit):
    stack = await make_stack()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.stub().ProcessPrompt(selector_pb2.ProcessPromptRequest(**fields), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, _, violations = _details(caught.value)
    assert violations
    assert violations[0][0] == field
    assert limit in violations[0][1]
    assert stack.sim.log() == []


async def test_unknown_model_name_is_not_found(make_stack):
    stack = await make_stack()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask(model_name="nobody/nothing")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_model_store_down_loses_nothing(make_stack):
    stack = await make_stack()
    for _ in range(3):
        await stack.ask(user_id="before")
    await _stored_attempts(stack, 3)
    await stack.stop_store()
    for _ in range(10):
        reply = await stack.ask(user_id="during")
        assert reply.success
    await stack.start_store()
    store = stack.store_stub()

    async def all_ten_stored() -> bool:
        page = await store.ListPromptHistory(
            model_store_pb2.ListPromptHistoryRequest(user_id="during", page_size=100), timeout=5
        )
        return len(page.records) == 10

    await eventually(all_ten_stored, timeout=15, what="the 10 spooled prompts", interval=0.2)
    request = model_store_pb2.GetModelStatisticsRequest()
    request.start_time.FromSeconds(int(time.time()) - 7200)
    stats = await store.GetModelStatistics(request, timeout=5)
    attempts = sum(c.count for s in stats.statistics for b in s.buckets for c in b.outcome_counts)
    assert attempts == 13


async def test_api_key_never_leaks_into_replies_errors_or_logs(make_stack, caplog):
    caplog.set_level(logging.DEBUG)
    stack = await make_stack(
        {
            "alpha/m1": {"behaviour": "echo_authorization"},
            "beta/m1": {"behaviour": "echo_authorization"},
            "gamma/m1": {"behaviour": "echo_authorization"},
        }
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask()
    text = caught.value.details() + repr(rpc_status.from_call(caught.value))
    log_text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for provider in ("alpha", "beta", "gamma"):
        assert provider_key(provider) not in text
        assert provider_key(provider) not in log_text


async def test_test_providers_needs_the_admin_token_and_feeds_routing(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 503}}, circuit_failure_threshold=1)
    stub = stack.stub()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.TestProviders(selector_pb2.TestProvidersRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.TestProviders(
            selector_pb2.TestProvidersRequest(),
            timeout=5,
            metadata=(("authorization", "Bearer wrong"),),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    auth = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    reply = await stub.TestProviders(selector_pb2.TestProvidersRequest(), timeout=10, metadata=auth)
    assert (reply.total_providers, reply.successful, reply.failed) == (3, 2, 1)
    assert reply.results[-1].model == "alpha/m1"
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_CIRCUIT_OPEN
    # The provider recovers; a passing probe lets the open-circuit model back in.
    stack.sim.set_scripts({"default": {"latency": 0.01}, "scripts": {}})
    reply = await stub.TestProviders(
        selector_pb2.TestProvidersRequest(model_names=["alpha/m1"]), timeout=10, metadata=auth
    )
    assert reply.successful == 1
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.total_requests == 2


async def test_an_attempt_cut_short_by_the_deadline_does_not_blame_the_model(make_stack):
    stack = await make_stack(
        {"alpha/m1": {"behaviour": "silence"}}, circuit_failure_threshold=1, keys=("alpha",)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask(model_name="alpha/m1", timeout=1.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.failed_requests == 0
    assert alpha.total_requests == 1
    assert alpha.budget.requests_today == 1


async def test_a_silent_first_model_leaves_a_short_deadline_room_for_the_fallback(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": "silence"}}, circuit_failure_threshold=1)
    reply = await stack.ask(model_name="alpha/m1", timeout=1.0)
    assert reply.selected_model in {"beta/m1", "gamma/m1"}
    first = reply.attempt_details[0]
    assert (first.model, first.outcome) == ("alpha/m1", common_pb2.OUTCOME_ABANDONED)
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    assert alpha.failed_requests == 0


async def test_test_providers_returns_within_the_callers_deadline(make_stack):
    stack = await make_stack({m: {"behaviour": "silence"} for m in MODELS}, probe_concurrency=1)
    started = time.monotonic()
    reply = await stack.stub().TestProviders(
        selector_pb2.TestProvidersRequest(),
        timeout=3.5,
        metadata=(("authorization", f"Bearer {ADMIN_TOKEN}"),),
    )
    assert time.monotonic() - started < 3.5
    statuses = sorted(r.status for r in reply.results)
    assert selector_pb2.TEST_STATUS_SKIPPED in statuses
    assert reply.total_providers == 3


async def test_a_request_no_configured_model_can_take_is_a_client_error(make_stack):
    stack = await make_stack(
        models={p: {"tags": [], "supports_json": False} for p in MODELS[1:]}
        | {"alpha/m1": {"tags": ["json", "code"], "limits": {"context": 1000}}},
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask(tags=["code"], response_format={"type": "json_object"}, prompt="x" * 3000)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, retry, violations = _details(caught.value)
    assert retry is None
    assert violations[0][0] == "prompt"
    assert "too long for every configured model" in violations[0][1]
    assert stack.sim.log() == []
