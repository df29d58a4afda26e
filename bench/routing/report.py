"""Runs every scenario through every policy, checks the targets, formats the table and JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bench.routing.routers import EngineModel, policies
from bench.routing.scenarios import SCENARIOS
from bench.routing.sim import DEADLINE_S, latency_over_all, run

QUICK_SECONDS = 600.0
OURS = "selector"
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
)


def check(metrics: dict[str, dict], latencies: dict[str, list[float]]) -> list[str]:
    """The targets the selector misses in one scenario (empty when all are met).

    Latency is compared over all prompts, an unanswered one counting as never answered, so that
    no policy looks fast by leaving its slow prompts unanswered: at the 95th percentile, or at the
    share both policies answered when one of them answered less than 95% of the prompts.
    """
    ours = metrics[OURS]
    misses = []
    if (ours["answered_of_answerable_pct"] or 100.0) < 99.9:
        misses.append("answers < 99.9% of answerable prompts")
    if ours["beyond_declared_budget"]:
        misses.append("sent requests beyond a declared budget")
    if ours["sent_during_retry_after"]:
        misses.append("sent requests during a provider's Retry-After")
    if ours["deadlines_missed"]:
        misses.append("missed deadlines")
    requests = ours["requests"]
    for name, other in metrics.items():
        if name in (OURS, "oracle"):
            continue
        if ours["answered_pct"] < other["answered_pct"]:
            misses.append(f"answers fewer than {name}")
        share = min(0.95, ours["answered"] / requests, other["answered"] / requests)
        mine = latency_over_all(latencies[OURS], requests, share)
        theirs = latency_over_all(latencies[name], requests, share)
        if mine > theirs:
            misses.append(f"slower than {name} at p{100 * share:.4g} of all prompts")
    return misses


def _cell(value: object, fmt: str) -> str:
    return "unans." if value is None else fmt.format(value)


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table: one block per scenario, one row per policy.

    Latency percentiles are over answered prompts; "p95 all" counts an unanswered prompt as never
    answered ("unans." when more than 5% went unanswered).
    """
    lines: list[str] = []
    header = [title for title, _, _ in COLUMNS]
    for name, scenario in results.items():
        rows = [
            [_cell(policy if key == "policy" else metrics[key], fmt) for _, key, fmt in COLUMNS]
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
    *, quick: bool, out: Path, engine: EngineModel, only: list[str] | None = None
) -> tuple[str, bool]:
    """Runs the scenarios, writes `out` as JSON and returns the table and whether targets hold."""
    compared = policies(engine)
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
            "misses": check(metrics, latencies),
        }
    passed = all(not r["misses"] for r in results.values())
    document = {
        "benchmark": "routing",
        "quick": quick,
        "deadline_s": DEADLINE_S,
        "policies": list(compared),
        "engine": asdict(engine),
        "targets": {
            "answered_of_answerable_pct_min": 99.9,
            "beyond_declared_budget": 0,
            "deadlines_missed": 0,
            "beats_baselines_on": ["answered_pct", "p95_latency_s"],
        },
        "all_targets_met": passed,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "scenarios": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return format_table(results), passed
