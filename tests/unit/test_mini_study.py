"""The mini study (analysis/study/mini.py) before anything runs: the verdict rule on hand-made intervals,
the claims as data that the measurements and the document template cover, and the study's jobs (they
compose, share cells, keep the config hashes of the Makefile-driven study, so existing stores are
recognised). The document from a store and the launch: tests/integration/test_mini_study_store.py."""

import json
import re
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from analysis.study import claim_measures, jobs, smollm2, template
from analysis.study.__main__ import split_overrides
from analysis.study.cells import cell_label
from analysis.study.claims import CLAIMS, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, verdict
from analysis.study.mini import PARTS, PRESETS, STUDY
from analysis.study.quantities import seed_difference, seed_mean
from analysis.study.spec import FULL
from analysis.tables import TableOptions
from prerl.config.schema import register_configs
from prerl.eval.stats import Interval

ROOT = Path(__file__).resolve().parents[2]

SWEEP_FILES = sorted(p.stem for p in (ROOT / "sweeps" / "mini_study").glob("*.yaml"))


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
