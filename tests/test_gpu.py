"""Labelling on a GPU executor, for a machine with an NVIDIA GPU:

    python -m pytest -m gpu tests/test_gpu.py

A standalone Master and one Worker (each its own JVM, tests/standalone.py) whose Worker offers
its GPUs as a Spark resource found by scripts/gpu_discovery.sh; two tasks share one GPU
(``spark.task.resource.gpu.amount=0.5``). Deselected by default (pytest.ini) and skipped where
nvidia-smi finds no GPU. Executors get this interpreter, ``PYTHONPATH`` and ``KERAS_BACKEND``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_cfg
from standalone import Cluster, executor_python_conf, gpu_worker_env, spark_home_copy

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISCOVERY = os.path.join(ROOT, "scripts", "gpu_discovery.sh")


def discovered_gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run([DISCOVERY], capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return json.loads(out)["addresses"]


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    gpus = discovered_gpus()
    if not gpus:
        pytest.skip("no NVIDIA GPU here (scripts/gpu_discovery.sh found none)")
    root = tmp_path_factory.mktemp("gpu_cluster")
    cluster = Cluster(str(root), spark_home_copy(str(root / "spark_home")))
    cluster.start(workers=1, cores=4, memory="8g", worker_env=gpu_worker_env(DISCOVERY))
    yield cluster, gpus
    cluster.stop()


def _render_tree(root: str, n: int) -> None:
    from vistarank.udfs.render import encode_jpeg, render_scene
    from vistarank.world.catalog import CATEGORY_NAMES

    for i in range(n):
        rng = np.random.default_rng([7, i])
        d = os.path.join(root, f"S{i // 8:03d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i}.jpg"), "wb") as fh:
            fh.write(encode_jpeg(render_scene(CATEGORY_NAMES[i % len(CATEGORY_NAMES)], rng, 200, 150), 88))


CPU_SCORER = """
import os, pickle, sys
import numpy as np, pandas as pd
from vistarank.udfs.scoring import score_batches
model_json, contents, out = pickle.load(open(sys.argv[1], "rb"))
df = next(score_batches(iter([pd.Series(contents)]), model_json, 5, 16, False))
np.save(out, np.stack(df["embedding"].to_list()))
"""


def test_labelling_takes_its_gpu_from_the_task_and_matches_the_cpu(gpu_cluster, tmp_path):
    import pickle

    from pyspark.sql import SparkSession

    from vistarank import io
    from vistarank import tables as T
    from vistarank.jobs import ingest_images, label_images
    from vistarank.session import get_spark
    from vistarank.udfs.probe import gpu_report
    from vistarank.vision import models
    from vistarank.vision.scene_model import build_model
    from vistarank.world.catalog import CATEGORY_NAMES

    cluster, gpus = gpu_cluster
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    build_model(len(CATEGORY_NAMES), 64, 16, seed=0).save(str(model_dir / "model.keras"))
    (model_dir / "labels.txt").write_text("\n".join(CATEGORY_NAMES) + "\n")
    _render_tree(str(tmp_path / "images"), 64)
    cfg = make_cfg(str(tmp_path / "lakehouse"), f"ingest.source={tmp_path / 'images'}",
                   f"model.path={model_dir / 'model.keras'}", f"model.labels={model_dir / 'labels.txt'}",
                   "model.name=gpu-test", "model.input_size=64", "model.preprocessing=included",
                   "label.decode_threads=2", "ingest.partitions=4")
    conf = {"spark.executor.cores": "4", "spark.executor.memory": "4g", "spark.task.cpus": "2",
            "spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "0.5",
            **executor_python_conf()}
    cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"master": cluster.master_url,
                                                                       "extra_conf": conf})})
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    spark = get_spark(cfg)
    try:
        probe = spark.sparkContext.parallelize(range(4), 4).mapPartitions(gpu_report)
        reports = [json.loads(r) for r in probe.collect()]
        assert len(reports) == 4
        for r in reports:
            assert r["task_gpus"] and set(r["task_gpus"]) <= set(gpus), r
            assert r["cuda_visible_devices"] == ",".join(r["task_gpus"]), r
            assert r["accelerators"], f"the {r['backend']} backend sees no GPU in a task given {r['task_gpus']}"

        ingest_images.run(spark, cfg)
        assert label_images.run(spark, cfg).outputs["image_labels"] == 64
        rm = models.resolve(cfg)
        labels = {r["image_id"]: np.asarray(r["embedding"], np.float32) for r in
                  io.read(spark, cfg, T.IMAGE_LABELS).where(f"model_version = '{rm.model_version}'")
                  .select("image_id", "embedding").collect()}
        images = io.read(spark, cfg, T.IMAGES).select("image_id", "content").collect()
    finally:
        spark.stop()
    assert len(labels) == 64
    # the same images scored on the CPU (no GPU visible) in a separate process
    job = tmp_path / "cpu_job.pkl"
    with open(job, "wb") as fh:
        pickle.dump((rm.to_json(), [bytes(r["content"]) for r in images], str(tmp_path / "cpu.npy")), fh)
    subprocess.run([sys.executable, "-c", CPU_SCORER, str(job)], check=True,
                   env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    cpu = np.load(tmp_path / "cpu.npy").astype(np.float64)
    gpu = np.stack([labels[r["image_id"]] for r in images]).astype(np.float64)
    # relative error per image (random weights give tiny embeddings: no absolute tolerance);
    # TF32 convolutions on the GPU stay within about 1e-3
    rel = np.linalg.norm(cpu - gpu, axis=1) / np.linalg.norm(cpu, axis=1)
    assert rel.max() < 0.02, f"GPU and CPU embeddings differ: relative error up to {rel.max():.4f}"
