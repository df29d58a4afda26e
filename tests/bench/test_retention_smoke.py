"""The retention benchmark (the hourly history purge) runs end to end at a tiny size, deletes
exactly the oldest hour of both tables, and writes its results."""

from __future__ import annotations

import json

from bench.retention import run


async def test_benchmark_runs_at_a_tiny_size(postgres_admin_url, tmp_path, capsys):
    out = tmp_path / "retention.json"
    result = await run(600, 3, out=out, server_url=postgres_admin_url, cycles=2)
    purge = result["purge"]
    assert (purge["deleted_prompts"], purge["deleted_attempts"]) == (600, 600)
    assert purge["delete_seconds"]["prompt_history"] > 0
    assert purge["delete_seconds"]["model_attempts"] > 0
    assert purge["rows_per_second"] > 0
    sizes = result["sizes"]
    assert {t: s["rows"] for t, s in sizes["before"].items()} == {
        "prompt_history": 1800,
        "model_attempts": 1800,
    }
    assert {t: s["rows"] for t, s in sizes["after_vacuum"].items()} == {
        "prompt_history": 1200,
        "model_attempts": 1200,
    }
    assert {t: s["rows"] for t, s in sizes["after_next_hour"].items()} == {
        "prompt_history": 1800,
        "model_attempts": 1800,
    }
    assert result["server"]["plan_prompt_history"][0].startswith("Delete on prompt_history")
    assert [c["cycle"] for c in result["cycles"]] == [1, 2]
    assert all(c["total_bytes"]["prompt_history"] > 0 for c in result["cycles"])
    assert [p["prompts_per_second"] for p in result["projection"]] == [1_000, 10_000]
    assert json.loads(out.read_text())["result"] == result
    assert "purge of the oldest hour" in capsys.readouterr().out
