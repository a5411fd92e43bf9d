#!/usr/bin/env bash
# Sets up .venv with napari-sam2. `--test` adds the test tools, Xvfb/Mesa and Meta's reference
# package (sam2==1.1.0) that the parity tests use as an oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

apt_packages=(xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0
  libxcb-cursor0 libdbus-1-3 libfontconfig1)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
pip install -q --upgrade pip
# torch first, pinned, so that nothing below pulls another version. Plain pip gives the default build: on Linux,
# PyPI's CUDA build (several GB). For a CPU-only build, install it into .venv before running this script
# (.venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu): a torch found is kept.
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
if [ $want_tests = 1 ]; then
  pip install -q -e ".[test]"
  python -c "import sam2" 2>/dev/null || \
    SAM2_BUILD_CUDA=0 pip install -q --no-deps --no-build-isolation "sam2==1.1.0"
  # A real fluorescence-nuclei image with every nucleus labelled rides in the stardist wheel
  # (data/images/img2d.tif, mask2d.tif): tests/test_real_nuclei.py and bench/real_nuclei.py read it
  # there. Only the files are wanted (stardist is never imported), so none of its dependencies.
  python -c "import importlib.util as u; s = u.find_spec('stardist'); raise SystemExit(s is None)" 2>/dev/null || \
    pip install -q --no-deps --only-binary=:all: "stardist==0.9.2" || \
    echo "setup: no stardist wheel for this Python; the real-nuclei tests will be skipped" >&2
else
  pip install -q -e ".[napari]"
fi
