"""Command line: `python -m bench.routing [--quick] [--engine current|proposed] [--out PATH]
[--scenario NAME ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.routing.report import run_all
from bench.routing.routers import ENGINES

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "routing.json"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, prints the comparison table and writes the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="first 10 minutes of each scenario")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--scenario", action="append", help="run only these scenarios")
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="current",
        help="the request path around the policy: as coded now, or with the proposed changes",
    )
    args = parser.parse_args(argv)
    engine = ENGINES[args.engine]()
    table, passed = run_all(quick=args.quick, out=args.out, engine=engine, only=args.scenario)
    print(f"engine: {engine}")
    print(table)
    print(f"results written to {args.out}")
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
