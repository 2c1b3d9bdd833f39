#!/usr/bin/env bash
# Creates .venv in the repository (once) and installs this package with the versions it was tested with.
# Sourced by examples/quickstart.sh and tests/run.sh; safe to run again (it only installs what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/.venv"
fi
# torch first and pinned: a looser requirement would pull the newest release with several GB of CUDA packages.
"$PYTHON" -m pip install --quiet --disable-pip-version-check torch==2.13.0
"$PYTHON" -m pip install --quiet --disable-pip-version-check -c "$ROOT/examples/constraints.txt" -e "$ROOT[train,test,ctranslate2]"
