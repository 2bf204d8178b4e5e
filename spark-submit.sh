#!/usr/bin/env bash
# Submit one vistarank stage with spark-submit.
#
#   ./spark-submit.sh <stage> [stage args...]             local master (default local[*])
#   ./spark-submit.sh --cluster <stage> [stage args...]   a cluster: packs the Python environment
#
# Environment:
#   SPARK_MASTER       master URL (default local[*]; e.g. yarn, k8s://https://host:6443, spark://host:7077)
#   SPARK_SUBMIT_ARGS  extra spark-submit arguments (quoted string), e.g. "--deploy-mode cluster
#                      --conf spark.executor.resource.gpu.amount=1 ..."; see docs/operations.md
#   VENV               the virtual environment to use (default .venv)
#
# Local: builds the wheel, passes it with --py-files, Delta's cached jars with --jars,
# and the venv's python to driver and workers. Cluster: also builds a relocatable
# environment (venv-pack, into dist/vistarank-env.tar.gz) and ships it with --archives,
# so executors get TensorFlow and every native dependency; Delta comes with --packages.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PY="$VENV/bin/python"
CLUSTER=0
if [ "${1:-}" = "--cluster" ]; then CLUSTER=1; shift; fi
STAGE="${1:-}"
if [ -z "$STAGE" ] || [ "$STAGE" = "-h" ] || [ "$STAGE" = "--help" ]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  echo "stages: $(ls jobs | grep -v -E '^(__init__|common)\.py$' | grep '\.py$' | sed 's/\.py$//' | tr '\n' ' ')"
  exit 2
fi
shift
if [ ! -f "jobs/$STAGE.py" ] || [ "$STAGE" = "common" ] || [ "$STAGE" = "__init__" ]; then
  echo "error: unknown stage '$STAGE' (no jobs/$STAGE.py)" >&2; exit 2
fi
if [ ! -x "$PY" ]; then
  echo "error: no virtual environment at $VENV: run 'make setup' first" >&2; exit 1
fi

mkdir -p dist
rm -f dist/vistarank-*.whl
"$PY" -m pip wheel --no-deps --quiet -w dist . 2>/dev/null
WHEEL=$(ls dist/vistarank-*.whl | head -n 1)
SUBMIT="$VENV/bin/spark-submit"
DELTA_CONF=(--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension
            --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog)
# shellcheck disable=SC2206
EXTRA=(${SPARK_SUBMIT_ARGS:-})

if [ "$CLUSTER" = 0 ]; then
  JARS=$("$PY" -m vistarank.jars --print --jars-dir .cache/jars || true)
  if [ -z "$JARS" ]; then
    echo "error: Delta's jars are not cached in .cache/jars: run 'make setup' first" >&2; exit 1
  fi
  export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
  exec "$SUBMIT" --master "${SPARK_MASTER:-local[*]}" --name "vistarank-$STAGE" \
    --jars "$JARS" --py-files "$WHEEL" "${DELTA_CONF[@]}" \
    --conf spark.sql.execution.arrow.pyspark.enabled=true \
    --conf spark.python.worker.reuse=true \
    --conf spark.ui.showConsoleProgress=false \
    "${EXTRA[@]}" "jobs/$STAGE.py" "$@"
fi

# Cluster: a relocatable environment with the wheel installed (not editable: venv-pack
# refuses editable installs), built once per wheel.
PACK_VENV=.cache/pack-venv
ENV_TGZ=dist/vistarank-env.tar.gz
if [ ! -f "$ENV_TGZ" ] || [ "$WHEEL" -nt "$ENV_TGZ" ]; then
  [ -x "$PACK_VENV/bin/python" ] || "$PY" -m venv --copies "$PACK_VENV"
  "$PACK_VENV/bin/python" -m pip install --quiet "$WHEEL" venv-pack==0.2.0
  "$PACK_VENV/bin/venv-pack" -p "$PACK_VENV" -o "$ENV_TGZ" --force
fi
DELTA_PKG=$("$PY" -c 'from vistarank.jars import delta_package; print(delta_package())')
export PYSPARK_PYTHON=./environment/bin/python
exec "$SUBMIT" --master "${SPARK_MASTER:?set SPARK_MASTER for --cluster}" --name "vistarank-$STAGE" \
  --archives "$ENV_TGZ#environment" --py-files "$WHEEL" --packages "$DELTA_PKG" "${DELTA_CONF[@]}" \
  --conf spark.pyspark.python=./environment/bin/python \
  --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.kubernetes.driverEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.sql.execution.arrow.pyspark.enabled=true \
  --conf spark.python.worker.reuse=true \
  "${EXTRA[@]}" "jobs/$STAGE.py" --env cluster "$@"
