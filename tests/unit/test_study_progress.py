"""The real-model study's progress table on docs/studies.md, rendered from the exported run files."""

import json
import shutil
from pathlib import Path

import pytest

from analysis.study import export, measures, progress

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "study" / "smollm2"


def document(warmup: int, seed: int, test: list, ood: list) -> dict:
    params = {"warmup_steps": str(warmup), "total_steps": "60", "objective.name": "nsr_prerl"}
    params |= {"algorithm.name": "grpo", "seed": str(seed)}
    return {"params": params, "metrics": {"eval/test/avg_at_2": test, "eval/ood/avg_at_2": ood}}


def test_each_finished_run_is_a_row_of_its_accuracy_at_every_evaluation():
    runs = [
        document(20, 1, [[0, 0.25], [60, 0.5]], [[0, 0.125], [60, 0.0625]]),
        document(0, 0, [[0, 0.25], [20, 0.5703125], [60, 0.921875]], [[0, 0.125], [20, 0.1], [60, 0.046875]]),
    ]
    text = progress.progress_text(runs, planned=34)
    assert text.startswith("2 of the 34 planned runs have finished. What each logged, test / OOD Avg@2")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows == [
        "| run | seed | update 0 | update 20 | update 60 |",
        "| GRPO | 0 | 25.0% / 12.5% | 57.0% / 10.0% | 92.2% / 4.7% |",
        "| NSR-PreRL(20)→GRPO | 1 | 25.0% / 12.5% | - | 50.0% / 6.2% |",
    ]
    assert progress.progress_text([], planned=34) == "No run has finished yet.\n"


def test_only_the_block_is_rewritten_and_a_page_without_it_is_refused(tmp_path):
    page = "intro\n<!-- study-progress: s -->\nold\n<!-- study-progress: s end -->\nrest\n"
    new = progress.refreshed(page, "s", tmp_path / "none", planned=3)
    assert new == "intro\n<!-- study-progress: s -->\nNo run has finished yet.\n<!-- study-progress: s end -->\nrest\n"
    with pytest.raises(SystemExit, match="no <!-- study-progress: other --> block"):
        progress.refreshed(page, "other", tmp_path, planned=3)


def test_the_base_models_alignment_joins_the_block_once_part_f_has_run(tmp_path):
    """Part (f) needs no training run: its table (intervals over responses) shows as soon as its files are
    there, and not before."""
    documents = export.load_documents(FIXTURE / "runs")
    text = progress.alignment_text(documents, FIXTURE)
    assert text.startswith("\nPart (f), the base model's gradient alignment, needs no training run")
    responses = json.loads((FIXTURE / "alignment" / "alignment.json").read_text())["responses"]
    mean_cosine = sum(r["cosine"] for r in responses) / len(responses)
    (row,) = [line for line in text.splitlines() if line.startswith("| mean cosine |")]
    assert row.split(" | ")[1].startswith(f"{mean_cosine:+.3f} [")
    shutil.copytree(FIXTURE / "runs", tmp_path / "runs")
    assert progress.alignment_text(documents, tmp_path) == ""  # no alignment/ yet
    page = progress.refreshed("<!-- study-progress: s -->\n<!-- study-progress: s end -->", "s", tmp_path / "runs", 3)
    assert f"{len(documents)} of the 3 planned runs" in page and "Part (f)" not in page


def test_the_nsr_prerl_diagnosis_joins_the_block_once_part_g_has_run(tmp_path):
    """Part (g) is one training run from the base model: its per-class table shows once its file is there."""
    documents = export.load_documents(FIXTURE / "runs")
    text = progress.diagnosis_text(documents, FIXTURE)
    assert text.startswith("\nPart (g), the NSR-PreRL diagnosis")
    classes = json.loads((FIXTURE / "diagnostics" / "nsr_prerl.json").read_text())["base_classes"]
    (row,) = [line for line in text.splitlines() if line.startswith("| SmolLM2-135M-Instruct | copied |")]
    assert row.rstrip(" |").endswith(f"/ {100 * measures.copied_weight(classes):.0f}%")
    assert progress.diagnosis_text(documents, tmp_path) == ""
