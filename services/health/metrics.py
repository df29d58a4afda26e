"""Prometheus metrics of the health worker: when each job last ran, how runs and probes ended."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from aiselector.v1 import model_store_pb2, selector_pb2

PROBE_STATUSES = ("success", "error", "skipped")


def probe_status_label(status: int) -> str:
    """`TEST_STATUS_SUCCESS` → `success`, and so on; a value newer than this build → its number."""
    if status not in selector_pb2.TestStatus.values():
        return str(status)
    return selector_pb2.TestStatus.Name(status).removeprefix("TEST_STATUS_").lower()  # type: ignore[arg-type]


class HealthMetrics:
    """The worker's metrics, registered in `registry` (a fresh one in tests)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.last_run = Gauge(
            "health_job_last_run_timestamp_seconds",
            "Unix time at which the job last finished, whatever the result.",
            ["job"],
            registry=registry,
        )
        self.last_success = Gauge(
            "health_job_last_success_timestamp_seconds",
            "Unix time at which the job last finished successfully.",
            ["job"],
            registry=registry,
        )
        self.runs = Counter(
            "health_job_runs",
            "Job runs by result (success: the RPC answered; failure: it did not).",
            ["job", "result"],
            registry=registry,
        )
        self.probe_results = Counter(
            "health_probe_results",
            "Per-model probe results by status, over all runs.",
            ["status"],
            registry=registry,
        )
        self.last_probe_results = Gauge(
            "health_probe_last_run_results",
            "Per-model probe results by status in the last successful probe run.",
            ["status"],
            registry=registry,
        )
        self.deleted_rows = Counter(
            "health_retention_deleted_rows",
            "Rows deleted by the retention job, by kind (prompts, attempts).",
            ["kind"],
            registry=registry,
        )
        for status in PROBE_STATUSES:
            self.probe_results.labels(status)
            self.last_probe_results.labels(status)
        for kind in ("prompts", "attempts"):
            self.deleted_rows.labels(kind)

    def job_finished(self, job: str, *, ok: bool) -> None:
        """Records one finished run of `job`."""
        now = time.time()
        self.last_run.labels(job).set(now)
        self.runs.labels(job, "success" if ok else "failure").inc()
        if ok:
            self.last_success.labels(job).set(now)

    def probes_reported(self, reply: selector_pb2.TestProvidersResponse) -> None:
        """Counts the per-model results of one probe run."""
        counts = dict.fromkeys(PROBE_STATUSES, 0)
        for result in reply.results:
            label = probe_status_label(result.status)
            counts[label] = counts.get(label, 0) + 1
        for label, count in counts.items():
            self.probe_results.labels(label).inc(count)
            self.last_probe_results.labels(label).set(count)

    def purge_reported(self, reply: model_store_pb2.PurgeHistoryResponse) -> None:
        """Counts the rows one retention run deleted."""
        self.deleted_rows.labels("prompts").inc(reply.deleted_prompts)
        self.deleted_rows.labels("attempts").inc(reply.deleted_attempts)
