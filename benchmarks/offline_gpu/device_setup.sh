# Step 3, on the GPU machine (no network), sourced at the start of each call that carries .gpu/b:
# Java (jlink image), a slim pyspark (its jars staged in /tmp/stage by an earlier call on the same
# machine), the missing wheels, and vistarank from this checkout, all under /tmp/site.
# Built by benchmarks/offline_gpu/build_pack.py.
set -e
B=$PWD/.gpu/b; S=/tmp/site
test -f /tmp/stage/jars.tar.xz || { echo "STAGE MISSING: the jars were not staged on this machine"; exit 3; }
if [ ! -f $S/.done ]; then
  mkdir -p $S /tmp/vr
  tar xJf $B/jre.tar.xz -C /tmp/vr
  tar xJf $B/pyspark_py.tar.xz -C $S
  tar xJf /tmp/stage/jars.tar.xz -C $S/pyspark
  python3 $B/rezip.py $S/pyspark && rm -rf $S/pyspark/jars_x
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $S $B/whl/*.whl
  touch $S/.done
fi
mkdir -p .cache/jars && cp $S/pyspark/jars/io.delta_* .cache/jars/
export JAVA_HOME=/tmp/vr/jre PATH=/tmp/vr/jre/bin:$PATH PYTHONPATH=$S KERAS_BACKEND=${KERAS_BACKEND:-torch} PYTHONUNBUFFERED=1
# vistarank from this checkout, every call (the checkout may have changed since the last one)
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target $S . >/dev/null 2>&1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
