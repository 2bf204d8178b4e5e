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
from vistarank.vision import label, models

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("label_images")
    rm = models.resolve(cfg)
    if not models.model_available(rm):
        raise FileNotFoundError(
            f"model {rm.model_version}: {rm.path} or {rm.labels_path} does not exist; set model.path/model.labels, "
            "or run pretrain_scene_model for the demo model")
    todo = label.todo_ids(spark, cfg, rm.model_version)
    n_todo = todo.count()  # ids only: small actions that size the chunks and pick the join
    n_done = label.done_ids(spark, cfg, rm.model_version).count() if n_todo else 0
    n = label.n_chunks(n_todo, cfg.label.chunk_images)
    log.info("%s: %d images to score in %d chunk(s)", rm.model_version, n_todo, n if n_todo else 0)
    heads = load_manifest(cfg, rm.model_version)
    if n_todo == 0:
        res.add(T.IMAGE_LABELS, 0)
        if heads:
            backfill_heads(spark, cfg, rm.model_version, heads, res)
        return res
    lc = cfg.label
    heads_version = json.loads(heads)["model_version"] if heads else None
    if heads:
        log.info("applying heads %s in the same pass", heads_version)
    udf = make_label_udf(rm.to_json(), lc.top_k, lc.batch_size, lc.full_probabilities, heads)  # once per job
    images = io.read(spark, cfg, T.IMAGES).select("image_id", "content")
    for i in range(n):
        t0 = time.perf_counter()
        chunk = images.where(label.chunk_filter(i, n)) if n > 1 else images
        chunk = label.restrict_to_todo(chunk, todo, n_done, n_todo, lc.broadcast_max_ids)
        scored = label.scored(chunk, cfg, udf)
        if heads:  # one scoring of the chunk feeds three tables: materialised, lineage cut, before the
            # first write (a cache would be recomputed once image_labels changes: its work list reads it)
            scored = scored.localCheckpoint(eager=True)
        rows = io.insert_new(label.to_labels(scored, rm), cfg, T.IMAGE_LABELS)
        res.add(T.IMAGE_LABELS, rows)
        if heads:
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
    """Images labelled by ``features`` that have no area for the registered heads yet (labelled
    before the heads existed, or a cached chunk lost with its executor): the heads on their
    stored embeddings. An anti-join on ids; usually nothing to do."""
    m = json.loads(heads)
    done = io.read_or_empty(spark, cfg, T.IMAGE_AREAS).where(F.col("model_version") == m["model_version"])
    todo = (io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == features)
            .select("image_id", "embedding").join(done.select("image_id"), "image_id", "left_anti"))
    # materialised with its lineage cut: the work list reads image_areas, which the first write changes
    pred = todo.mapInPandas(apply_fn(m["area"], m["aesthetics"], m["classes"]), APPLY_SCHEMA).localCheckpoint()
    if not pred.isEmpty():
        areas, aesthetics = label.head_outputs(pred, m["model_version"])
        res.add(T.IMAGE_AREAS, io.insert_new(areas, cfg, T.IMAGE_AREAS))
        res.add(T.IMAGE_AESTHETICS, io.insert_new(aesthetics, cfg, T.IMAGE_AESTHETICS))


def main(argv: list[str] | None = None) -> int:
    return main_for("label_images", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
