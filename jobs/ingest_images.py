"""ingest_images: new image files to images, image_sources and images_rejected (incremental)."""
from __future__ import annotations

import sys

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for
from vistarank.runs import StageResult
from vistarank.vision import ingest


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("ingest_images")
    ingest.migrate_images_layout(spark, cfg)
    checked = ingest.plan(spark, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    images, sources, rejected = ingest.split_checked(checked, F.current_timestamp())
    images = ingest.flag_near_duplicates(images, ingest.existing_images(spark, cfg), cfg.ingest.phash_max_distance)
    # images first: a source row never points at an image that is not stored
    res.add(T.IMAGES, io.insert_new(images, cfg, T.IMAGES))
    res.add(T.IMAGE_SOURCES, io.insert_new(sources, cfg, T.IMAGE_SOURCES))
    res.add(T.IMAGES_REJECTED, io.insert_new(rejected, cfg, T.IMAGES_REJECTED))
    checked.unpersist()
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("ingest_images", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
