"""label_images: score every image without labels for the configured model version.

Incremental and versioned: the work list is an anti-join of images against
image_labels for this model_version; results are inserted by key (image_id,
model_version), in chunks of ``label.chunk_images`` images per Delta commit. A rerun
scores nothing; a run killed mid-way keeps its finished chunks and the rerun scores
the rest, each image exactly once; a new model version scores everything again and
never touches another version's rows (image_labels is partitioned by model_version).
"""
from __future__ import annotations

import logging
import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.udfs.scoring import make_label_udf
from vistarank.vision.models import ResolvedModel

log = logging.getLogger(__name__)


def done_ids(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    """image_ids already labelled by ``model_version`` (one partition of image_labels)."""
    return (io.read_or_empty(spark, cfg, T.IMAGE_LABELS)
            .where(F.col("model_version") == model_version).select("image_id"))


def todo_ids(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    """image_ids that have no labels for ``model_version`` yet."""
    return io.read(spark, cfg, T.IMAGES).select("image_id").join(done_ids(spark, cfg, model_version),
                                                                  "image_id", "left_anti")


def restrict_to_todo(images: DataFrame, todo: DataFrame, n_done: int, n_todo: int, broadcast_max: int) -> DataFrame:
    """The images to score, without shuffling image bytes where it can be avoided:
    nothing labelled yet (first run, new version): every image, no join; few to do (the
    nightly increment): a broadcast semi-join on the ids; else a shuffle semi-join."""
    if n_done == 0:
        return images
    if n_todo <= broadcast_max:
        return images.join(F.broadcast(todo), "image_id", "left_semi")
    return images.join(todo, "image_id", "left_semi")


def n_chunks(n_todo: int, chunk_images: int) -> int:
    return max(1, math.ceil(n_todo / chunk_images))


def chunk_filter(i: int, n: int) -> F.Column:
    return F.pmod(F.xxhash64("image_id"), F.lit(n)) == i


def scored(images: DataFrame, cfg: Config, label_udf) -> DataFrame:
    """images(image_id, content) through the labelling UDF: image_id and the UDF's columns
    (labels, embedding, and the heads' outputs when they are applied)."""
    lc = cfg.label
    if lc.min_partitions and images.rdd.getNumPartitions() < lc.min_partitions:
        images = images.repartition(lc.min_partitions)
    # Scored straight off the scan: a shuffle of the image bytes before the UDF costs more
    # than the scoring itself for a light model (benchmarks/score_throughput.py).
    return (images
            .select("image_id", label_udf(F.col("content")).alias("r"))
            .select("image_id", "r.*")
            .where(F.col("label_names").isNotNull()))  # undecodable now: left for a later run


def head_outputs(scored_df: DataFrame, heads_version: str) -> tuple[DataFrame, DataFrame]:
    """image_areas and image_aesthetics rows from a scored DataFrame whose UDF applied the heads."""
    v = F.lit(heads_version).alias("model_version")
    return (scored_df.select("image_id", v, "area", F.col("area_probability").alias("probability"),
                             F.col("area_probabilities").alias("probabilities")),
            scored_df.select("image_id", v, "distribution", "score"))


def score(images: DataFrame, rm: ResolvedModel, cfg: Config, label_udf=None) -> DataFrame:
    """images(image_id, content) to image_labels rows for model ``rm``."""
    lc = cfg.label
    udf = label_udf or make_label_udf(rm.to_json(), lc.top_k, lc.batch_size, lc.full_probabilities)
    return to_labels(scored(images, cfg, udf), rm)


def to_labels(scored_df: DataFrame, rm: ResolvedModel) -> DataFrame:
    """image_labels rows from a scored DataFrame."""
    return scored_df.select(
        "image_id",
        F.lit(rm.model_version).alias("model_version"),
        F.transform(F.arrays_zip("label_names", "label_probs"),
                    lambda z: F.struct(z["label_names"].alias("label"),
                                       z["label_probs"].alias("probability"))).alias("labels"),
        "embedding", "probabilities",
        F.current_timestamp().alias("scored_at"))
