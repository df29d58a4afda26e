"""Prometheus metrics of the ModelStore."""

from __future__ import annotations

from prometheus_client import Counter

ATTEMPTS_RECORDED = Counter(
    "model_store_attempts_recorded_total", "Attempt outcomes stored (new attempt ids)."
)
ATTEMPTS_DUPLICATE = Counter(
    "model_store_attempts_duplicate_total", "Attempt outcomes ignored because already stored."
)
PROMPTS_RECORDED = Counter("model_store_prompts_recorded_total", "Prompt history rows stored.")
