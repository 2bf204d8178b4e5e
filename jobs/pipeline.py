"""pipeline: every stage in order, the main job.

On the embedded default it generates the demo world (unless the lakehouse already holds
the world this config describes), ingests its images, pre-trains the demo scene model
(unless a model is configured or already saved), labels every image, trains the area and
aesthetics heads (demo world), fits themes, builds the run date's candidates, trains the
re-ranker and writes the recommendations and the report. Stages whose inputs did not
change are skipped.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Callable

from pyspark.sql import SparkSession

from vistarank.config import Config
from vistarank.jobs import doctor
from vistarank.jobs import build_candidates, fit_themes, generate_world, recommend, train_head, train_reranker, ingest_images, label_images, pretrain_scene_model
from vistarank.jobs.common import parser, print_summary, start
from vistarank.runs import StageResult, run_stage
from vistarank.vision import models
from vistarank.world import generate as world

log = logging.getLogger(__name__)


def _demo_world(cfg: Config) -> bool:
    return cfg.ingest.source is None and cfg.ingest.manifest is None


STAGES: list[tuple[str, Callable, Callable[[SparkSession, Config], bool]]] = [
    # (name, run, whether it is needed)
    ("generate_world", generate_world.run,
     lambda spark, cfg: _demo_world(cfg) and not world.is_current(spark, cfg)),
    ("ingest_images", ingest_images.run, lambda spark, cfg: True),
    ("pretrain_scene_model", pretrain_scene_model.run,
     lambda spark, cfg: cfg.model.path is None and not models.model_available(models.resolve(cfg))),
    ("label_images", label_images.run, lambda spark, cfg: True),
    ("train_head", train_head.run, train_head.needed),
    ("fit_themes", fit_themes.run, fit_themes.needed),
    ("build_candidates", build_candidates.run, build_candidates.needed),
    ("train_reranker", train_reranker.run, train_reranker.needed),
    ("recommend", recommend.run, recommend.needed),
]
STAGE_NAMES = [s[0] for s in STAGES]


def run_pipeline(spark: SparkSession, cfg: Config, only: list[str] | None = None,
                 force: bool = False) -> list[StageResult]:
    results = []
    for name, fn, needed in STAGES:
        if only and name not in only:
            continue
        if not force and not needed(spark, cfg):
            log.info("stage %s: up to date, skipped", name)
            continue
        results.append(run_stage(name, fn, spark, cfg))
    return results


def main(argv: list[str] | None = None) -> int:
    p = parser("pipeline", __doc__.splitlines()[0])
    p.add_argument("--stages", default=None, help=f"comma-separated subset of: {','.join(STAGE_NAMES)}")
    p.add_argument("--force", action="store_true", help="run every selected stage even if up to date")
    p.add_argument("--doctor", action="store_true",
                   help="first run the doctor's check (what the driver and every executor see, one line of JSON "
                        "after 'doctor: '), in this submission; a forbidden path stops the run before any stage")
    doctor.add_arguments(p)
    args, cfg = start(p, argv)
    only = [s.strip() for s in args.stages.split(",")] if args.stages else None
    unknown = sorted(set(only or []) - set(STAGE_NAMES))
    if unknown:
        print(f"error: unknown stage(s) {unknown}; stages are {STAGE_NAMES}", file=sys.stderr)
        return 2
    from vistarank.session import get_spark

    spark = get_spark(cfg)
    if args.doctor:
        report = doctor.check(spark, args)
        print("doctor: " + json.dumps(report, sort_keys=True), flush=True)
        if report["forbidden_hits"]:
            return 1
    results = run_pipeline(spark, cfg, only, args.force)
    print_summary(cfg, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
