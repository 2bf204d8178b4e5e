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
#   SPARK_HOME         the cluster's Spark (its spark-submit and pyspark); default: the venv's pyspark
#   PACK_PYTHON        --cluster: the interpreter of the packed environment (default: the venv's);
#                      executors need the same Python at the same path (e.g. python3.12)
#   PACK_EXTRAS        --cluster: the TensorFlow build packed: cpu (default) or gpu
#   PACK_COMPRESS_LEVEL --cluster: gzip level of the packed environment, 0 to 9 (default 4)
#
# Local: builds the wheel, passes it with --py-files, Delta's cached jars with --jars,
# and the venv's python to driver and workers. Cluster: builds a relocatable environment
# (the wheel + constraints.txt, packed by venv-pack into dist/vistarank-env-py<X.Y>-<extras>.tar.gz),
# ships it with --archives and runs the driver and executors in it, so executors get
# TensorFlow and every native dependency and nothing from this checkout; Delta comes with
# --jars (cached) or --packages.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PY="$VENV/bin/python"
CLUSTER=0
if [ "${1:-}" = "--cluster" ]; then CLUSTER=1; shift; fi
STAGE="${1:-}"
if [ -z "$STAGE" ] || [ "$STAGE" = "-h" ] || [ "$STAGE" = "--help" ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
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
# The cluster's own Spark when SPARK_HOME is set (its spark-submit, its pyspark); else the venv's.
if [ -n "${SPARK_HOME:-}" ]; then SUBMIT="$SPARK_HOME/bin/spark-submit"; else SUBMIT="$VENV/bin/spark-submit"; fi
# Spark's console progress bar only on a terminal (in a log file it is a stream of \r lines).
if [ -t 2 ]; then PROGRESS=true; else PROGRESS=false; fi
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
    --conf spark.ui.showConsoleProgress="$PROGRESS" \
    "${EXTRA[@]}" "jobs/$STAGE.py" "$@"
fi

# Cluster: a relocatable environment (scripts/pack_env.sh: the wheel + constraints.txt in a
# fresh venv for PACK_PYTHON, packed by venv-pack), shipped with --archives; driver and
# executors run in it. Spark and Delta are not in it: the cluster's Spark provides pyspark,
# Delta comes with --jars (cached) or --packages.
{ read -r PACK_VENV; read -r ENV_ARCHIVE; } < <(VENV="$VENV" scripts/pack_env.sh "$WHEEL")
[ -n "${ENV_ARCHIVE:-}" ] || { echo "error: packing the executor environment failed" >&2; exit 1; }
# The driver runs the job module installed in the packed environment, not the source tree.
PKG_DIR=$("$PACK_VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("vistarank").origin))')
MAIN="$PKG_DIR/jobs/$STAGE.py"
JARS=$("$PY" -m vistarank.jars --print --jars-dir .cache/jars 2>/dev/null || true)
if [ -n "$JARS" ]; then
  # the cached Delta jars (no network on the cluster); Delta's jar also carries its Python package
  DELTA_PY=$(echo "$JARS" | tr ',' '\n' | grep 'delta-spark_' | head -n 1)
  DELTA_ARGS=(--jars "$JARS" --py-files "$DELTA_PY")
else
  DELTA_ARGS=(--packages "$("$PY" -c 'from vistarank.jars import delta_package; print(delta_package())')")
fi
case " ${SPARK_SUBMIT_ARGS:-} " in
  *"--deploy-mode cluster"*) DRIVER_PY=./environment/bin/python ;;  # the driver runs on the cluster too
  *) DRIVER_PY="$PACK_VENV/bin/python" ;;                            # client mode: the same env, here
esac
unset PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON
exec "$SUBMIT" --master "${SPARK_MASTER:?set SPARK_MASTER for --cluster}" --name "vistarank-$STAGE" \
  --archives "$ENV_ARCHIVE#environment" "${DELTA_ARGS[@]}" "${DELTA_CONF[@]}" \
  --conf spark.pyspark.python=./environment/bin/python \
  --conf spark.pyspark.driver.python="$DRIVER_PY" \
  --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.kubernetes.driverEnv.PYSPARK_PYTHON=./environment/bin/python \
  --conf spark.sql.execution.arrow.pyspark.enabled=true \
  --conf spark.python.worker.reuse=true \
  --conf spark.sql.session.timeZone=UTC \
  --conf spark.ui.showConsoleProgress="$PROGRESS" \
  "${EXTRA[@]}" "$MAIN" --env cluster "$@"
