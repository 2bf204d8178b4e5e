"""ingest_images: new image files to images, image_sources and images_rejected (incremental)."""
from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("ingest_images")
    ingest.migrate_images_layout(spark, cfg)
    listing, checked = ingest.plan(spark, cfg)
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    # the night's images in parts of about label.chunk_images (partition ingest_part), so that
    # labelling a large day reads each part once; counted on the persisted rows
    parts = ingest.n_parts(checked.where("ok").count(), cfg.label.chunk_images)
    images, sources, rejected = ingest.split_checked(checked, F.current_timestamp(), parts)
    # Appended, each after a check of its own: images not in the catalogue (their ids, with the
    # near-duplicate search, in one scan of the catalogue's ids and hashes); sources and rejections
    # of URIs not known within the listing's window (new_files). Images first: a source row never
    # points at an image that is not stored, and a run killed in between finds its images stored.
    # One ingest per lakehouse at a time (the bundle's jobs run one at a time).
    images = ingest.only_new_images(images, ingest.existing_images(spark, cfg), cfg.ingest.phash_max_distance)
    # the quality statistics, on the new images only; merge_schema: an images table written before
    # it had a quality column gains it
    images = ingest.with_quality(images, cfg)
    res.add(T.IMAGES, io.write(images, cfg, T.IMAGES, mode="append", merge_schema=True))
    res.add(T.IMAGE_SOURCES, io.write(sources, cfg, T.IMAGE_SOURCES, mode="append"))
    res.add(T.IMAGES_REJECTED, io.write(rejected, cfg, T.IMAGES_REJECTED, mode="append"))
    checked.unpersist()
    if listing.position is not None:  # last: a run killed before this re-reads its window, harmlessly
        spark_row = [(listing.source, listing.position, res.outputs.get(T.IMAGE_SOURCES.name, 0)
                      + res.outputs.get(T.IMAGES_REJECTED.name, 0))]
        log_row = spark.createDataFrame(spark_row, "source string, position date, files long").withColumn(
            "logged_at", F.current_timestamp())
        io.write(log_row, cfg, T.INGEST_LOG, mode="append")
        log.info("%s: read up to %s; the next run starts at %s minus %d day(s)", listing.source, listing.position,
                 listing.position, cfg.ingest.lookback_days)
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("ingest_images", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
