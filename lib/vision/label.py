"""label_images: score every image without labels for the configured model version.

Incremental and versioned: the work list is an anti-join of images against
image_labels for this model_version, on ids and ingest days only, computed once per run;
results are appended in chunks of whole ingest parts (about ``label.chunk_images``
images per Delta commit). ``images`` is partitioned by ingest day and, within a day, by
hash part (``ingest_part``, about ``label.chunk_images`` images each, sized by the ingest
that wrote the day), so a chunk reads only its parts' bytes: a nightly increment reads that
night's images, a new model version reads each image once, however large a day is. A rerun scores nothing; a run killed mid-way keeps its finished
chunks and the rerun scores the rest, each image exactly once; an image the model
cannot decode gets an image_label_failures row with the reason and is not retried for
that version; a new model version scores everything again and never touches another
version's rows (image_labels is partitioned by model_version).
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.udfs.scoring import make_label_udf
from vistarank.vision.ingest import n_parts
from vistarank.vision.models import ResolvedModel

log = logging.getLogger(__name__)


def done_ids(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    """image_ids already labelled by ``model_version`` (one partition of image_labels)."""
    return (io.read_or_empty(spark, cfg, T.IMAGE_LABELS)
            .where(F.col("model_version") == model_version).select("image_id"))


def failed_ids(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    """image_ids that ``model_version`` could not score (not retried for that version)."""
    return (io.read_or_empty(spark, cfg, T.IMAGE_LABEL_FAILURES)
            .where(F.col("model_version") == model_version).select("image_id"))


def todo_ids(spark: SparkSession, cfg: Config, model_version: str) -> DataFrame:
    """(image_id, ingest_date, ingest_part) of the images that have neither labels nor a
    recorded failure for ``model_version``: a read of ids and partition values only, never
    of image bytes."""
    return (io.read(spark, cfg, T.IMAGES).select("image_id", "ingest_date", "ingest_part")
            .join(done_ids(spark, cfg, model_version), "image_id", "left_anti")
            .join(failed_ids(spark, cfg, model_version), "image_id", "left_anti"))


def work_list(spark: SparkSession, cfg: Config, model_version: str) -> tuple[DataFrame, list[tuple], bool]:
    """The work list, computed once: (todo ids and parts, materialised with the lineage cut;
    images to do per ingest part, ``[((ingest_date, ingest_part), count)]``; whether every
    image is to do).

    One ids-only pass over images, image_labels and image_label_failures. The materialised
    ids are what every chunk joins on, so the chunks' writes (which change what the anti-join
    would read) neither re-read the ids nor change the list. "Every image is to do" (a first
    run, a new model version) compares the count with the images table's row count, which
    Delta answers from its log without reading data."""
    todo = todo_ids(spark, cfg, model_version).localCheckpoint(eager=True)
    unit_counts = [((r["ingest_date"], r["ingest_part"]), r["count"])
                   for r in todo.groupBy("ingest_date", "ingest_part").count().collect()]  # one row per part
    n_todo = sum(c for _, c in unit_counts)
    every = n_todo > 0 and n_todo == io.read(spark, cfg, T.IMAGES).count()
    return todo, unit_counts, every


def restrict_to_todo(images: DataFrame, todo: DataFrame, every_image: bool, n_todo: int,
                     broadcast_max: int) -> DataFrame:
    """The images to score, without shuffling image bytes where it can be avoided:
    every image to do (first run, new version): no join; few to do (the nightly
    increment): a broadcast semi-join on the ids; else a shuffle semi-join."""
    if every_image:
        return images
    if n_todo <= broadcast_max:
        return images.join(F.broadcast(todo), "image_id", "left_semi")
    return images.join(todo, "image_id", "left_semi")


def chunk_filter(i: int, n: int) -> F.Column:
    """Split ``i`` of ``n`` of an ingest part (a hash with its own seed: ``ingest_part`` is
    ``xxhash64(image_id)`` modulo the day's parts, which this must not repeat)."""
    return F.pmod(F.xxhash64(F.lit("label-split"), "image_id"), F.lit(n)) == i


Chunk = tuple[list, int, int]  # (ingest units (ingest_date, ingest_part), split, splits)


def plan_chunks(unit_counts: list[tuple], chunk_images: int) -> list[Chunk]:
    """Chunks of the work list as whole ingest units, ``(ingest_date, ingest_part)``
    partitions of ``images``, packed in order up to ``chunk_images`` images each, so that
    every chunk reads only its units' bytes and each unit is read once. Ingest sizes parts
    at ``chunk_images`` on average, and hashes vary: a unit of up to twice ``chunk_images``
    is one chunk of its own. A larger unit (written when ``label.chunk_images`` was larger)
    is split by hash, each split reading that unit again (logged)."""
    chunks: list[Chunk] = []
    units: list = []
    n = 0

    def flush() -> None:  # the units packed so far become a chunk (order kept)
        nonlocal units, n
        if units:
            chunks.append((units, 0, 1))
            units, n = [], 0

    order = sorted(unit_counts, key=lambda uc: (uc[0][0] is None, uc[0][0] or 0, uc[0][1] or 0))
    for unit, count in order:
        if count > 2 * chunk_images:
            log.warning("ingest part %s holds %d images to score, above label.chunk_images (%d): read once per "
                        "split", unit, count, chunk_images)
            flush()
            splits = n_parts(count, chunk_images)
            chunks += [([unit], i, splits) for i in range(splits)]
        elif count > chunk_images:  # a part a little above the size: alone, read once
            flush()
            chunks.append(([unit], 0, 1))
        else:
            if n + count > chunk_images:
                flush()
            units.append(unit)
            n += count
    flush()
    return chunks


def chunk_images(images: DataFrame, chunk: Chunk) -> DataFrame:
    """The rows of ``images`` in one chunk: a filter on the partition columns (Delta reads only
    those units' files), then the hash split when a unit is split."""
    units, part, parts = chunk
    by_day: dict = {}
    for day, p in units:
        by_day.setdefault(day, []).append(p)
    cond = F.lit(False)
    for day, ps in by_day.items():  # ingest_part is never null (a hash); ingest_date may be
        on_day = F.col("ingest_date").isNull() if day is None else F.col("ingest_date") == F.lit(day)
        cond = cond | (on_day & F.col("ingest_part").isin(ps))
    df = images.where(cond)
    return df.where(chunk_filter(part, parts)) if parts > 1 else df


def scored(images: DataFrame, cfg: Config, label_udf) -> DataFrame:
    """images(image_id, content[, quality]) through the labelling UDF: image_id and the UDF's
    columns (labels, embedding, the quality statistics (the image's own, else computed), the
    heads' outputs when they are applied, and for an image that could not be decoded,
    ``failure`` and ``failure_detail`` instead)."""
    lc = cfg.label
    if lc.min_partitions and images.rdd.getNumPartitions() < lc.min_partitions:
        images = images.repartition(lc.min_partitions)
    # Scored straight off the scan: a shuffle of the image bytes before the UDF costs more
    # than the scoring itself for a light model (benchmarks/score_throughput.py).
    return (images
            .select("image_id", label_udf(F.col("content"), quality_column(images)).alias("r"))
            .select("image_id", "r.*"))


def quality_column(df: DataFrame):
    """The ``quality`` column of images or image_labels, or a null one for a table written
    before it had one."""
    if "quality" in df.columns:
        return F.col("quality")
    return F.lit(None).cast("array<float>").alias("quality")


def head_outputs(scored_df: DataFrame, heads_version: str) -> tuple[DataFrame, DataFrame]:
    """image_areas and image_aesthetics rows from a scored DataFrame whose UDF applied the heads."""
    v = F.lit(heads_version).alias("model_version")
    return (scored_df.select("image_id", v, "area", F.col("area_probability").alias("probability"),
                             F.col("area_probabilities").alias("probabilities")),
            scored_df.select("image_id", v, "distribution", "score"))


def score(images: DataFrame, rm: ResolvedModel, cfg: Config, label_udf=None) -> DataFrame:
    """images(image_id, content) to image_labels rows for model ``rm``."""
    lc = cfg.label
    udf = label_udf or make_label_udf(rm.to_json(), lc.top_k, lc.batch_size, lc.full_probabilities,
                                      threads=lc.decode_threads, precision=lc.precision,
                                      quality_size=lc.quality_size)
    return to_labels(scored(images, cfg, udf), rm)


def failures(scored_df: DataFrame, rm: ResolvedModel) -> DataFrame:
    """image_label_failures rows: the images of a scored DataFrame that could not be scored."""
    return (scored_df.where(F.col("failure").isNotNull())
            .select("image_id", F.lit(rm.model_version).alias("model_version"), F.col("failure").alias("reason"),
                    F.col("failure_detail").alias("detail"), F.current_timestamp().alias("failed_at")))


def to_labels(scored_df: DataFrame, rm: ResolvedModel) -> DataFrame:
    """image_labels rows from a scored DataFrame (the images that were scored)."""
    return scored_df.where(F.col("label_names").isNotNull()).select(
        "image_id",
        F.lit(rm.model_version).alias("model_version"),
        F.transform(F.arrays_zip("label_names", "label_probs"),
                    lambda z: F.struct(z["label_names"].alias("label"),
                                       z["label_probs"].alias("probability"))).alias("labels"),
        "embedding", "probabilities", "quality",
        F.current_timestamp().alias("scored_at"))
