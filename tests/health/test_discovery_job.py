"""The model discovery job: against a scripted Selector (metadata, logs, metrics, a refused run)
and against the real Selector, ModelStore and simulator (a model no longer listed set aside and
logged)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from aiselector.v1 import selector_pb2, selector_pb2_grpc
from services.common import errors
from services.common.channels import open_channel
from services.common.logging import JsonFormatter
from services.health.jobs import DISCOVERY_JOB, discover_models
from services.health.metrics import HealthMetrics
from tests.fakes import ADMIN_TOKEN, ScriptedSelector
from tests.stacks import ADMIN_TOKEN as STACK_ADMIN_TOKEN
from tests.stacks import PROVIDERS, make_stack

__all__ = ["make_stack"]


async def _discover(stub: selector_pb2_grpc.SelectorStub, metrics: HealthMetrics, token: str):
    return await discover_models(stub, admin_token=token, timeout_seconds=10, metrics=metrics)


async def test_logs_what_each_list_said_under_the_run_request_id(
    fake_selector: ScriptedSelector, selector_stub, metrics, registry, caplog
):
    caplog.set_level(logging.INFO, logger="services.health")

    reply = await _discover(selector_stub, metrics, ADMIN_TOKEN)

    assert reply is not None
    [call] = fake_selector.calls_to("DiscoverModels")
    assert call.metadata["authorization"] == f"Bearer {ADMIN_TOKEN}"
    compared = [r for r in caplog.records if r.getMessage() == "model list compared"]
    assert [(r.provider, r.levelno) for r in compared] == [
        ("cerebras", logging.INFO),
        ("gemini", logging.INFO),
        ("groq", logging.WARNING),
        ("openrouter", logging.WARNING),
    ]
    assert compared[0].error == "not read: X is not set"
    assert compared[2].unlisted == [
        "groq/gpt-oss-20b: not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml"
    ]
    assert compared[3].new_free_models == [
        "openai/gpt-oss-20b:free: not added: CATALOG_AUTO_ADD is off"
    ]
    summary = next(r for r in caplog.records if r.getMessage() == "model discovery finished")
    assert (summary.providers, summary.not_read, summary.unlisted, summary.new_free_models) == (
        4,
        1,
        1,
        1,
    )
    assert {r.request_id for r in [*compared, summary]} == {call.request_id}
    assert all(ADMIN_TOKEN not in JsonFormatter("health").format(r) for r in caplog.records)
    runs = {"job": DISCOVERY_JOB, "result": "success"}
    assert registry.get_sample_value("health_job_runs_total", runs) == 1


async def test_a_refused_run_is_logged_and_counted_not_raised(
    fake_selector: ScriptedSelector, selector_stub, metrics, registry, caplog
):
    fake_selector.failures["DiscoverModels"] = errors.Unavailable(
        "ModelStore is unreachable", retry_after_seconds=30
    )
    caplog.set_level(logging.INFO, logger="services.health")

    assert await _discover(selector_stub, metrics, ADMIN_TOKEN) is None

    failure = next(r for r in caplog.records if r.getMessage() == "job run failed")
    assert (failure.job, failure.code) == (DISCOVERY_JOB, "UNAVAILABLE")
    runs = {"job": DISCOVERY_JOB, "result": "failure"}
    assert registry.get_sample_value("health_job_runs_total", runs) == 1


async def test_the_job_sets_aside_a_model_its_provider_stopped_listing(make_stack, caplog):
    stack = await make_stack()
    for provider in PROVIDERS:
        stack.sim.set_models(provider, ["m1"])
    stack.sim.set_models("gamma", ["m2"])  # gamma serves another model now
    caplog.set_level(logging.INFO, logger="services.health")

    async with open_channel(stack.selector.address, private=True) as channel:
        reply = await _discover(
            selector_pb2_grpc.SelectorStub(channel),
            HealthMetrics(CollectorRegistry()),
            STACK_ADMIN_TOKEN,
        )

    assert reply is not None
    compared = {r.provider: r for r in caplog.records if r.getMessage() == "model list compared"}
    assert compared["alpha"].levelno == logging.INFO
    assert compared["gamma"].levelno == logging.WARNING
    [unlisted] = compared["gamma"].unlisted
    assert unlisted.startswith("gamma/m1: not listed by gamma since ")
    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    gamma = next(m for m in stats.models if m.name == "gamma/m1")
    assert gamma.state == selector_pb2.MODEL_STATE_UNLISTED
