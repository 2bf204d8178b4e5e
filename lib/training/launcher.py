"""Data-parallel training on Spark barrier mode.

``launch`` starts one barrier task per worker (``training.workers``); the tasks meet
through ``BarrierTaskContext.allGather`` (each publishes host:port for the collective
backend) and run :func:`vistarank.udfs.train_worker.train_rank`. Each returns its metrics
and a digest of its final weights (equal on every rank when the collectives worked);
rank 0 saves the model. Only those small results come back to the driver.

Training data is a Parquet snapshot (columns x array<float>, y, weight; or content binary,
y, weight to fine-tune on images) written by Spark with :func:`write_snapshot`; each rank
reads its own files with pyarrow.
"""
from __future__ import annotations

import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank.udfs.train_worker import barrier_fn

log = logging.getLogger(__name__)


def write_snapshot(df: DataFrame, folder: str, n_files: int, columns: tuple[str, ...] = ("x", "y", "weight")) -> str:
    """(x, y, weight) rows (or (content, y, weight) for fine-tuning) as ``n_files`` Parquet
    files: a fixed snapshot every rank reads. Which file a row lands in, and its place
    there, depend only on the row (a hash of its columns), not on how ``df`` was
    partitioned or ordered: the same rows give the same files, so a rerun trains on the
    same shards in the same order (with the seeds, the same weights)."""
    key = F.xxhash64(*columns)
    (df.select(*columns).withColumn("_key", key).repartition(n_files, "_key").sortWithinPartitions("_key")
     .drop("_key").write.mode("overwrite").parquet(folder))
    return folder


def launch(spark: SparkSession, spec: dict, workers: int) -> list[dict]:
    """Run the training loop on ``workers`` barrier tasks; results sorted by rank.

    A worker that raises fails the Spark job with its error (Spark stops the other tasks of
    the barrier stage); a worker that runs past ``spec['timeout_s']`` exits, which fails it too.
    """
    slots = spark.sparkContext.defaultParallelism
    if workers > slots:
        raise ValueError(f"training.workers={workers} needs {workers} task slots at once; this cluster has {slots}")
    log.info("training on %d barrier task(s), backend %s", workers, spec["backend"])
    rdd = spark.sparkContext.parallelize(range(workers), workers)
    out = sorted((json.loads(r) for r in rdd.barrier().mapPartitions(barrier_fn(json.dumps(spec))).collect()),
                 key=lambda r: r["rank"])
    if out[0].get("weights_npz"):
        out[0]["artifact"] = keras_from_weights(spec, out[0]["weights_npz"])
    return out


def keras_from_weights(spec: dict, npz: str) -> str:
    """The horovod environment (tf.keras 2.15) saves rank 0's weights as npz; rebuild the same
    head here with Keras 3 and save it as ``spec['artifact']`` (what every reader loads)."""
    import numpy as np

    from vistarank.training.heads import build_head

    with np.load(npz) as z:
        weights = [z[f"arr_{i}"] for i in range(len(z.files))]
    model = build_head(weights[0].shape[0], spec["n_out"], spec["kind"], tuple(spec["hidden"]), spec["dropout"],
                       spec["seed"])
    model.set_weights(weights)
    model.save(spec["artifact"])
    return spec["artifact"]
