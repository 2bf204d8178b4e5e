#!/usr/bin/env bash
# Builds .venv-hvd: TF 2.15.1 + horovod 0.28.1 (Gloo, no MPI), the environment the
# `horovod` training backend runs its workers in. Needs Python 3.11, a C++ compiler and
# cmake >= 3.13 and < 4 (the system cmake: cmake 4 from pip rejects horovod's gloo
# CMakeLists). About 2 minutes on 2 cores (more without a warm pip cache).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HVD_VENV:-.venv-hvd}"
PY=$(scripts/check_prereqs.sh)
command -v cmake >/dev/null || { echo "error: cmake (3.13 to 3.x) is required to build horovod (apt-get install cmake)" >&2; exit 1; }
CM=$(cmake --version | awk '/version/ {print $3}')
case "$CM" in 3.*) ;; *) echo "error: cmake $CM found; horovod 0.28.1's gloo needs cmake 3.x (the system cmake, not pip's cmake 4)" >&2; exit 1;; esac
command -v g++ >/dev/null || { echo "error: g++ is required to build horovod (apt-get install g++)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip==25.3"
"$VENV/bin/python" -m pip install --quiet -r scripts/horovod-requirements.txt
# Build against the TF just installed, with the system cmake (no build isolation).
HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 \
HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo MAKEFLAGS="-j$(nproc)" \
  "$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-cache-dir "horovod==0.28.1"
# vistarank itself without its dependencies: the workers import only numpy, pyarrow,
# tensorflow and the package's training modules. The lock: `make test` builds .venv beside
# this, and both editable installs write the same egg-info in the checkout.
mkdir -p .cache
LOCK=(); command -v flock >/dev/null && LOCK=(flock .cache/editable.lock)
"${LOCK[@]}" "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import horovod.tensorflow as hvd, tensorflow as tf; assert hvd.gloo_built(), 'horovod built without gloo'; print('horovod', __import__('horovod').__version__, 'tf', tf.__version__)"
