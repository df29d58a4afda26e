"""Names and bounds every service agrees on, defined once."""

from __future__ import annotations

from aiselector.v1 import model_store_pb2, selector_pb2

#: Full gRPC service names (what gRPC health and reflection report, and Envoy routes).
SELECTOR_SERVICE = selector_pb2.DESCRIPTOR.services_by_name["Selector"].full_name
MODEL_STORE_SERVICE = model_store_pb2.DESCRIPTOR.services_by_name["ModelStore"].full_name

#: Upper bounds (ms) of the success-latency histogram, one overflow bucket after them: ModelStore's
#: hourly bucket columns and the Selector's statistics share them.
LATENCY_BOUNDS_MS: tuple[int, ...] = (100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000)
