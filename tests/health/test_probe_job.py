"""The probe job against a scripted Selector over loopback: metadata, logs, metrics, outages."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from aiselector.v1 import selector_pb2_grpc
from services.common import errors
from services.common.channels import open_channel
from services.common.logging import JsonFormatter
from services.health.jobs import PROBE_JOB, probe_providers
from services.health.metrics import HealthMetrics
from tests.fakes import ADMIN_TOKEN, ScriptedSelector, serve


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def _probe(
    stub: selector_pb2_grpc.SelectorStub, metrics: HealthMetrics, timeout_seconds: float = 5.0
):
    return await probe_providers(
        stub, admin_token=ADMIN_TOKEN, timeout_seconds=timeout_seconds, metrics=metrics
    )


async def test_sends_the_bearer_token_and_a_fresh_request_id_per_run(
    fake_selector: ScriptedSelector, selector_stub, metrics
):
    await _probe(selector_stub, metrics)
    await _probe(selector_stub, metrics)

    assert [call.metadata["authorization"] for call in fake_selector.calls_to("TestProviders")] == [
        f"Bearer {ADMIN_TOKEN}"
    ] * 2
    first, second = (call.request_id for call in fake_selector.calls_to("TestProviders"))
    assert len(first) == 32
    assert first != second


async def test_logs_each_model_result_under_the_run_request_id(
    fake_selector: ScriptedSelector, selector_stub, metrics, caplog
):
    caplog.set_level(logging.INFO, logger="services.health")

    reply = await _probe(selector_stub, metrics)

    assert reply is not None
    assert reply.successful == 1
    results = [r for r in caplog.records if r.getMessage() == "probe result"]
    assert [(r.model, r.status, r.outcome) for r in results] == [
        ("llama-3.3-70b-versatile", "success", "OUTCOME_SUCCESS"),
        ("zai-glm-4.7", "error", "OUTCOME_TRANSIENT"),
    ]
    assert results[1].error == "HTTP 503 from provider"
    summary = next(r for r in caplog.records if r.getMessage() == "probe run finished")
    assert (summary.total, summary.successful, summary.failed) == (2, 1, 1)
    request_id = fake_selector.calls_to("TestProviders")[0].request_id
    assert {r.request_id for r in [*results, summary]} == {request_id}
    lines = [JsonFormatter("health").format(r) for r in caplog.records]
    assert all(ADMIN_TOKEN not in line for line in lines)


async def test_updates_run_and_result_metrics(selector_stub, metrics, registry):
    await _probe(selector_stub, metrics)
    await _probe(selector_stub, metrics)

    assert _sample(registry, "health_job_runs_total", job=PROBE_JOB, result="success") == 2
    assert _sample(registry, "health_job_runs_total", job=PROBE_JOB, result="failure") == 0
    assert _sample(registry, "health_probe_results_total", status="success") == 2
    assert _sample(registry, "health_probe_results_total", status="error") == 2
    assert _sample(registry, "health_probe_last_run_results", status="success") == 1
    assert _sample(registry, "health_probe_last_run_results", status="skipped") == 0
    last_run = _sample(registry, "health_job_last_run_timestamp_seconds", job=PROBE_JOB)
    last_success = _sample(registry, "health_job_last_success_timestamp_seconds", job=PROBE_JOB)
    assert last_run > 1.7e9
    assert last_success == last_run


async def test_a_refused_run_is_logged_and_counted_not_raised(
    fake_selector: ScriptedSelector, selector_stub, metrics, registry, caplog
):
    fake_selector.failures["TestProviders"] = errors.PermissionDenied("admin token required")
    caplog.set_level(logging.INFO, logger="services.health")

    assert await _probe(selector_stub, metrics) is None

    failure = next(r for r in caplog.records if r.getMessage() == "job run failed")
    assert (failure.job, failure.code) == (PROBE_JOB, "PERMISSION_DENIED")
    assert failure.levelno == logging.WARNING
    assert _sample(registry, "health_job_runs_total", job=PROBE_JOB, result="failure") == 1
    assert _sample(registry, "health_job_last_success_timestamp_seconds", job=PROBE_JOB) == 0
    assert _sample(registry, "health_job_last_run_timestamp_seconds", job=PROBE_JOB) > 0


async def test_a_run_past_its_deadline_ends_as_a_logged_failure(
    fake_selector: ScriptedSelector, selector_stub, metrics, caplog
):
    fake_selector.holds["TestProviders"] = asyncio.Event()
    caplog.set_level(logging.INFO, logger="services.health")

    assert await _probe(selector_stub, metrics, timeout_seconds=0.2) is None

    fake_selector.holds["TestProviders"].set()
    failure = next(r for r in caplog.records if r.getMessage() == "job run failed")
    assert failure.code == "DEADLINE_EXCEEDED"


async def test_selector_down_is_logged_and_the_next_run_works_once_it_is_back(
    fake_selector: ScriptedSelector, metrics, registry, caplog
):
    fake = fake_selector
    server = await serve(fake)
    port = server.port
    caplog.set_level(logging.INFO, logger="services.health")
    async with open_channel(f"127.0.0.1:{port}") as channel:
        stub = selector_pb2_grpc.SelectorStub(channel)
        assert await _probe(stub, metrics) is not None
        await server.stop(0)

        assert await _probe(stub, metrics) is None

        failure = next(r for r in caplog.records if r.getMessage() == "job run failed")
        assert failure.code == "UNAVAILABLE"
        server = await serve(fake, port=port)
        try:
            await asyncio.wait_for(channel.channel_ready(), 10)
            reply = await _probe(stub, metrics)
        finally:
            await server.stop(0)

    assert reply is not None
    assert reply.total_providers == 2
    assert len(fake.calls_to("TestProviders")) == 2
    assert _sample(registry, "health_job_runs_total", job=PROBE_JOB, result="success") == 2
    assert _sample(registry, "health_job_runs_total", job=PROBE_JOB, result="failure") == 1
