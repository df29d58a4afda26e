"""`python -m services.simulator --scenario FILE [--host H] [--port N]`; stops on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.common import logging as json_logging
from services.common.server import wait_for_signal
from services.simulator import start_simulator

DEMO = Path(__file__).with_name("scenarios") / "demo.yaml"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.simulator", description=__doc__)
    parser.add_argument("--scenario", type=Path, default=DEMO, help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (0 = any)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args()


async def _main(arguments: argparse.Namespace) -> None:
    simulator = await start_simulator(arguments.scenario, arguments.host, arguments.port)
    print(f"provider simulator listening on {simulator.url}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await simulator.close()


if __name__ == "__main__":
    args = _arguments()
    json_logging.configure("simulator", args.log_level)
    asyncio.run(_main(args))
