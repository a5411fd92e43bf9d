#!/usr/bin/env bash
# The main job (README): set up .venv, then segment a synthetic fluorescence frame headlessly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m sam2_model.demo "$@"
