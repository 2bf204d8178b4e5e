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
echo "$PY"
