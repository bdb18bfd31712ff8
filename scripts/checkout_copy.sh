#!/usr/bin/env bash
# The checkout's files, copied into DEST to build prerl from: tracked files and new ones git does not
# ignore, as they are in the work tree, symlinks kept (conf/sweep is sweeps/).
#   scripts/checkout_copy.sh DEST
# Builds run in a copy because the build writes prerl.egg-info into its source folder, which in the
# checkout would pass for an installed prerl on a PYTHONPATH.
set -euo pipefail
dest=${1:?usage: checkout_copy.sh DEST}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest"
# --ignore-failed-read: a tracked file deleted in the work tree is left out
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf -) |
    tar -xf - -C "$dest"
