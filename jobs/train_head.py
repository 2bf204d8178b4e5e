"""train_head: transfer-learning heads on the labelling model's frozen embeddings, trained
data-parallel on Spark barrier tasks: hotel property areas (few labels, optional label
noise and its cleaning) and image aesthetics (EMD loss); evaluation; every image's area
and aesthetic score; each sale's gallery order. The steps are in
:mod:`vistarank.training.workflow`; this job orchestrates them and writes the tables."""
from __future__ import annotations

import json
import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io, runs
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.files import write_bytes
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult, record_metrics
from vistarank.training import head_task as H
from vistarank.training import workflow as W
from vistarank.training.head_task import write_manifest
from vistarank.udfs.heads import APPLY_SCHEMA, apply_fn
from vistarank.vision import models
from vistarank.vision.label import head_outputs

log = logging.getLogger(__name__)

INPUTS = [T.IMAGE_LABELS, T.IMAGE_SOURCES, T.TRUTH_IMAGES, T.IMAGES]
OUTPUTS = [T.IMAGE_AREAS, T.IMAGE_AESTHETICS, T.SALE_GALLERY, T.HEAD_EVAL]


def _fp(spark: SparkSession, cfg: Config) -> dict:
    return runs.fingerprint(spark, cfg, INPUTS, training=cfg.training.model_dump(),
                            model_version=cfg.model.model_version)


def needed(spark: SparkSession, cfg: Config) -> bool:
    """The demo world's truth provides the labels: only then, and only when inputs changed."""
    return io.exists(spark, cfg, T.TRUTH_IMAGES) and not runs.is_current(spark, cfg, "train_head", OUTPUTS,
                                                                          _fp(spark, cfg))


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("train_head")
    if cfg.training.fine_tune.enabled and cfg.model.source == "savedmodel":
        raise ValueError("training.fine_tune needs a Keras model (model.source keras_file or application), "
                         "not a SavedModel; set training.fine_tune.enabled=false")
    tc, fp = cfg.training, _fp(spark, cfg)
    mv = models.resolve(cfg).model_version
    folder = cfg.versioned_dir(tc)
    out = join(cfg.reports_dir(), "heads")
    emb = W.embeddings(spark, cfg, mv)
    truth = H.image_truth(io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True), io.read(spark, cfg, T.IMAGE_SOURCES))
    data = W.area_data(emb, truth).persist()
    report: dict = {"model_version": tc.model_version, "features": mv, "classes": W.CLASSES}

    # property areas: the label budget with noise, its cleaning, the head on the cleaned labels
    labels = W.area_labels(data, tc)
    held = labels.held
    x_held, y_held = W.features(held), held["y"].to_numpy()
    noisy_path = W.train(spark, cfg, labels.lab, "softmax", len(W.CLASSES), folder, "areas_noisy", tc.workers)
    report["areas_noisy"] = H.classification_report(y_held, W.predict(noisy_path, x_held), W.CLASSES)
    if tc.label_noise > 0:  # the same images with their true labels: what the noise costs, what cleaning recovers
        true_path = W.train(spark, cfg, W.true_labels(labels.lab), "softmax", len(W.CLASSES), folder,
                            "areas_true_labels", tc.workers)
        report["areas_true_labels"] = H.classification_report(y_held, W.predict(true_path, x_held), W.CLASSES)
    clean_pdf, report["cleaning"] = W.clean(spark, cfg, labels.lab, folder)
    area_path = W.train(spark, cfg, clean_pdf, "softmax", len(W.CLASSES), folder, "areas", tc.workers)
    p_clean = W.predict(area_path, x_held)
    report["areas_cleaned"] = H.classification_report(y_held, p_clean, W.CLASSES)
    write_bytes(join(out, "areas_confusion.png"), H.confusion_png(
        y_held, p_clean.argmax(axis=1), W.CLASSES, f"property areas (cleaned labels), held-out n={len(y_held)}"))
    if tc.fine_tune.enabled:
        report["areas_images"] = W.fine_tune(spark, cfg, clean_pdf, held, p_clean, folder)

    # aesthetics (EMD)
    aes = W.aesthetics(spark, cfg, data, held, folder)
    report["aesthetics"] = aes.report

    # apply to every image; galleries
    pred = (emb.select("image_id", F.col("x").alias("embedding"), F.col("q").alias("quality"))
            .mapInPandas(apply_fn(area_path, aes.path, W.CLASSES, aes.quality_mean, score_cap=aes.score_cap),
                         APPLY_SCHEMA)).persist()
    areas, aesthetic = head_outputs(pred, tc.model_version)
    res.add(T.IMAGE_AREAS, io.write(areas, cfg, T.IMAGE_AREAS))
    res.add(T.IMAGE_AESTHETICS, io.write(aesthetic, cfg, T.IMAGE_AESTHETICS))
    pred.unpersist()
    data.unpersist()
    # label_images applies these from now on
    write_manifest(cfg, area_path, aes.path, W.CLASSES, mv, aes.quality_mean, aes.score_cap)
    res.add(T.SALE_GALLERY, io.write(W.gallery(spark, cfg), cfg, T.SALE_GALLERY))
    report["gallery"] = W.gallery_report(io.read(spark, cfg, T.SALE_GALLERY), io.read(spark, cfg, T.IMAGE_SOURCES),
                                         io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True))
    write_bytes(join(out, "evaluation.json"), json.dumps(report, indent=1).encode())
    edf = (spark.createDataFrame([(tc.model_version, *r) for r in H.evaluation_rows(report)],
                                 "model_version string, task string, arm string, metric string, class string, "
                                 "value double, n long")
           .withColumn("evaluated_at", F.current_timestamp()))
    res.add(T.HEAD_EVAL, io.write(edf, cfg, T.HEAD_EVAL, replace_where=f"model_version = '{tc.model_version}'"))

    res.add(T.MODEL_METRICS, record_metrics(spark, cfg, tc.model_version, "train_head", W.metrics(report),
                                            len(y_held)))
    runs.mark_current(cfg, "train_head", fp)
    res.notes.extend(W.notes(report, len(y_held)))
    res.notes.append(f"evaluation: {join(out, 'evaluation.json')}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("train_head", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
