"""The pipeline's orchestration: the session's scene model and labels, and a rerun that
redoes nothing. The whole pipeline from a fresh model version is the slow test at the end
(``make test-all``); the default suite runs every stage anyway, through the session
fixtures and on the standalone cluster (tests/test_cluster.py)."""
import json
import os

import pytest
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.jobs import pipeline
from vistarank.vision import models


def _pretrained_and_labelled(spark, cfg) -> None:
    rm = models.resolve(cfg)
    assert models.model_available(rm)
    with open(os.path.join(models.demo_model_dir(cfg), "metrics.json")) as fh:
        metrics = json.load(fh)
    assert metrics["n_holdout"] == 24 * cfg.scene_model.holdout_per_class
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0
    # held-out renders are scored in inference mode: a model right only in training mode
    # (BatchNorm statistics that never converged) fails here, far below its training accuracy
    assert metrics["top5"] >= 0.6
    labels = io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == rm.model_version)
    assert labels.count() == io.read(spark, cfg, T.IMAGES).count()
    # every labelled image has its quality statistics (label.quality_size), finite
    assert labels.where(~F.coalesce(F.size("quality") == 45, F.lit(False))
                        | F.exists("quality", lambda v: F.isnan(v))).count() == 0
    recorded = (io.read(spark, cfg, T.MODEL_METRICS)
                .where((F.col("metric") == "top1") & (F.col("model_version") == rm.model_version)).first())
    assert abs(recorded.value - metrics["top1"]) < 1e-9
    # the scene model learned something: its top-5 on the world's own images beats chance (5/24)
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    hits = (labels.join(io.read(spark, cfg, T.IMAGE_SOURCES), "image_id").join(truth, "uri")
            .select(F.exists("labels", lambda x: x["label"] == F.col("category")).cast("double").alias("hit"))
            .agg(F.avg("hit")).first()[0])
    assert hits > 0.4


@pytest.mark.pipeline
def test_the_pipeline_pretrains_the_scene_model_then_labels_every_image(spark, labelled):
    # the session's fixture ran pipeline.run_pipeline(only=[pretrain_scene_model, label_images])
    _pretrained_and_labelled(spark, labelled)


@pytest.mark.pipeline
def test_a_second_run_of_the_pipeline_redoes_nothing(spark, recommended):
    cfg = recommended
    # every stage but train_head (its own test runs it, and proves it is then current); the
    # first run brings up to date whatever other tests rebuilt since the fixture ran
    stages = [s for s in pipeline.STAGE_NAMES if s != "train_head"]
    pipeline.run_pipeline(spark, cfg, only=stages)
    again = pipeline.run_pipeline(spark, cfg, only=stages)
    # ingest and label always run (they read what is new: nothing); the rest are current
    assert [r.stage for r in again] == ["ingest_images", "label_images"]
    assert all(v == 0 for r in again for v in r.outputs.values())
    runs = io.read(spark, cfg, T.STAGE_RUNS)
    assert runs.where("status = 'ok' AND stage = 'label_images'").count() >= 2


@pytest.mark.slow
def test_the_whole_pipeline_from_a_fresh_model_version(spark, ingested):
    # its own model version: other tests may have trained the default one already
    cfg = ingested.model_copy(update={"model": ingested.model.model_copy(update={"version": "pipeline-test"})})
    results = pipeline.run_pipeline(spark, cfg)
    ran = [r.stage for r in results]
    # the world is current
    assert ran == ["ingest_images", "pretrain_scene_model", "label_images", "train_head", "fit_themes", "build_candidates",
                   "train_reranker", "recommend"]
    _pretrained_and_labelled(spark, cfg)
    # the stage's fine-tuning comparison (the default suite's train_head test leaves it out)
    from test_training import fine_tune_report_checks

    with open(os.path.join(cfg.reports_dir(), "heads", "evaluation.json")) as fh:
        report = json.load(fh)
    fine_tune_report_checks(report, io.read(spark, cfg, T.HEAD_EVAL)
                            .where(F.col("model_version") == cfg.training.model_version).toPandas())
    # everything is up to date now: a second run redoes nothing
    again = pipeline.run_pipeline(spark, cfg)
    # train_head, fit_themes, build_candidates, train_reranker, recommend: inputs unchanged
    assert [r.stage for r in again] == ["ingest_images", "label_images"]
    assert all(v == 0 for r in again for v in r.outputs.values())
