#!/usr/bin/env bash
# Build the relocatable executor environment for `./spark-submit.sh --cluster`, and print
# two lines: the environment's folder and the archive that ships it.
#
#   scripts/pack_env.sh <wheel>
#
# A fresh virtual environment for PACK_PYTHON (default: $VENV's python) gets the wheel with
# extras PACK_EXTRAS (default cpu; gpu for GPU executors) at the versions constraints.txt
# pins, then venv-pack archives it as .tar.gz (PACK_COMPRESS_LEVEL, default 4; 1 is fast for
# a cluster on this machine). Always .tar.gz: Spark unpacks a plain .tar or a .zip archive
# with Java code that drops file permissions (SPARK-38632, SPARK-37677), so executors could
# not run ./environment/bin/python (seen on the test cluster); .tar.gz goes through
# Hadoop's FileUtil.unTar, which keeps them. Spark and Delta are not in it: the cluster's
# Spark provides pyspark, Delta comes with --jars or --packages. Executors need the same
# Python at the same path (venv-pack ships site-packages, not the standard library).
# Rebuilt only when the wheel's files, constraints.txt or the extras changed (a stamp beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL="${1:?usage: scripts/pack_env.sh <wheel>}"
VENV="${VENV:-.venv}"
PACK_PYTHON="${PACK_PYTHON:-$VENV/bin/python}"
PACK_EXTRAS="${PACK_EXTRAS:-cpu}"
PACK_COMPRESS_LEVEL="${PACK_COMPRESS_LEVEL:-4}"
PYVER=$("$PACK_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$PYVER" in 3.11|3.12) ;; *) echo "error: $PACK_PYTHON is Python $PYVER; 3.11 or 3.12 is required" >&2; exit 1 ;; esac
PACK_VENV="$PWD/.cache/pack-venv-py$PYVER-$PACK_EXTRAS"
ARCHIVE="$PWD/dist/vistarank-env-py$PYVER-$PACK_EXTRAS.tar.gz"
# What the archive holds: the wheel's RECORD (every file's checksum), the pins and the extras.
STAMP=$("$PACK_PYTHON" - "$WHEEL" "$PACK_EXTRAS" <<'PY'
import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
h = hashlib.sha256(z.read(record))
h.update(open("constraints.txt", "rb").read())
h.update(sys.argv[2].encode())
print(h.hexdigest())
PY
)
if [ ! -f "$ARCHIVE" ] || [ "$(cat "$ARCHIVE.stamp" 2>/dev/null)" != "$STAMP" ]; then
  echo "pack_env: packing Python $PYVER with vistarank[$PACK_EXTRAS] into $ARCHIVE" >&2
  [ -x "$PACK_VENV/bin/python" ] || "$PACK_PYTHON" -m venv --copies "$PACK_VENV"
  PIP=("$PACK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${PIP[@]}" -c constraints.txt "$WHEEL[$PACK_EXTRAS]"
  # the same version number with new code: replace the package itself every time
  "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
  VENV_PACK="$VENV/bin/venv-pack"
  if [ ! -x "$VENV_PACK" ]; then
    "${PIP[@]}" -c constraints.txt venv-pack; VENV_PACK="$PACK_VENV/bin/venv-pack"
  fi
  mkdir -p "$(dirname "$ARCHIVE")"
  "$VENV_PACK" -p "$PACK_VENV" -o "$ARCHIVE" --compress-level "$PACK_COMPRESS_LEVEL" --force --quiet
  echo "$STAMP" > "$ARCHIVE.stamp"
fi
echo "$PACK_VENV"
echo "$ARCHIVE"
