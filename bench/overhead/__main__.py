"""`python -m bench.overhead [--quick] [--out FILE]`: the gateway's overhead, throughput and memory.

On loopback, in separate processes as in production: the provider simulator (one model answering
at once), ModelStore on a fresh embedded PostgreSQL, the Selector and Envoy. Measures

- added latency: N sequential pairs of requests, one straight to the simulator's chat completions
  endpoint and one through Envoy (`POST /api/v1/prompts/process`) → Selector → simulator with
  attempts and history recorded; percentiles of each, of the per-request paired difference
  (gateway minus direct of the same pair), and the difference of the percentiles;
- throughput: a fixed number of requests through Envoy at a fixed concurrency (aiohttp client):
  requests/s, errors, p50/p99, and the CPU each process spent per request;
- memory: peak RSS (VmHWM) of the Selector and ModelStore processes; time from the first spawn
  until every service is ready (gRPC health SERVING for ModelStore and Selector);
- the OpenAI-compatible face (before the history is loaded): N triples of a direct request,
  ProcessPrompt and a non-streaming `POST /v1/chat/completions`, with both faces' added latency
  and its difference (target: chat at most 1 ms above ProcessPrompt); N pairs of streams, direct
  and `stream: true` through Envoy, timed to the first content chunk (the simulator sends it a
  fixed time after the headers, the rest at fixed intervals; see `stack.py`) and to `[DONE]`
  (target: ≤ 3 ms added to the first token, median); complete streams per second through Envoy
  at the same concurrency;
- cost of history: the added-latency run again after loading a large history (prompt_history and
  model_attempts rows, INSERT … SELECT generate_series) into the ModelStore's database;
- replicas (bench/overhead/replicas.py): throughput through Envoy with 1 and with N Selector
  replicas (fresh stacks, the same client, concurrency 32 and 64), the CPU milliseconds per
  request of every process, PostgreSQL's commits and rows written per prompt, each replica's
  peak RSS, and a projection for a 16-core machine.

The latency runs stop at the first failed request; the throughput runs count failures.
Prints one table and writes JSON (default bench/results/overhead.json).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from functools import partial
from pathlib import Path

from bench.overhead.runner import QUICK, Plan, run

RESULTS = Path(__file__).resolve().parent.parent / "results" / "overhead.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Plan()
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument("--requests", type=int, help=f"latency pairs ({defaults.latency_requests})")
    parser.add_argument("--throughput-requests", type=int, help=f"({defaults.throughput_requests})")
    parser.add_argument("--concurrency", type=int, help=f"({defaults.concurrency})")
    parser.add_argument("--history-rows", type=int, help=f"({defaults.history_rows:,})")
    parser.add_argument(
        "--replicas",
        help="Selector replica counts to compare, e.g. 1,4 "
        f"({','.join(map(str, defaults.replica_counts))})",
    )
    parser.add_argument(
        "--replica-requests", type=int, help=f"per replica run ({defaults.replica_requests})"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    plan = QUICK if args.quick else defaults
    overrides = {
        "latency_requests": args.requests,
        "throughput_requests": args.throughput_requests,
        "concurrency": args.concurrency,
        "history_rows": args.history_rows,
        "replica_requests": args.replica_requests,
        "replica_counts": tuple(int(n) for n in args.replicas.split(","))
        if args.replicas
        else None,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    asyncio.run(run(plan, args.out, partial(print, flush=True)))


if __name__ == "__main__":
    main()
