#!/usr/bin/env bash
# The GPU check on a machine without internet: install the kit's wheels into the environment of
# $PY (default python3; it must have torch 2.13) with the package index switched off, then run
#   python -m prerl.commands.gpu_check "$@"      (--cpu: the degraded check without a GPU; --size large; key=value)
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
py=${PY:-python3}
case "$py" in */*) py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py") ;; esac  # it runs from the kit's folder
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "gpu kit: $py has no torch; point PY at the Python that has torch (and CUDA)" >&2
    exit 2
fi
# no index, no pip configuration: only the kit's wheels (and what is installed already)
PIP_CONFIG_FILE=/dev/null PYTHONPATH= "$py" -m pip install --quiet --no-index --find-links "$kit/wheels" prerl
cd "$kit"  # not from a checkout, whose prerl/ would shadow the installed wheel (nor from a PYTHONPATH)
exec env -u PYTHONPATH "$py" -m prerl.commands.gpu_check "$@"
