"""ingest_images: files to the images / image_sources / images_rejected tables.

- Listing uses Spark's binaryFile source (note: Spark's file sources never list zero-byte
  files, so an empty file in a tree is not seen; from a manifest it is rejected as ``empty``)
  with only the path selected, so no file content is read to list; files already ingested
  or rejected are skipped by an anti-join on the URI (incremental).
- What is listed grows with the night, not the catalogue, for dated sources: a tree laid
  out ``<root>/<yyyy-mm-dd>/<sale_id>/<file>`` (``ingest.layout: dated``) lists only day
  folders from the last one ingested (minus ``ingest.lookback_days``), and a manifest with
  an ``ingest.manifest_date_column`` is read from that day on (a manifest partitioned by it
  is pruned). The last day read is logged in ``ingest_log``; known URIs are then read from
  the day before the window only. A flat tree or an undated manifest is read in full.
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

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from typing import Optional

import pandas as pd  # module level: pandas_udf resolves the string annotations here
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.udfs.images import CHECK_SCHEMA, PHASH_BITS, check_files_fn, quality_or_none
from vistarank.udfs.near_dup import KEYS_SCHEMA, band_columns, keys_fn, plan_bands

log = logging.getLogger(__name__)


def _tree_files(spark: SparkSession, paths: list[str], extensions: list[str]) -> DataFrame:
    """Every file under ``paths``: uri, sale_id (its folder's name), supported (by extension)."""
    files = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(paths)
             .select(F.col("path").alias("uri")))
    exts = [e.lower().lstrip(".") for e in extensions]
    ext = F.lower(F.regexp_extract("uri", r"\.([^./]+)$", 1))
    return files.select(
        "uri",
        F.element_at(F.split("uri", "/"), -2).alias("sale_id"),
        ext.isin(exts).alias("supported"))


def list_tree(spark: SparkSession, root: str, extensions: list[str]) -> DataFrame:
    """Every file under ``root`` (a flat tree ``<root>/<sale_id>/<file>``, listed in full)."""
    return _tree_files(spark, [root], extensions)


FILES_SCHEMA = "uri string, sale_id string, supported boolean"
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Listing:
    """What one ingest run reads from its source.

    ``since``: the first day read (None: the whole source); known URIs are read from rows
    written from the day before it only. ``position``: the last day read, logged in ingest_log as the next run's watermark
    (None for a source read in full)."""
    source: str
    files: DataFrame
    since: Optional[dt.date] = None
    position: Optional[dt.date] = None
    n_days: int = 0


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file:")


def top_level_dirs(spark: SparkSession, root: str) -> list[str]:
    """Names of the folders directly under ``root`` (one level: no recursive listing).
    Hadoop's FileSystem where the driver has a JVM (any scheme it knows: s3a, abfss, gs,
    dbfs), else the local filesystem."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is not None:
        path = jvm.org.apache.hadoop.fs.Path(root)
        fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
        if not fs.exists(path):
            raise FileNotFoundError(f"ingest.source {root} does not exist")
        return [st.getPath().getName() for st in fs.listStatus(path) if st.isDirectory()]
    if not _is_local(root):
        raise RuntimeError(f"listing {root} needs the driver's JVM (Hadoop FileSystem); not available here")
    local = root[len("file:"):] if root.startswith("file:") else root
    if not os.path.isdir(local):
        raise FileNotFoundError(f"ingest.source {root} does not exist")
    return [e.name for e in os.scandir(local) if e.is_dir()]


def _parse_day(name: str) -> Optional[dt.date]:
    if not DATE_DIR.match(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def list_dated_tree(spark: SparkSession, root: str, extensions: list[str], since: Optional[dt.date]) -> Listing:
    """A tree laid out by day, ``<root>/<yyyy-mm-dd>/<sale_id>/<file>``: the day folders from
    ``since`` on are listed (all of them when ``since`` is None); the others are not touched."""
    names = top_level_dirs(spark, root)
    days = {d: n for n in names if (d := _parse_day(n)) is not None}
    other = sorted(set(names) - set(days.values()))
    if other:
        log.warning("ingest.layout=dated: %d folder(s) under %s are not yyyy-mm-dd days and are not ingested "
                    "(e.g. %s)", len(other), root, ", ".join(other[:3]))
    chosen = sorted(d for d in days if since is None or d >= since)
    source = f"tree:{root}"
    log.info("%s: %d of %d day folder(s) to list (from %s)", source, len(chosen), len(days), since or "the first")
    if not chosen:
        return Listing(source, spark.createDataFrame([], FILES_SCHEMA), since, since, 0)
    files = _tree_files(spark, [join(root, days[d]) for d in chosen], extensions)
    return Listing(source, files, since, chosen[-1], len(chosen))


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
    return df


def _manifest_files(df: DataFrame) -> DataFrame:
    return df.select(F.col("uri").cast("string"), F.col("sale_id").cast("string"), F.lit(True).alias("supported"))


def list_manifest(spark: SparkSession, path: str, date_column: str, since: Optional[dt.date]) -> Listing:
    """A manifest's entries: those dated from ``since`` on when it has ``date_column`` (a
    manifest partitioned by it is pruned to those days), else every entry. An entry with no
    date in a dated manifest is refused: the incremental contract needs one per entry."""
    df = read_manifest(spark, path)
    source = f"manifest:{path}"
    if date_column not in df.columns:
        log.info("%s has no %s column: read in full (every run lists every entry)", source, date_column)
        return Listing(source, _manifest_files(df))
    day = F.to_date(F.col(date_column))
    window = df.where((day >= F.lit(since)) | day.isNull()) if since else df
    window = window.withColumn("_day", day)
    stats = window.agg(F.max("_day").alias("last"), F.count_if(F.col("_day").isNull()).alias("undated")).first()
    if stats["undated"]:
        raise io.SchemaError(
            f"manifest {path}: {stats['undated']} entr{'y has' if stats['undated'] == 1 else 'ies have'} no valid "
            f"{date_column} (a date or yyyy-mm-dd text); a manifest with that column is read by day and needs one "
            "per entry (or drop the column to read the whole manifest every run)")
    position = max(d for d in (stats["last"], since) if d is not None) if (stats["last"] or since) else None
    log.info("%s: entries from %s to %s", source, since or "the first day", position)
    return Listing(source, _manifest_files(window), since, position)


def watermark(spark: SparkSession, cfg: Config, source: str) -> Optional[dt.date]:
    """The last day an earlier run read from ``source`` (ingest_log), or None."""
    row = (io.read_or_empty(spark, cfg, T.INGEST_LOG).where(F.col("source") == source)
           .agg(F.max("position").alias("p")).first())
    return row["p"] if row else None


def list_sources(spark: SparkSession, cfg: Config) -> Listing:
    """This run's files: a manifest or a tree, incrementally where the source is dated."""
    ic = cfg.ingest

    def since(source: str) -> Optional[dt.date]:
        wm = watermark(spark, cfg, source)
        return wm - dt.timedelta(days=ic.lookback_days) if wm else None

    if ic.manifest:
        return list_manifest(spark, ic.manifest, ic.manifest_date_column, since(f"manifest:{ic.manifest}"))
    root = cfg.images_root()
    if ic.layout == "dated":
        return list_dated_tree(spark, root, ic.extensions, since(f"tree:{root}"))
    return Listing(f"tree:{root}", list_tree(spark, root, ic.extensions))


def window_start(listing: Listing) -> Optional[dt.datetime]:
    """Rows written from this instant on can hold this run's URIs (a day of slack before
    ``since`` for clocks and time zones); None: any row can."""
    if listing.since is None:
        return None
    return dt.datetime.combine(listing.since - dt.timedelta(days=1), dt.time())


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


def n_parts(n_images, chunk_images: int):
    """How many ``ingest_part`` values a day of ``n_images`` gets: about ``chunk_images``
    each (a number, or a Column of numbers)."""
    if isinstance(n_images, Column):
        return F.greatest(F.lit(1), F.ceil(F.coalesce(n_images, F.lit(0)) / F.lit(chunk_images)))
    return max(1, -(-int(n_images) // chunk_images))


def part_column(parts) -> Column:
    """``ingest_part``: the image's hash part of its ingest day, in [0, parts)."""
    p = parts if isinstance(parts, Column) else F.lit(int(parts))
    return F.pmod(F.xxhash64("image_id"), p).cast("int")


def split_checked(checked: DataFrame, now: Column, parts: int = 1) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(new images, one per image_id, in ``parts`` ingest parts; sources; rejected)."""
    ok = checked.where("ok")
    images = (ok.dropDuplicates(["image_id"])
              .select("image_id", "format", "width", "height", "source_mode", "n_bytes", "phash",
                      F.lit(None).cast("string").alias("near_duplicate_of"), "content",
                      now.alias("ingested_at"), F.to_date(now).alias("ingest_date"),
                      part_column(parts).alias("ingest_part")))
    sources = ok.select("image_id", "sale_id", "uri", now.alias("ingested_at"))
    rejected = checked.where(~F.col("ok")).select("uri", "sale_id", "reason", "detail", now.alias("rejected_at"))
    return images, sources, rejected


def with_quality(images: DataFrame, cfg: Config) -> DataFrame:
    """``images`` with ``quality``: each image's no-reference quality statistics at
    ``label.quality_size`` (null when it is 0, or where they fail). Applied to the night's new
    unique images only, after deduplication and the catalogue check, so a file whose bytes
    are already stored (a photo reused by a hotel's next sale) costs no statistics; they
    depend on the image alone, so labelling copies them for every model version."""
    size, max_pixels = cfg.label.quality_size, cfg.ingest.max_pixels
    if not size:
        return images.withColumn("quality", F.lit(None).cast("array<float>"))

    @F.pandas_udf("array<float>")
    def quality(contents: pd.Series) -> pd.Series:
        return pd.Series([quality_or_none(b, size, max_pixels) for b in contents], dtype=object)

    return images.withColumn("quality", quality("content"))


def migrate_images_layout(spark: SparkSession, cfg: Config) -> bool:
    """An images table written before its (ingest_date, ingest_part) partitioning is rewritten
    once (see :func:`vistarank.io.migrate_partitioning`): ``ingest_date`` derived from
    ``ingested_at`` where missing, ``ingest_part`` from each day's image count (an ids-only
    count, broadcast), as ingest would have written it."""
    chunk = cfg.label.chunk_images

    def with_parts(df: DataFrame) -> DataFrame:
        days = df.groupBy(F.col("ingest_date").alias("_d")).agg(F.count("*").alias("_n"))  # one row per day
        return (df.join(F.broadcast(days), F.col("ingest_date").eqNullSafe(F.col("_d")), "left")
                .withColumn("ingest_part", part_column(n_parts(F.col("_n"), chunk))).drop("_d", "_n"))

    # quality: null for a table written before ingest computed it (labelling computes it then)
    return io.migrate_partitioning(spark, cfg, T.IMAGES, {"ingest_date": F.to_date("ingested_at"),
                                                          "quality": F.lit(None).cast("array<float>")},
                                   then=with_parts)


def hamming(a: Column, b: Column) -> Column:
    """Hamming distance of two hex hashes: xor and bit count over 32-bit chunks."""
    def chunk(c: Column, start: int) -> Column:
        return F.conv(F.substring(c, start, 8), 16, 10).cast("long")
    parts = [F.bit_count(chunk(a, s).bitwiseXOR(chunk(b, s))) for s in range(1, PHASH_BITS // 4 + 1, 8)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


ID_BAND = -1  # the pseudo band that carries each image's id: the same join finds what is stored already


def catalogue_matches(new: DataFrame, existing: DataFrame, max_distance: int) -> DataFrame:
    """One pass over the catalogue's ``(image_id, phash)`` for a night's new images:
    rows ``(image_id, other_id, distance, stored)``.

    - ``stored``: the new image's bytes are in the catalogue already (same image_id);
    - else a near-duplicate pair within ``max_distance`` (when it is above 0).

    Multi-index hashing (:mod:`vistarank.udfs.near_dup`): each new image is looked up under
    every band key within the plan's radius, every image is stored under its exact band
    values, so the candidates per image stay bounded as the catalogue grows and every pair
    within the distance is found. The id rides in the same join as one more band (key: a
    64-bit hash of the id, confirmed on the id itself), so the catalogue is scanned once.
    ``other`` is an existing image, or a new one with a smaller id, so each pair has a
    canonical direction and an earlier image stays the original.
    """
    plan = plan_bands(max(max_distance, 0))
    new_h = new.select("image_id", "phash")
    id_key = F.struct(F.lit(ID_BAND).alias("band"), F.xxhash64("image_id").alias("key"))
    lookups = new_h.select("image_id", "phash", F.explode(F.array(id_key)).alias("bk"))
    if max_distance > 0:
        lookups = lookups.unionByName(
            new_h.where(F.col("phash").isNotNull()).mapInPandas(keys_fn(plan.widths, plan.radius), KEYS_SCHEMA)
            .select("image_id", "phash", F.struct("band", "key").alias("bk")))
    lookups = lookups.select("image_id", "phash", "bk.band", "bk.key")

    def exact(df: DataFrame, old: bool) -> DataFrame:  # stored side: Spark expressions, one column scan
        keys = F.array(id_key)
        if max_distance > 0:
            keys = F.when(F.col("phash").isNull(), keys).otherwise(
                F.concat(keys, band_columns(F.col("phash"), plan.widths)))
        return (df.select("image_id", "phash", F.lit(old).alias("old"), F.explode(keys).alias("bk"))
                .select("image_id", "phash", "old", "bk.band", "bk.key"))

    stored = exact(existing.select("image_id", "phash"), True)
    if max_distance > 0:  # pairs among the night's new images
        stored = stored.unionByName(exact(new_h, False).where(F.col("band") != ID_BAND))
    a_id, b_id = F.col("a.image_id"), F.col("b.image_id")
    same = (F.col("band") == ID_BAND) & (a_id == b_id) & F.col("b.old")
    pair = (F.col("band") != ID_BAND) & (a_id != b_id) & (F.col("b.old") | (b_id < a_id))
    rows = (lookups.alias("a").join(stored.alias("b"), ["band", "key"]).where(same | pair)
            .select(a_id.alias("image_id"), b_id.alias("other_id"),
                    F.when(same, F.lit(0)).otherwise(hamming(F.col("a.phash"), F.col("b.phash"))).alias("distance"),
                    same.alias("stored")))
    return rows.where(F.col("stored") | (F.col("distance") <= max_distance)).dropDuplicates(["image_id", "other_id"])


def only_new_images(new: DataFrame, existing: DataFrame, max_distance: int) -> DataFrame:
    """The night's images that are not in the catalogue yet, with ``near_duplicate_of`` = the
    smallest qualifying other image_id (or null). One scan of the catalogue's ids and hashes;
    the matches (a few rows per image) are materialised for the two uses, with the lineage cut
    (a cache could be matched by a later run's equal-looking plan over the same source path)."""
    matches = catalogue_matches(new, existing, max_distance).localCheckpoint(eager=True)
    stored = matches.where("stored").select("image_id")
    best = (matches.where(~F.col("stored")).groupBy("image_id").agg(F.min("other_id").alias("_dup")))
    return (new.join(stored, "image_id", "left_anti").join(best, "image_id", "left")
            .withColumn("near_duplicate_of", F.col("_dup")).drop("_dup"))


def known_uris(spark: SparkSession, cfg: Config, since: Optional[dt.datetime] = None) -> DataFrame:
    """URIs already ingested or rejected; from ``since`` on only (Delta skips older files by
    their statistics on ingested_at / rejected_at) when the listing says that is enough."""
    sources = io.read_or_empty(spark, cfg, T.IMAGE_SOURCES)
    rejected = io.read_or_empty(spark, cfg, T.IMAGES_REJECTED)
    if since is not None:
        sources = sources.where(F.col("ingested_at") >= F.lit(since))
        rejected = rejected.where(F.col("rejected_at") >= F.lit(since))
    return sources.select("uri").unionByName(rejected.select("uri"))


def existing_images(spark: SparkSession, cfg: Config) -> DataFrame:
    return io.read_or_empty(spark, cfg, T.IMAGES).select("image_id", "phash")


def plan(spark: SparkSession, cfg: Config) -> tuple[Listing, DataFrame]:
    """This run's listing and the checked rows of every new file in it (the job persists
    them once and splits them)."""
    listing = list_sources(spark, cfg)
    files = new_files(listing.files, known_uris(spark, cfg, window_start(listing)))
    return listing, check(files, cfg)
