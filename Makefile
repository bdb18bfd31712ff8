# Every target sets up .venv/ first when it is missing (CPU torch from the pinned wheel).
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test base-model mlflow-ui clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## The mini DSRL experiment (NSR-PreRL warm-up -> reincarnation -> GRPO), logged to ./mlflow.db
demo: setup
	$(PY) train.py

## The test suite (micro models, no network)
test: setup
	$(PY) -m pytest -q tests

## Build (or reuse) the cached mini base model explicitly
base-model: setup
	$(PY) -m prerl.mini.base_model --variant mini

## Browse runs at http://127.0.0.1:5000
mlflow-ui: setup
	.venv/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf outputs multirun
