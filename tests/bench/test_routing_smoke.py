"""Smoke test of the routing benchmark: the quick run prints the table and writes every policy."""

import json
import subprocess
import sys
from pathlib import Path

POLICIES = {"selector", "random", "round_robin", "v2", "oracle"}
SCENARIOS = {
    "steady",
    "outage",
    "rate_limit_storm",
    "daily_quotas",
    "slow_provider",
    "flapping",
    "stale_404",
}


def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "routing.json"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.routing", "--quick", "--out", str(out)],
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
    assert set(document["scenarios"]) == SCENARIOS
    for scenario in document["scenarios"].values():
        assert set(scenario["policies"]) == POLICIES
        ours = scenario["policies"]["selector"]
        assert ours["requests"] > 0
        assert ours["beyond_declared_budget"] == 0
        assert ours["deadlines_missed"] == 0
