"""The tests' shared fakes and waits (import them from `tests.fakes`).

- `ScriptedSelector` (`selector.py`) and `ScriptedModelStore` (`model_store.py`): small scripted
  neighbours of the code under test, served on loopback by `serve` through the project's own
  server factory. A fake stands in for a neighbour, never for the code a test claims to test.
- `eventually` / `eventually_blocking` (`waiting.py`): await a condition with a deadline instead
  of sleeping a fixed time.
"""

from __future__ import annotations

from aiselector.v1 import model_store_pb2_grpc, selector_pb2_grpc
from services.common.server import GrpcServer, Registration, start_grpc_server
from tests.fakes.model_store import MODEL_STORE, ScriptedModelStore
from tests.fakes.selector import (
    ADMIN_TOKEN,
    SELECTOR,
    Call,
    Delta,
    Fail,
    Failover,
    Finish,
    ScriptedSelector,
    Step,
    default_models,
    default_test_results,
    scripted_reply,
    streamed,
)
from tests.fakes.waiting import eventually, eventually_blocking, free_port

__all__ = [
    "ADMIN_TOKEN",
    "MODEL_STORE",
    "SELECTOR",
    "Call",
    "Delta",
    "Fail",
    "Failover",
    "Finish",
    "ScriptedModelStore",
    "ScriptedSelector",
    "Step",
    "default_models",
    "default_test_results",
    "eventually",
    "eventually_blocking",
    "free_port",
    "registration",
    "scripted_reply",
    "serve",
    "streamed",
]


def registration(servicer: ScriptedSelector | ScriptedModelStore) -> Registration:
    """`servicer` registered under its service's name."""
    if isinstance(servicer, ScriptedSelector):
        return Registration(SELECTOR, selector_pb2_grpc.add_SelectorServicer_to_server, servicer)
    return Registration(
        MODEL_STORE, model_store_pb2_grpc.add_ModelStoreServicer_to_server, servicer
    )


async def serve(
    *servicers: ScriptedSelector | ScriptedModelStore, port: int = 0, serving: bool = True
) -> GrpcServer:
    """Serves the fakes on one server at 127.0.0.1:`port` (0 picks a free one), through the
    project's server factory; `serving` False reports NOT_SERVING to health checks."""
    return await start_grpc_server(
        [registration(s) for s in servicers], f"127.0.0.1:{port}", serving=serving
    )
