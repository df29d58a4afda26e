"""A stand-in service for supervisor tests: a gRPC health server with scripted misbehaviour."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

from services.common.server import start_grpc_server


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--exit-after", type=float, default=-1.0)
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--serve-for", type=float, default=-1.0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--grandchild", action="store_true")
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--events", type=Path)
    args = parser.parse_args()

    def record(event: str) -> None:
        if args.events:
            with args.events.open("a") as events:
                events.write(f"{time.monotonic():.6f} {event} {args.name}\n")

    print(f"{args.name} starting", flush=True)
    record("start")
    if args.grandchild:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(600)")
    if args.daemon:
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(600)", start_new_session=True
        )
    server = await start_grpc_server([], f"127.0.0.1:{args.port}", serving=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if args.ignore_sigterm:
        loop.add_signal_handler(signal.SIGTERM, lambda: print("ignoring SIGTERM", flush=True))
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    if args.exit_after >= 0:
        await asyncio.sleep(args.exit_after)
        print(f"{args.name} giving up with code {args.exit_code}", file=sys.stderr, flush=True)
        return args.exit_code
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.ready_after)
    await server.set_serving(not stop.is_set())
    print(f"{args.name} serving", flush=True)
    if args.serve_for >= 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.serve_for)
        if not stop.is_set():
            print(f"{args.name} dying with code {args.exit_code}", file=sys.stderr, flush=True)
            return args.exit_code
    await stop.wait()
    record("stop")
    await server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
