"""A real stack for tests: the simulator, ModelStore on PostgreSQL, the Selector over gRPC."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from aiselector.v1 import (
    common_pb2,
    model_store_pb2,
    model_store_pb2_grpc,
    selector_pb2,
    selector_pb2_grpc,
)
from services.common.channels import open_channel
from services.data.app import RunningModelStore, start_model_store
from services.selector.app import RunningSelector, start_selector
from services.selector.settings import SelectorSettings
from services.simulator import RunningSimulator, start_simulator

ADMIN_TOKEN = "admin-token-for-tests"
PROVIDERS = ("alpha", "beta", "gamma")


def provider_key(provider: str) -> str:
    """The (fake, but secret-looking) API key of a test provider."""
    return f"sk-{provider}-0123456789abcdef"


def catalog(
    models: dict[str, dict[str, Any]] | None = None,
    providers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A catalog of three OpenAI-compatible providers with one model each (`alpha/m1` …).

    `models` changes fields of a model by name, or adds one (`alpha/m2`: a second model of alpha,
    id `m2` at the provider); `providers` changes fields of a provider (`account_limits`, …).
    """
    models = models or {}
    providers = providers or {}
    names = [f"{p}/m1" for p in PROVIDERS]
    names += [name for name in models if name not in names]
    return {
        "providers": [
            {
                "name": p,
                "api_format": "openai",
                "api_endpoint": f"https://{p}.invalid/v1",
                "api_key_env": f"{p.upper()}_API_KEY",
                "base_url_env": f"{p.upper()}_BASE_URL",
                "limits": {"timeout_ms": 2000, "max_output": 256},
                **providers.get(p, {}),
            }
            for p in PROVIDERS
        ],
        "models": [
            {
                "name": name,
                "provider": name.split("/")[0],
                "provider_model_id": name.split("/", 1)[1],
                "tags": ["json"],
                "supports_json": True,
                **models.get(name, {}),
            }
            for name in names
        ],
    }


@dataclass
class Stack:
    """Simulator + ModelStore + Selector, restartable piece by piece."""

    sim: RunningSimulator
    store: RunningModelStore
    selector: RunningSelector
    database_url: str
    catalog_path: Path
    environ: dict[str, str]
    settings: dict[str, Any]
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def stub(self) -> selector_pb2_grpc.SelectorStub:
        channel = open_channel(self.selector.address, private=True)
        self.channels.append(channel)
        return selector_pb2_grpc.SelectorStub(channel)

    def store_stub(self) -> model_store_pb2_grpc.ModelStoreStub:
        channel = open_channel(self.store.address, private=True)
        self.channels.append(channel)
        return model_store_pb2_grpc.ModelStoreStub(channel)

    async def ask(self, prompt: str = "Hello", timeout: float = 10, **fields: Any):
        return await self.stub().ProcessPrompt(
            selector_pb2.ProcessPromptRequest(prompt=prompt, **fields), timeout=timeout
        )

    def requests_to(self, provider: str) -> list[dict[str, Any]]:
        return [e for e in self.sim.log() if e["provider"] == provider]

    async def history(self) -> list[common_pb2.PromptRecord]:
        """Every prompt record in ModelStore, newest first, once the Selector delivered its own."""
        await self.selector.recorder.flush()
        page = await self.store_stub().ListPromptHistory(
            model_store_pb2.ListPromptHistoryRequest(page_size=1000), timeout=5
        )
        return list(page.records)

    async def outcomes(self) -> dict[str, Counter[str]]:
        """Attempts ModelStore holds for each model (by name), counted by outcome name."""
        await self.selector.recorder.flush()
        request = model_store_pb2.GetModelStatisticsRequest()
        request.start_time.FromSeconds(int(time.time()) - 7200)
        stats = await self.store_stub().GetModelStatistics(request, timeout=5)
        names = {
            e.spec.model_id: e.spec.name for e in self.selector.engine.catalog.entries.values()
        }
        counted: dict[str, Counter[str]] = {}
        for model in stats.statistics:
            for bucket in model.buckets:
                for count in bucket.outcome_counts:
                    outcome = common_pb2.Outcome.Name(count.outcome)
                    counted.setdefault(names[model.model_id], Counter())[outcome] += count.count
        return counted

    async def start_selector(self) -> None:
        self.selector = await _selector(self.store.address, self.environ, self.settings)

    async def restart_selector(self) -> None:
        await self.selector.stop()
        await self.start_selector()

    async def stop_store(self) -> None:
        await self.store.stop()

    async def start_store(self) -> None:
        self.store = await start_model_store(
            self.database_url, f"127.0.0.1:{self.store.port}", self.catalog_path
        )


async def _selector(
    store_address: str, environ: dict[str, str], overrides: dict[str, Any]
) -> RunningSelector:
    settings = SelectorSettings(
        _env_file=None,
        selector_listen_address="127.0.0.1:0",
        model_store_address=store_address,
        admin_api_token=ADMIN_TOKEN,
        record_flush_seconds=0.05,
        snapshot_refresh_seconds=3600,
        **overrides,
    )
    running = await start_selector(settings, environ)
    await running.wait_ready(10)
    return running


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(database_url: str, tmp_path: Path) -> AsyncIterator[StackFactory]:
    stacks: list[Stack] = []

    async def factory(
        scripts: dict[str, Any] | None = None,
        *,
        models: dict[str, dict[str, Any]] | None = None,
        providers: dict[str, dict[str, Any]] | None = None,
        keys: tuple[str, ...] = PROVIDERS,
        environ: dict[str, str] | None = None,
        **settings: Any,
    ) -> Stack:
        sim = await start_simulator({"default": {"latency": 0.01}, "scripts": scripts or {}})
        path = tmp_path / "catalog.yaml"
        path.write_text(yaml.safe_dump(catalog(models, providers)))
        store = await start_model_store(database_url, "127.0.0.1:0", path)
        variables = {f"{p.upper()}_BASE_URL": sim.base_url(p) for p in PROVIDERS}
        variables |= {f"{p.upper()}_API_KEY": provider_key(p) for p in keys}
        variables |= environ or {}
        selector = await _selector(store.address, variables, settings)
        stack = Stack(sim, store, selector, database_url, path, variables, settings)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        await stack.selector.stop()
        await stack.store.stop()
        await stack.sim.close()
        for channel in stack.channels:
            await channel.close()
