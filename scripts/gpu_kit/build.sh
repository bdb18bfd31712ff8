#!/usr/bin/env bash
# make gpu-kit: a folder that runs the GPU check on a machine with torch and CUDA but no internet.
#   scripts/gpu_kit/build.sh KIT_DIR PYTHON
# KIT_DIR/wheels holds prerl's wheel and the wheel of every dependency but torch (pip wheel resolves
# them here, with the package index): pure-Python wheels install under any Python 3; the binary ones
# are for this interpreter's version and platform (BINARY.txt lists them: on a machine with another
# Python they must be installed there already). KIT_DIR/run.sh installs them without an index and runs
# the check (docs/scaling-out.md#gpu-check).
set -euo pipefail
kit=${1:?usage: build.sh KIT_DIR PYTHON}
py=${2:?usage: build.sh KIT_DIR PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rm -rf "$kit"
mkdir -p "$kit/wheels"
kit=$(cd "$kit" && pwd)
# build from a copy of the checkout's files (scripts/checkout_copy.sh says why)
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
bash "$root/scripts/checkout_copy.sh" "$src"
"$py" -m pip wheel --quiet --wheel-dir "$kit/wheels" "$src"
# torch and its CUDA libraries are the GPU machine's own
rm -f "$kit"/wheels/torch-*.whl "$kit"/wheels/nvidia_*.whl "$kit"/wheels/triton-*.whl
cp "$here/run.sh" "$kit/run.sh"
chmod +x "$kit/run.sh"
"$py" - "$kit" <<'PY'
import sys
from pathlib import Path

kit = Path(sys.argv[1])
wheels = sorted(p.name for p in (kit / "wheels").glob("*.whl"))
binary = [w for w in wheels if not w.endswith("-none-any.whl")]
tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
(kit / "BINARY.txt").write_text(
    f"Binary wheels in this kit, built for Python {sys.version_info.major}.{sys.version_info.minor} ({tag}) on this "
    "platform. Under another Python, pip skips them and these packages must already be installed:\n"
    + "".join(f"  {w.split('-')[0]}\n" for w in binary)
    + "torch (2.13, with CUDA) is never in the kit: the GPU machine's own is used.\n"
)
print(f"{kit}: {len(wheels)} wheels ({len(binary)} binary, for {tag}); BINARY.txt lists the binary ones")
PY
