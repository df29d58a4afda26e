"""The retention job against a real ModelStore: exactly the rows older than the limit go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc
from services.health.jobs import RETENTION_JOB, purge_history

# Ages in days: one record per day over 60 days, plus one an hour on each side of the limit.
AGES = [day + 0.5 for day in range(60)] + [30 - 1 / 24, 30 + 1 / 24]


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _seed(stub: model_store_pb2_grpc.ModelStoreStub, now: datetime) -> None:
    models = await stub.ListModels(model_store_pb2.ListModelsRequest(), timeout=10)
    model_id = models.models[0].id
    records = [
        common_pb2.PromptRecord(
            record_id=f"age-{age:.4f}",
            caller="retention-test",
            prompt_text="hello",
            success=False,
            error_message="simulated",
            status_code="UNAVAILABLE",
            create_time=_timestamp(now - timedelta(days=age)),
        )
        for age in AGES
    ]
    attempts = [
        common_pb2.Attempt(
            attempt_id=f"attempt-{age:.4f}",
            model_id=model_id,
            start_time=_timestamp(now - timedelta(days=age)),
            latency_ms=300,
            outcome=common_pb2.OUTCOME_SUCCESS,
            http_status=200,
            source=common_pb2.ATTEMPT_SOURCE_PROBE,
        )
        for age in AGES
    ]
    stored = await stub.RecordPrompts(
        model_store_pb2.RecordPromptsRequest(records=records), timeout=10
    )
    assert stored.recorded_count == len(AGES)
    await stub.RecordAttempts(model_store_pb2.RecordAttemptsRequest(attempts=attempts), timeout=10)


async def _remaining_record_ids(stub: model_store_pb2_grpc.ModelStoreStub) -> set[str]:
    page = await stub.ListPromptHistory(
        model_store_pb2.ListPromptHistoryRequest(page_size=1000), timeout=10
    )
    assert not page.next_page_token
    return {record.record_id for record in page.records}


async def test_purges_exactly_the_history_older_than_the_retention(
    model_store_stub, metrics, registry
):
    now = datetime.now(UTC).replace(microsecond=0)
    await _seed(model_store_stub, now)

    reply = await purge_history(
        model_store_stub,
        retention_days=30,
        clock=lambda: now,
        timeout_seconds=30,
        metrics=metrics,
    )

    younger = {f"age-{age:.4f}" for age in AGES if age < 30}
    assert reply is not None
    assert await _remaining_record_ids(model_store_stub) == younger
    assert reply.deleted_prompts == len(AGES) - len(younger) == 31
    assert reply.deleted_attempts == 31
    deleted = registry.get_sample_value("health_retention_deleted_rows_total", {"kind": "prompts"})
    runs = registry.get_sample_value(
        "health_job_runs_total", {"job": RETENTION_JOB, "result": "success"}
    )
    assert (deleted, runs) == (31, 1)

    again = await purge_history(
        model_store_stub, retention_days=30, clock=lambda: now, timeout_seconds=30, metrics=metrics
    )
    assert again is not None
    assert (again.deleted_prompts, again.deleted_attempts) == (0, 0)
    assert await _remaining_record_ids(model_store_stub) == younger
