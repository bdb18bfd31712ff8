"""What a study is, as data: its parts (one sweep each), its presets (sizes, seeds per part, the
alignment's and the diagnosis's sizes), its claims and where its evidence and document live.

A study's orchestration (``analysis.study.orchestrate``) and its document (``analysis.study.document``,
``analysis.study.mini_document``) read nothing else, so changing a seed count, a preset's size or a
claim's wording is an edit in the study's own module (``analysis/study/mini.py``,
``analysis/study/smollm2.py``), never in the code that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .cells import GRPO, Study
from .claim_measures import MEASURES
from .claims import Claim

ROOT = Path(__file__).resolve().parents[2]
FULL = "full"


@dataclass(frozen=True)
class Part:
    """One part of a study: a sweep ``sweeps/<study.sweep_dir>/<sweep>.yaml``, or a measurement that reads
    other parts' runs (``sweep`` empty)."""

    key: str
    title: str
    sweep: str = ""
    cells: Optional[Callable[[Study], list[str]]] = None  # the cells its table reports, first the baseline
    baseline: Callable[[Study], str] = lambda study: GRPO  # the row its table's differences are taken against


@dataclass(frozen=True)
class Preset:
    """A size of the study. ``overrides`` go to every training job; ``part_overrides[sweep]`` to that part's
    jobs only (a comma list replaces the sweep's list of that key, as on Hydra's command line); ``seeds``:
    seeds per part key. ``alignment``: the arguments of ``analysis.alignment`` beyond the model and task,
    which come from the composed config (a study that exports its runs), or beyond ``--model``, each of
    ``alignment_models`` in turn, logged to the study's MLflow experiment (a study whose evidence is its
    store); ``diagnostics``: those of ``analysis.nsr_diagnostics`` and ``diagnostics_overrides`` its Hydra
    overrides (it trains the objective itself)."""

    name: str
    label: str  # what the document calls the result
    seeds: dict[str, int]
    overrides: tuple[str, ...] = ()
    part_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    alignment: tuple[str, ...] = ()
    alignment_models: tuple[str, ...] = ()
    diagnostics: tuple[str, ...] = ()
    diagnostics_overrides: tuple[str, ...] = ()
    preview: bool = True  # the document says it is not a result


@dataclass(frozen=True)
class StudySpec:
    name: str
    title: str
    sweep_dir: str  # sweeps/<sweep_dir>/*.yaml, the tag sweep=<sweep_dir> of every run
    experiment: str  # the MLflow experiment of the full study; a preset's is <experiment>-<preset>
    parts: tuple[Part, ...]
    presets: dict[str, Preset]
    claims: tuple[Claim, ...]
    template: str  # analysis/study/templates/<template>
    doc: str  # the full study's document
    results: str = ""  # the full study's committed evidence folder; "": the evidence is the MLflow store alone
    previews: str = "outputs/studies/{study}-{preset}"  # a preset's folder (its document, its exported runs)
    mini_doc: str = "docs/mini-study.md"  # the mini tasks' verdicts, read from its table
    mini_base_classes: dict[str, str] = field(default_factory=dict)  # mini task -> its per-class JSON

    def __post_init__(self) -> None:
        unknown = sorted({c.measure for c in self.claims if c.measured and c.measure not in MEASURES})
        if unknown:
            raise ValueError(
                f"study {self.name}: no claim measurement named {unknown} in analysis/study/claim_measures.py"
            )
        missing = [p.key for p in self.sweep_parts() if any(p.key not in s.seeds for s in self.presets.values())]
        if missing:
            raise ValueError(f"study {self.name}: parts {missing} have no seed count in every preset")

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise SystemExit(f"study {self.name}: no preset {name!r}; choose one of {sorted(self.presets)}")
        return self.presets[name]

    def experiment_of(self, preset: str) -> str:
        return self.experiment if preset == FULL else f"{self.experiment}-{preset}"

    @property
    def exports(self) -> bool:
        """Whether the study exports its finished runs to files and writes its document from them (else
        it reads them from its MLflow store)."""
        return bool(self.results)

    def results_dir(self, preset: str) -> Path:
        """The exported runs, alignment and diagnosis: committed for the full study, under outputs/ for a
        preset (a preview is not evidence)."""
        return ROOT / (self.results if preset == FULL else self.previews.format(study=self.name, preset=preset))

    def doc_path(self, preset: str) -> Path:
        return ROOT / self.doc if preset == FULL else self.results_dir(preset) / Path(self.doc).name

    def sweep_parts(self) -> list[Part]:
        return [p for p in self.parts if p.sweep]


def seeds_override(n: int) -> str:
    return "seed=" + ",".join(str(s) for s in range(n))
