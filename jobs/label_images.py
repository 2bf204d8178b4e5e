"""label_images: top-k scene labels and an embedding per image for the configured model version;
when heads are registered for that model version (train_head), each image's property area
and aesthetic score in the same pass (image_areas, image_aesthetics)."""
from __future__ import annotations

import json
import logging
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult
from vistarank.training.head_task import load_manifest
from vistarank.udfs.heads import APPLY_SCHEMA, apply_fn
from vistarank.udfs.scoring import make_label_udf
from vistarank.vision import ingest, label, models

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("label_images")
    rm = models.resolve(cfg)
    if not models.model_available(rm):
        raise FileNotFoundError(
            f"model {rm.model_version}: {rm.path} or {rm.labels_path} does not exist; set model.path/model.labels, "
            "or run pretrain_scene_model for the demo model")
    ingest.migrate_images_layout(spark, cfg)
    # ids and partition values only, once: one row per ingest part sizes the chunks; small counts pick the join
    todo, unit_counts, every_image = label.work_list(spark, cfg, rm.model_version)
    n_todo = sum(c for _, c in unit_counts)
    chunks = label.plan_chunks(unit_counts, cfg.label.chunk_images)
    n = len(chunks)
    log.info("%s: %d images to score in %d chunk(s) over %d ingest part(s)", rm.model_version, n_todo, n,
             len(unit_counts))
    heads = load_manifest(cfg, rm.model_version)
    if n_todo == 0:
        res.add(T.IMAGE_LABELS, 0)
        if heads:
            backfill_heads(spark, cfg, rm.model_version, heads, res)
        return res
    lc = cfg.label
    # Arrow batches of image bytes bounded in bytes too, not only in rows: a batch of large files
    # could otherwise exceed what one Arrow binary column holds (2 GiB) or the worker's memory.
    # A runtime SQL setting, so it applies on an existing session (Databricks, spark-submit) too.
    spark.conf.set("spark.sql.execution.arrow.maxBytesPerBatch", str(lc.arrow_max_bytes))
    manifest = json.loads(heads) if heads else {}
    heads_version = manifest.get("model_version")
    if heads:
        log.info("applying heads %s in the same pass", heads_version)
    if manifest.get("quality_mean") is not None and not lc.quality_size:
        log.warning("heads %s read quality statistics but label.quality_size is 0: new images get average-quality "
                    "aesthetic scores", heads_version)
    udf = make_label_udf(rm.to_json(), lc.top_k, lc.batch_size, lc.full_probabilities, heads,
                         threads=lc.decode_threads, precision=lc.precision,
                         quality_size=lc.quality_size)  # once per job
    images = io.read(spark, cfg, T.IMAGES)
    # the statistics ingest computed (null in a table written before it did: the UDF computes those)
    images = images.select("image_id", "content", label.quality_column(images), "ingest_date")
    for i, plan in enumerate(chunks):
        t0 = time.perf_counter()
        chunk = label.chunk_images(images, plan).select("image_id", "content", "quality")
        chunk = label.restrict_to_todo(chunk, todo.select("image_id"), every_image, n_todo, lc.broadcast_max_ids)
        # one scoring of the chunk feeds several tables (labels, failures, heads): materialised, lineage
        # cut, before the first write (a cache would be recomputed once image_labels changes: the work
        # list reads it)
        scored = label.scored(chunk, cfg, udf).localCheckpoint(eager=True)
        # Appended, not merged: every row is an id of the work list, which has neither labels nor a
        # failure for this version, so a key check would only re-read the table's ids (every chunk,
        # every night). One run per model version at a time (the bundle's jobs run one at a time);
        # a killed run's committed chunks are off the rerun's work list.
        # merge_schema: a table written before image_labels had a quality column gains it
        rows = io.write(label.to_labels(scored, rm), cfg, T.IMAGE_LABELS, mode="append", merge_schema=True)
        res.add(T.IMAGE_LABELS, rows)
        failed = label.failures(scored, rm)
        if not failed.isEmpty():
            n_failed = io.write(failed, cfg, T.IMAGE_LABEL_FAILURES, mode="append")
            res.add(T.IMAGE_LABEL_FAILURES, n_failed)
            log.warning("chunk %d/%d: %d image(s) could not be scored by %s (image_label_failures: not retried "
                        "for this model version)", i + 1, n, n_failed, rm.model_version)
        if heads:
            # by key: labels dropped by hand to relabel a version leave these heads' rows behind
            areas, aesthetics = label.head_outputs(scored, heads_version)
            res.add(T.IMAGE_AREAS, io.insert_new(areas, cfg, T.IMAGE_AREAS))
            res.add(T.IMAGE_AESTHETICS, io.insert_new(aesthetics, cfg, T.IMAGE_AESTHETICS))
        dt = time.perf_counter() - t0
        log.info("chunk %d/%d: %d images in %.1fs (%.0f images/s); %d of %d done", i + 1, n, rows, dt,
                 rows / max(dt, 1e-9), res.outputs[T.IMAGE_LABELS.name], n_todo)
    if heads:
        backfill_heads(spark, cfg, rm.model_version, heads, res)
    return res


def backfill_heads(spark: SparkSession, cfg: Config, features: str, heads: str, res: StageResult) -> None:
    """Images labelled by ``features`` that lack an area or an aesthetic score for the registered
    heads (labelled before the heads existed, or a run killed between the two head tables'
    commits): the heads on their stored embeddings. Each table's missing ids are found on ids
    alone; only the missing images' embeddings are read. Usually nothing to do."""
    m = json.loads(heads)
    version = F.col("model_version") == m["model_version"]
    labels = io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == features)
    missing = [labels.select("image_id").join(io.read_or_empty(spark, cfg, t).where(version).select("image_id"), "image_id",
                             "left_anti") for t in (T.IMAGE_AREAS, T.IMAGE_AESTHETICS)]
    # ids only, materialised with the lineage cut: the first write changes what they read
    todo = missing[0].unionByName(missing[1]).distinct().localCheckpoint()
    n = todo.count()
    if n == 0:
        return
    log.info("heads %s: %d labelled image(s) lack an area or a score; applying the heads to their embeddings",
             m["model_version"], n)
    ids = F.broadcast(todo) if n <= cfg.label.broadcast_max_ids else todo
    emb = labels.select("image_id", "embedding", label.quality_column(labels)).join(ids, "image_id", "left_semi")
    pred = (emb.mapInPandas(apply_fn(m["area"], m["aesthetics"], m["classes"], m.get("quality_mean"),
                                     score_cap=m.get("score_cap")), APPLY_SCHEMA)
            .localCheckpoint())
    areas, aesthetics = label.head_outputs(pred, m["model_version"])
    # inserted by key: the table that already has an image's row keeps it
    res.add(T.IMAGE_AREAS, io.insert_new(areas, cfg, T.IMAGE_AREAS))
    res.add(T.IMAGE_AESTHETICS, io.insert_new(aesthetics, cfg, T.IMAGE_AESTHETICS))


def main(argv: list[str] | None = None) -> int:
    return main_for("label_images", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
