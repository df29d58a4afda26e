"""A bounded, seeded fuzz of the JSON API through the real Envoy, Selector, ModelStore and
simulator: no generated request gets a 5xx, and a normal prompt still works afterwards."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from tests.stacks import ADMIN_TOKEN

SEED = 20261201
CASES = 400
CONCURRENCY = 8
PATHS = ("/api/v1/prompts/process", "/api/v1/models/stats", "/api/v1/providers/test")
FIELDS = (
    "prompt",
    "user_id",
    "system_prompt",
    "response_format",
    "tags",
    "model_name",
    "model_names",
    "type",
)
HEADERS = ("x-client-id", "grpc-timeout", "content-type", "x-request-id", "authorization", "te")


def _string(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return ""
    if kind == 1:
        return "x" * rng.choice((63, 64, 65, 255, 256, 5_001, 10_001, 40_000))
    if kind == 2:
        return "".join(chr(rng.choice((0, 0x200B, 0xFEFF, 0x202E, 0x1F600))) for _ in range(5))
    if kind == 3:
        return rng.choice(("json", "code", "alpha/m1", "text", "json_object", "\ud800", "\udfff"))
    if kind == 4:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40)))
    if kind == 5:
        return "a\x00b"
    if kind == 6:
        return "\\" * rng.randrange(1, 5) + '"'
    return "".join(rng.choice("abc Привет 😀\t\n") for _ in range(rng.randrange(1, 30)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice((0, -1, 1.5, 2**63, -(2**70), 1e308))
    if kind in (3, 4, 5):
        return _string(rng)
    if kind in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 12))]
    return {rng.choice(FIELDS): _value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if kind == 1:
        return b"[" * 2_000 + b"]" * 2_000
    if kind == 2:
        return json.dumps(_value(rng)).encode()
    document = {"prompt": _string(rng) if rng.random() < 0.8 else _value(rng)}
    for field in rng.sample(FIELDS, rng.randrange(0, 4)):
        document[field] = _value(rng)
    return json.dumps(document, ensure_ascii=rng.random() < 0.5).encode(errors="surrogatepass")


def _headers(rng: random.Random) -> dict[str, bytes]:
    headers = {"content-type": b"application/json"}
    for name in rng.sample(HEADERS, rng.randrange(0, 3)):
        headers[name] = rng.choice(
            (
                b"",
                b"zzz",
                b"1S",
                b"c" * rng.choice((10, 300, 5_000)),
                "é🙂".encode(),
                b"\xff\xfe",
                f"Bearer {ADMIN_TOKEN}".encode(),
                b"trailers",
            )
        )
    return headers


def cases(seed: int = SEED, count: int = CASES) -> list[tuple[str, str, dict[str, bytes], bytes]]:
    """`count` (method, path, headers, body) requests, the same ones for the same seed."""
    rng = random.Random(seed)
    generated = []
    for _ in range(count):
        path = rng.choice(PATHS)
        if rng.random() < 0.1:
            path += "?" + rng.choice(("prompt=hi", "authorization=x", "a=%00", "tags=json"))
        method = "GET" if path.startswith("/api/v1/models") or rng.random() < 0.05 else "POST"
        generated.append((method, path, _headers(rng), _body(rng)))
    return generated


async def test_fuzzed_requests_never_get_a_5xx_and_a_normal_prompt_works_after(front):
    _, _, http = await front()
    limit = asyncio.Semaphore(CONCURRENCY)
    server_errors: list[tuple[str, str, int, str]] = []

    async def send(method: str, path: str, headers: dict[str, bytes], body: bytes) -> None:
        async with limit:
            reply = await http.request(method, path, headers=headers, content=body)
        if reply.status_code >= 500:
            server_errors.append((method, path, reply.status_code, reply.text[:300]))

    await asyncio.gather(*(send(*case) for case in cases()))

    assert server_errors == []
    reply = await http.post("/api/v1/prompts/process", json={"prompt": "Still there?"})
    assert reply.status_code == 200, reply.text
