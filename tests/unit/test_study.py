"""The real-model study (analysis/study/): its claims and presets as data, its jobs before anything runs, the
exporter's file shape, the mini columns, the per-class diagnosis, and the document written from a fixture
of exported runs whose numbers are known (tests/fixtures/study/, written by make_fixture.py). The fixture
restored into a store: tests/integration/test_study_restore.py; the study's commands run:
tests/process/test_study_launch.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.nsr_diagnostics import gradient_weight, word_problem_classes
from analysis.runs import RunRecord
from analysis.study import claims, document, export, jobs, measures, orchestrate
from analysis.study.cells import Study, task_of
from analysis.study.claim_measures import measure_named
from analysis.study.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from analysis.study.mini_columns import read_mini_columns, split_row
from analysis.study.smollm2 import CLAIMS, FULL_SEEDS, PARTS, PRESETS, STUDY
from analysis.study.spec import FULL
from analysis.tables import TableOptions
from prerl.eval.stats import Interval

ROOT = Path(__file__).resolve().parents[2]

FIXTURE = ROOT / "tests" / "fixtures" / "study"


def test_claims_are_the_mini_studys_with_the_same_ids():
    assert [c.id for c in CLAIMS] == [c.id for c in claims.CLAIMS]
    mini = {c.id: c for c in claims.CLAIMS}
    for claim in CLAIMS:  # a claim is measured or says why not, and keeps the paper's side and number
        assert claim.measured != bool(claim.untestable), claim.id
        assert (claim.text, claim.paper, claim.direction, claim.reference) == (
            mini[claim.id].text,
            mini[claim.id].paper,
            mini[claim.id].direction,
            mini[claim.id].reference,
        )
    reworded = {c.id for c in CLAIMS if c != mini[c.id]}
    assert "7.6-transitions-after-warmup" in reworded and "7.1-dsrl-beats-grpo" not in reworded


def test_a_gguf_models_runs_are_its_own_task():
    """MLflow logs a null model.path as "None": the real model's runs are named by their GGUF model."""
    real = {"model.path": "None", "model.mini": "None", "model.gguf.model": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert task_of(RunRecord("r", real)) == "SmolLM2-135M-Instruct"
    assert task_of(RunRecord("r", {"model.path": "None", "model.mini.name": "mini"})) == "mini"
    assert task_of(RunRecord("r", {"model.path": "/m/final_policy", "model.gguf": "None"})) == "/m/final_policy"


def behaviour_run(seed: int, warmup: str, paper: list[float], broad: list[float]) -> RunRecord:
    history = {
        "train/behaviour/paper_transitions": dict(enumerate(paper, 1)),
        "train/behaviour/transitions": dict(enumerate(broad, 1)),
    }
    params = {
        "warmup_steps": warmup,
        "total_steps": "4",
        "objective.name": "nsr_prerl",
        "algorithm.name": "grpo",
        "seed": str(seed),
    }
    return RunRecord(f"r{seed}{warmup}", params, {}, history)


def test_transition_claims_count_the_papers_markers_not_the_broad_list():
    """DSRL's paper markers rise 0.3 by update S+1 = 3 while the broad list stays flat: the real model's
    claim sees +0.3, the mini study's (broad list) sees 0; against GRPO's +0.1 the difference is +0.2."""
    runs = [behaviour_run(s, "2", [0.1, 0.2, 0.4, 0.4], [0.5] * 4) for s in (0, 1)]
    runs += [behaviour_run(s, "0", [0.1, 0.1, 0.2, 0.2], [0.5] * 4) for s in (0, 1)]
    study = Study(runs, 2, 4, TableOptions(n_boot=100))
    real = {c.id: measure_named(c.measure) for c in CLAIMS if c.measured}
    mini = {c.id: measure_named(c.measure) for c in claims.CLAIMS if c.measured}
    got = real["7.6-transitions-after-warmup"](study, "?")
    assert got.mean == pytest.approx(0.3) and got.lo == pytest.approx(0.3)
    assert mini["7.6-transitions-after-warmup"](study, "?").mean == pytest.approx(0.0)
    assert real["7.6-grpo-elicits-less"](study, "?").mean == pytest.approx(0.2)


def test_seed_counts_live_in_the_presets_and_the_full_study_meets_the_budget():
    sweep_parts = {p.key for p in PARTS if p.sweep}
    for preset in PRESETS.values():
        assert set(preset.seeds) == sweep_parts, preset.name
    # the fallback when 5 seeds of everything do not fit: 5 of (a) and (c), 3 of the rest
    assert FULL_SEEDS["a"] >= 5 and FULL_SEEDS["c"] >= 5 and min(FULL_SEEDS.values()) >= 3
    assert not PRESETS[FULL].preview and PRESETS["quick"].preview and "NOT a result" in PRESETS["quick"].label
    for preset in PRESETS.values():  # the diagnosis trains for its own --steps: an override would replace them
        assert not any(o.startswith(("total_steps=", "warmup_steps=")) for o in preset.diagnostics_overrides)


def test_sweep_files_are_the_parts():
    files = sorted(p.stem for p in (ROOT / "sweeps" / STUDY.sweep_dir).glob("*.yaml"))
    assert files == sorted(p.sweep for p in PARTS if p.sweep)


@pytest.mark.parametrize("preset", [FULL, "quick"])
def test_jobs_share_cells_and_the_run_count_follows_the_seeds(preset):
    """(a) GRPO and DSRL; (b) adds NSR-RL (DSRL shared); (c) three objectives alone; (d) adds two warm-up
    lengths (S = 0 and DSRL's S shared): the distinct runs are 2a + b + 3c + 2d."""
    seeds = PRESETS[preset].seeds
    all_jobs = jobs.study_jobs(STUDY, PRESETS[preset])
    runs = jobs.distinct(all_jobs)
    assert len(runs) == 2 * seeds["a"] + seeds["b"] + 3 * seeds["c"] + 2 * seeds["d"]
    assert len(all_jobs) - len(runs) == seeds["b"] + 2 * seeds["d"]  # DSRL in (b); GRPO and DSRL in (d)
    for job in runs:
        cfg = jobs.compose_config(list(job.overrides))
        assert cfg.tracking.tags.sweep == STUDY.sweep_dir and cfg.tracking.experiment == STUDY.experiment_of(preset)
        assert cfg.model.gguf.model == "HuggingFaceTB/SmolLM2-135M-Instruct" and cfg.data.name == "word_problems"
        assert 0 <= cfg.warmup_steps <= cfg.total_steps


def test_expansion_is_hydras_basic_sweeper():
    """A command-line list replaces the sweep file's list; a single value replaces it for every job."""
    base = ["+sweep/smollm2_study=d_warmup_length", "seed=0,1"]
    assert len(jobs.expand(base)) == 4 * 2  # the file's four warm-up lengths x two seeds
    replaced = {frozenset(j) for j in jobs.expand([*base, "warmup_steps=0,5"])}
    assert replaced == {frozenset({base[0], f"warmup_steps={w}", f"seed={seed}"}) for w in (0, 5) for seed in (0, 1)}
    assert len(jobs.expand([*base[:1], "warmup_steps=7", "seed=3"])) == 1


def test_an_exported_file_reads_back_as_the_run_it_came_from():
    per_problem = {"per_problem/test_step00004.json": {"set": "test", "K": 2, "id": ["a"], "correct": [1]}}
    doc = export.run_document(
        {"run_id": "abc", "run_name": "dsrl nsr_prerl(20)→grpo seed=0", "start_time": 1000, "end_time": 61000},
        {"seed": "0", "warmup_steps": "20"},
        {"config_hash": "0123456789abcdef", "repro.cpu": "x", "mlflow.source.git.commit": "c0ffee"},
        {"eval/test/avg_at_2": {0: 0.25, 4: 0.5}},
        per_problem,
        {"seed": 0},
    )
    text = json.dumps(doc)
    assert set(doc) >= {"format", "config", "config_hash", "params", "tags", "metrics", "per_problem"}
    assert doc["config_hash"] == "0123456789abcdef" and doc["tags"]["mlflow.source.git.commit"] == "c0ffee"
    rec = export.record(json.loads(text))  # through JSON, as a committed file is read
    assert rec.history == {"eval/test/avg_at_2": {0: 0.25, 4: 0.5}} and rec.seed == "0"
    assert rec.artifact("per_problem/test_step00004.json")["correct"] == [1]
    assert rec.artifact("per_problem/ood_step00004.json") is None
    assert export.duration_s(doc) == 60.0
    assert (
        export.file_name(doc["run_name"], doc["config_hash"]) == "dsrl_nsr_prerl_20_grpo_seed=0-0123456789abcdef.json"
    )


def test_a_file_of_another_format_is_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(SystemExit, match="not an exported run"):
        export.load_documents(tmp_path)


def test_mini_columns_parse_the_claims_table(tmp_path):
    page = tmp_path / "m.md"
    page.write_text(
        "# x\n\n## Every claim\n\n"
        "| id | claim | measured here | a: result [95%] | b: result [95%] | a: verdict | b: verdict | inside? |\n"
        "|---|---|---|---|---|---|---|---|\n"
        "| c1 | P(y\\|x) rises | q | +1.00 [+0.50, +1.50] points | -0.10 [-1.00, +0.80] points | **reproduced** | "
        "inconclusive at this power | n/a |\n"
        "| c2 | untestable | - | - | - | not testable here: no such set | not testable here | - |\n\nafter\n"
    )
    tasks, rows = read_mini_columns(page)
    assert tasks == ["a", "b"]
    assert rows["c1"]["a"].result == "+1.00 [+0.50, +1.50] points" and rows["c1"]["a"].verdict == REPRODUCED
    assert rows["c1"]["b"].verdict == INCONCLUSIVE and rows["c2"]["a"].verdict == "not testable here"
    assert split_row("| a | b\\|c |") == ["a", "b|c"]


def test_the_committed_mini_study_has_every_claim_for_both_tasks():
    tasks, rows = read_mini_columns(ROOT / "docs" / "mini-study.md")
    assert tasks == ["mini", "mini_styles"]
    allowed = {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, "not testable here", "not tested in this study"}
    for claim in CLAIMS:
        assert claim.id in rows and {c.verdict for c in rows[claim.id].values()} <= allowed, claim.id


class CharTokenizer:
    """One token per character (id = code point), or per listed piece; 0 is the end of a response."""

    eos_token_id = 0

    def __init__(self, pieces=()):
        self.pieces = list(pieces)

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            piece = next((p for p in self.pieces if text.startswith(p, i)), text[i])
            out.append(1000 + self.pieces.index(piece) if piece in self.pieces else ord(piece))
            i += len(piece)
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join("" if t == 0 else self.pieces[t - 1000] if t >= 1000 else chr(t) for t in ids)


def test_word_problem_tokens_are_copied_computed_word_or_eos():
    tok = CharTokenizer()
    prompt = tok.encode("Sam has 7 apples. He buys 5 more. How many?")
    response = tok.encode("7 + 5 = 12, so 12.") + [0]
    classes = word_problem_classes(response, prompt, tok)
    text = tok.decode(response)
    by_char = dict(zip(range(len(text)), classes))
    assert by_char[0] == "copied" and by_char[4] == "copied"  # "7", "5": numbers of the prompt
    assert [by_char[8], by_char[9]] == ["computed", "computed"]  # "12", one digit per token
    assert by_char[1] == by_char[6] == "word" and classes[-1] == "eos"
    # multi-character tokens: a token holding any digit of a number gets its class; "05" is the prompt's 5
    tok = CharTokenizer(pieces=["= 1", "2,"])
    response = tok.encode("7 = 12, 05") + [0]  # 7 | ' ' | '= 1' | '2,' | ' ' | 0 | 5 | eos
    assert word_problem_classes(response, prompt, tok) == [
        "copied",
        "word",
        "computed",
        "computed",
        "word",
        "copied",
        "copied",
        "eos",
    ]


def test_gradient_weight_is_share_times_one_minus_p_normalised():
    table = {
        "copied": {"share": 0.2, "one_minus_p_post": 0.1, "one_minus_p_pre": 0.8},
        "word": {"share": 0.8, "one_minus_p_post": 0.1, "one_minus_p_pre": 0.1},
    }
    pre = gradient_weight(table, "pre")  # 0.16 and 0.08 of 0.24
    assert pre["copied"] == pytest.approx(2 / 3) and pre["word"] == pytest.approx(1 / 3)
    assert gradient_weight(table, "post")["copied"] == pytest.approx(0.2)
    assert measures.copied_weight(table) == pytest.approx(2 / 3)
    assert measures.copied_weight({"operand": table["copied"], "format": table["word"]}) == pytest.approx(2 / 3)


def test_collapse_kind_and_changed_verdicts():
    assert measures.collapse_kind(Interval(5, 1, 9), 20.0) == "helps"
    assert measures.collapse_kind(Interval(-15, -20, -10), 20.0) == "collapses"  # loses more than half of 20
    assert measures.collapse_kind(Interval(-5, -8, -2), 20.0) == "degrades"
    assert measures.collapse_kind(Interval(-1, -3, 2), 20.0) == "neither"
    assert measures.collapse_kind(None, None) == "unknown"
    from analysis.study.mini_columns import MiniCell

    mini = {"mini": MiniCell("-", REPRODUCED), "mini_styles": MiniCell("-", "not testable here")}
    assert measures.changed(NOT_REPRODUCED, mini) == ["mini"] and measures.changed(REPRODUCED, mini) == []
    assert measures.changed("no runs", mini) == []


def test_gap_by_position_and_entropy():
    tokens = {
        "position": np.array([0, 1, 8, 9, 20, 70]),
        "gap": np.array([1.0, -1.0, 0.5, 0.5, 0.0, 0.2]),
        "entropy": np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.1]),
    }
    bins = measures.gap_by_position(tokens)
    assert [(b.label, b.tokens, b.abs_gap) for b in bins] == [
        ("0–7", 2, 1.0),
        ("8–15", 2, 0.5),
        ("16–31", 1, 0.0),
        ("64–127", 1, pytest.approx(0.2)),
    ]
    quartiles = measures.gap_by_entropy(tokens, quantiles=2)
    assert [b.tokens for b in quartiles] == [3, 3] and quartiles[1].abs_gap == pytest.approx(5 / 6)


def load_fixture_writer():
    spec = importlib.util.spec_from_file_location("make_fixture", FIXTURE / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fixture_is_what_make_fixture_writes(tmp_path):
    load_fixture_writer().write(tmp_path / "smollm2")
    committed = sorted(p.relative_to(FIXTURE / "smollm2") for p in (FIXTURE / "smollm2").rglob("*") if p.is_file())
    written = sorted(p.relative_to(tmp_path / "smollm2") for p in (tmp_path / "smollm2").rglob("*") if p.is_file())
    assert committed == written
    for rel in committed:
        if rel.suffix == ".npz":  # a zip carries its write time: compare the arrays
            a, b = np.load(FIXTURE / "smollm2" / rel), np.load(tmp_path / "smollm2" / rel)
            assert all(np.array_equal(a[k], b[k]) for k in a.files)
        else:
            assert (FIXTURE / "smollm2" / rel).read_text() == (tmp_path / "smollm2" / rel).read_text(), rel


@pytest.fixture(scope="module")
def fixture_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("doc") / "smollm2-study.md"
    document.write(STUDY, FULL, FIXTURE / "smollm2", out, n_boot=200)
    return out.read_text(), out


def claim_row(text: str, claim_id: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {claim_id} |")]
    assert rows, claim_id
    return rows[0]


def test_document_verdicts_from_the_fixture(fixture_doc):
    text, _ = fixture_doc
    for claim in CLAIMS:
        claim_row(text, claim.id)
    # DSRL 75% vs GRPO 50% on every problem: +25 points exactly, reproduced; the mini tasks' verdicts beside it
    row = claim_row(text, "7.1-dsrl-beats-grpo")
    assert "+25.00 [+25.00, +25.00] points | **reproduced** |" in row
    assert "-1.91 [-5.86, +2.38] points; inconclusive at this power" in row  # docs/mini-study.md's mini cell
    assert row.rstrip(" |").endswith("mini, mini_styles")  # reproduced here, not on either mini task
    assert f"**{REPRODUCED}**" in claim_row(text, "7.2-nsr-rl-warmup-below-grpo")
    assert f"**{NOT_REPRODUCED}**" in claim_row(text, "7.5-nsr-prerl-effective")  # 0% against the base's 25%
    assert INCONCLUSIVE in claim_row(text, "7.2-long-warmup-hurts")
    # the paper's markers: DSRL +0.2 per response from update 1 to S+1
    assert "+0.20 [+0.20, +0.20] per response" in claim_row(text, "7.6-transitions-after-warmup")
    assert "+1.25 [" in claim_row(text, "2.3-inner-positive")
    assert "not testable here: one real model" in claim_row(text, "scale-qwen3-8b")


def test_document_answers_the_two_questions_from_the_numbers(fixture_doc):
    text, _ = fixture_doc
    q1 = next(line for line in text.splitlines() if line.startswith("**Does NSR-PreRL alone"))
    assert "It collapses" in q1 and "from 25.0% to 0.0%" in q1
    # copied numbers: 0.2 x 0.8 of 0.2 x 0.8 + 0.1 x 0.4 + 0.65 x 0.1 = 0.16 / 0.265 of the pre-space weight
    assert "SmolLM2-135M-Instruct 60%" in q1 and "mini 61%" in q1
    q2 = next(line for line in text.splitlines() if line.startswith("**Does DSRL beat GRPO"))
    assert q2.count("+25.00 [+25.00, +25.00]") == 3 and "Yes" in q2  # test, OOD and MATH-500 Level 1


def test_document_sections_runs_and_figures(fixture_doc):
    text, out = fixture_doc
    for part in "abcdefg":
        assert f"## ({part}) " in text
    assert "#### (a) Pass@k on `math500_level1`, every k" in text
    assert "Nothing here reads an MLflow store" in text and "A preview" not in text
    assert "| 1 | 2026-01-01 00:00 | full | 16 | 16 | 0 | 0 |" in text  # the launch record
    assert "`7.1-dsrl-beats-grpo`" in text.split("## Where the real model")[1].split("## (a)")[0]
    for png in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (out.parent / png).exists(), png
    assert "| 0–7 | 32 | 1.000 |" in text  # |gap| 1 on the first 8 positions of 4 responses


def test_document_refuses_a_folder_without_runs(tmp_path):
    with pytest.raises(SystemExit, match="no exported runs"):
        document.write(STUDY, "quick", tmp_path, tmp_path / "x.md")


def test_multiruns_go_seed_by_seed_across_the_parts():
    """Seed 0 of every part before seed 1 of any: a study stopped part-way has every cell at about the same
    number of seeds."""
    preset = STUDY.preset(FULL)
    order = [(seed, part.key) for seed, part in orchestrate.seed_major(STUDY, preset)]
    assert order[:4] == [(0, "a"), (0, "b"), (0, "c"), (0, "d")]
    assert len(order) == sum(preset.seeds.values())
    for key, n in preset.seeds.items():
        assert [s for s, k in order if k == key] == list(range(n))
    assert [s for s, _ in order] == sorted(s for s, _ in order)
    one = jobs.part_arguments(STUDY, preset, STUDY.sweep_parts()[0], seed=3)
    assert "seed=3" in one and not any(a.startswith("seed=0,") for a in one)
