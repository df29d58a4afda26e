"""Routing benchmark: the quick run prints the table and writes every policy; honest accounting."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.routing.drive import answerable_now as _answerable
from bench.routing.drive import latency_over_all
from bench.routing.scenarios import START
from bench.routing.world import Outage, Request, SimModel, World
from services.selector.state import Limits

POLICIES = {"selector", "random", "round_robin", "v2", "oracle"}
SCENARIOS = {
    "steady",
    "outage",
    "rate_limit_storm",
    "daily_quotas",
    "slow_provider",
    "flapping",
    "stale_404",
    "two_keys",
    "mixed_prompts",
    "failover",
}


@pytest.mark.parametrize("variant", ["as_coded", "no_fallback_share"])
def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path, variant: str) -> None:
    out = tmp_path / "routing.json"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.routing", "--quick", "--variant", variant, "--out", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "answered %" in done.stdout
    assert "p95 s" in done.stdout
    for name in SCENARIOS | POLICIES:
        assert name in done.stdout
    document = json.loads(out.read_text())
    assert document["quick"] is True
    assert document["selector"]["fallback_share"] is (variant == "as_coded")
    assert set(document["scenarios"]) == SCENARIOS
    for scenario in document["scenarios"].values():
        assert set(scenario["policies"]) == POLICIES
        ours = scenario["policies"]["selector"]
        assert ours["requests"] > 0
        assert ours["beyond_declared_budget"] == 0
        assert ours["sent_during_retry_after"] == 0
        assert ours["deadlines_missed"] == 0


def test_answerable_counts_no_model_inside_a_retry_after_it_announced() -> None:
    storm = Outage(0.0, 3600.0, "rate_limit", retry_after=30.0, share=0.5)
    world = World([SimModel("p/m", "p", latency_median_s=1.0, outages=(storm,))], START, seed=3)
    requests = [Request(i, START + 1.0, 100, frozenset(), False) for i in range(40)]
    limited = next(r for r in requests if world.peek("p/m", r, START + 1.0).retry_after)
    answered = next(r for r in requests if world.peek("p/m", r, START + 1.0).retry_after is None)
    assert _answerable(world, answered, START + 1.0)
    result = world.send("p/m", limited, START + 1.0)
    assert not world.held_back("p/m", START + 1.0)
    known = START + 1.0 + result.duration_s
    assert world.held_back("p/m", known)
    assert not _answerable(world, answered, known)
    world.send("p/m", answered, known)
    assert world.during_retry_after == 1
    assert not world.held_back("p/m", known + 30.0)
    assert _answerable(world, answered, known + 30.0)


def test_answerable_leaves_room_for_an_answer_at_the_output_limit() -> None:
    tight = SimModel(
        "p/m",
        "p",
        latency_median_s=1.0,
        tpd=10_000,
        declared=Limits(tokens_per_day=10_000),
        max_output_tokens=1000,
        completion_tokens=100,
    )
    world = World([tight], START, seed=3)
    request = Request(1, START + 1.0, 9_500, frozenset(), False)
    assert world.within_declared("p/m", request, START + 1.0)
    assert not world.within_declared("p/m", request, START + 1.0, worst_case=True)
    assert not _answerable(world, request, START + 1.0)


def test_latency_over_all_prompts_counts_unanswered_as_never() -> None:
    latencies = [1.0, 2.0, 3.0, 4.0]
    assert latency_over_all(latencies, 4, 0.5) == 2.0
    assert latency_over_all(latencies, 4, 1.0) == 4.0
    assert latency_over_all(latencies, 5, 0.95) == math.inf
    assert latency_over_all(latencies, 5, 0.8) == 4.0
