"""The status page's timeline: every model hour by hour, and the prompts, read from ModelStore.

Three reads, each a primary-key range whose size is the window's models × hours or minutes,
never a scan of history: the hourly attempt buckets (GetModelStatistics), the prompt counts per
hour of the window and of the last 60 minutes (GetPromptCounts). What a reply shows is what
ModelStore holds: an attempt appears once the Selector's bookkeeping delivered it (every
`RECORD_FLUSH_SECONDS`, 0.25 s by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from google.protobuf import timestamp_pb2

from aiselector.v1 import common_pb2, model_store_pb2, model_store_pb2_grpc, selector_pb2
from services.common import errors
from services.selector.snapshot import RPC_TIMEOUT, Catalog
from services.selector.stats import FAILURE_OUTCOMES, HOUR, SUCCESS, histogram_median_ms

log = logging.getLogger(__name__)

DEFAULT_HOURS = 24
MAX_HOURS = 168
MINUTE = 60
# Outcomes that are a provider's limit, not a failure of the model.
LIMITED_OUTCOMES = frozenset({common_pb2.OUTCOME_RATE_LIMITED, common_pb2.OUTCOME_QUOTA_EXHAUSTED})


def validate_hours(hours: int) -> int:
    """The hours asked for: 0 means DEFAULT_HOURS; otherwise 1..MAX_HOURS."""
    if hours == 0:
        return DEFAULT_HOURS
    if not 1 <= hours <= MAX_HOURS:
        raise errors.InvalidArgument(
            [("hours", f"must be between 1 and {MAX_HOURS} (0 means {DEFAULT_HOURS}), got {hours}")]
        )
    return hours


def _timestamp(epoch: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(epoch * 1e9))
    return stamp


def timeline_hour(
    start: float, bucket: model_store_pb2.StatisticsBucket | None, bounds_ms: tuple[int, ...]
) -> selector_pb2.TimelineHour:
    """One model's hour from its bucket (None: an hour without attempts)."""
    hour = selector_pb2.TimelineHour(start_time=_timestamp(start))
    if bucket is None:
        return hour
    for count in bucket.outcome_counts:
        if count.outcome == SUCCESS:
            hour.successes += count.count
        elif count.outcome in FAILURE_OUTCOMES:
            hour.failures += count.count
        elif count.outcome in LIMITED_OUTCOMES:
            hour.rate_limited += count.count
        else:
            hour.other += count.count
    if hour.successes:
        hour.average_response_time = bucket.success_latency_ms_sum / hour.successes / 1000
        median_ms = histogram_median_ms(list(bucket.success_latency_histogram), bounds_ms)
        hour.median_response_time = (median_ms or 0.0) / 1000
    return hour


def _totals(start: float, counts: model_store_pb2.PromptCounts | None) -> selector_pb2.PromptTotals:
    totals = selector_pb2.PromptTotals(start_time=_timestamp(start))
    if counts is not None:
        totals.prompts, totals.answered = counts.prompts, counts.answered
        totals.failovers = counts.failovers
    return totals


def build_reply(
    catalog: Catalog,
    hours: int,
    first_hour: float,
    now: float,
    statistics: model_store_pb2.GetModelStatisticsResponse,
    prompts: model_store_pb2.GetPromptCountsResponse,
    recent: model_store_pb2.GetPromptCountsResponse,
) -> selector_pb2.GetModelTimelineResponse:
    """The reply from ModelStore's three answers: every hour present, zeros where none."""
    starts = [first_hour + index * HOUR for index in range(hours)]
    bounds = tuple(statistics.latency_bounds_ms)
    buckets = {
        (stats.model_id, bucket.start_time.seconds): bucket
        for stats in statistics.statistics
        for bucket in stats.buckets
    }
    prompt_hours = {counts.start_time.seconds: counts for counts in prompts.hours}
    models = sorted(catalog.entries.values(), key=lambda entry: entry.spec.name)
    return selector_pb2.GetModelTimelineResponse(
        hours=hours,
        start_time=_timestamp(first_hour),
        end_time=_timestamp(now),
        models=[
            selector_pb2.ModelTimeline(
                id=entry.spec.model_id,
                name=entry.spec.name,
                provider=entry.spec.provider,
                hours=[
                    timeline_hour(start, buckets.get((entry.spec.model_id, int(start))), bounds)
                    for start in starts
                ],
            )
            for entry in models
        ],
        prompt_hours=[_totals(start, prompt_hours.get(int(start))) for start in starts],
        last_hour=_totals(recent.start_time.seconds, recent.total),
    )


class Timeline:
    """Reads the timeline of the catalog's models from ModelStore, within the call's deadline."""

    def __init__(
        self,
        stub: model_store_pb2_grpc.ModelStoreStub,
        catalog: Callable[[], Catalog],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stub = stub
        self._catalog = catalog
        self._clock = clock

    async def read(self, hours: int, deadline: float) -> selector_pb2.GetModelTimelineResponse:
        """The last `hours` hours (validated) as of now; `deadline` is in loop time."""
        hours = validate_hours(hours)
        catalog = self._catalog()
        now = self._clock()
        first_hour = now - now % HOUR - (hours - 1) * HOUR
        last_hour = now - now % MINUTE - 59 * MINUTE
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise errors.DeadlineExceeded("the request's deadline was spent before the timeline")
        timeout = min(RPC_TIMEOUT, remaining)
        calls = (
            self._stub.GetModelStatistics(
                model_store_pb2.GetModelStatisticsRequest(start_time=_timestamp(first_hour)),
                timeout=timeout,
            ),
            self._stub.GetPromptCounts(
                model_store_pb2.GetPromptCountsRequest(start_time=_timestamp(first_hour)),
                timeout=timeout,
            ),
            self._stub.GetPromptCounts(
                model_store_pb2.GetPromptCountsRequest(start_time=_timestamp(last_hour)),
                timeout=timeout,
            ),
        )
        replies = await asyncio.gather(*calls, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, grpc.aio.AioRpcError):
                code = reply.code().name
                log.warning("timeline not read", extra={"code": code})
                raise errors.Unavailable(
                    f"the timeline could not be read: ModelStore answered {code}",
                    retry_after_seconds=5,
                    reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
                )
            if isinstance(reply, BaseException):
                raise reply
        statistics, prompts, recent = replies
        return build_reply(catalog, hours, first_hour, now, statistics, prompts, recent)
