#!/usr/bin/env bash
# The test command (README): the whole suite under a virtual X display for napari's canvas, one pytest-xdist worker
# per core (at most 4; PYTEST_WORKERS=1 runs everything in one process), each test file in one worker so that its
# module-wide fixtures (models, sessions) are built once.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .venv/bin/activate
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
cores=$(nproc)
workers=${PYTEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
exec xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest -q -ra "${parallel[@]}" "$@"
