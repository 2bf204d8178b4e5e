"""ingest_images: files to the images / image_sources / images_rejected tables.

- Listing uses Spark's binaryFile source (note: Spark's file sources never list zero-byte
  files, so an empty file in a tree is not seen; from a manifest it is rejected as ``empty``) with only path and length selected, so no
  file content is read to list; files already ingested or rejected are skipped by an
  anti-join on the URI (incremental).
- Each new file is read, checked and hashed in the workers (udfs.images). Exact
  duplicates share an image_id (sha256 of the bytes) and collapse into one image; every
  (sale, file) link is kept in image_sources.
- Near-duplicates: a 256-bit perceptual hash, searched by multi-index hashing
  (:mod:`vistarank.udfs.near_dup`): bands of at least 40 bits, each new image looked up
  under every key within ``d // bands`` bits of each band, so every pair within the
  Hamming threshold ``d`` is found and the candidates per image do not grow with the
  catalogue; the distance is then checked on the whole hash.
"""
from __future__ import annotations

import logging
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.udfs.images import CHECK_SCHEMA, PHASH_BITS, check_files_fn
from vistarank.udfs.near_dup import KEYS_SCHEMA, keys_fn, plan_bands

log = logging.getLogger(__name__)


def list_tree(spark: SparkSession, root: str, extensions: list[str]) -> DataFrame:
    """Every file under ``root``: uri, sale_id (its folder's name), supported (by extension)."""
    files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
             .select(F.col("path").alias("uri")))
    exts = [e.lower().lstrip(".") for e in extensions]
    ext = F.lower(F.regexp_extract("uri", r"\.([^./]+)$", 1))
    return files.select(
        "uri",
        F.element_at(F.split("uri", "/"), -2).alias("sale_id"),
        ext.isin(exts).alias("supported"))


def read_manifest(spark: SparkSession, path: str) -> DataFrame:
    """A manifest with sale_id and uri: CSV (with header), Parquet or a Delta folder."""
    if path.endswith(".csv"):
        df = spark.read.option("header", "true").csv(path)
    elif path.endswith(".parquet"):
        df = spark.read.parquet(path)
    else:
        df = spark.read.format("delta").load(path)
    missing = {"sale_id", "uri"} - set(df.columns)
    if missing:
        raise io.SchemaError(f"manifest {path}: missing columns {sorted(missing)} (have {df.columns})")
    return df.select(F.col("uri").cast("string"), F.col("sale_id").cast("string"),
                     F.lit(True).alias("supported"))


def list_sources(spark: SparkSession, cfg: Config) -> DataFrame:
    if cfg.ingest.manifest:
        return read_manifest(spark, cfg.ingest.manifest)
    return list_tree(spark, cfg.images_root(), cfg.ingest.extensions)


def new_files(files: DataFrame, known_uris: DataFrame) -> DataFrame:
    """Files whose URI is neither ingested nor rejected yet."""
    return files.dropDuplicates(["uri"]).join(known_uris, "uri", "left_anti")


def check(files: DataFrame, cfg: Config) -> DataFrame:
    """Read, check and hash each supported file in the workers (CHECK_SCHEMA rows)."""
    ic = cfg.ingest
    supported = files.where("supported").select("uri", "sale_id").repartition(ic.partitions)
    checked = supported.mapInPandas(check_files_fn(ic.max_bytes, ic.max_pixels, ic.formats, ic.min_side),
                                    schema=CHECK_SCHEMA)
    unsupported = files.where(~F.col("supported")).select(
        "uri", "sale_id", F.lit(False).alias("ok"), F.lit("unsupported_extension").alias("reason"),
        F.lit("extension not in ingest.extensions").alias("detail"),
        *[F.lit(None).cast(t).alias(c) for c, t in [
            ("image_id", "string"), ("format", "string"), ("width", "int"), ("height", "int"),
            ("source_mode", "string"), ("n_bytes", "long"), ("phash", "string"), ("content", "binary")]])
    return checked.unionByName(unsupported)


def split_checked(checked: DataFrame, now: Column) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(new images, one per image_id; sources; rejected)."""
    ok = checked.where("ok")
    images = (ok.dropDuplicates(["image_id"])
              .select("image_id", "format", "width", "height", "source_mode", "n_bytes", "phash",
                      F.lit(None).cast("string").alias("near_duplicate_of"), "content",
                      now.alias("ingested_at"), F.to_date(now).alias("ingest_date")))
    sources = ok.select("image_id", "sale_id", "uri", now.alias("ingested_at"))
    rejected = checked.where(~F.col("ok")).select("uri", "sale_id", "reason", "detail", now.alias("rejected_at"))
    return images, sources, rejected


def migrate_images_layout(spark: SparkSession, cfg: Config) -> bool:
    """An images table written before it was partitioned by ingest day is rewritten once,
    with ``ingest_date`` derived from ``ingested_at`` (see :func:`vistarank.io.migrate_partitioning`)."""
    return io.migrate_partitioning(spark, cfg, T.IMAGES, {"ingest_date": F.to_date("ingested_at")})


def hamming(a: Column, b: Column) -> Column:
    """Hamming distance of two hex hashes: xor and bit count over 32-bit chunks."""
    def chunk(c: Column, start: int) -> Column:
        return F.conv(F.substring(c, start, 8), 16, 10).cast("long")
    parts = [F.bit_count(chunk(a, s).bitwiseXOR(chunk(b, s))) for s in range(1, PHASH_BITS // 4 + 1, 8)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def near_duplicate_pairs(new: DataFrame, existing: DataFrame, max_distance: int) -> DataFrame:
    """(image_id, other_id, distance) for new images within ``max_distance`` of another image.

    Multi-index hashing (:mod:`vistarank.udfs.near_dup`): each new image is looked up under
    every band key within the plan's radius, every image is stored under its exact band
    values, so the candidates per image stay bounded as the catalogue grows and every pair
    within the distance is found. ``other`` is an existing image, or a new one with a
    smaller id, so each pair has a canonical direction and an earlier image stays the original.
    """
    plan = plan_bands(max_distance)
    new_h = new.select("image_id", "phash").where(F.col("phash").isNotNull())
    lookups = new_h.mapInPandas(keys_fn(plan.widths, plan.radius), KEYS_SCHEMA)
    stored = (existing.select("image_id", "phash").unionByName(new_h).dropDuplicates(["image_id"])
              .mapInPandas(keys_fn(plan.widths, 0), KEYS_SCHEMA))
    is_old = existing.select(F.col("image_id").alias("other_id")).withColumn("old", F.lit(True))
    pairs = (lookups.alias("a").join(stored.alias("b"), ["band", "key"])
             .where(F.col("a.image_id") != F.col("b.image_id"))
             .select(F.col("a.image_id").alias("image_id"), F.col("b.image_id").alias("other_id"),
                     hamming(F.col("a.phash"), F.col("b.phash")).alias("distance"))
             .where(F.col("distance") <= max_distance)
             .dropDuplicates(["image_id", "other_id"]))
    pairs = pairs.join(is_old, "other_id", "left")
    return pairs.where(F.col("old").isNotNull() | (F.col("other_id") < F.col("image_id"))).drop("old")


def flag_near_duplicates(new: DataFrame, existing: DataFrame, max_distance: int) -> DataFrame:
    """New images with near_duplicate_of = the smallest qualifying other image_id (or null)."""
    if max_distance <= 0:
        return new
    best = (near_duplicate_pairs(new, existing, max_distance)
            .groupBy("image_id").agg(F.min("other_id").alias("_dup")))
    return (new.join(best, "image_id", "left")
            .withColumn("near_duplicate_of", F.col("_dup")).drop("_dup"))


def known_uris(spark: SparkSession, cfg: Config) -> DataFrame:
    return (io.read_or_empty(spark, cfg, T.IMAGE_SOURCES).select("uri")
            .unionByName(io.read_or_empty(spark, cfg, T.IMAGES_REJECTED).select("uri")))


def existing_images(spark: SparkSession, cfg: Config) -> DataFrame:
    return io.read_or_empty(spark, cfg, T.IMAGES).select("image_id", "phash")


def plan(spark: SparkSession, cfg: Config) -> DataFrame:
    """The checked rows of every new file (the job persists this once and splits it)."""
    files = new_files(list_sources(spark, cfg), known_uris(spark, cfg))
    return check(files, cfg)
