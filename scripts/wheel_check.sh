#!/usr/bin/env bash
# make wheel-check: prerl as a user installs it, away from the checkout.
#   scripts/wheel_check.sh PYTHON [DIST_DIR]      (PYTHON has build and twine: the dev extra)
# 1. python -m build (the sdist, then the wheel from it) from a copy of the checkout's files into DIST_DIR
#    (default dist/), and twine check --strict on both;
# 2. a fresh venv (.venv-wheel-check/) with the pinned CPU torch, then the wheel and its dependencies;
# 3. from an empty folder outside the checkout, with no PYTHONPATH (the checkout is not on sys.path):
#    prerl-train --help and prerl-evaluate --help; a two-job multirun of the micro model (experiment=smoke)
#    that must write ./multirun and ./mlflow.db; prerl-ablation-table on that store, whose warm-up table must
#    have both jobs' rows; Hydra must find the Optuna sweeper; nothing may be written into the venv.
set -euo pipefail
py=${1:?usage: wheel_check.sh PYTHON [DIST_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
dist=${2:-$root/dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { echo "wheel-check [${SECONDS}s]: $*"; }
unset PYTHONPATH  # `make PY=...` puts the checkout there
export HF_HUB_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true

# 1. Build from a copy of the checkout's files (scripts/checkout_copy.sh says why).
step "python -m build, twine check"
bash "$root/scripts/checkout_copy.sh" "$work/src"
rm -f "$dist"/prerl-*.whl "$dist"/prerl-*.tar.gz
"$py" -m build --outdir "$dist" "$work/src" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
wheel=$(ls "$dist"/prerl-*.whl)
"$py" -m twine check --strict "$wheel" "$dist"/prerl-*.tar.gz

# 2. A fresh venv: torch pinned first (an unpinned torch pulls a multi-GB CUDA build), then the wheel;
# --no-compile: byte-compiling every dependency costs more than compiling what the commands import. The
# venv (~3 GB) is made anew in the checkout's git-ignored .venv-wheel-check/ and left for the next run to
# remove, as gpu-kit-test leaves its, rather than at exit, where CI would wait for tens of thousands of files
# to be deleted.
venv=$root/.venv-wheel-check
step "a fresh venv, $venv, with torch==2.13.0 and $(basename "$wheel")"
rm -rf "$venv"
python3 -m venv "$venv"
bin=$venv/bin
quiet() { "$@" >"$work/pip.log" 2>&1 || { tail -40 "$work/pip.log"; exit 1; }; }  # pip's notes about its index
quiet "$bin/python" -m pip install -q --no-compile "torch==2.13.0"
quiet "$bin/python" -m pip install -q --no-compile "$wheel"
touch "$work/installed"

# 3. The installed commands, from a folder outside the checkout.
mkdir "$work/run"
cd "$work/run"
step "prerl-train --help, prerl-evaluate --help"
for command in prerl-train prerl-evaluate; do
    "$bin/$command" --help >help.txt
    grep -q "eval.samples_per_prompt" help.txt || { cat help.txt; echo "$command --help: no option list" >&2; exit 1; }
done
"$bin/python" - <<'PY'
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

found = [c.__module__ for c in Plugins.instance().discover(Sweeper)]
assert "hydra_plugins.prerl_optuna_sweeper.optuna_sweeper" in found, f"Hydra finds these sweepers only: {found}"
PY
step "prerl-train -m experiment=smoke warmup_steps=0,1 total_steps=1 (the micro model, into ./mlflow.db)"
"$bin/prerl-train" -m experiment=smoke warmup_steps=0,1 total_steps=1 >train.log 2>&1 || { tail -40 train.log; exit 1; }
test -s mlflow.db && test -d multirun || { ls -la; echo "the multirun wrote no ./mlflow.db or ./multirun" >&2; exit 1; }
step "prerl-ablation-table (the newest sweep in ./mlflow.db)"
"$bin/prerl-ablation-table" --out tables --no-log
grep -q "^warmup,S=0," tables/warmup.csv && grep -q "^warmup,S=1," tables/warmup.csv || { cat tables/warmup.csv; exit 1; }
written=$(find "$venv" -newer "$work/installed" -type f ! -name "*.pyc")
test -z "$written" || { echo "the commands wrote into the venv:" >&2; echo "$written" >&2; exit 1; }
step "passed"
