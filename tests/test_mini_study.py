"""The mini study (analysis/study/mini.py): the verdict rule on hand-made intervals, the claims as data
that the measurements and the document template cover, the document written from a fixture MLflow store
whose values are known, the study's jobs (they compose, share cells, keep the config hashes of the
Makefile-driven study, so existing stores are recognised) and the launch sequence, run from Python."""

import io
import itertools
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.study import claim_measures, jobs, mini_document, orchestrate, smollm2, template
from analysis.study.__main__ import split_overrides
from analysis.study.cells import cell_label
from analysis.study.claims import CLAIMS, INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, Claim, verdict
from analysis.study.mini import PARTS, PRESETS, STUDY
from analysis.study.quantities import BEHAVIOUR_KEYS, seed_difference, seed_mean
from analysis.study.spec import FULL
from analysis.tables import TableOptions
from prerl.config.schema import register_configs
from prerl.eval.stats import Interval

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted(p.stem for p in (ROOT / "sweeps" / "mini_study").glob("*.yaml"))


# --- the verdict rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "interval, direction, reference, want",
    [
        (Interval(1.0, 0.5, 2.0), +1, 0.0, REPRODUCED),  # wholly above 0, the paper says above
        (Interval(1.0, 0.5, 2.0), -1, 0.0, NOT_REPRODUCED),  # wholly above 0, the paper says below
        (Interval(-1.0, -2.0, -0.1), -1, 0.0, REPRODUCED),
        (Interval(-1.0, -2.0, -0.1), +1, 0.0, NOT_REPRODUCED),
        (Interval(0.2, -0.5, 1.0), +1, 0.0, INCONCLUSIVE),  # holds 0
        (Interval(0.0, 0.0, 0.0), +1, 0.0, INCONCLUSIVE),  # exactly 0 is not above it
        (Interval(0.01, 0.0, 0.03), -1, 0.05, REPRODUCED),  # a share below a stated 5% reference
        (Interval(0.08, 0.06, 0.1), -1, 0.05, NOT_REPRODUCED),
        (None, +1, 0.0, "no runs"),
    ],
)
def test_verdict_rule(interval, direction, reference, want):
    assert verdict(interval, direction, reference) == want


def test_one_seed_gives_no_verdict():
    """A training quantity of one seed (or a difference with one seed on a side) has no spread: the
    verdict stays inconclusive however far from 0 its value is, while two seeds get an interval."""
    opts = TableOptions(n_boot=200)
    assert verdict(seed_mean([4.9], opts), +1) == INCONCLUSIVE
    assert verdict(seed_difference([-4.0], [0.0, 1.0], opts), -1) == INCONCLUSIVE
    assert seed_difference([-4.0], [0.0, 1.0], opts).mean == -4.5
    assert verdict(seed_mean([4.9, 5.1], opts), +1) == REPRODUCED


def test_cells_are_named_by_config():
    base = {
        "total_steps": "60",
        "algorithm.name": "grpo",
        "objective.name": "nsr_prerl",
        "objective.advantage": "group_mean",
    }
    assert cell_label({**base, "warmup_steps": "0"}) == "GRPO"
    assert cell_label({**base, "warmup_steps": "20"}) == "NSR-PreRL(20)→GRPO"
    assert cell_label({**base, "warmup_steps": "20", "objective.advantage": "unit"}) == "NSR-PreRL-unit(20)→GRPO"
    # MLflow holds the enum's str(): what a real run's params say
    assert (
        cell_label({**base, "warmup_steps": "20", "objective.advantage": "ObjectiveAdvantage.unit"})
        == "NSR-PreRL-unit(20)→GRPO"
    )
    assert cell_label({**base, "warmup_steps": "20", "objective.name": "nsr_rl"}) == "NSR-RL(20)→GRPO"
    assert cell_label({**base, "warmup_steps": "60", "objective.name": "psr_prerl"}) == "PSR-PreRL alone"


def test_claims_cover_every_section_of_the_spec_once():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    sections = {c.id.split("-")[0] for c in CLAIMS}
    assert {"7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2.3"} <= sections
    for c in CLAIMS:  # a claim is measured, or says why it cannot be
        assert c.measured != bool(c.untestable), c.id


# --- the claims as data, covered by the measurements and the template ---------------------------


def test_claims_are_plain_data_whose_measurements_resolve():
    """A claim holds only text and numbers; its measurement is a name that resolves to a registered
    function, and every registered function measures some claim of a study (none is dead)."""
    used = set()
    for claim in (*CLAIMS, *smollm2.CLAIMS):
        for f in fields(Claim):
            assert isinstance(getattr(claim, f.name), (str, int, float, type(None))), (claim.id, f.name)
        if claim.measured:
            assert callable(claim_measures.measure_named(claim.measure)), claim.id
            used.add(claim.measure)
    assert used == set(claim_measures.MEASURES)
    assert all(name.islower() for name in claim_measures.MEASURES)
    with pytest.raises(KeyError, match="no claim measurement 'DSRL'"):
        claim_measures.measure_named("DSRL")
    with pytest.raises(ValueError, match=r"study mini: no claim measurement named \['DSRL'\]"):  # when a study is built
        replace(STUDY, claims=(replace(CLAIMS[0], measure="DSRL"),))


def test_the_template_and_the_renderer_fill_each_other(tmp_path, monkeypatch):
    """Every placeholder gets a value and every value has a placeholder; an empty block leaves no gap."""
    text = (template.TEMPLATES / STUDY.template).read_text()
    assert {"claims_table", "parts", "behaviours", "dynamics", "alignment", "figures"} <= template.placeholders(text)
    monkeypatch.setattr(template, "TEMPLATES", tmp_path)
    (tmp_path / "t.md").write_text("# ${title}\n\n${blocks}\n\n## next $$5\n")
    assert template.fill("t.md", {"title": "A", "blocks": "x\n\ny"}) == "# A\n\nx\n\ny\n\n## next $5\n"
    assert template.fill("t.md", {"title": "A", "blocks": ""}) == "# A\n\n## next $5\n"
    with pytest.raises(KeyError, match=r"placeholders without a value \['blocks'\]"):
        template.fill("t.md", {"title": "A"})
    with pytest.raises(KeyError, match=r"values without a placeholder \['extra'\]"):
        template.fill("t.md", {"title": "A", "blocks": "", "extra": "?"})


# --- the document from a fixture store ----------------------------------------------------------

T, S, K, N = 4, 2, 4, 8  # updates, DSRL's warm-up, samples per problem, problems
IDS = [f"p{i}" for i in range(N)]
# Correct counts out of K per problem at the final update; every run starts at 1/4 (the base).
# Constant per-problem differences make the bootstrap intervals degenerate, so verdicts are certain;
# NSR-PreRL(3) alternates around DSRL's 3, so their difference holds 0.
G = "ObjectiveAdvantage.group_mean"
FINAL = {
    ("0", "nsr_prerl", G): [2] * N,  # GRPO: 50%
    ("2", "nsr_prerl", G): [3] * N,  # DSRL: 75%
    ("1", "nsr_prerl", G): [2] * N,
    ("3", "nsr_prerl", G): [4, 2] * (N // 2),
    ("2", "nsr_rl", G): [1] * N,  # NSR-RL warm-up: 25%, below GRPO
    ("2", "nsr_prerl", "ObjectiveAdvantage.unit"): [2] * N,  # as MLflow logs the enum
    ("4", "psr_prerl", G): [0] * N,  # PSR-PreRL alone degrades
    ("4", "nsr_prerl", G): [0] * N,  # NSR-PreRL alone degrades too (not the paper's)
    ("4", "prerl", G): [2] * N,
}


def log_run(client, exp, warmup, objective, advantage, seed, start):
    params = {
        "total_steps": str(T),
        "warmup_steps": warmup,
        "objective.name": objective,
        "objective.advantage": advantage,
        "algorithm.name": "grpo",
        "seed": str(seed),
        "model.mini.name": "mini",
        "prompts_per_step": "4",
        "eval.every_steps": "2",
        "tracking.tags.sweep": "mini_study",
    }
    run = client.create_run(exp, start_time=start, tags={"sweep": "mini_study"})
    final = FINAL[(warmup, objective, advantage)]
    counts = {0: [1] * N, 2: [1] * N, T: final}
    dsrl = (warmup, objective, advantage) == ("2", "nsr_prerl", G)
    metrics = [Metric("eval/test/avg_at_4", sum(c) / (K * N), 0, s) for s, c in counts.items()]
    metrics += [Metric("eval/test/pass_at_1", sum(c) / (K * N), 0, s) for s, c in counts.items()]
    for step in range(1, T + 1):
        metrics += [
            Metric(f"train/behaviour/{c}", 0.1 + (0.2 if dsrl and step > 1 else 0.0), 0, step) for c in BEHAVIOUR_KEYS
        ]
        metrics += [
            Metric("train/prompts/fully_solved", float(step if dsrl else 1), 0, step),
            Metric("train/prompts/fully_unsolved", 1.0, 0, step),
            Metric("train/prompts/solved_at_least_once", 3.0, 0, step),
            Metric("train/response_length", 50.0 + step, 0, step),
            Metric("train/accuracy", 0.5, 0, step),
        ]
    metrics.append(Metric("cost/train_seconds_total", 10.0, 0, T))
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()], metrics=metrics)
    for step, c in counts.items():
        client.log_dict(
            run.info.run_id,
            {"set": "test", "K": K, "id": IDS, "correct": c, "mean_length": None},
            f"per_problem/test_step{step:05d}.json",
        )
    client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 60_000)  # 60 s each


def log_alignment(client, exp, tmp_path, start):
    run = client.create_run(exp, start_time=start, run_name="alignment mini")
    client.log_param(run.info.run_id, "model", "mini")
    folder = tmp_path / "alignment"
    folder.mkdir()
    responses = [{"inner": v, "cosine": 0.5, "correct": 1.0, "length": 3} for v in (1.0, 2.0, 3.0, -1.0)]
    (folder / "alignment.json").write_text(
        json.dumps({"summary": {"inner_min": -1.0, "responses": 4.0}, "responses": responses})
    )
    # 4 responses of 10 tokens: |gap| 1 on the first 8 positions, 0 after; entropy rises with position
    position = np.tile(np.arange(10), 4)
    gap = np.where(position < 8, 1.0, 0.0)
    buffer = io.BytesIO()
    np.savez(buffer, position=position, gap=gap, entropy=-position.astype(float), logp_pre=gap, logp_post=gap)
    (folder / "tokens.npz").write_bytes(buffer.getvalue())
    client.log_artifacts(run.info.run_id, str(folder), "alignment")
    client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 30_000)


@pytest.fixture
def document(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("study")
    start = 1_700_000_000_000
    for i, ((warmup, objective, advantage), seed) in enumerate(itertools.product(FINAL, (0, 1))):
        log_run(client, exp, warmup, objective, advantage, seed, start + i * 60_000)
    log_alignment(client, exp, tmp_path, start + 100 * 60_000)
    out = mini_document.write(STUDY, FULL, uri, "study", tmp_path / "doc" / "study.md", n_boot=200)
    return out.read_text(), out


def claim_row(text: str, claim_id: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {claim_id} |")]
    assert len(rows) == 1, claim_id
    return rows[0]


def test_document_lists_every_claim_with_its_verdict(document):
    text, out = document
    for claim in CLAIMS:
        row = claim_row(text, claim.id)
        if not claim.measured:
            assert f"{claim.skipped}: {claim.untestable}" in row
            assert claim.skipped in (NOT_TESTABLE, "not tested in this study")
    # DSRL 75% vs GRPO 50% on every problem: +25 points exactly, reproduced
    assert "+25.00 [+25.00, +25.00] points" in claim_row(text, "7.1-dsrl-beats-grpo")
    assert f"**{REPRODUCED}**" in claim_row(text, "7.1-dsrl-beats-grpo")
    assert "| yes |" not in claim_row(text, "7.1-dsrl-beats-grpo")  # the paper's +1.75 is outside
    assert f"**{REPRODUCED}**" in claim_row(text, "7.2-nsr-rl-warmup-below-grpo")  # 25% < 50%
    assert f"**{REPRODUCED}**" in claim_row(text, "7.5-psr-prerl-degrades")
    assert f"**{NOT_REPRODUCED}**" in claim_row(text, "7.5-nsr-prerl-effective")  # 0% < the base's 25%
    assert INCONCLUSIVE in claim_row(text, "7.2-long-warmup-hurts")  # S=3 − DSRL holds 0
    # behaviours: DSRL +0.2 per response from update 1 to S+1, in every run
    assert "+0.20 [+0.20, +0.20] per response" in claim_row(text, "7.6-transitions-after-warmup")
    # fully solved: DSRL logs `step` at each update: first 3 mean 2, updates 1..2 mean 1.5 (window ends at S)
    assert "-0.50 [-0.50, -0.50] prompts" in claim_row(text, "7.6-fully-solved-rise")
    # alignment: inner products 1, 2, 3, −1 (mean 1.25); |gap| 1 on the first 8 tokens, 0 after
    assert "+1.25 [" in claim_row(text, "2.3-inner-positive")
    assert "+1.00 [+1.00, +1.00] nats" in claim_row(text, "2.3-early-tokens-diverge")
    assert "**Headline:** mini:" in text
    # wall time: 18 runs of 60 s and one alignment run of 30 s
    assert "sum to 0.31 h (1,110 s)" in text and "logged training seconds 0.05 h (180 s)" in text
    assert "Seeds per cell, mini: GRPO 2," in text
    assert "Regenerate with `python -m analysis.study doc --study mini --experiment study --out " in text
    assert "${" not in text and "$" not in text  # every placeholder filled
    # per-part tables through analysis/tables.py, figures beside the document
    assert "#### (a) mini: DSRL vs GRPO at equal total updates" in text and "Δ Avg vs GRPO" in text
    assert "#### (a) mini: Pass@k on the test set, every k" in text
    for png in re.findall(r"\]\((study/[^)]+\.png)\)", text):
        assert (out.parent / png).exists()
    assert (out.parent / "study" / "a_mini_pass_at_k.png").exists()


def test_document_refuses_an_empty_experiment(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("empty")
    with pytest.raises(SystemExit, match="run `python -m analysis.study run --study mini` first"):
        mini_document.write(STUDY, FULL, uri, "empty", tmp_path / "x.md")


# --- the jobs and the presets -------------------------------------------------------------------

HASHES = json.loads((ROOT / "tests" / "fixtures" / "mini_study_config_hashes.json").read_text())


@pytest.mark.parametrize("preset", [FULL, "quick", "smoke"])
def test_jobs_keep_the_config_hashes_of_the_makefile_study(preset):
    """Every job's config_hash is the one the Makefile-driven study gave the same job (the fixture was
    computed by it), so the runs of an existing store are recognised as finished and not trained again. A
    change of conf/ that changes what a run computes changes these hashes on purpose; one that should not
    (a new field at its old behaviour) belongs in prerl/tracking/completed.py's ADDED_LATER."""
    all_jobs = jobs.study_jobs(STUDY, PRESETS[preset])
    assert sorted(j.config_hash for j in all_jobs) == HASHES[preset]
    for job in jobs.distinct(all_jobs):
        cfg = jobs.compose_config(list(job.overrides))
        assert cfg.tracking.tags.sweep == "mini_study" and cfg.tracking.experiment == STUDY.experiment_of(preset)


@pytest.mark.parametrize("preset", [FULL, "quick"])
def test_shared_cells_run_once_and_the_makefile_states_the_run_count(preset):
    """The study's run count is the number of distinct config hashes over all parts' jobs (a shared cell
    is skipped by the finished-run check): the cells of parts (a)-(e) x 2 tasks x the seeds."""
    all_jobs = jobs.study_jobs(STUDY, PRESETS[preset])
    seeds = PRESETS[preset].seeds["a"]
    warmups = 3 if preset == FULL else 1  # (b)'s S other than GRPO's 0 and DSRL's: 5, 10 and 40, or 10
    cells = 2 + warmups + 1 + 3 + 1  # (a) GRPO, DSRL; (b); (c) NSR-RL; (d) the three objectives alone; (e) unit
    distinct = len(jobs.distinct(all_jobs))
    assert distinct == cells * 2 * seeds < len(all_jobs)
    stated = re.search(
        rf"make mini-study {'PRESET=' + preset if preset != FULL else ''}\s.*?(\d+) runs",
        (ROOT / "Makefile").read_text(),
    )
    assert stated and int(stated.group(1)) == distinct, "the Makefile states each preset's run count"
    if preset == FULL:
        models = {a for job in all_jobs for a in job.overrides if a.startswith("model=")}
        assert seeds >= 5 and models == {"model=mini", "model=mini_styles"}


def test_parts_share_grpo_and_dsrl():
    """S=0 of the warm-up part is part (a)'s GRPO; part (c)'s and (e)'s DSRL are part (a)'s S=20."""

    def h(part, *more):
        return jobs.job_hash((f"+sweep/mini_study={part}", "seed=0", "model=mini", *more))

    assert h("a_dsrl_vs_grpo", "warmup_steps=0") == h("b_warmup", "warmup_steps=0")
    dsrl = h("a_dsrl_vs_grpo", "warmup_steps=20")
    assert (
        dsrl
        == h("b_warmup", "warmup_steps=20")
        == h("c_warmup_kind", "objective=nsr_prerl")
        == h("e_nsr_weighting", "objective.advantage=group_mean")
    )
    assert dsrl != h("e_nsr_weighting", "objective.advantage=unit") != h("c_warmup_kind", "objective=nsr_rl")
    assert h("d_objectives", "objective=nsr_prerl") != dsrl  # the whole run is not a warm-up


def test_parts_cover_the_study():
    assert [p.sweep for p in PARTS] == SWEEP_FILES and [p.sweep for p in STUDY.sweep_parts()] == SWEEP_FILES
    for preset in PRESETS.values():
        assert set(preset.seeds) == {p.key for p in PARTS}, preset.name
        assert set(preset.part_overrides) <= set(SWEEP_FILES), preset.name
    assert STUDY.doc_path("quick") == ROOT / "outputs" / "mini-study-quick" / "mini-study.md"
    assert STUDY.doc_path(FULL) == ROOT / "docs" / "mini-study.md" and not STUDY.exports


def test_hydra_overrides_go_to_the_launcher():
    given = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=1e-5", "+hydra.job.chdir=false"]
    assert split_overrides(given) == (
        ("optim.lr=1e-5",),
        ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+hydra.job.chdir=false"),
    )
    with pytest.raises(SystemExit, match="key=value"):
        split_overrides(["seed"])


def test_a_launch_runs_the_parts_seed_by_seed_then_the_alignments_then_the_document(tmp_path, monkeypatch, capsys):
    """The smoke preset's launch, its commands recorded instead of run: each part's multirun for seed 0,
    then for seed 1, with the preset's and the part's overrides and the caller's launcher; then the base
    model's alignment logged to the study's experiment in the same store, skipped once it has finished."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    calls, docs = [], []
    monkeypatch.setattr(orchestrate, "call", lambda cmd, more_env=None: calls.append((cmd, more_env)) or 0)
    monkeypatch.setattr(mini_document, "write", lambda study, preset, uri: docs.append((preset, uri)) or "doc")
    preset = PRESETS["smoke"]
    assert orchestrate.run(STUDY, preset, launcher=("hydra/launcher=joblib",), uri=uri) == 0
    trains = [cmd for cmd, _ in calls if cmd[1].endswith("train.py")]
    assert [(c[3], next(a for a in c if a.startswith("seed="))) for c in trains] == [
        (f"+sweep/mini_study={p.sweep}", f"seed={s}") for s in (0, 1) for p in PARTS
    ]
    first = trains[0]
    assert first[4:7] == ["experiment=smoke", "model=micro", "eval.every_steps=2"] and "warmup_steps=0,2" in first
    assert "tracking.experiment=mini-study-smoke" in first and f"tracking.uri={uri}" in first
    assert first[-1] == "hydra/launcher=joblib"
    (align, env), *rest = [(cmd, e) for cmd, e in calls if "analysis.alignment" in cmd]
    assert not rest and align[align.index("--model") + 1] == "micro" and env == {"MLFLOW_TRACKING_URI": uri}
    assert align[align.index("--experiment") + 1] == "mini-study-smoke" and "--mlflow" in align
    assert "--max-new-tokens" in align and docs == [("smoke", uri)]
    out = capsys.readouterr().out
    assert "18 distinct runs" in out and "0 already finished, 18 to run" in out and "exported files" not in out
    # a finished alignment run of the model is not run again
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("mini-study-smoke"), run_name="alignment micro")
    client.log_param(run.info.run_id, "model", "micro")
    client.set_terminated(run.info.run_id, "FINISHED")
    calls.clear()
    assert orchestrate.run_logged_alignments(client, STUDY, preset, uri, None) == 0 and calls == []


def test_the_committed_document_lists_every_claim():
    """docs/mini-study.md (the full study's output) has a row for every claim."""
    text = (ROOT / "docs" / "mini-study.md").read_text()
    for claim in CLAIMS:
        assert f"| {claim.id} |" in text, claim.id


@pytest.mark.parametrize("launcher, target", [("joblib", "JoblibLauncher"), ("submitit_local", "LocalLauncher")])
def test_parts_compose_with_other_launchers(launcher, target):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"hydra/launcher={launcher}", "+sweep/mini_study=b_warmup"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.sweeper.params.warmup_steps == "0,5,10,20,40"
