"""Runs every scenario through every policy, checks the targets, formats the table and JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench.routing.drive import (
    Clock,
    PlainPolicy,
    Policy,
    SelectorOptions,
    SelectorPolicy,
    latency_over_all,
    run,
)
from bench.routing.policies import BASELINES
from bench.routing.scenarios import SCENARIOS
from bench.routing.world import World

QUICK_SECONDS = 600.0
OURS = "selector"
ORACLE = "oracle"
#: The selector answers at most this many points fewer of all prompts than the oracle.
ORACLE_GAP_POINTS = 1.0
#: A model that is healthy again answers users' prompts again within this many seconds.
RECOVERY_TARGET_S = 30.0
COLUMNS = (
    ("policy", "policy", "{}"),
    ("answered %", "answered_pct", "{:.2f}"),
    ("of answerable %", "answered_of_answerable_pct", "{:.2f}"),
    ("p50 s", "median_latency_s", "{:.2f}"),
    ("p95 s", "p95_latency_s", "{:.2f}"),
    ("p95 all s", "p95_all_prompts_s", "{:.2f}"),
    ("attempts", "attempts_per_prompt", "{:.2f}"),
    ("429s", "rate_limited_429s", "{}"),
    ("over budget", "beyond_declared_budget", "{}"),
    ("in Retry-After", "sent_during_retry_after", "{}"),
    ("deadline missed", "deadlines_missed", "{}"),
    ("recovery s", "recovery_s", "{:.1f}"),
)


def check(metrics: dict[str, dict], latencies: dict[str, list[float]], recovery: bool) -> list[str]:
    """The targets the selector misses in one scenario (empty when all are met).

    Latency is compared over all prompts, an unanswered one counting as never answered, so that
    no policy looks fast by leaving its slow prompts unanswered: at the 95th percentile, or at the
    share both policies answered when one of them answered less than 95% of the prompts. It must
    be no worse than the best baseline's (random, round-robin, v2; the oracle is no baseline).
    """
    ours = metrics[OURS]
    misses = []
    if (ours["answered_of_answerable_pct"] or 100.0) < 99.9:
        misses.append("answers < 99.9% of answerable prompts")
    oracle = metrics[ORACLE]["answered_pct"]
    if ours["answered_pct"] < oracle - ORACLE_GAP_POINTS:
        misses.append(f"answers more than {ORACLE_GAP_POINTS:g} point fewer than the oracle")
    if ours["beyond_declared_budget"]:
        misses.append("sent requests beyond a declared budget")
    if ours["sent_during_retry_after"]:
        misses.append("sent requests during a provider's Retry-After")
    if ours["deadlines_missed"]:
        misses.append("missed deadlines")
    if recovery and (ours.get("recovery_s") is None or ours["recovery_s"] > RECOVERY_TARGET_S):
        misses.append(f"a recovered model not in use again within {RECOVERY_TARGET_S:g} s")
    requests = ours["requests"]
    for name, other in metrics.items():
        if name in (OURS, ORACLE):
            continue
        share = min(0.95, ours["answered"] / requests, other["answered"] / requests)
        mine = latency_over_all(latencies[OURS], requests, share)
        theirs = latency_over_all(latencies[name], requests, share)
        if mine > theirs:
            misses.append(f"slower than {name} at p{100 * share:.4g} of all prompts")
    return misses


def policies(options: SelectorOptions) -> dict[str, Callable[[World, int, Clock], Policy]]:
    """Every compared policy: the selector (real conduct, with `options`), baselines, oracle."""
    compared: dict[str, Callable[[World, int, Clock], Policy]] = {
        OURS: lambda world, seed, clock: SelectorPolicy(world, seed, clock, options)
    }
    for name, factory in BASELINES.items():
        compared[name] = lambda world, seed, clock, f=factory: PlainPolicy(  # type: ignore[misc]
            f(world, seed), world, clock
        )
    return compared


def _cell(value: object, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table: one block per scenario, one row per policy.

    Latency percentiles are over answered prompts; "p95 all" counts an unanswered prompt as never
    answered ("-" when more than 5% went unanswered).
    """
    lines: list[str] = []
    header = [title for title, _, _ in COLUMNS]
    for name, scenario in results.items():
        rows = [
            [_cell(policy if key == "policy" else metrics.get(key), fmt) for _, key, fmt in COLUMNS]
            for policy, metrics in scenario["policies"].items()
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        verdict = "targets met" if not scenario["misses"] else "; ".join(scenario["misses"])
        lines.append(f"\n== {name}: {scenario['description']}")
        lines.append(
            f"   {scenario['requests']} prompts, {scenario['duration_s'] / 3600:.2f} h; {verdict}"
        )
        lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
        lines.extend("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(lines)


def run_all(
    *, quick: bool, out: Path, options: SelectorOptions, only: list[str] | None = None
) -> tuple[str, bool]:
    """Runs the scenarios, writes `out` as JSON and returns the table and whether targets hold."""
    compared = policies(options)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for scenario in SCENARIOS:
        if only and scenario.name not in only:
            continue
        if quick:
            scenario = scenario.shortened(QUICK_SECONDS)
        runs = {name: run(scenario, factory) for name, factory in compared.items()}
        metrics = {name: result[0] for name, result in runs.items()}
        latencies = {name: result[1] for name, result in runs.items()}
        results[scenario.name] = {
            "description": scenario.description,
            "duration_s": scenario.duration_s,
            "requests": metrics[OURS]["requests"],
            "policies": metrics,
            "misses": check(metrics, latencies, scenario.recovery is not None and not quick),
        }
    passed = all(not r["misses"] for r in results.values())
    document = {
        "benchmark": "routing",
        "quick": quick,
        "policies": list(compared),
        "selector": asdict(options),
        "targets": {
            "answered_of_answerable_pct_min": 99.9,
            "answered_pct_below_oracle_max": ORACLE_GAP_POINTS,
            "beyond_declared_budget": 0,
            "sent_during_retry_after": 0,
            "deadlines_missed": 0,
            "p95_all_prompts_no_worse_than": "the best baseline",
            "recovery_s_max": RECOVERY_TARGET_S,
        },
        "all_targets_met": passed,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "scenarios": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return format_table(results), passed
