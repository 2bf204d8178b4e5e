"""One local Spark + Delta session for the whole test run, and a tiny demo world."""
from __future__ import annotations

import os

import pytest

from vistarank.config import Config, load_config

TINY = [
    "world.size=tiny",
    "spark.show_progress=false",
    "spark.shuffle_partitions=2",
    "spark.master=local[2]",
    "spark.driver_memory=3g",
    "ingest.partitions=2",
    "label.batch_size=16",
    "scene_model.images_per_class=30",
    "scene_model.holdout_per_class=4",
    "scene_model.epochs=12",
    "scene_model.width=16",  # 117 sigmoid tags at 48 px: width 8 gets the scene right for 30% of held-out renders, 16 for 65%
    "model.input_size=48",
    # the tiny world has 14 days: 4 of history, then 3 training, 3 validation, 3 evaluation days
    "rerank.warmup_days=4",
    "rerank.validation_days=3",
    "rerank.eval_days=3",
    "recsys.candidates_sample=0.5",  # half the active users' engine scores kept for monitoring
    "rerank.reg_params=[0.0, 0.01]",
    "rerank.elastic_net_params=[0.0, 1.0]",
    "rerank.review_users=2",
    "training.labels_per_class=8",
    "training.aesthetic_labels=60",
    "training.epochs=25",
    "training.folds=2",
    "training.batch_size=8",
    "training.hidden=[64, 32]",
    "training.fine_tune.head_epochs=3",
    "training.fine_tune.top_epochs=3",
    "training.fine_tune.batch_size=8",
    "training.fine_tune.eval_max_rows=120",
]


def make_cfg(root: str, *extra: str) -> Config:
    return load_config("local", TINY + [f"lakehouse.root={root}"] + list(extra))


@pytest.fixture(scope="session")
def lakehouse(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lakehouse"))


@pytest.fixture(scope="session")
def cfg(lakehouse) -> Config:
    return make_cfg(lakehouse)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from vistarank.session import get_spark

    root = str(tmp_path_factory.mktemp("spark"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    session = get_spark(make_cfg(root))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_world(spark, cfg) -> Config:
    """The tiny world generated once into the session lakehouse."""
    from vistarank.jobs import generate_world

    generate_world.run(spark, cfg)
    return cfg


@pytest.fixture(scope="session")
def ingested(spark, tiny_world) -> Config:
    from vistarank.jobs import ingest_images

    ingest_images.run(spark, tiny_world)
    return tiny_world


@pytest.fixture(scope="session")
def labelled(spark, ingested) -> Config:
    """The tiny world with the demo scene model trained and every image labelled."""
    from vistarank.jobs import pipeline

    pipeline.run_pipeline(spark, ingested, only=["pretrain_scene_model", "label_images"])
    return ingested


@pytest.fixture(scope="session")
def themed(spark, labelled) -> Config:
    """The labelled tiny world with themes fitted."""
    from vistarank.jobs import fit_themes

    fit_themes.run(spark, labelled)
    return labelled


@pytest.fixture(scope="session")
def recommended(spark, themed) -> Config:
    """The tiny world through every stage: candidates, re-ranker, recommendations, report."""
    from vistarank.jobs import pipeline

    pipeline.run_pipeline(spark, themed, only=["build_candidates", "train_reranker", "recommend"])
    return themed
