"""Constants and helpers shared by the adapter tests."""

from __future__ import annotations

from typing import Any

import pytest

from aiselector.v1 import common_pb2
from services.simulator import RunningSimulator

KEY = "sk-test-4f7c1e9a0b2d63e8"

# (provider, api_format) for each wire format; tests parametrized over WIRES cover both adapters.
WIRES = [
    pytest.param(("groq", common_pb2.API_FORMAT_OPENAI), id="openai"),
    pytest.param(("gemini", common_pb2.API_FORMAT_GEMINI), id="gemini"),
]


def script(sim: RunningSimulator, wire: tuple[str, int], model: str = "m", **fields: Any) -> None:
    """Gives `model` at the wire's provider the script `fields` (latency 0 unless given)."""
    sim.set_scripts(
        {"default": {"latency": 0}, "scripts": {f"{wire[0]}/{model}": {"latency": 0, **fields}}}
    )
