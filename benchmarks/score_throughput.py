"""Scoring throughput: the same model and the same N rendered images in four arms.

  a  bare model on pre-decoded tensors (the ceiling of this machine)
  b  decode + model in one process, no Spark (our UDF body called directly)
  c  our label_images path end to end: Delta images table -> pandas UDF -> Delta image_labels
  d  pyspark.ml.functions.predict_batch_udf with a straightforward decode pandas UDF, to Delta

Each arm runs in its own process; peak memory is the summed RSS of that process tree
(Spark's JVM and Python workers included), sampled every 0.2 s; on a GPU machine each arm
also samples the GPU's utilisation (NVML) while it is timed. Models have random weights
(speed only), except ``trained=<dir>``, a model directory (model.keras + labels.txt) such as
the demo's scene model, on which 16-bit precision's top-1 agreement with float32 means
something. Writes JSON to benchmarks/results/score_throughput.json.

    python benchmarks/score_throughput.py                       # scene model and MobileNetV2, 4000 images
    python benchmarks/score_throughput.py --n 500 --models scene

On a GPU machine (docs/operations.md, "GPU executors (label_images)"): ``--gpu`` runs arms c and d on a
Spark standalone cluster on 127.0.0.1 (a Master and one Worker, each its own JVM) whose
Worker offers the GPU as a resource (scripts/gpu_discovery.sh), with ``--tasks-per-gpu``
tasks sharing it and the executor's cores split between them::

    KERAS_BACKEND=torch python benchmarks/score_throughput.py --gpu --n 20000 \
        --models resnet50,mobilenetv2 --batch 256 --tasks-per-gpu 4 --precisions float32,mixed_bfloat16
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pandas as pd  # module level: pandas_udf resolves the string annotations here

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPARK_OVERRIDES = ["spark.show_progress=false", "spark.master=local[*]", "spark.shuffle_partitions=8"]
OPTS: dict = {"batch": 64, "precision": "float32", "decode_threads": 2, "master": None, "extra_conf": {},
              "ingest_partitions": 8, "quality_size": 0}


class GpuSampler:
    """GPU utilisation (percent of time a kernel ran) and memory, sampled every 0.1 s by NVML
    while an arm is timed; nothing where there is no NVIDIA GPU."""

    def __init__(self) -> None:
        self.util: list[int] = []
        self.mem = 0
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._h = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            self._nvml = None

    def __enter__(self):
        if self._nvml:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.util.append(self._nvml.nvmlDeviceGetUtilizationRates(self._h).gpu)
            self.mem = max(self.mem, self._nvml.nvmlDeviceGetMemoryInfo(self._h).used)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._nvml:
            self._thread.join()

    def util_mean(self):
        return round(sum(self.util) / len(self.util), 1) if self.util else None

    def stats(self) -> dict:
        """``gpu_util_mean`` and ``gpu_mem_max_mib``; empty without samples."""
        return {"gpu_util_mean": self.util_mean(), "gpu_mem_max_mib": round(self.mem / 2**20)} if self.util else {}


# ----------------------------------------------------------------------------- set-up
def make_models(workdir: str, size: int, names: list[str]) -> dict[str, tuple[str, int]]:
    """Model directories and their input sizes."""
    import keras

    from vistarank.vision.scene_model import build_model
    from vistarank.world.catalog import CATEGORY_NAMES

    out = {}
    for name in names:
        if name.startswith("trained="):
            src = name.split("=", 1)[1]
            d = os.path.join(workdir, "trained")
            shutil.copytree(src, d)
            model = keras.models.load_model(os.path.join(d, "model.keras"), compile=False)
            out["trained"] = (d, int(model.inputs[0].shape[1]))
            continue
        d = os.path.join(workdir, name)
        os.makedirs(d, exist_ok=True)
        if name == "scene":
            model, labels = build_model(len(CATEGORY_NAMES), size, 32, seed=0), CATEGORY_NAMES
        elif name == "mobilenetv2":
            model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=1000)
            labels = [f"class_{i}" for i in range(1000)]
        elif name == "resnet50":
            model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000)
            labels = [f"class_{i}" for i in range(1000)]
        else:
            raise SystemExit(f"unknown model {name}")
        model.save(os.path.join(d, "model.keras"))
        with open(os.path.join(d, "labels.txt"), "w") as fh:
            fh.write("\n".join(labels) + "\n")
        out[name] = (d, size)
    return out


def _render(args: tuple[str, int, int]) -> None:
    import numpy as np

    from vistarank.udfs.render import encode_jpeg, render_scene
    from vistarank.world.catalog import CATEGORY_NAMES

    root, lo, hi = args
    for i in range(lo, hi):
        rng = np.random.default_rng([99, i])
        w = int(rng.integers(220, 361))
        h = int(w / rng.uniform(1.0, 1.6))
        d = os.path.join(root, f"S{i // 10:05d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i}.jpg"), "wb") as fh:
            fh.write(encode_jpeg(render_scene(CATEGORY_NAMES[i % len(CATEGORY_NAMES)], rng, w, h), 88))


def make_images(workdir: str, n: int) -> str:
    """N rendered JPEGs under <workdir>/images/<sale>/ (sizes like the demo world's), rendered
    on every core; image i is the same whatever the number of cores."""
    from concurrent.futures import ProcessPoolExecutor

    root = os.path.join(workdir, "images")
    step = 500
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_render, [(root, lo, min(n, lo + step)) for lo in range(0, n, step)]))
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

    cfg = load_config("local", SPARK_OVERRIDES + [
        f"lakehouse.root={lakehouse}", f"ingest.source={os.path.join(workdir, 'images')}",
        f"label.batch_size={OPTS['batch']}", f"label.precision={OPTS['precision']}",
        f"label.decode_threads={OPTS['decode_threads']}", f"ingest.partitions={OPTS['ingest_partitions']}",
        f"label.quality_size={OPTS['quality_size']}",
        f"spark.jars_dir={os.path.join(ROOT, '.cache', 'jars')}",
        f"model.path={model_dir}/model.keras", f"model.labels={model_dir}/labels.txt",
        f"model.name=bench-{os.path.basename(model_dir)}",
        f"model.input_size={size}", "model.preprocessing=included"])
    if OPTS["master"]:
        spark = cfg.spark.model_copy(update={"master": OPTS["master"], "extra_conf": dict(OPTS["extra_conf"])})
        cfg = cfg.model_copy(update={"spark": spark})
    return cfg


# ----------------------------------------------------------------------------- arms (child processes)
def arm_a(workdir, model_dir, size, n):
    """The bare model on pre-decoded tensors, under each precision of --precisions (the
    first is timed as the arm; every other one is timed too, with its top-1 agreement with
    float32 over all N images)."""
    import numpy as np

    from vistarank.udfs.images import decode_rgb, to_model_input
    from vistarank.udfs.model_cache import get_scorer
    from vistarank.vision import models

    rm = models.resolve(cfg_for(workdir, model_dir, size, os.path.join(workdir, "lh_a")))
    x = np.stack([to_model_input(decode_rgb(b, max_pixels=1 << 31, draft_size=size).image, size)
                  for b in all_bytes(os.path.join(workdir, "images"))])
    bs = OPTS["batch"]
    first, top1 = None, {}
    for precision in OPTS["precisions"]:
        scorer = get_scorer(rm.to_json(), precision)
        scorer.predict(x[:bs])  # trace once
        preds = []
        with GpuSampler() as gpu:
            t0 = time.perf_counter()
            for i in range(0, len(x), bs):
                batch = x[i:i + bs]
                if len(batch) < bs:
                    batch = np.concatenate([batch, np.zeros((bs - len(batch),) + batch.shape[1:], batch.dtype)])
                preds.append(scorer.predict(batch)[0].argmax(axis=1))
            seconds = time.perf_counter() - t0
        top1[precision] = np.concatenate(preds)[:len(x)]
        if gpu.util:
            EXTRA["gpu_mem_max_mib"] = gpu.stats()["gpu_mem_max_mib"]
        EXTRA.setdefault("precisions", {})[precision] = {
            "images_per_s": round(len(x) / seconds, 1), "gpu_util_mean": gpu.util_mean(),
            "top1_agreement_with_float32": round(float((top1[precision] == top1["float32"]).mean()), 4)
            if "float32" in top1 else None}
        first = first or (len(x), seconds)
    return first


def arm_b(workdir, model_dir, size, n):
    from vistarank.udfs.model_cache import get_scorer
    from vistarank.udfs.scoring import score_batches
    from vistarank.vision import models

    rm = models.resolve(cfg_for(workdir, model_dir, size, os.path.join(workdir, "lh_b")))
    get_scorer(rm.to_json(), OPTS["precision"])  # loaded before timing, as in arm a
    data = all_bytes(os.path.join(workdir, "images"))
    batches = [pd.Series(data[i:i + 1024]) for i in range(0, len(data), 1024)]
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        rows = sum(len(df) for df in score_batches(iter(batches), rm.to_json(), 5, OPTS["batch"], False,
                                                   OPTS["decode_threads"], precision=OPTS["precision"],
                                                   quality_size=OPTS["quality_size"]))
        seconds = time.perf_counter() - t0
    EXTRA.update(gpu.stats())
    return rows, seconds


def _spark_images(workdir, model_dir, size, name):
    from vistarank.jobs import ingest_images
    from vistarank.session import get_spark

    cfg = cfg_for(workdir, model_dir, size, os.path.join(workdir, f"lh_{name}_{os.path.basename(model_dir)}"))
    spark = get_spark(cfg)
    t0 = time.perf_counter()
    n = ingest_images.run(spark, cfg).outputs["images"]  # set-up, not in the arm's rate
    # recorded: ingest computes the quality statistics (label.quality_size) once per image
    EXTRA["ingest_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    return spark, cfg


def arm_c(workdir, model_dir, size, n):
    from vistarank.jobs import label_images

    spark, cfg = _spark_images(workdir, model_dir, size, "c")
    with GpuSampler() as cold:
        t0 = time.perf_counter()
        res = label_images.run(spark, cfg)
        seconds = time.perf_counter() - t0
    # the same job again for a second model version: Python workers (and the backend) are
    # warm, the model is loaded anew; this is the rate a long job settles at
    warm_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"version": "warm"})})
    with GpuSampler() as warm_gpu:
        t1 = time.perf_counter()
        warm = label_images.run(spark, warm_cfg).outputs["image_labels"]
        EXTRA["warm_images_per_s"] = round(warm / (time.perf_counter() - t1), 1)
    EXTRA.update(cold.stats())
    if warm_gpu.util:  # its memory peak replaces the cold run's, as in the recorded results
        EXTRA.update(gpu_mem_max_mib=warm_gpu.stats()["gpu_mem_max_mib"], warm_gpu_util_mean=warm_gpu.util_mean())
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

    predict = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=OPTS["batch"],
                                input_tensor_shapes=[[size, size, 3]])
    images = io.read(spark, cfg, T.IMAGES).select("image_id", "content").repartition(OPTS["ingest_partitions"])
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        out = images.select("image_id", predict(decode("content")).alias("probabilities"))
        target = os.path.join(cfg.lakehouse.root, "predict_batch_udf")
        out.write.format("delta").mode("overwrite").save(target)
        rows = spark.read.format("delta").load(target).count()
        seconds = time.perf_counter() - t0
    EXTRA.update(gpu.stats())
    return rows, seconds


EXTRA: dict = {}
ARMS = {"a": arm_a, "b": arm_b, "c": arm_c, "d": arm_d}


# ----------------------------------------------------------------------------- driver
def run_arm(arm: str, workdir: str, model_dir: str, size: int, n: int) -> dict:
    import psutil

    out = os.path.join(workdir, f"arm_{arm}_{os.path.basename(model_dir)}.json")
    cmd = [sys.executable, __file__, "--child", arm, "--workdir", workdir, "--model-dir", model_dir,
           "--size", str(size), "--n", str(n), "--out", out, "--opts", json.dumps(OPTS)]
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
    res["peak_rss_mib"] = round(peak / 2**20)  # on a cluster: the driver only
    return res


def start_cluster(workdir: str, gpu: bool, tasks_per_gpu: int, discovery: str):
    """A standalone Master and one Worker with every core (and the GPU), and the settings
    that put --tasks-per-gpu tasks on it, each with its share of the cores."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from standalone import Cluster, executor_python_conf, gpu_worker_env, spark_home_copy

    cores = os.cpu_count() or 1
    worker_opts = gpu_worker_env(discovery) if gpu else {}
    conf = {"spark.executor.cores": str(cores), "spark.executor.memory": "16g",
            "spark.databricks.delta.snapshotPartitions": "2", **executor_python_conf()}
    if gpu:
        conf.update({"spark.executor.resource.gpu.amount": "1",
                     "spark.task.resource.gpu.amount": str(round(1 / tasks_per_gpu, 4)),
                     "spark.task.cpus": str(max(1, cores // tasks_per_gpu))})
    root = os.path.join(workdir, "cluster")
    cluster = Cluster(root, spark_home_copy(os.path.join(root, "spark_home")))
    cluster.start(workers=1, cores=cores, memory="24g", worker_env=worker_opts)
    return cluster, conf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--models", default="scene,mobilenetv2",
                   help="scene, mobilenetv2, resnet50 (random weights), trained=<model dir>")
    p.add_argument("--arms", default="a,b,c,d")
    p.add_argument("--batch", type=int, default=64, help="images per model call (label.batch_size)")
    p.add_argument("--precisions", default="float32",
                   help="arm a times each (top-1 agreement with float32); arms b and c use the first")
    p.add_argument("--decode-threads", type=int, default=0,
                   help="decoding threads per task (label.decode_threads); 0 = the task's cores, at least 2")
    p.add_argument("--cluster", action="store_true", help="arms c and d on a standalone cluster on 127.0.0.1")
    p.add_argument("--gpu", action="store_true", help="--cluster, with the GPU as the Worker's resource")
    p.add_argument("--tasks-per-gpu", type=int, default=4)
    p.add_argument("--gpu-discovery", default=os.path.join(ROOT, "scripts", "gpu_discovery.sh"),
                   help="the Worker's GPU discovery script")
    p.add_argument("--partitions", type=int, default=8, help="partitions of the images table (ingest.partitions)")
    p.add_argument("--quality-size", type=int, default=None,
                   help="label.quality_size (default: the config's; 0 = no quality statistics): arm b computes "
                        "them in the UDF body (as for an image ingested without them); in arm c ingest computes "
                        "them (set-up, not timed) and labelling passes them on")
    p.add_argument("--output", default=os.path.join(HERE, "results", "score_throughput.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--opts", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        from vistarank.jobs.common import setup_logging
        setup_logging()
        OPTS.update(json.loads(args.opts))
        rows, seconds = ARMS[args.child](args.workdir, args.model_dir, args.size, args.n)
        with open(args.out, "w") as fh:
            json.dump({"images": rows, "seconds": round(seconds, 2), "images_per_s": round(rows / seconds, 1),
                       **EXTRA}, fh)
        return
    from vistarank.config import LabelConfig

    cores = os.cpu_count() or 1
    task_cores = max(1, cores // args.tasks_per_gpu) if args.gpu else 1
    OPTS.update(batch=args.batch, precisions=args.precisions.split(","), precision=args.precisions.split(",")[0],
                decode_threads=args.decode_threads or max(2, task_cores), ingest_partitions=args.partitions,
                quality_size=LabelConfig().quality_size if args.quality_size is None else args.quality_size)
    workdir = tempfile.mkdtemp(prefix="vistarank-bench-")
    t0 = time.perf_counter()
    make_images(workdir, args.n)
    model_dirs = make_models(workdir, args.size, args.models.split(","))
    print(f"rendered {args.n} images and built {list(model_dirs)} in {time.perf_counter() - t0:.0f}s ({workdir})",
          flush=True)
    import keras

    results: dict = {"n_images": args.n, "input_size": args.size, "batch": args.batch, "machine": {
        "cpus": cores, "platform": platform.platform(), "python": platform.python_version(),
        "keras_backend": keras.backend.backend(), "gpu": gpu_name()},
        "settings": {k: OPTS[k] for k in ("precision", "decode_threads", "ingest_partitions", "quality_size")},
        "date": time.strftime("%Y-%m-%d"), "models": {}}
    cluster = None
    if args.cluster or args.gpu:
        cluster, OPTS["extra_conf"] = start_cluster(workdir, args.gpu, args.tasks_per_gpu,
                                                           os.path.abspath(args.gpu_discovery))
        OPTS["master"] = cluster.master_url
        results["settings"].update(cluster=cluster.master_url, spark_conf=OPTS["extra_conf"])
        print(f"cluster {cluster.master_url}: {OPTS['extra_conf']}", flush=True)
    try:
        for name, (d, size) in model_dirs.items():
            arms = {}
            r = {"input_size": size, "arms": arms}
            results["models"][name] = r
            for arm in args.arms.split(","):
                arms[arm] = run_arm(arm, workdir, d, size, args.n)
                print(f"{name} arm {arm}: {arms[arm]}", flush=True)
                write(args.output, results)  # each arm as it ends: a run cut short keeps what it measured
            if "b" in arms and "c" in arms:
                r["c_over_b"] = round(arms["c"]["images_per_s"] / arms["b"]["images_per_s"], 3)
                r["goal_c_over_b_0.85"] = r["c_over_b"] >= 0.85
            if "c" in arms and "d" in arms:
                r["c_over_d"] = round(arms["c"]["images_per_s"] / arms["d"]["images_per_s"], 3)
                r["goal_c_over_d_1.3"] = r["c_over_d"] >= 1.3
            if "a" in arms and "c" in arms:
                r["c_over_a"] = round(arms["c"]["images_per_s"] / arms["a"]["images_per_s"], 3)
                r["c_warm_over_a"] = round(arms["c"]["warm_images_per_s"] / arms["a"]["images_per_s"], 3)
                r["goal_c_over_a_0.8"] = r["c_warm_over_a"] >= 0.8
    finally:
        if cluster is not None:
            cluster.stop()
    write(args.output, results)
    print(json.dumps(results, indent=2))


def write(path: str, results: dict) -> None:
    import _results

    _results.dump({"benchmark": "score_throughput", **results}, path)


def gpu_name():
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else name
    except Exception:
        return None


if __name__ == "__main__":
    main()
