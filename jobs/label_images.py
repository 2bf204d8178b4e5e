"""label_images: top-k scene labels and an embedding per image for the configured model version."""
from __future__ import annotations

import logging
import sys
import time

from pyspark.sql import SparkSession

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult
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
    if n_todo == 0:
        res.add(T.IMAGE_LABELS, 0)
        return res
    lc = cfg.label
    udf = make_label_udf(rm.to_json(), lc.top_k, lc.batch_size, lc.full_probabilities)  # once per job
    images = io.read(spark, cfg, T.IMAGES).select("image_id", "content")
    for i in range(n):
        t0 = time.perf_counter()
        chunk = images.where(label.chunk_filter(i, n)) if n > 1 else images
        chunk = label.restrict_to_todo(chunk, todo, n_done, n_todo, lc.broadcast_max_ids)
        rows = io.insert_new(label.score(chunk, rm, cfg, udf), cfg, T.IMAGE_LABELS)
        res.add(T.IMAGE_LABELS, rows)
        dt = time.perf_counter() - t0
        log.info("chunk %d/%d: %d images in %.1fs (%.0f images/s); %d of %d done", i + 1, n, rows, dt,
                 rows / max(dt, 1e-9), res.outputs[T.IMAGE_LABELS.name], n_todo)
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("label_images", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
