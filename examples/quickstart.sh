#!/usr/bin/env bash
# Sets everything up, then trains, evaluates and saves the date-"translation" model (see quickstart.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/examples/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" examples/quickstart.py "$@"
