"""Prompt history through a real client: idempotent recording, filters, paging, purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aiselector.v1 import common_pb2
from aiselector.v1 import model_store_pb2 as pb
from tests.data.rpc import attempt, error_reason, ts, violations

BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def record(index: int, **overrides: object) -> common_pb2.PromptRecord:
    values: dict[str, object] = {
        "record_id": f"req-{index}",
        "user_id": f"user-{index % 3}",
        "caller": "telegram-bot" if index % 2 else "web",
        "prompt_text": f"prompt {index}",
        "response_text": f"answer {index}",
        "response_time_seconds": 1.25,
        "success": index % 5 != 0,
        "attempts": 1 + index % 3,
        "fallback_used": index % 3 > 0,
        "status_code": "OK",
        # Pairs of records share a timestamp, so paging must break ties by id.
        "create_time": ts(BASE + timedelta(minutes=index // 2)),
    }
    values.update(overrides)
    return common_pb2.PromptRecord(**values)


async def _record_all(stub, count: int) -> None:
    reply = await stub.RecordPrompts(
        pb.RecordPromptsRequest(records=[record(i) for i in range(count)])
    )
    assert reply.recorded_count == count


async def _collect(stub, page_size: int, **filters: object) -> list[common_pb2.PromptRecord]:
    rows: list[common_pb2.PromptRecord] = []
    token = ""
    while True:
        request = pb.ListPromptHistoryRequest(page_size=page_size, page_token=token, **filters)
        page = await stub.ListPromptHistory(request)
        assert len(page.records) <= page_size
        rows += page.records
        token = page.next_page_token
        if not token:
            return rows


async def test_record_prompts_is_idempotent_by_record_id(model_store_stub):
    groq_name = pb.GetModelRequest(name="groq/gpt-oss-120b")
    groq = (await model_store_stub.GetModel(groq_name)).model
    batch = pb.RecordPromptsRequest(
        records=[record(1, selected_model_id=groq.id, requested_model=groq.name), record(2)]
    )
    first = await model_store_stub.RecordPrompts(batch)
    again = await model_store_stub.RecordPrompts(batch)
    assert (first.recorded_count, first.duplicate_count) == (2, 0)
    assert (again.recorded_count, again.duplicate_count) == (0, 2)
    rows = await _collect(model_store_stub, 10)
    assert len(rows) == 2
    stored = await model_store_stub.GetPromptHistory(pb.GetPromptHistoryRequest(id=rows[-1].id))
    assert stored.record.selected_model_id == groq.id
    assert stored.record.requested_model == groq.name
    assert stored.record.caller == "telegram-bot"
    assert stored.record.response_time_seconds == pytest.approx(1.25)


async def test_paging_returns_every_row_exactly_once_newest_first(model_store_stub):
    await _record_all(model_store_stub, 57)
    for size in (1, 7, 50, 1000):
        rows = await _collect(model_store_stub, size)
        assert len(rows) == 57
        assert len({r.id for r in rows}) == 57
        keys = [(r.create_time.ToDatetime(), r.id) for r in rows]
        assert keys == sorted(keys, reverse=True)


async def test_filters_combine_and_page(model_store_stub):
    await _record_all(model_store_stub, 40)
    every = await _collect(model_store_stub, 1000)
    cases = [
        ({"user_id": "user-1"}, lambda r: r.user_id == "user-1"),
        ({"caller": "web"}, lambda r: r.caller == "web"),
        ({"success": False}, lambda r: not r.success),
        ({"success": True, "caller": "telegram-bot"}, lambda r: r.success and r.caller != "web"),
        (
            {
                "start_time": ts(BASE + timedelta(minutes=5)),
                "end_time": ts(BASE + timedelta(minutes=9)),
            },
            lambda r: (
                BASE + timedelta(minutes=5)
                <= r.create_time.ToDatetime(tzinfo=UTC)
                < BASE + timedelta(minutes=9)
            ),
        ),
    ]
    for filters, keep in cases:
        expected = [r.id for r in every if keep(r)]
        assert expected, filters
        assert [r.id for r in await _collect(model_store_stub, 3, **filters)] == expected


async def test_page_token_is_bound_to_its_filters(model_store_stub):
    await _record_all(model_store_stub, 5)
    page = await model_store_stub.ListPromptHistory(
        pb.ListPromptHistoryRequest(page_size=2, caller="web")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.ListPromptHistory(
            pb.ListPromptHistoryRequest(
                page_size=2, caller="other", page_token=page.next_page_token
            )
        )
    assert "page_token" in violations(caught.value)


async def test_history_errors(model_store_stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.GetPromptHistory(pb.GetPromptHistoryRequest(id=123456))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "ERROR_REASON_HISTORY_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.GetPromptHistory(pb.GetPromptHistoryRequest())
    assert "id" in violations(caught.value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordPrompts(
            pb.RecordPromptsRequest(records=[record(1, record_id=""), record(2, attempts=-1)])
        )
    assert {"records[0].record_id", "records[1].attempts"} <= set(violations(caught.value))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.RecordPrompts(
            pb.RecordPromptsRequest(records=[record(1, selected_model_id=99999)])
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await model_store_stub.ListPromptHistory(
            pb.ListPromptHistoryRequest(start_time=ts(BASE), end_time=ts(BASE))
        )
    assert "start_time" in violations(caught.value)


async def test_purge_by_age_deletes_old_prompts_and_attempts_but_keeps_buckets(model_store_stub):
    await _record_all(model_store_stub, 20)
    groq_name = pb.GetModelRequest(name="groq/gpt-oss-120b")
    groq = (await model_store_stub.GetModel(groq_name)).model
    old = [attempt(groq.id, BASE - timedelta(days=40)) for _ in range(3)]
    recent = [attempt(groq.id, BASE + timedelta(minutes=30)) for _ in range(2)]
    await model_store_stub.RecordAttempts(pb.RecordAttemptsRequest(attempts=old + recent))
    cutoff = BASE + timedelta(minutes=5)
    reply = await model_store_stub.PurgeHistory(pb.PurgeHistoryRequest(older_than=ts(cutoff)))
    assert (reply.deleted_prompts, reply.deleted_attempts) == (10, 3)
    rows = await _collect(model_store_stub, 100)
    assert len(rows) == 10
    assert all(r.create_time.ToDatetime(tzinfo=UTC) >= cutoff for r in rows)
    window = await model_store_stub.GetModelStatistics(
        pb.GetModelStatisticsRequest(
            model_ids=[groq.id],
            start_time=ts(BASE - timedelta(days=41)),
            end_time=ts(BASE - timedelta(days=39)),
        )
    )
    assert window.statistics[0].buckets[0].outcome_counts[0].count == 3
    again = await model_store_stub.PurgeHistory(pb.PurgeHistoryRequest(older_than=ts(cutoff)))
    assert (again.deleted_prompts, again.deleted_attempts) == (0, 0)


async def test_purge_keep_latest_keeps_exactly_the_newest(model_store_stub):
    await _record_all(model_store_stub, 25)
    newest = [r.id for r in (await _collect(model_store_stub, 100))[:7]]
    reply = await model_store_stub.PurgeHistory(pb.PurgeHistoryRequest(keep_latest=7))
    assert reply.deleted_prompts == 18
    assert [r.id for r in await _collect(model_store_stub, 100)] == newest


async def test_purge_needs_a_limit(model_store_stub):
    for request, field in (
        (pb.PurgeHistoryRequest(), "older_than"),
        (pb.PurgeHistoryRequest(keep_latest=-1), "keep_latest"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await model_store_stub.PurgeHistory(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(caught.value)
