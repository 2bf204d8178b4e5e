#!/usr/bin/env bash
# Checks what `make` needs before it installs anything: Python 3.11 (or 3.12) and Java 17+.
set -euo pipefail
PY="${PYTHON:-python3.11}"
if ! command -v "$PY" >/dev/null 2>&1; then
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    PY=python3
  else
    echo "error: Python 3.11 or 3.12 is required (set PYTHON=/path/to/python3); found: $(python3 --version 2>&1 || echo none)" >&2
    exit 1
  fi
fi
"$PY" -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), sys.version' 2>/dev/null || {
  echo "error: $PY is $("$PY" --version 2>&1), Python 3.11 or 3.12 is required" >&2; exit 1; }
if ! command -v java >/dev/null 2>&1; then
  echo "error: Java 17 (or 21) is required by Spark 4: install a JDK (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME" >&2
  exit 1
fi
JV=$(java -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)
if [ "${JV:-0}" -lt 17 ]; then
  echo "error: Java $JV found; Spark 4 needs Java 17 or 21" >&2
  exit 1
fi
# Disk: .venv alone is about 3 GiB, and a full `make test` writes about 7 GiB (both environments,
# Delta's jars, the cluster test's packed Python, Spark's scratch). A full disk otherwise shows up
# as an unrelated failure (venv's ensurepip exiting 1), so say it here.
for d in . "${TMPDIR:-/tmp}"; do
  FREE_KB=$(df -Pk "$d" 2>/dev/null | awk 'NR == 2 {print $4}')
  [ -n "$FREE_KB" ] || continue
  if [ "$FREE_KB" -lt $((3 * 1024 * 1024)) ]; then
    echo "error: only $((FREE_KB / 1024)) MiB free on $(cd "$d" && pwd): make needs about 3 GiB for .venv, 7 GiB for make test; free some space (old lakehouses, pytest's basetemp, /tmp/spark-*)" >&2
    exit 1
  elif [ "$FREE_KB" -lt $((8 * 1024 * 1024)) ]; then
    echo "warning: only $((FREE_KB / 1024 / 1024)) GiB free on $(cd "$d" && pwd); make test writes about 7 GiB" >&2
  fi
done
echo "$PY"
