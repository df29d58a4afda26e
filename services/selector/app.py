"""Starts and stops a Selector: ModelStore channel, providers, snapshot refresh, gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from aiselector.v1 import model_store_pb2_grpc, selector_pb2_grpc
from services.common.channels import open_channel
from services.common.names import SELECTOR_SERVICE
from services.common.server import GrpcServer, Registration, start_grpc_server
from services.selector import snapshot
from services.selector.bookkeeping import Recorder
from services.selector.client_keys import ClientGate, ClientKeyAdmin, is_loopback, listen_host
from services.selector.discovery import Discovery
from services.selector.engine import Engine
from services.selector.providers import ProviderClient
from services.selector.server import SelectorServicer
from services.selector.settings import SelectorSettings
from services.selector.shared import SharedState, replica_name
from services.selector.spool import Spool
from services.selector.state import LiveState
from services.selector.stats import StatsBook
from services.selector.timeline import Timeline

log = logging.getLogger(__name__)

SERVICE_NAME = SELECTOR_SERVICE


@dataclass
class RunningSelector:
    """A started Selector and what it owns."""

    grpc: GrpcServer
    engine: Engine
    servicer: SelectorServicer
    recorder: Recorder
    channel: grpc.aio.Channel
    providers: ProviderClient
    refresher: asyncio.Task[None]
    trials: asyncio.Task[None]
    shared: SharedState | None = None
    sharing: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc.port}"

    async def wait_ready(self, timeout: float) -> None:
        """Returns once the Selector serves (its catalog loaded); TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            await self.servicer.wait_ready()

    async def stop(self, grace: float = 0.0, *, give_back: bool = True) -> None:
        """Stops serving, gives back the budget slices it holds (unless `give_back` is False:
        tests of a replica that dies), then delivers buffered records and closes clients."""
        await self.grpc.stop(grace)
        for task in (self.refresher, self.trials, self.sharing):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.shared is not None and give_back:
            await self.shared.sync_once(give_back_all=True)
        await self.recorder.stop()
        await self.providers.close()
        await self.channel.close()


async def refresh(
    engine: Engine,
    stub: model_store_pb2_grpc.ModelStoreStub,
    environ: Mapping[str, str],
    *,
    first: bool,
) -> None:
    """Reloads the catalog and statistics; on the first load also restores live state."""
    now = time.time()
    models = await snapshot.load_models(stub)
    stats = await snapshot.load_statistics(stub, engine.window_hours, now)
    catalog = snapshot.Catalog.build(models, environ)
    if first:
        snapshot.restore_live_state(engine.live, models, stats, now, catalog)
    snapshot.apply_statistics(engine.stats, stats)
    for attempt in engine.recorder.pending_attempts():
        started = attempt.start_time.seconds + attempt.start_time.nanos / 1e9
        engine.stats.add(
            attempt.model_id,
            attempt.outcome,
            attempt.latency_ms,
            attempt.prompt_tokens + attempt.completion_tokens,
            started,
        )
    engine.catalog = catalog


async def _refresh_loop(
    servicer: SelectorServicer,
    server: GrpcServer,
    engine: Engine,
    stub: model_store_pb2_grpc.ModelStoreStub,
    environ: Mapping[str, str],
    interval: float,
    gate: ClientGate,
) -> None:
    backoff = 0.2
    while not servicer.ready:
        try:
            # Records an earlier run spilled count in the budgets and state restored below.
            await engine.recorder.replay_spool()
            await refresh(engine, stub, environ, first=True)
            await gate.count_keys()
        except Exception as error:
            unreachable = isinstance(error, grpc.aio.AioRpcError)
            log.warning("first catalog load failed; will retry", exc_info=not unreachable)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        if engine.shared is not None:
            # A plan over every model names the budget counters; their first slices are leased
            # (and what other replicas learned lately applied) before the first request.
            engine.model_stats()
            await engine.shared.sync_once()
        servicer.mark_ready()
        await server.set_serving(True)
        log.info("catalog loaded", extra={"models": len(engine.catalog.entries)})
        log.info(gate.describe())
    while True:
        await asyncio.sleep(interval)
        try:
            await engine.recorder.flush()
            await refresh(engine, stub, environ, first=False)
            await gate.count_keys()
            engine.model_stats()  # refreshes the per-model state and budget gauges
        except Exception as error:
            unreachable = isinstance(error, grpc.aio.AioRpcError)
            log.warning("snapshot refresh failed; serving the last one", exc_info=not unreachable)


def _open_spool(settings: SelectorSettings) -> Spool | None:
    """The spool, or None (logged: records not delivered at shutdown are then lost)."""
    folder = settings.spool_dir
    if folder is None:
        log.warning("no spool folder (SELECTOR_SPOOL_DIR, DATA_DIR): undelivered records are lost")
        return None
    try:
        return Spool(folder, settings.selector_spool_max_mb * 1024 * 1024)
    except OSError as error:
        log.error("spool folder unusable: undelivered records lost", extra={"error": str(error)})
        return None


async def start_selector(
    settings: SelectorSettings, environ: Mapping[str, str] | None = None
) -> RunningSelector:
    """Starts a Selector on `settings.selector_listen_address`; it serves once the catalog loads."""
    environ = dict(os.environ if environ is None else environ)
    channel = open_channel(settings.model_store_address)
    stub = model_store_pb2_grpc.ModelStoreStub(channel)
    providers = await ProviderClient.open(max_connections=settings.provider_max_connections)
    live = LiveState(
        failure_threshold=settings.circuit_failure_threshold,
        circuit_open_seconds=settings.circuit_open_seconds,
        circuit_max_open_seconds=settings.circuit_max_open_seconds,
        default_rate_limit_seconds=settings.default_rate_limit_seconds,
        permanent_cooldown_seconds=settings.permanent_cooldown_seconds,
        minute_seconds=settings.budget_minute_seconds,
    )
    recorder = Recorder(
        stub,
        capacity=settings.record_buffer_size,
        interval=settings.record_flush_seconds,
        availability_source=lambda: [
            snapshot.availability_message(live, model_id) for model_id in live.take_dirty()
        ],
        spool=_open_spool(settings),
    )
    engine = Engine(
        providers=providers,
        live=live,
        stats=StatsBook(window_hours=settings.stats_window_hours),
        recorder=recorder,
        probe_prompt=settings.synthetic_test_prompt,
        probe_max_output_tokens=settings.probe_max_output_tokens,
        probe_concurrency=settings.probe_concurrency,
        max_retry_wait_seconds=settings.max_retry_wait_seconds,
        window_hours=settings.stats_window_hours,
        first_token_timeout=settings.stream_first_token_timeout_seconds,
        stream_idle_timeout=settings.stream_idle_timeout_seconds,
    )
    if settings.shared_state:
        engine.shared = SharedState(
            stub,
            live,
            replica=replica_name(),
            interval=settings.shared_state_interval_seconds,
            lease_seconds=settings.shared_lease_seconds,
        )
    token = settings.admin_api_token.get_secret_value() if settings.admin_api_token else None
    discovery = Discovery(
        engine,
        providers,
        stub,
        environ,
        auto_add=settings.catalog_auto_add,
        list_timeout=settings.model_list_timeout_seconds,
    )
    gate = ClientGate(
        stub,
        admin_token=token,
        allow_anonymous=settings.allow_anonymous,
        exposed=not (
            is_loopback(listen_host(settings.selector_listen_address))
            and is_loopback(settings.envoy_listen_host)
        ),
        cache_seconds=settings.client_key_cache_seconds,
    )
    servicer = SelectorServicer(
        engine,
        default_deadline=settings.request_deadline_seconds,
        admin_token=token,
        discovery=discovery,
        gate=gate,
        keys=ClientKeyAdmin(stub, gate),
        timeline=Timeline(stub, lambda: engine.catalog),
    )
    server = await start_grpc_server(
        [Registration(SERVICE_NAME, selector_pb2_grpc.add_SelectorServicer_to_server, servicer)],
        settings.selector_listen_address,
        serving=False,
    )
    recorder.start()
    refresher = asyncio.create_task(
        _refresh_loop(
            servicer, server, engine, stub, environ, settings.snapshot_refresh_seconds, gate
        ),
        name="snapshot-refresh",
    )
    trials = asyncio.create_task(engine.recovery_trials(), name="recovery-trials")
    sharing = None
    if engine.shared is not None:
        sharing = asyncio.create_task(engine.shared.run(), name="shared-state")
    return RunningSelector(
        server,
        engine,
        servicer,
        recorder,
        channel,
        providers,
        refresher,
        trials,
        engine.shared,
        sharing,
    )
