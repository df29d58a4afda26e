"""Budgets at the level the provider counts them, asserted from the simulator's log (real stack).

Two models of one provider share an account budget and account-wide signals; a prompt larger than
a model's tokens-per-minute limit is never sent to it.
"""

from __future__ import annotations

import time

import grpc
import pytest

from aiselector.v1 import common_pb2, model_store_pb2, selector_pb2
from tests.fakes import eventually
from tests.selector.test_conduct_on_the_stack import _details, _model_stats

# alpha serves two models on one key; the account allows 3 requests a minute over both.
TWO_ALPHAS = {"alpha/m2": {}}
ACCOUNT_RPM = {"alpha": {"account_limits": {"rpm": 3}}}


async def _alpha_requests_stored(stack, count: int) -> None:
    """Waits until ModelStore holds `count` attempts to alpha's models in the last minute."""
    store = stack.store_stub()
    request = model_store_pb2.GetModelStatisticsRequest()
    request.start_time.FromSeconds(int(time.time()) - 3600)
    names = await store.ListModels(model_store_pb2.ListModelsRequest(), timeout=5)
    alphas = {m.id for m in names.models if m.provider == "alpha"}

    async def stored() -> bool:
        stats = await store.GetModelStatistics(request, timeout=5)
        return (
            sum(s.requests_last_minute for s in stats.statistics if s.model_id in alphas) >= count
        )

    await eventually(stored, timeout=10, what=f"{count} of alpha's requests in ModelStore")


async def test_an_account_budget_holds_across_the_models_of_the_account(make_stack):
    stack = await make_stack(models=TWO_ALPHAS, providers=ACCOUNT_RPM)
    for index in range(8):
        reply = await stack.ask(model_name=f"alpha/m{1 + index % 2}")
        assert reply.success
    alpha = stack.requests_to("alpha")
    assert len(alpha) == 3
    assert {e["model"] for e in alpha} == {"m1", "m2"}
    assert all(e["status"] == 200 for e in alpha)
    m2 = await _model_stats(stack, "alpha/m2")
    assert m2.state == selector_pb2.MODEL_STATE_OUT_OF_BUDGET
    assert "account alpha/ALPHA_API_KEY" in m2.state_reason
    assert m2.account == "alpha/ALPHA_API_KEY"
    assert (m2.account_budget.requests_last_minute, m2.account_budget.requests_per_minute) == (3, 3)
    assert m2.budget.requests_per_minute == 0
    # The account's count survives a restart: it is the sum over its models in the store.
    await _alpha_requests_stored(stack, 3)
    await stack.restart_selector()
    for name in ("alpha/m1", "alpha/m2"):
        reply = await stack.ask(model_name=name)
        assert reply.selected_model not in {"alpha/m1", "alpha/m2"}
        assert "account alpha/ALPHA_API_KEY" in reply.pin_note
    assert len(stack.requests_to("alpha")) == 3


async def test_a_rejected_key_on_one_model_cools_its_sibling_without_trying_it(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 401}}, models=TWO_ALPHAS)
    first = await stack.ask(model_name="alpha/m1")
    assert first.attempt_details[0].outcome == common_pb2.OUTCOME_PERMANENT
    assert first.selected_model in {"beta/m1", "gamma/m1"}
    for _ in range(3):
        reply = await stack.ask(model_name="alpha/m2")
        assert reply.selected_model in {"beta/m1", "gamma/m1"}
        assert "API key rejected" in reply.pin_note
    assert [e["model"] for e in stack.requests_to("alpha")] == ["m1"]
    m2 = await _model_stats(stack, "alpha/m2")
    assert m2.state == selector_pb2.MODEL_STATE_COOLING_DOWN
    assert "every model of account alpha/ALPHA_API_KEY" in m2.state_reason
    assert m2.available_at.seconds > time.time() + 23 * 3600


async def test_a_prompt_over_a_models_tokens_per_minute_is_never_sent_to_it(make_stack):
    # max_output 256 (the test catalog's) + about 1001 prompt tokens exceed alpha's tpm of 1000.
    stack = await make_stack(models={"alpha/m1": {"limits": {"tpm": 1000}}})
    long_prompt = "x" * 3000
    reply = await stack.ask(long_prompt, model_name="alpha/m1")
    assert reply.selected_model in {"beta/m1", "gamma/m1"}
    assert "tokens-per-minute limit (tpm) of 1000" in reply.pin_note
    assert stack.requests_to("alpha") == []
    # Short prompts are counted as the provider counts them: about 258 tokens asked for each,
    # so three fit in the minute and the fourth waits for the window.
    for _ in range(5):
        await stack.ask("hi", model_name="alpha/m1")
    assert len(stack.requests_to("alpha")) == 3
    alpha = await _model_stats(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_OUT_OF_BUDGET
    assert "tokens-per-minute" in alpha.state_reason
    assert (alpha.budget.tokens_last_minute, alpha.budget.tokens_per_minute) == (774, 1000)


async def test_a_prompt_no_model_has_the_tokens_per_minute_for_is_a_client_error(make_stack):
    stack = await make_stack(
        models={f"{p}/m1": {"limits": {"tpm": 1000}} for p in ("alpha", "beta", "gamma")}
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stack.ask("x" * 3000)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, retry, violations = _details(caught.value)
    assert retry is None
    assert violations[0][0] == "prompt"
    assert "tokens-per-minute limit (tpm) of 1000" in violations[0][1]
    assert stack.sim.log() == []
