#!/usr/bin/env bash
# The test command (README): the whole suite under a virtual X display for napari's canvas.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
exec xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest -q -ra "$@"
