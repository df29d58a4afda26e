"""The probe job against the real Selector, ModelStore and simulator: probes move routing state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from services.health.jobs import probe_providers
from services.health.metrics import HealthMetrics
from tests.stacks import ADMIN_TOKEN, Stack, make_stack

__all__ = ["make_stack"]


async def _model(stack: Stack, name: str) -> selector_pb2.ModelStats:
    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    return next(m for m in stats.models if m.name == name)


async def _probe(stack: Stack) -> selector_pb2.TestProvidersResponse:
    async with open_channel(stack.selector.address, private=True) as channel:
        reply = await probe_providers(
            selector_pb2_grpc.SelectorStub(channel),
            admin_token=ADMIN_TOKEN,
            timeout_seconds=10,
            metrics=HealthMetrics(CollectorRegistry()),
        )
    assert reply is not None
    return reply


async def test_open_circuit_model_is_eligible_again_after_a_passing_probe(make_stack):
    stack = await make_stack({"alpha/m1": {"behaviour": 503}}, circuit_failure_threshold=2)
    for _ in range(2):
        await stack.ask(model_name="alpha/m1")
    assert (await _model(stack, "alpha/m1")).state == selector_pb2.MODEL_STATE_CIRCUIT_OPEN
    stack.sim.set_scripts({"default": {"latency": 0.01}, "scripts": {}})
    reply = await _probe(stack)
    assert reply.successful == 3
    alpha = await _model(stack, "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_READY
    answer = await stack.ask(model_name="alpha/m1")
    assert answer.selected_model == "alpha/m1"


async def test_a_failing_probe_counts_against_the_model(make_stack):
    stack = await make_stack({"beta/m1": {"behaviour": 500}})
    reply = await _probe(stack)
    assert (reply.successful, reply.failed) == (2, 1)
    beta = await _model(stack, "beta/m1")
    assert beta.failed_requests == 1
    assert beta.reliability_score < (await _model(stack, "alpha/m1")).reliability_score


async def test_a_model_with_a_nearly_spent_budget_is_not_probed(make_stack):
    stack = await make_stack(models={"gamma/m1": {"limits": {"rpd": 3}}})
    for _ in range(2):
        await stack.ask(model_name="gamma/m1")
    before = len(stack.requests_to("gamma"))
    reply = await _probe(stack)
    gamma = next(r for r in reply.results if r.model == "gamma/m1")
    assert gamma.status == selector_pb2.TEST_STATUS_SKIPPED
    assert "budget" in gamma.error
    assert len(stack.requests_to("gamma")) == before == 2
