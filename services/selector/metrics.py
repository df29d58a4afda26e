"""Prometheus metrics of the Selector."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("selector_requests_total", "ProcessPrompt calls by final gRPC code", ["code"])
ATTEMPTS = Counter(
    "selector_attempts_total",
    "Attempts to call a model, by outcome",
    ["model", "outcome", "source"],
)
FALLBACKS = Counter("selector_fallbacks_total", "Prompts answered by a model other than the first")
REQUEST_SECONDS = Histogram(
    "selector_request_seconds",
    "ProcessPrompt wall time",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
MODEL_STATE = Gauge(
    "selector_model_state",
    "ModelState value per model (1 ready, 2 cooling, 3 open, ...)",
    ["model"],
)
BUDGET_LEFT = Gauge(
    "selector_budget_requests_left_today", "Declared daily requests left per model", ["model"]
)
BUFFER_DEPTH = Gauge("selector_record_buffer_depth", "Records waiting to be sent to ModelStore")
BUFFER_DROPPED = Counter(
    "selector_record_buffer_dropped_total", "Records dropped because the buffer was full", ["kind"]
)
RECORDS_REJECTED = Counter(
    "selector_records_rejected_total", "Records ModelStore refused (dropped, logged)", ["kind"]
)
FLUSH_FAILURES = Counter("selector_record_flush_failures_total", "Failed flushes to ModelStore")
RECORDS_SPILLED = Counter(
    "selector_records_spilled_total",
    "Records written to the local spool, to be delivered later (reason: overflow, shutdown)",
    ["kind", "reason"],
)
SPOOL_BYTES = Gauge("selector_spool_bytes", "Bytes of spool files waiting in the spool folder")
SPOOL_QUARANTINED = Counter(
    "selector_spool_files_quarantined_total", "Spool files that could not be read, quarantined"
)
DISCOVERY_UNLISTED = Gauge(
    "selector_discovery_unlisted_models",
    "Catalog models their provider's list does not offer, at the last discovery run",
    ["provider"],
)
DISCOVERY_NEW_FREE = Gauge(
    "selector_discovery_new_free_models",
    "Free models a provider lists and the catalog lacks (not added), at the last discovery run",
    ["provider"],
)
DISCOVERY_LIST_FAILURES = Counter(
    "selector_discovery_list_failures_total",
    "Model lists that could not be read (nothing changed for that provider)",
    ["provider"],
)
SHARED_STATE_UP = Gauge(
    "selector_shared_state_up",
    "1 while the shared state (ModelStore) answers; 0: only the budget slices held are spent",
)
SHARED_SYNC_FAILURES = Counter(
    "selector_shared_state_sync_failures_total", "Shared state exchanges that failed"
)
