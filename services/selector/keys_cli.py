"""`python -m services.selector keys …`: create, list and revoke client keys, and read their usage,
through a running Selector's admin methods (ADMIN_API_TOKEN, else `$DATA_DIR/admin_token`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import grpc
from grpc_status import rpc_status

from aiselector.v1 import common_pb2, selector_pb2, selector_pb2_grpc
from services.common.channels import open_channel

TIMEOUT_SECONDS = 10.0


def parser() -> argparse.ArgumentParser:
    """The `keys` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m services.selector keys",
        description="Client keys: a key is shown once, at creation; only its hash is stored.",
    )
    parser.add_argument("--selector", help="Selector address (SELECTOR_ADDRESS, 127.0.0.1:50051)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a key")
    create.add_argument("--name", required=True, help="who the key is for, e.g. my-app")
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (0 = no limit)")
    create.add_argument("--daily-requests", type=int, default=0, help="requests per day (UTC)")
    create.add_argument("--daily-tokens", type=int, default=0, help="tokens per day (UTC)")
    listing = commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", type=int)
    usage = commands.add_parser("usage", help="requests, tokens and failures per key and day")
    usage.add_argument("--id", type=int, default=0, help="one key (default: every key)")
    usage.add_argument("--days", type=int, default=7)
    return parser


def admin_token(environ: dict[str, str]) -> str:
    """ADMIN_API_TOKEN, else the token `make run` wrote into `$DATA_DIR/admin_token`."""
    token = environ.get("ADMIN_API_TOKEN", "")
    if token:
        return token
    path = Path(environ.get("DATA_DIR") or ".data") / "admin_token"
    return path.read_text().strip() if path.exists() else ""


def _limits(key: common_pb2.ClientKey) -> str:
    limits = key.limits
    parts = [
        f"{limits.requests_per_minute}/min" if limits.requests_per_minute else "",
        f"{limits.requests_per_day}/day" if limits.requests_per_day else "",
        f"{limits.tokens_per_day} tokens/day" if limits.tokens_per_day else "",
    ]
    return ", ".join(p for p in parts if p) or "no limits"


async def run(args: argparse.Namespace, environ: dict[str, str], out: TextIO) -> int:
    """Runs one command; 0 on success, 1 with the Selector's message on failure."""
    address = args.selector or environ.get("SELECTOR_ADDRESS") or "127.0.0.1:50051"
    metadata = (("authorization", f"Bearer {admin_token(environ)}"),)
    async with open_channel(address) as channel:
        stub = selector_pb2_grpc.SelectorStub(channel)
        try:
            if args.command == "create":
                created = await stub.CreateClientKey(
                    selector_pb2.CreateClientKeyRequest(
                        name=args.name,
                        requests_per_minute=args.rpm,
                        requests_per_day=args.daily_requests,
                        tokens_per_day=args.daily_tokens,
                    ),
                    metadata=metadata,
                    timeout=TIMEOUT_SECONDS,
                )
                key = created.client_key
                print(f"client key {key.id} for {key.name!r} ({_limits(key)}):", file=out)
                print(created.key, file=out)
                print("Store it now: it is not shown again. Send it as", file=out)
                print("  authorization: Bearer <key>   (OpenAI SDKs: api_key=<key>)", file=out)
            elif args.command == "list":
                listed = await stub.ListClientKeys(
                    selector_pb2.ListClientKeysRequest(include_revoked=args.all),
                    metadata=metadata,
                    timeout=TIMEOUT_SECONDS,
                )
                for key in listed.client_keys:
                    revoked = " REVOKED" if key.HasField("revoke_time") else ""
                    created_at = key.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M")
                    print(
                        f"{key.id:>5}  {key.key_prefix}…  {key.name}  ({_limits(key)})  "
                        f"created {created_at} UTC{revoked}",
                        file=out,
                    )
            elif args.command == "revoke":
                revoked = await stub.RevokeClientKey(
                    selector_pb2.RevokeClientKeyRequest(client_key_id=args.id),
                    metadata=metadata,
                    timeout=TIMEOUT_SECONDS,
                )
                print(f"client key {revoked.client_key.id} revoked", file=out)
            else:
                usage = await stub.GetClientKeyUsage(
                    selector_pb2.GetClientKeyUsageRequest(client_key_id=args.id, days=args.days),
                    metadata=metadata,
                    timeout=TIMEOUT_SECONDS,
                )
                for row in usage.usages:
                    print(
                        f"{row.day}  {row.client_key_id:>5}  {row.name}: {row.requests} requests, "
                        f"{row.tokens} tokens, {row.failures} failed",
                        file=out,
                    )
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)
            message = status.message if status else error.details()
            print(f"{error.code().name}: {message}", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str]) -> int:
    """Parses `argv` (after `keys`) and runs it."""
    return asyncio.run(run(parser().parse_args(argv), dict(os.environ), sys.stdout))
