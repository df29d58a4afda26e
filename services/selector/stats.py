"""A model's recent record: time-decayed counts and latency from hourly and live attempts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.common import outcomes
from services.common.names import LATENCY_BOUNDS_MS

HOUR = 3600.0
#: Weight of the newest attempt in the recent-latency moving average.
RECENT_ALPHA = 0.3
#: The recent latency's say in ranking halves with every this many seconds without an attempt.
RECENT_HALF_LIFE_S = 600.0

SUCCESS = outcomes.SUCCESS
RATE_LIMITED = outcomes.RATE_LIMITED
FAILURE_OUTCOMES = outcomes.FAILURE_OUTCOMES


def hour_start(at: float) -> float:
    """Returns the start (epoch seconds) of the hour that contains `at`."""
    return at - at % HOUR


def latency_bucket(latency_ms: int, bounds_ms: tuple[int, ...] = LATENCY_BOUNDS_MS) -> int:
    """Histogram index of a latency: the first bound it does not exceed, else the overflow."""
    for index, bound in enumerate(bounds_ms):
        if latency_ms <= bound:
            return index
    return len(bounds_ms)


@dataclass
class Bucket:
    """One hour of one model's attempts, as ModelStore keeps them."""

    start: float
    counts: dict[int, int] = field(default_factory=dict)
    success_latency_ms_sum: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    tokens: int = 0


@dataclass(frozen=True)
class ModelWindow:
    """What ranking and GetModelStats need about a model's window: decayed weights and raw counts.

    `successes` and `failures` are weighted by 0.5 ** (age_hours / half_life); failures are
    TRANSIENT + TIMEOUT + PERMANENT + BAD_ANSWER (rate limits, quota, bad requests, answers in
    the wrong format and abandoned attempts are not the model's unreliability). Latencies are
    of successful attempts, weighted by the same decay.
    `recent_latency_s` is a moving average over the latest live successes, so a model turning
    slow shows at once; a timeout is a failure, not a latency (the circuit handles a silent
    model, and one timeout must not keep a recovered model ranked as slow). `recent_weight` in
    [0, 1] fades the average out when the model has not answered for a while.
    """

    successes: float = 0.0
    failures: float = 0.0
    total: int = 0
    success_count: int = 0
    failure_count: int = 0
    rate_limited_count: int = 0
    mean_latency_s: float | None = None
    median_latency_s: float | None = None
    recent_latency_s: float | None = None
    recent_weight: float = 0.0

    @property
    def success_rate(self) -> float:
        """Raw successes / (successes + failures) in the window; 0 with no such attempts."""
        judged = self.success_count + self.failure_count
        return self.success_count / judged if judged else 0.0


EMPTY_WINDOW = ModelWindow()


@dataclass
class _Totals:
    """Running sums over a set of buckets, some of them decayed."""

    successes: float = 0.0
    failures: float = 0.0
    total: int = 0
    success_count: int = 0
    failure_count: int = 0
    rate_limited_count: int = 0
    latency_ms_weighted: float = 0.0
    histogram: list[float] = field(default_factory=list)

    def add(self, bucket: Bucket, weight: float) -> None:
        """Adds one bucket with the given decay weight."""
        succeeded = bucket.counts.get(SUCCESS, 0)
        failed = sum(bucket.counts.get(outcome, 0) for outcome in FAILURE_OUTCOMES)
        self.successes += weight * succeeded
        self.failures += weight * failed
        self.total += sum(bucket.counts.values())
        self.success_count += succeeded
        self.failure_count += failed
        self.rate_limited_count += bucket.counts.get(RATE_LIMITED, 0)
        self.latency_ms_weighted += weight * bucket.success_latency_ms_sum
        if len(self.histogram) < len(bucket.histogram):
            self.histogram.extend([0.0] * (len(bucket.histogram) - len(self.histogram)))
        for index, count in enumerate(bucket.histogram):
            if count:
                self.histogram[index] += weight * count

    def merged(self, other: _Totals) -> _Totals:
        """Returns the sum of two totals."""
        size = max(len(self.histogram), len(other.histogram))
        histogram = [0.0] * size
        for source in (self.histogram, other.histogram):
            for index, value in enumerate(source):
                histogram[index] += value
        return _Totals(
            successes=self.successes + other.successes,
            failures=self.failures + other.failures,
            total=self.total + other.total,
            success_count=self.success_count + other.success_count,
            failure_count=self.failure_count + other.failure_count,
            rate_limited_count=self.rate_limited_count + other.rate_limited_count,
            latency_ms_weighted=self.latency_ms_weighted + other.latency_ms_weighted,
            histogram=histogram,
        )


def histogram_median_ms(histogram: list[float], bounds_ms: tuple[int, ...]) -> float | None:
    """Median of a latency histogram, interpolated linearly inside the bucket that holds it."""
    total = sum(histogram)
    if total <= 0:
        return None
    half = total / 2
    seen = 0.0
    for index, count in enumerate(histogram):
        if count <= 0:
            continue
        if seen + count >= half:
            low = 0.0 if index == 0 else float(bounds_ms[index - 1])
            if index >= len(bounds_ms):
                return low
            high = float(bounds_ms[index])
            return low + (high - low) * (half - seen) / count
        seen += count
    return float(bounds_ms[-1])


class _ModelHistory:
    """One model's hourly buckets and a cache of the closed hours' decayed totals."""

    def __init__(self) -> None:
        self.buckets: dict[float, Bucket] = {}
        self.cache_key: float | None = None
        self.cache: _Totals | None = None


class StatsBook:
    """Every model's recent record: hourly buckets from the store plus attempts made since.

    Decay works per hour: a bucket `k` whole hours older than the current hour weighs
    0.5 ** (k / half_life_hours), and the current hour weighs 1. Only buckets that start less than
    `window_hours` before the current hour count. `load` replaces a model's history (live attempts
    included), so call it with buckets that already hold what was added live.
    """

    def __init__(
        self,
        *,
        window_hours: int = 168,
        half_life_hours: float = 24.0,
        bounds_ms: tuple[int, ...] = LATENCY_BOUNDS_MS,
    ) -> None:
        if window_hours < 1 or half_life_hours <= 0:
            raise ValueError("window_hours must be >= 1 and half_life_hours > 0")
        self.window_hours = window_hours
        self.half_life_hours = half_life_hours
        self.bounds_ms = tuple(bounds_ms)
        self._models: dict[int, _ModelHistory] = {}
        self._recent: dict[int, tuple[float, float]] = {}

    def _history(self, model_id: int) -> _ModelHistory:
        history = self._models.get(model_id)
        if history is None:
            history = self._models[model_id] = _ModelHistory()
        return history

    def load(self, model_id: int, buckets: Iterable[Bucket]) -> None:
        """Replaces a model's history with buckets read from the store (merging equal hours)."""
        history = _ModelHistory()
        for bucket in buckets:
            start = hour_start(bucket.start)
            existing = history.buckets.get(start)
            if existing is None:
                history.buckets[start] = Bucket(
                    start=start,
                    counts=dict(bucket.counts),
                    success_latency_ms_sum=bucket.success_latency_ms_sum,
                    histogram=list(bucket.histogram),
                    tokens=bucket.tokens,
                )
            else:
                for outcome, count in bucket.counts.items():
                    existing.counts[outcome] = existing.counts.get(outcome, 0) + count
                existing.success_latency_ms_sum += bucket.success_latency_ms_sum
                for index, count in enumerate(bucket.histogram):
                    existing.histogram[index] += count
                existing.tokens += bucket.tokens
        self._models[model_id] = history

    def add(self, model_id: int, outcome: int, latency_ms: int, tokens: int, at: float) -> None:
        """Records one live attempt started at `at`."""
        if outcome == SUCCESS:
            seconds = max(0, latency_ms) / 1000.0
            previous = self._recent.get(model_id)
            average = (
                seconds
                if previous is None
                else previous[0] + RECENT_ALPHA * (seconds - previous[0])
            )
            self._recent[model_id] = (average, at + seconds)
        history = self._history(model_id)
        start = hour_start(at)
        bucket = history.buckets.get(start)
        if bucket is None:
            bucket = history.buckets[start] = Bucket(
                start=start, histogram=[0] * (len(self.bounds_ms) + 1)
            )
        bucket.counts[outcome] = bucket.counts.get(outcome, 0) + 1
        if outcome == SUCCESS:
            bucket.success_latency_ms_sum += max(0, latency_ms)
            bucket.histogram[latency_bucket(latency_ms, self.bounds_ms)] += 1
        bucket.tokens += max(0, tokens)
        if history.cache_key is not None and start < history.cache_key:
            history.cache_key = None

    def window(self, model_id: int, now: float) -> ModelWindow:
        """The model's window as of `now`: decayed weights, raw counts, latency of successes."""
        history = self._models.get(model_id)
        if history is None or not history.buckets:
            return EMPTY_WINDOW
        recent = self._recent.get(model_id)
        recent_latency, recent_weight = None, 0.0
        if recent is not None:
            recent_latency = recent[0]
            recent_weight = 0.5 ** (max(0.0, now - recent[1]) / RECENT_HALF_LIFE_S)
        current = hour_start(now)
        if history.cache_key != current or history.cache is None:
            history.cache = self._closed_totals(history, current)
            history.cache_key = current
        totals = history.cache
        live = history.buckets.get(current)
        if live is not None:
            extra = _Totals()
            extra.add(live, 1.0)
            totals = totals.merged(extra)
        mean = (
            totals.latency_ms_weighted / totals.successes / 1000.0 if totals.successes > 0 else None
        )
        median_ms = histogram_median_ms(totals.histogram, self.bounds_ms)
        return ModelWindow(
            successes=totals.successes,
            failures=totals.failures,
            total=totals.total,
            success_count=totals.success_count,
            failure_count=totals.failure_count,
            rate_limited_count=totals.rate_limited_count,
            mean_latency_s=mean,
            median_latency_s=None if median_ms is None else median_ms / 1000.0,
            recent_latency_s=recent_latency,
            recent_weight=recent_weight,
        )

    def _closed_totals(self, history: _ModelHistory, current: float) -> _Totals:
        """Decayed totals of the hours before the current one; drops buckets out of the window."""
        oldest = current - (self.window_hours - 1) * HOUR
        totals = _Totals()
        for start in [s for s in history.buckets if s < oldest]:
            del history.buckets[start]
        for start, bucket in history.buckets.items():
            if start >= current:
                continue
            age_hours = (current - start) / HOUR
            totals.add(bucket, 0.5 ** (age_hours / self.half_life_hours))
        return totals

    def buckets(self, model_id: int) -> list[Bucket]:
        """The model's buckets, oldest first (for inspection and tests)."""
        history = self._models.get(model_id)
        if history is None:
            return []
        return [history.buckets[start] for start in sorted(history.buckets)]
