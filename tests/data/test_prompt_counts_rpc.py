"""Prompt counts through a real client: counted when recorded (once), hour by hour, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aiselector.v1 import common_pb2
from aiselector.v1 import model_store_pb2 as pb
from tests.data.rpc import ts, violations

BASE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def record(index: int, at: datetime, *, success: bool, fallback_used: bool = False):
    return common_pb2.PromptRecord(
        record_id=f"req-{index}",
        user_id="u",
        prompt_text="p",
        success=success,
        fallback_used=fallback_used,
        attempts=2 if fallback_used else 1,
        create_time=ts(at),
    )


def window(start: datetime, end: datetime) -> pb.GetPromptCountsRequest:
    return pb.GetPromptCountsRequest(start_time=ts(start), end_time=ts(end))


def counts(message: pb.PromptCounts) -> tuple[int, int, int]:
    return message.prompts, message.answered, message.failovers


async def test_counts_per_hour_and_total_from_what_was_recorded_once(model_store_stub):
    batch = [
        record(1, BASE + timedelta(minutes=1), success=True),
        record(2, BASE + timedelta(minutes=1, seconds=30), success=True, fallback_used=True),
        record(3, BASE + timedelta(minutes=59), success=False),
        record(4, BASE + timedelta(hours=2, minutes=5), success=True, fallback_used=True),
    ]
    await model_store_stub.RecordPrompts(pb.RecordPromptsRequest(records=batch))
    # The same records again, and one new: only the new one is counted.
    again = [*batch, record(5, BASE + timedelta(hours=2, minutes=6), success=False)]
    reply = await model_store_stub.RecordPrompts(pb.RecordPromptsRequest(records=again))
    assert reply.recorded_count == 1

    result = await model_store_stub.GetPromptCounts(window(BASE, BASE + timedelta(hours=3)))

    assert counts(result.total) == (5, 3, 2)
    assert [h.start_time.ToDatetime(UTC) for h in result.hours] == [
        BASE,
        BASE + timedelta(hours=2),
    ]
    assert [counts(h) for h in result.hours] == [(3, 2, 1), (2, 1, 1)]
    assert not result.total.HasField("start_time")


async def test_the_window_is_whole_minutes_with_an_exclusive_end(model_store_stub):
    batch = [
        record(1, BASE + timedelta(minutes=10, seconds=5), success=True),
        record(2, BASE + timedelta(minutes=20), success=True),
    ]
    await model_store_stub.RecordPrompts(pb.RecordPromptsRequest(records=batch))

    # Start 10:40 rounds down to 10:00 and takes the minute's prompt; 12:20:00 is excluded.
    start = BASE + timedelta(minutes=10, seconds=40)
    result = await model_store_stub.GetPromptCounts(window(start, BASE + timedelta(minutes=20)))

    assert counts(result.total) == (1, 1, 0)
    assert result.start_time.ToDatetime(UTC) == BASE + timedelta(minutes=10)


async def test_empty_window_is_all_zeros(model_store_stub):
    result = await model_store_stub.GetPromptCounts(window(BASE, BASE + timedelta(hours=1)))
    assert counts(result.total) == (0, 0, 0)
    assert list(result.hours) == []


@pytest.mark.parametrize(
    ("request_", "field", "text"),
    [
        (pb.GetPromptCountsRequest(), "start_time", "is required"),
        (window(BASE, BASE), "start_time", "must be before end_time"),
        (window(BASE, BASE + timedelta(days=32)), "start_time", "at most 31 days"),
    ],
)
async def test_bad_windows_name_the_field_and_the_limit(model_store_stub, request_, field, text):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await model_store_stub.GetPromptCounts(request_)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in violations(raised.value)[field]
