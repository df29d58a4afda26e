"""The statistics benchmark (GetModelStatistics and GetModelTimeline) runs end to end at a tiny
size and writes its results."""

from __future__ import annotations

import json

from bench.statistics import run


async def test_benchmark_runs_at_a_tiny_size(postgres_admin_url, tmp_path, capsys):
    out = tmp_path / "statistics.json"
    results = await run([200, 400], calls=3, days=7, out=out, server_url=postgres_admin_url)
    assert [r["history_rows"] for r in results] == [200, 400]
    assert all(r["buckets_in_reply"] > 0 and r["median_ms"] > 0 for r in results)
    assert all(r["timeline_model_hours_with_attempts"] > 0 for r in results)
    assert all(r["timeline_prompts"] > 0 for r in results)
    assert all(r["timeline_median_ms"] > 0 for r in results)
    assert json.loads(out.read_text())["results"] == results
    assert "median ms" in capsys.readouterr().out
