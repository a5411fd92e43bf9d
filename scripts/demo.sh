#!/usr/bin/env bash
# The main job (README): set up .venv, then, headlessly, click every cell of frame 0 of a held-out synthetic
# fluorescence time-lapse, track them through its 30 frames and print IoU and J&F against the truth.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m sam2_model.demo "$@"
