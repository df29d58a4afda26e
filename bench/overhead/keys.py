"""The cost of the client-key check: ProcessPrompt with a client key beside the same call without
one (the bench stack serves both: ALLOW_ANONYMOUS=true still checks and counts a key sent), in
pairs through Envoy; and the check alone (identify + charge, warm cache, leased slice) in-process
against the stack's ModelStore."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from aiselector.v1 import model_store_pb2_grpc
from bench.overhead import load
from bench.overhead.stack import ADMIN_TOKEN, RunningStack
from services.common.channels import open_channel
from services.selector.client_keys import ClientGate

# Limits generous enough never to refuse in the run, so the key leases the biggest slice (50)
# and asks ModelStore once per 50 requests, as a busy application's key would.
LIMITS = {"requests_per_minute": 1_000_000, "requests_per_day": 1_000_000_000}
IN_PROCESS_CHECKS = 20_000


async def create_key(stack: RunningStack) -> str:
    """A client key made through the admin JSON API."""
    async with (
        load.client_session(1) as session,
        session.post(
            f"{stack.addresses.envoy_url}/api/v1/admin/keys",
            json={"name": "bench", **LIMITS},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as reply,
    ):
        body = await reply.json(content_type=None)
    if reply.status != 200:
        raise load.RequestFailed(f"creating a client key answered {reply.status}: {body}")
    return str(body["key"])


async def measure(stack: RunningStack, requests: int) -> tuple[dict[str, Any], int]:
    """The added latency of the check, paired, and the check alone; and the requests sent."""
    key = await create_key(stack)

    async def keyed(session: aiohttp.ClientSession, stack: RunningStack) -> float:
        return await load.ask_gateway(session, stack, {"authorization": f"Bearer {key}"})

    anonymous, with_key = await load.pairs(stack, requests, load.ask_gateway, keyed)
    paired = [k - a for k, a in zip(with_key, anonymous, strict=True)]
    channel = open_channel(f"127.0.0.1:{stack.addresses.model_store_port}")
    try:
        gate = ClientGate(
            model_store_pb2_grpc.ModelStoreStub(channel),
            admin_token=None,
            allow_anonymous=True,
            exposed=False,
            cache_seconds=5.0,
        )
        authorization = f"Bearer {key}"
        await gate.charge(await gate.identify(authorization))
        checks: list[float] = []
        for _ in range(IN_PROCESS_CHECKS):
            began = time.perf_counter()
            await gate.charge(await gate.identify(authorization))
            checks.append((time.perf_counter() - began) * 1000)
    finally:
        await channel.close()
    report = {
        "requests": requests,
        "without_key": load.summary(anonymous),
        "with_key": load.summary(with_key),
        "added_paired": load.summary(paired),
        "check_alone_us": {
            k.replace("_ms", "_us"): round(v * 1000, 1) for k, v in load.summary(checks).items()
        },
        "check_alone_calls": IN_PROCESS_CHECKS,
    }
    # The warm-up pair of `pairs`, then the measured pairs; both sides leave a history row.
    return report, 2 * (requests + 1)
