"""pretrain_scene_model (demo only): train the small scene model that stands in for Places365."""
from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult
from vistarank.vision import scene_model


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("pretrain_scene_model")
    metrics = scene_model.train(cfg)
    rows = [(cfg.model.model_version, "pretrain_scene_model", k, float(metrics[k]), metrics["n_holdout"])
            for k in ("top1", "top5")]
    df = (spark.createDataFrame(rows, "model_version string, stage string, metric string, value double, n long")
          .withColumn("recorded_at", F.current_timestamp()))
    version = cfg.model.model_version
    res.add(T.MODEL_METRICS, io.write(
        df, cfg, T.MODEL_METRICS,
        replace_where=f"model_version = '{version}' AND stage = 'pretrain_scene_model'"))
    res.notes.append(f"scene model {version}: held-out top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("pretrain_scene_model", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
