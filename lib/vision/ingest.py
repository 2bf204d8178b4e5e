"""ingest_images: files to the images / image_sources / images_rejected tables.

- Listing uses Spark's binaryFile source (note: Spark's file sources never list zero-byte
  files, so an empty file in a tree is not seen; from a manifest it is rejected as ``empty``) with only path and length selected, so no
  file content is read to list; files already ingested or rejected are skipped by an
  anti-join on the URI (incremental).
- Each new file is read, checked and hashed in the workers (udfs.images). Exact
  duplicates share an image_id (sha256 of the bytes) and collapse into one image; every
  (sale, file) link is kept in image_sources.
- Near-duplicates: a 256-bit perceptual hash, split into ``d + 1`` bands for a
  Hamming threshold ``d``; two hashes within distance ``d`` share at least one band
  (pigeonhole), so a join on (band, value) finds every candidate pair exactly, and
  the distance is then checked on the whole hash.
"""
from __future__ import annotations

import logging
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.udfs.images import CHECK_SCHEMA, PHASH_BITS, check_files_fn

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
                      now.alias("ingested_at")))
    sources = ok.select("image_id", "sale_id", "uri", now.alias("ingested_at"))
    rejected = checked.where(~F.col("ok")).select("uri", "sale_id", "reason", "detail", now.alias("rejected_at"))
    return images, sources, rejected


def _bands(df: DataFrame, n_bands: int) -> DataFrame:
    # each hex digit is 4 bits: bands are runs of whole hex digits (exact pigeonhole needs
    # n_bands disjoint parts covering the hash, not equal widths)
    digits = PHASH_BITS // 4
    bounds = [round(b * digits / n_bands) for b in range(n_bands + 1)]
    cols = [F.struct(F.lit(b).alias("band"), F.substring("phash", lo + 1, hi - lo).alias("value"))
            for b, (lo, hi) in enumerate(zip(bounds, bounds[1:])) if hi > lo]
    return df.select("image_id", "phash", F.explode(F.array(*cols)).alias("bv")).select(
        "image_id", "phash", "bv.band", "bv.value")


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

    ``other`` is an existing image, or a new one with a smaller id, so each pair has a
    canonical direction and an earlier image stays the original.
    """
    n_bands = max_distance + 1
    new_b = _bands(new.select("image_id", "phash"), n_bands)
    all_b = _bands(existing.select("image_id", "phash").withColumn("is_new", F.lit(False))
                   .unionByName(new.select("image_id", "phash").withColumn("is_new", F.lit(True)))
                   .dropDuplicates(["image_id"]), n_bands)
    is_new = existing.select("image_id").withColumn("old", F.lit(True))
    pairs = (new_b.alias("a").join(all_b.alias("b"), ["band", "value"])
             .where(F.col("a.image_id") != F.col("b.image_id"))
             .select(F.col("a.image_id").alias("image_id"), F.col("b.image_id").alias("other_id"),
                     hamming(F.col("a.phash"), F.col("b.phash")).alias("distance"))
             .where(F.col("distance") <= max_distance)
             .dropDuplicates(["image_id", "other_id"]))
    pairs = pairs.join(is_new.withColumnRenamed("image_id", "other_id"), "other_id", "left")
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
