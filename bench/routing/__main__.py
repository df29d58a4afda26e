"""Command line: `python -m bench.routing [--quick] [--variant NAME] [--out PATH]
[--scenario NAME ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.routing.drive import SelectorOptions
from bench.routing.report import run_all

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "routing.json"
#: The selector's conduct as coded, and with one rule switched off (what each rule is worth).
VARIANTS = {
    "as_coded": SelectorOptions(),
    "no_fallback_share": SelectorOptions("selector (no fallback share)", fallback_share=False),
    "trials_by_users": SelectorOptions("selector (trials by users)", trials_by_probe=False),
    "short_waits": SelectorOptions("selector (waits of 5 s)", max_retry_wait_seconds=5.0),
    "no_quick_retry": SelectorOptions("selector (no quick retry)", quick_retry=False),
}


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, prints the comparison table and writes the JSON results.

    Exit status 1 when a full run misses a target (every scenario, every target).
    """
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="first 10 minutes of each scenario")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--scenario", action="append", help="run only these scenarios")
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="as_coded",
        help="the selector's conduct as coded, or with one rule switched off",
    )
    args = parser.parse_args(argv)
    options = VARIANTS[args.variant]
    table, passed = run_all(quick=args.quick, out=args.out, options=options, only=args.scenario)
    print(f"selector: {options}")
    print(table)
    print(f"results written to {args.out}")
    if not args.quick:
        print("all targets met" if passed else "TARGETS MISSED (see the scenarios above)")
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
