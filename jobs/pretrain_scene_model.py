"""pretrain_scene_model (demo only): train the small scene model that stands in for Places365."""
from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult, record_metrics
from vistarank.vision import scene_model


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("pretrain_scene_model")
    metrics = scene_model.train(cfg)
    version = cfg.model.model_version
    res.add(T.MODEL_METRICS, record_metrics(spark, cfg, version, "pretrain_scene_model",
                                            {k: metrics[k] for k in ("top1", "top5", "tags_recall_at_5", "element_ap",
                                                                      "top1_share")}, metrics["n_holdout"]))
    res.notes.append(f"scene model {version} ({metrics['n_tags']} tags): held-out scene top-1 {metrics['top1']:.3f}, "
                     f"tags recall@5 {metrics['tags_recall_at_5']:.3f}, element mAP {metrics['element_ap']:.3f}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("pretrain_scene_model", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
