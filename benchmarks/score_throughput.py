"""Scoring throughput: the same model and the same N rendered images in four arms.

  a  bare model on pre-decoded tensors (the ceiling of this machine)
  b  decode + model in one process, no Spark (our UDF body called directly)
  c  our label_images path end to end: Delta images table -> pandas UDF -> Delta image_labels
  d  pyspark.ml.functions.predict_batch_udf with a straightforward decode pandas UDF, to Delta

Each arm runs in its own process; peak memory is the summed RSS of that process tree
(Spark's JVM and Python workers included), sampled every 0.2 s. Models have random
weights (speed only). Writes JSON to benchmarks/results/score_throughput.json.

    python benchmarks/score_throughput.py                       # scene model and MobileNetV2, 4000 images
    python benchmarks/score_throughput.py --n 500 --models scene
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import pandas as pd  # module level: pandas_udf resolves the string annotations here

HERE = os.path.dirname(os.path.abspath(__file__))
SPARK_OVERRIDES = ["spark.show_progress=false", "spark.master=local[*]", "label.batch_size=64",
                   "spark.shuffle_partitions=8"]


# ----------------------------------------------------------------------------- set-up
def make_models(workdir: str, size: int, names: list[str]) -> dict[str, str]:
    import keras

    from vistarank.vision.scene_model import build_model
    from vistarank.world.catalog import CATEGORY_NAMES

    out = {}
    for name in names:
        d = os.path.join(workdir, name)
        os.makedirs(d, exist_ok=True)
        if name == "scene":
            model, labels = build_model(len(CATEGORY_NAMES), size, 32, seed=0), CATEGORY_NAMES
        elif name == "mobilenetv2":
            model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=1000)
            labels = [f"class_{i}" for i in range(1000)]
        else:
            raise SystemExit(f"unknown model {name}")
        model.save(os.path.join(d, "model.keras"))
        with open(os.path.join(d, "labels.txt"), "w") as fh:
            fh.write("\n".join(labels) + "\n")
        out[name] = d
    return out


def make_images(workdir: str, n: int) -> str:
    """N rendered JPEGs under <workdir>/images/<sale>/ (sizes like the demo world's)."""
    import numpy as np

    from vistarank.udfs.render import encode_jpeg, render_scene
    from vistarank.world.catalog import CATEGORY_NAMES

    root = os.path.join(workdir, "images")
    for i in range(n):
        rng = np.random.default_rng([99, i])
        w = int(rng.integers(220, 361))
        h = int(w / rng.uniform(1.0, 1.6))
        d = os.path.join(root, f"S{i // 10:05d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i}.jpg"), "wb") as fh:
            fh.write(encode_jpeg(render_scene(CATEGORY_NAMES[i % len(CATEGORY_NAMES)], rng, w, h), 88))
    return root


def all_bytes(root: str) -> list[bytes]:
    out = []
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                out.append(fh.read())
    return out


def cfg_for(workdir: str, model_dir: str, size: int, lakehouse: str):
    from vistarank.config import load_config

    return load_config("local", SPARK_OVERRIDES + [
        f"lakehouse.root={lakehouse}", f"ingest.source={os.path.join(workdir, 'images')}",
        f"model.path={model_dir}/model.keras", f"model.labels={model_dir}/labels.txt",
        f"model.name=bench-{os.path.basename(model_dir)}",
        f"model.input_size={size}", "model.preprocessing=included"])


# ----------------------------------------------------------------------------- arms (child processes)
def arm_a(workdir, model_dir, size, n):
    import numpy as np

    from vistarank.udfs.images import decode_rgb, to_model_input
    from vistarank.udfs.model_cache import get_scorer
    from vistarank.vision import models

    rm = models.resolve(cfg_for(workdir, model_dir, size, os.path.join(workdir, "lh_a")))
    scorer = get_scorer(rm.to_json())
    x = np.stack([to_model_input(decode_rgb(b, max_pixels=1 << 31, draft_size=size).image, size)
                  for b in all_bytes(os.path.join(workdir, "images"))])
    scorer.predict(x[:64])  # trace once
    t0 = time.perf_counter()
    for i in range(0, len(x), 64):
        batch = x[i:i + 64]
        if len(batch) < 64:
            batch = np.concatenate([batch, np.zeros((64 - len(batch),) + batch.shape[1:], batch.dtype)])
        scorer.predict(batch)
    return len(x), time.perf_counter() - t0


def arm_b(workdir, model_dir, size, n):
    from vistarank.udfs.model_cache import get_scorer
    from vistarank.udfs.scoring import score_batches
    from vistarank.vision import models

    rm = models.resolve(cfg_for(workdir, model_dir, size, os.path.join(workdir, "lh_b")))
    get_scorer(rm.to_json())  # loaded before timing, as in arm a
    data = all_bytes(os.path.join(workdir, "images"))
    batches = [pd.Series(data[i:i + 1024]) for i in range(0, len(data), 1024)]
    t0 = time.perf_counter()
    rows = sum(len(df) for df in score_batches(iter(batches), rm.to_json(), 5, 64, False))
    return rows, time.perf_counter() - t0


def _spark_images(workdir, model_dir, size, name):
    from vistarank.jobs import ingest_images
    from vistarank.session import get_spark

    cfg = cfg_for(workdir, model_dir, size, os.path.join(workdir, f"lh_{name}_{os.path.basename(model_dir)}"))
    spark = get_spark(cfg)
    ingest_images.run(spark, cfg)  # set-up, not timed
    return spark, cfg


def arm_c(workdir, model_dir, size, n):
    from vistarank.jobs import label_images

    spark, cfg = _spark_images(workdir, model_dir, size, "c")
    t0 = time.perf_counter()
    res = label_images.run(spark, cfg)
    seconds = time.perf_counter() - t0
    # the same job again for a second model version: Python workers (and TensorFlow) are
    # warm, the model is loaded anew; this is the rate a long job settles at
    warm_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"version": "warm"})})
    t1 = time.perf_counter()
    warm = label_images.run(spark, warm_cfg).outputs["image_labels"]
    EXTRA["warm_images_per_s"] = round(warm / (time.perf_counter() - t1), 1)
    return res.outputs["image_labels"], seconds


def arm_d(workdir, model_dir, size, n):
    import io as pyio

    import numpy as np
    from PIL import Image
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    from vistarank import io
    from vistarank import tables as T

    spark, cfg = _spark_images(workdir, model_dir, size, "d")
    model_path = os.path.join(model_dir, "model.keras")

    @F.pandas_udf("array<float>")
    def decode(contents: pd.Series) -> pd.Series:
        return contents.apply(lambda b: np.asarray(Image.open(pyio.BytesIO(b)).convert("RGB").resize((size, size)),
                                                   dtype=np.float32).reshape(-1))

    def make_predict_fn():
        import keras
        model = keras.models.load_model(model_path, compile=False)

        def predict(x):
            return model.predict(x, verbose=0)
        return predict

    predict = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=64,
                                input_tensor_shapes=[[size, size, 3]])
    images = io.read(spark, cfg, T.IMAGES).select("image_id", "content").repartition(8)
    t0 = time.perf_counter()
    out = images.select("image_id", predict(decode("content")).alias("probabilities"))
    target = os.path.join(cfg.lakehouse.root, "predict_batch_udf")
    out.write.format("delta").mode("overwrite").save(target)
    rows = spark.read.format("delta").load(target).count()
    return rows, time.perf_counter() - t0


EXTRA: dict = {}
ARMS = {"a": arm_a, "b": arm_b, "c": arm_c, "d": arm_d}


# ----------------------------------------------------------------------------- driver
def run_arm(arm: str, workdir: str, model_dir: str, size: int, n: int) -> dict:
    import psutil

    out = os.path.join(workdir, f"arm_{arm}_{os.path.basename(model_dir)}.json")
    cmd = [sys.executable, __file__, "--child", arm, "--workdir", workdir, "--model-dir", model_dir,
           "--size", str(size), "--n", str(n), "--out", out]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    if proc.returncode != 0:
        with open(out + ".log") as fh:
            raise SystemExit(f"arm {arm} failed:\n{fh.read()[-3000:]}")
    with open(out) as fh:
        res = json.load(fh)
    res["peak_rss_mib"] = round(peak / 2**20)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--models", default="scene,mobilenetv2")
    p.add_argument("--arms", default="a,b,c,d")
    p.add_argument("--output", default=os.path.join(HERE, "results", "score_throughput.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        from vistarank.jobs.common import setup_logging
        setup_logging()
        rows, seconds = ARMS[args.child](args.workdir, args.model_dir, args.size, args.n)
        with open(args.out, "w") as fh:
            json.dump({"images": rows, "seconds": round(seconds, 2), "images_per_s": round(rows / seconds, 1),
                       **EXTRA}, fh)
        return
    workdir = tempfile.mkdtemp(prefix="vistarank-bench-")
    t0 = time.perf_counter()
    make_images(workdir, args.n)
    model_dirs = make_models(workdir, args.size, args.models.split(","))
    print(f"rendered {args.n} images and built {list(model_dirs)} in {time.perf_counter() - t0:.0f}s ({workdir})")
    results: dict = {"n_images": args.n, "input_size": args.size, "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"), "models": {}}
    for name, d in model_dirs.items():
        arms = {}
        for arm in args.arms.split(","):
            arms[arm] = run_arm(arm, workdir, d, args.size, args.n)
            print(f"{name} arm {arm}: {arms[arm]}")
        r = {"arms": arms}
        if "b" in arms and "c" in arms:
            r["c_over_b"] = round(arms["c"]["images_per_s"] / arms["b"]["images_per_s"], 3)
            r["goal_c_over_b_0.85"] = r["c_over_b"] >= 0.85
        if "c" in arms and "d" in arms:
            r["c_over_d"] = round(arms["c"]["images_per_s"] / arms["d"]["images_per_s"], 3)
            r["goal_c_over_d_1.3"] = r["c_over_d"] >= 1.3
        if "a" in arms and "c" in arms:
            r["c_over_a"] = round(arms["c"]["images_per_s"] / arms["a"]["images_per_s"], 3)
        results["models"][name] = r
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
