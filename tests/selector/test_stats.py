"""Tests of the statistics window: decay, raw counts, latency, window edges and store loading."""

import pytest

from aiselector.v1 import common_pb2
from services.selector.stats import (
    HOUR,
    LATENCY_BOUNDS_MS,
    Bucket,
    StatsBook,
    histogram_median_ms,
    latency_bucket,
)

SUCCESS = common_pb2.OUTCOME_SUCCESS
TRANSIENT = common_pb2.OUTCOME_TRANSIENT
TIMEOUT = common_pb2.OUTCOME_TIMEOUT
RATE_LIMITED = common_pb2.OUTCOME_RATE_LIMITED
BAD_REQUEST = common_pb2.OUTCOME_BAD_REQUEST
PERMANENT = common_pb2.OUTCOME_PERMANENT
BAD_ANSWER = common_pb2.OUTCOME_BAD_ANSWER
WRONG_FORMAT = common_pb2.OUTCOME_WRONG_FORMAT
ABANDONED = common_pb2.OUTCOME_ABANDONED
T0 = 1_780_000_000.0 - 1_780_000_000.0 % HOUR


def test_a_model_without_attempts_has_an_empty_window() -> None:
    window = StatsBook().window(1, T0)
    assert (window.total, window.successes, window.failures) == (0, 0.0, 0.0)
    assert window.median_latency_s is None
    assert window.mean_latency_s is None


def test_live_attempts_count_by_outcome_class() -> None:
    book = StatsBook()
    for outcome in (SUCCESS, SUCCESS, TRANSIENT, TIMEOUT, PERMANENT, BAD_ANSWER):
        book.add(1, outcome, 1500, 10, T0 + 10)
    book.add(1, RATE_LIMITED, 50, 0, T0 + 11)
    book.add(1, BAD_REQUEST, 50, 0, T0 + 12)
    book.add(1, WRONG_FORMAT, 900, 0, T0 + 13)
    book.add(1, ABANDONED, 2000, 0, T0 + 14)
    window = book.window(1, T0 + 20)
    assert window.total == 10
    assert window.success_count == 2
    assert window.failure_count == 4
    assert window.rate_limited_count == 1
    assert window.successes == pytest.approx(2.0)
    assert window.failures == pytest.approx(4.0)
    assert window.success_rate == pytest.approx(2 / 6)
    assert window.mean_latency_s == pytest.approx(1.5)


def test_older_results_weigh_less_by_the_half_life() -> None:
    book = StatsBook(half_life_hours=24.0)
    book.add(1, SUCCESS, 500, 0, T0)
    book.add(1, TRANSIENT, 500, 0, T0 + 24 * HOUR)
    window = book.window(1, T0 + 24 * HOUR + 60)
    assert window.successes == pytest.approx(0.5)
    assert window.failures == pytest.approx(1.0)
    assert (window.success_count, window.failure_count) == (1, 1)


def test_buckets_older_than_the_window_are_dropped() -> None:
    book = StatsBook(window_hours=3)
    book.add(1, SUCCESS, 500, 0, T0)
    book.add(1, SUCCESS, 500, 0, T0 + 2 * HOUR)
    assert book.window(1, T0 + 2 * HOUR).success_count == 2
    assert book.window(1, T0 + 3 * HOUR).success_count == 1


def test_median_comes_from_the_histogram() -> None:
    book = StatsBook()
    for latency in (300, 400, 450, 3000, 3500):
        book.add(1, SUCCESS, latency, 0, T0 + 5)
    median = book.window(1, T0 + 6).median_latency_s
    assert median is not None
    assert 0.25 <= median <= 0.5


def test_histogram_helpers_agree_with_the_bounds() -> None:
    assert latency_bucket(100) == 0
    assert latency_bucket(101) == 1
    assert latency_bucket(60_001) == len(LATENCY_BOUNDS_MS)
    histogram = [0.0] * (len(LATENCY_BOUNDS_MS) + 1)
    histogram[4] = 2.0
    assert histogram_median_ms(histogram, LATENCY_BOUNDS_MS) == pytest.approx(1500.0)
    assert histogram_median_ms([0.0] * 11, LATENCY_BOUNDS_MS) is None


def test_load_replaces_history_and_live_attempts_add_on_top() -> None:
    book = StatsBook()
    book.add(1, TRANSIENT, 0, 0, T0 - 5 * HOUR)
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    histogram[3] = 4
    book.load(
        1,
        [
            Bucket(start=T0 - 2 * HOUR, counts={SUCCESS: 4, TIMEOUT: 1}, histogram=histogram),
            Bucket(start=T0 - 2 * HOUR + 60, counts={RATE_LIMITED: 2}),
        ],
    )
    assert book.window(1, T0).total == 7
    assert book.window(1, T0).failure_count == 1
    book.add(1, SUCCESS, 700, 5, T0 + 1)
    window = book.window(1, T0 + 2)
    assert window.success_count == 5
    assert window.rate_limited_count == 2
    assert len(book.buckets(1)) == 2


def test_an_attempt_added_to_a_past_hour_is_seen_through_the_cache() -> None:
    book = StatsBook()
    book.add(1, SUCCESS, 500, 0, T0 - HOUR)
    assert book.window(1, T0).success_count == 1
    book.add(1, SUCCESS, 500, 0, T0 - 2 * HOUR)
    assert book.window(1, T0).success_count == 2


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window_hours"):
        StatsBook(window_hours=0)


def test_recent_latency_follows_the_latest_successes_and_fades() -> None:
    book = StatsBook()
    for index in range(20):
        book.add(1, SUCCESS, 500, 0, T0 + index)
    assert book.window(1, T0 + 20).recent_latency_s == pytest.approx(0.5)
    for index in range(3):
        book.add(1, SUCCESS, 15_000, 0, T0 + 30 + index)
    window = book.window(1, T0 + 48)
    assert window.recent_latency_s is not None
    assert window.recent_latency_s > 10
    assert window.recent_weight == pytest.approx(1.0, abs=0.01)
    assert window.median_latency_s is not None
    assert window.median_latency_s < 1
    assert book.window(1, T0 + 48 + 600).recent_weight == pytest.approx(0.5, abs=0.01)


def test_a_timeout_counts_as_a_failure_but_is_no_latency() -> None:
    book = StatsBook()
    for index in range(5):
        book.add(1, SUCCESS, 500, 0, T0 + index)
    book.add(1, TIMEOUT, 20_000, 0, T0 + 10)
    window = book.window(1, T0 + 31)
    assert window.failures == pytest.approx(1.0)
    assert window.recent_latency_s == pytest.approx(0.5)
