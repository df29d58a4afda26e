"""No record lost: ModelStore killed or stopped while prompts are answered, the Selector stopped
while it is away, a reply lost after ModelStore committed, a damaged spool file (real parts)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import stat
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from aiselector.v1 import common_pb2, model_store_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel
from services.data.db import async_url
from services.data.schema import OUTCOMES, outcome_column
from services.selector.bookkeeping import Recorder
from services.selector.spool import Records, Spool, decode, encode
from services.simulator import start_simulator
from services.stack.plan import free_port
from services.stack.readiness import GrpcServing
from tests.data.rpc import attempt
from tests.fakes import eventually
from tests.stacks import ADMIN_TOKEN, PROVIDERS, catalog, provider_key

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Ledger:
    """What the database holds."""

    prompts: Counter[str]  # history rows per prompt text
    attempts: Counter[str]  # attempt rows per request id
    bucket_total: int  # attempts counted in the hourly statistics
    lifetime_total: int  # attempts counted in the models' lifetime counters


async def read_ledger(database_url: str) -> Ledger:
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    outcomes = " + ".join(outcome_column(o) for o in OUTCOMES)
    queries = (
        "SELECT prompt_text, count(*) FROM prompt_history GROUP BY 1",
        "SELECT request_id, count(*) FROM model_attempts GROUP BY 1",
        f"SELECT coalesce(sum({outcomes}), 0) FROM model_stats_hourly",
        "SELECT coalesce(sum(request_count), 0) FROM ai_models",
    )
    try:
        async with engine.connect() as db:
            prompts, attempts, buckets, lifetime = [await db.execute(text(q)) for q in queries]
            return Ledger(
                Counter(dict(prompts.all())),
                Counter(dict(attempts.all())),
                buckets.scalar_one(),
                lifetime.scalar_one(),
            )
    finally:
        await engine.dispose()


@dataclass
class Answered:
    """Replies the Selector gave, by prompt."""

    replies: dict[str, selector_pb2.ProcessPromptResponse] = field(default_factory=dict)

    def add(self, prompt: str, reply: selector_pb2.ProcessPromptResponse) -> None:
        assert reply.success, reply
        assert reply.request_id
        self.replies[prompt] = reply

    def expected(self) -> tuple[Counter[str], Counter[str], int]:
        """History rows per prompt, attempt rows per request id, and all attempts."""
        prompts = Counter(list(self.replies))
        attempts = Counter({r.request_id: r.attempts for r in self.replies.values()})
        return prompts, attempts, sum(attempts.values())


def assert_each_once(ledger: Ledger, answered: Answered) -> None:
    prompts, attempts, total = answered.expected()
    assert ledger.prompts == prompts
    assert ledger.attempts == attempts
    assert ledger.bucket_total == ledger.lifetime_total == total


def assert_budget_counts(
    stats: selector_pb2.GetModelStatsResponse, answered: Answered, day: date
) -> None:
    """Today's budget counts, restored at start, include every attempt (unless the day turned)."""
    if datetime.now(UTC).date() == day:
        assert sum(m.budget.requests_today for m in stats.models) == answered.expected()[2]


def spool_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.spool"))


# ---- in-process: the Selector and ModelStore of tests.stacks --------------------------------


async def test_stopped_while_the_store_is_away_spools_and_the_next_start_delivers(
    make_stack, tmp_path, database_url
):
    folder = tmp_path / "spool"
    stack = await make_stack({"alpha/m1": {"behaviour": 404}}, selector_spool_dir=folder)
    answered, day = Answered(), datetime.now(UTC).date()
    await stack.stop_store()
    answered.add("pinned", await stack.ask("pinned", model_name="alpha/m1"))
    for i in range(9):
        answered.add(f"during-{i}", await stack.ask(f"during-{i}"))
    await stack.selector.stop()

    [path] = spool_files(folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    records, problem = decode(path.read_bytes())
    assert problem == ""
    assert Counter(p.prompt_text for p in records.prompts) == answered.expected()[0]
    assert len(records.attempts) == answered.expected()[2]
    assert any(a.cooldown_until.seconds for a in records.availability)

    await stack.start_store()
    await stack.start_selector()  # serves only once the spool is delivered
    assert_each_once(await read_ledger(database_url), answered)
    assert spool_files(folder) == []
    stats = await stack.stub().GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
    alpha = next(m for m in stats.models if m.name == "alpha/m1")
    assert alpha.state == selector_pb2.MODEL_STATE_COOLING_DOWN
    assert_budget_counts(stats, answered, day)


async def test_a_damaged_spool_file_is_quarantined_and_the_rest_delivered(
    make_stack, tmp_path, database_url, caplog
):
    folder = tmp_path / "spool"
    stack = await make_stack(selector_spool_dir=folder)
    models = await stack.store_stub().ListModels(model_store_pb2.ListModelsRequest(), timeout=5)
    model_id = models.models[0].id
    now = datetime.now(UTC)

    def records(tag: str, n: int) -> Records:
        return Records(
            attempts=[attempt(model_id, now, attempt_id=f"{tag}-a{i}") for i in range(n)],
            prompts=[
                common_pb2.PromptRecord(record_id=f"{tag}-p{i}", prompt_text=f"{tag}-{i}")
                for i in range(n)
            ],
        )

    spool = Spool(folder, max_bytes=1 << 20)
    spool.write(records("whole", 5))
    damaged = encode(records("damaged", 3))
    (folder / "selector-1-damaged.spool").write_bytes(damaged[: len(damaged) - 20])
    (folder / "selector-2-garbage.spool").write_bytes(b"not a spool file")

    await stack.restart_selector()

    ledger = await read_ledger(database_url)
    whole = {f"whole-{i}" for i in range(5)}
    assert ledger.prompts == Counter(whole | {"damaged-0", "damaged-1"})
    assert ledger.lifetime_total == ledger.bucket_total == 5 + 3
    assert spool_files(folder) == []
    assert sorted(p.name for p in (folder / "quarantine").iterdir()) == [
        "selector-1-damaged.spool",
        "selector-2-garbage.spool",
    ]
    assert caplog.text.count("spool file quarantined") == 2


class LostReplies:
    """A ModelStore stub whose first RecordAttempts and RecordPrompts reach ModelStore, which
    commits them, but whose replies are lost on the way back."""

    def __init__(self, stub) -> None:
        self._stub = stub
        self.lost: set[str] = set()

    def __getattr__(self, name: str):
        return getattr(self._stub, name)

    async def _lose_first(self, name: str, request, timeout: float):
        reply = await getattr(self._stub, name)(request, timeout=timeout)
        if name not in self.lost:
            self.lost.add(name)
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        return reply

    async def RecordAttempts(self, request, timeout):
        return await self._lose_first("RecordAttempts", request, timeout)

    async def RecordPrompts(self, request, timeout):
        return await self._lose_first("RecordPrompts", request, timeout)


async def test_a_batch_committed_but_not_acknowledged_is_counted_once(
    model_store_stub, database_url
):
    models = await model_store_stub.ListModels(model_store_pb2.ListModelsRequest(), timeout=5)
    model_id = models.models[0].id
    stub = LostReplies(model_store_stub)
    recorder = Recorder(stub, capacity=100, interval=0.05)
    now = datetime.now(UTC)
    for i in range(20):
        recorder.add_attempt(attempt(model_id, now, attempt_id=f"a{i}"))
        recorder.add_prompt(common_pb2.PromptRecord(record_id=f"p{i}", prompt_text=f"prompt-{i}"))
    results = [await recorder.flush() for _ in range(3)]
    assert results == [False, False, True]
    assert stub.lost == {"RecordAttempts", "RecordPrompts"}
    ledger = await read_ledger(database_url)
    assert ledger.prompts == Counter(f"prompt-{i}" for i in range(20))
    assert ledger.attempts == Counter({"req": 20})
    assert ledger.bucket_total == ledger.lifetime_total == 20


# ---- process level: `python -m services.data` killed, `python -m services.selector` stopped ---


@dataclass
class Service:
    """One `python -m <module>` process, restartable with the same environment."""

    module: str
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self, ready: GrpcServing) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                env=self.env,
                cwd=self.log.parent,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

        async def serving() -> bool:
            assert self.process.returncode is None, self.log.read_text()[-3000:]
            return await ready()

        await eventually(serving, 60, f"{self.module} to serve")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 20) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _load(selector: selector_pb2_grpc.SelectorStub, answered: Answered, stop, ids) -> None:
    """One client: unique prompts, one after another, until `stop` is set."""
    while not stop.is_set():
        prompt = f"load-{next(ids)}"
        reply = await selector.ProcessPrompt(
            selector_pb2.ProcessPromptRequest(prompt=prompt), timeout=15
        )
        answered.add(prompt, reply)


async def test_model_store_killed_under_load_and_selector_stopped_lose_no_record(
    tmp_path, database_url
):
    sim = await start_simulator({"default": {"latency": 0.01}, "scripts": {}})
    catalog_path = tmp_path / "catalog.yaml"
    # Generous provider timeouts: a loaded test machine must not bench the simulated models.
    patient = {"limits": {"timeout_ms": 20_000}}
    catalog_path.write_text(yaml.safe_dump(catalog({f"{p}/m1": patient for p in PROVIDERS})))
    store_address = f"127.0.0.1:{free_port()}"
    selector_address = f"127.0.0.1:{free_port()}"
    base = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{REPO}:{REPO / 'gen'}",
        "LOG_LEVEL": "INFO",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
    store = Service(
        "services.data",
        base
        | {
            "DATABASE_URL": database_url,
            "CATALOG_PATH": str(catalog_path),
            "MODEL_STORE_LISTEN_ADDRESS": store_address,
        },
        tmp_path / "data.log",
    )
    selector = Service(
        "services.selector",
        base
        | {
            "SELECTOR_LISTEN_ADDRESS": selector_address,
            "MODEL_STORE_ADDRESS": store_address,
            "DATA_DIR": str(tmp_path / "data"),
            "ADMIN_API_TOKEN": ADMIN_TOKEN,
        }
        | {f"{p.upper()}_BASE_URL": sim.base_url(p) for p in PROVIDERS}
        | {f"{p.upper()}_API_KEY": provider_key(p) for p in PROVIDERS},
        tmp_path / "selector.log",
    )
    store_ready = GrpcServing(store_address, "aiselector.v1.ModelStore")
    selector_ready = GrpcServing(selector_address, "aiselector.v1.Selector")
    spool = tmp_path / "data" / "spool" / "selector"
    channel = open_channel(selector_address, private=True)
    stub = selector_pb2_grpc.SelectorStub(channel)
    answered, ids, stop = Answered(), itertools.count(), asyncio.Event()
    day = datetime.now(UTC).date()
    try:
        await store.start(store_ready)
        await selector.start(selector_ready)

        async def answered_at_least(n: int) -> None:
            async def enough() -> bool:
                for client in clients:
                    if client.done():
                        client.result()  # a failed request fails the test here
                return len(answered.replies) >= n

            await eventually(enough, 60, f"{n} answered prompts")

        clients = [asyncio.create_task(_load(stub, answered, stop, ids)) for _ in range(8)]
        await answered_at_least(150)
        await store.kill()  # SIGKILL, mid-load
        killed_at = len(answered.replies)
        await answered_at_least(killed_at + 150)
        await store.start(store_ready)  # same port, same database
        await answered_at_least(len(answered.replies) + 150)
        stop.set()
        await asyncio.gather(*clients)

        async def all_recorded() -> bool:
            ledger = await read_ledger(database_url)
            return sum(ledger.prompts.values()) >= len(answered.replies)

        await eventually(all_recorded, 30, "every answered prompt in the database")
        assert_each_once(await read_ledger(database_url), answered)
        under_load = len(answered.replies)

        await store.kill()
        for i in range(40):
            prompt = f"before-stop-{i}"
            answered.add(
                prompt,
                await stub.ProcessPrompt(
                    selector_pb2.ProcessPromptRequest(prompt=prompt), timeout=15
                ),
            )
        selector.signal(signal.SIGTERM)
        assert await selector.wait() == 0
        files = spool_files(spool)
        assert files
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
        assert "records not delivered at shutdown" not in selector.log.read_text()

        await store.start(store_ready)
        await selector.start(selector_ready)  # serves only once the spool is delivered
        ledger = await read_ledger(database_url)
        assert_each_once(ledger, answered)
        assert spool_files(spool) == []
        lost = sum((answered.expected()[0] - ledger.prompts).values())
        print(
            f"\nprompts answered: {len(answered.replies)} ({under_load} under load, ModelStore "
            f"SIGKILLed after {killed_at}); attempts: {answered.expected()[2]}; lost: {lost}"
        )
        stats = await stub.GetModelStats(selector_pb2.GetModelStatsRequest(), timeout=5)
        assert_budget_counts(stats, answered, day)
    finally:
        stop.set()
        await channel.close()
        await selector.kill()
        await store.kill()
        await sim.close()
