"""The docs pages' benchmark tables are rendered from the committed results history, and stay in step
with it (benchmarks/results_pages.py)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import common  # noqa: E402
import results_pages  # noqa: E402


def test_every_results_block_matches_the_history():
    """`python benchmarks/results_pages.py --write` after a benchmark run (or a change of a renderer)."""
    stale = [p.name for p in results_pages.PAGES if results_pages.refreshed(p.read_text()) != p.read_text()]
    assert stale == []


def test_every_block_on_the_pages_has_a_renderer():
    names = [m.group("name") for p in results_pages.PAGES for m in results_pages.BLOCK.finditer(p.read_text())]
    assert {"bench", "bench_trl"} <= set(names) and set(names) <= set(results_pages.RENDERERS)


def trl_result(prerl_cpu: float, trl_cpu: float) -> dict:
    side = {"cpu": 1.0, "wall": 1.0, "generation_cpu": 0.5, "rest_cpu": 0.5}
    rounds = [{"mean_response_tokens": 40.0, "peak_memory_mb": 900.0}]
    return {
        "environment": {
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "load_average_1_5_15min": [1.0, 1.0, 1.0],
            "load_average_end": [1.5, 1.0, 1.0],
            "git_head": "abc1234",
            "git_dirty": False,
        },
        "threads": 1,
        "steps": {name: {"rounds": rounds} for name in ("prerl_grpo", "trl_grpo", "prerl_nsr_prerl")},
        "median": {
            "prerl_grpo": side | {"cpu": prerl_cpu},
            "trl_grpo": side | {"cpu": trl_cpu},
            "prerl_nsr_prerl": side,
        },
        "prerl_over_trl": {"cpu": prerl_cpu / trl_cpu, "wall": 1.0, "generation_cpu": 1.0, "rest_cpu": 1.0},
        "nsr_over_grpo": {"cpu": 0.8, "wall": 0.8},
    }


def test_a_block_shows_the_newest_run_of_its_benchmark(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    folder = tmp_path / "bench_trl"
    folder.mkdir()
    page = "before\n<!-- results: bench_trl -->\nold numbers\n<!-- results: bench_trl end -->\nafter\n"
    assert "No run of `make bench-trl`" in results_pages.refreshed(page)
    (folder / "20261201T000000Z_aaa1111.json").write_text(json.dumps(trl_result(3.0, 6.0)))
    (folder / "20261207T000000Z_abc1234.json").write_text(json.dumps(trl_result(2.0, 5.0)))
    shown = results_pages.refreshed(page)
    assert "old numbers" not in shown and shown.startswith("before\n") and shown.endswith("end -->\nafter\n")
    assert "| prerl_grpo | 2.00 |" in shown and "| trl_grpo | 5.00 |" in shown
    assert "prerl GRPO / TRL GRPO: 0.40 CPU" in shown
    assert "at commit abc1234, 20261207T000000Z: Test CPU, 2 cores, 1 torch thread(s)" in shown
