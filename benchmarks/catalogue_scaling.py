"""Catalogue scaling: what a night of labelling costs as the catalogue grows (issue #13).

For each catalogue size (10 k, 100 k, 1 M images by default):
- The catalogue is written straight to the `images` table, spread over 30 ingest days (one
  append per day, as nightly runs commit, in ingest parts as `ingest_images` writes). Each
  image is one small JPEG made unique cheaply: the same 24 x 24 picture with the image's
  number appended after its end-of-image marker. Its `image_labels` rows for model
  version `bench:1` are written too. Ingest itself is not what is measured here.
  So are the history an ingest needs: `image_sources` rows (one URI per image, written
  on its day), a Delta manifest partitioned by `ingest_date` with an entry per image, and
  the `ingest_log` row of the last night.
- **Nightly ingest, manifest.** 1,000 new files (distinct random 40 x 40 JPEGs, real files)
  get manifest entries for a new day; `ingest_images` runs on the manifest.
  - Measured: wall time, bytes read from storage (Hadoop's FileSystem counters, see
    StorageBytes; Spark's input metrics, which also count reuses of cached blocks, next to
    it as `spark_input_bytes`), the files' bytes (the check reads each new file once, in
    Python, outside those counters), and the peak RSS of the process tree (driver JVM and
    Python workers: local mode runs the executors in the driver).
  - Own bytes: the new files plus their manifest day. "ids": what an ingest must check
    every night, read apart: every image's id and hash (duplicates and near-duplicates
    are searched over the whole catalogue) and the URIs of the lookback window.
  - Goal: bytes read at most 2 x own bytes + ids.
- **Nightly ingest, date-laid tree** (catalogues up to `--tree-max`): the catalogue's
  files on disk as `<tree>/<yyyy-mm-dd>/<sale>/<file>`, 1,000 new files in a new day
  folder. `ingest.layout: dated` lists the new day and the lookback; the full listing
  (`ingest.layout: flat`, nothing new left) is measured next to it for contrast.
- **Nightly labelling.** `label_images` on the night's images. Same measures.
  - The increment's own bytes are the size of its day's partition.
  - "ids" are the bytes an ids-only scan of the work list reads (the same anti-join,
    counted).
  - Goal: bytes read at most 2 x the increment's bytes + ids.
- **New model version.** `bench:2` over the whole catalogue (sizes up to
  `--new-version-max`). Goal: the bytes read stay within 10% of the images table's
  on-disk size plus ids, so each image's bytes are read once.
- **Near-duplicate candidates.** Candidate pairs per new image, for the 1,000 new hashes
  against the catalogue's hashes (uniformly spread 256-bit hashes):
  - with the current band plan (multi-index hashing, `udfs/near_dup.py`);
  - with the previous plan (distance + 1 = 11 bands of whole hex digits).

Goals overall: the night's time (ingest + labelling) at the largest size within 1.5 x its
time at the smallest; the bytes goals above. Writes benchmarks/results/catalogue_scaling.json.

    python benchmarks/catalogue_scaling.py                       # 10k, 100k, 1M
    python benchmarks/catalogue_scaling.py --sizes 10000 100000 --new-version-max 100000 --tree-max 100000
"""
from __future__ import annotations

import argparse
import io as pyio
import json
import os
import tempfile
import time
import urllib.request

import _results  # benchmarks/_results.py (scripts run from this folder's path)
from _results import PeakRSS

HERE = os.path.dirname(os.path.abspath(__file__))
DAYS = 30
INCREMENT = 1000


def base_jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    arr = (np.random.default_rng(0).random((24, 24, 3)) * 255).astype("uint8")
    buf = pyio.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=60)
    return buf.getvalue()


def tiny_model(d: str) -> tuple[str, str]:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(8, activation="softmax")(x)
    path, labels = os.path.join(d, "bench.keras"), os.path.join(d, "labels.txt")
    keras.Model(inp, out).save(path)
    with open(labels, "w") as fh:
        fh.write("\n".join(f"tag{i}" for i in range(8)) + "\n")
    return path, labels


INGEST_TASKS = 8  # ingest.partitions' default: a night's rows are written by that many tasks


def _ids(spark, start: int, n: int, days: int, only_day: int | None):
    """The image numbers [start, start + n), or those of day ``only_day`` (id % days)."""
    if only_day is None:
        return spark.range(start, start + n, numPartitions=max(2, n // 50000))
    first = start + (only_day - start) % days
    return spark.range(first, start + n, days, numPartitions=INGEST_TASKS)  # as ingest.partitions spreads a night


def images_df(spark, start: int, n: int, first_day, days: int, base: bytes, chunk_images: int = 20_000,
              only_day: int | None = None):
    """n synthetic images numbered from ``start``, spread over ``days`` ingest days (or those
    of day ``only_day`` alone), each day in ingest parts of about ``chunk_images`` as
    ``ingest_images`` writes them."""
    from pyspark.sql import functions as F

    from vistarank.vision.ingest import n_parts, part_column

    content = F.concat(F.lit(base), F.hex(F.col("id")).cast("binary"))
    day = F.date_add(F.lit(first_day), (F.col("id") % days).cast("int"))
    return (_ids(spark, start, n, days, only_day)
            .select(F.sha2(content, 256).alias("image_id"), F.lit("JPEG").alias("format"),
                    F.lit(24).alias("width"), F.lit(24).alias("height"), F.lit("RGB").alias("source_mode"),
                    F.length(content).cast("long").alias("n_bytes"),
                    F.sha2(F.concat(F.lit("p"), F.col("id").cast("string")), 256).alias("phash"),
                    F.lit(None).cast("string").alias("near_duplicate_of"), content.alias("content"),
                    day.cast("timestamp").alias("ingested_at"), day.alias("ingest_date"))
            .withColumn("ingest_part", part_column(n_parts(-(-n // days), chunk_images))))


def sources_df(spark, start: int, n: int, first_day, days: int, tree: str, only_day: int | None = None):
    """image_sources rows of ``images_df``'s images: one URI each under the date-laid tree,
    written on its day."""
    from pyspark.sql import functions as F

    content = F.concat(F.lit(b"x"), F.hex(F.col("id")).cast("binary"))  # only the id matters here
    day = F.date_add(F.lit(first_day), (F.col("id") % days).cast("int"))
    sale = F.concat(F.lit("S"), (F.col("id") % 997).cast("string"))
    # as Spark's listing names the files
    uri = F.concat_ws("/", F.lit("file:" + tree), day.cast("string"), sale,
                      F.concat(F.col("id").cast("string"), F.lit(".jpg")))
    return (_ids(spark, start, n, days, only_day)
            .select(F.sha2(content, 256).alias("image_id"), sale.alias("sale_id"), uri.alias("uri"),
                    day.cast("timestamp").alias("ingested_at"), day.alias("ingest_date"))
            .repartitionByRange(days, "ingest_date"))  # a night's files hold a night's rows, as appends do


def write_tree_files(tree: str, n: int, first_day, days: int, base: bytes) -> None:
    """The catalogue's files on disk (cheap: the base JPEG and the image's number), laid out by day."""
    import datetime as dt

    for i in range(n):
        day = (first_day + dt.timedelta(days=i % days)).isoformat()
        d = os.path.join(tree, day, f"S{i % 997}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i}.jpg"), "wb") as fh:
            fh.write(base + format(i, "X").encode())


def write_new_files(folder: str, n: int, seed: int) -> tuple[list[tuple[str, str]], int]:
    """``n`` distinct random 40 x 40 JPEGs in sale folders under ``folder``: (sale_id, uri), bytes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out, total = [], 0
    for i in range(n):
        sale = f"N{i % 50}"
        d = os.path.join(folder, sale)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"new{i}.jpg")
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(path, format="JPEG", quality=70)
        out.append((sale, path))
        total += os.path.getsize(path)
    return out, total


class StorageBytes:
    """Bytes read from storage since the last mark: Hadoop's FileSystem statistics for the
    lakehouse's scheme (local mode runs the executors in the driver's JVM, so one set of
    counters sees every task). Parquet's vectored reads bypass those counters, so the
    benchmark's session turns them off (``parquet.hadoop.vectored.io.enabled=false``).
    Reads of cached, checkpointed and shuffled blocks are not storage reads and are not
    counted; Delta's log reads are. Spark's own input metrics (REST status API), which do
    count every reuse of a materialised block, are reported next to it as
    ``spark_input_bytes``, an upper bound."""

    def __init__(self, spark, scheme: str = "file") -> None:
        sc = spark.sparkContext
        self.jvm, self.scheme = spark._jvm, scheme
        self.url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?status=complete"
        self.seen = {(s["stageId"], s["attemptId"]) for s in self._stages()}
        self.last = self._fs()

    def _stages(self) -> list[dict]:
        with urllib.request.urlopen(self.url, timeout=30) as r:
            return json.load(r)

    def _fs(self) -> int:
        return int(sum(s.getBytesRead() for s in self.jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
                       if s.getScheme() == self.scheme))

    def since_mark(self) -> int:
        now = self._fs()
        out, self.last = now - self.last, now
        return out

    def spark_input_since_mark(self) -> int:
        time.sleep(1.5)  # the status store is updated asynchronously
        new = [s for s in self._stages() if (s["stageId"], s["attemptId"]) not in self.seen]
        self.seen |= {(s["stageId"], s["attemptId"]) for s in new}
        if os.environ.get("CATALOGUE_DEBUG"):
            for st in sorted(new, key=lambda x: x["stageId"]):
                if st.get("inputBytes"):
                    print(f"  stage {st['stageId']}: {st['inputBytes']:>10} B  {st['name'][:90]}", flush=True)
        return int(sum(s.get("inputBytes", 0) for s in new))

    def mark(self) -> None:
        self.since_mark()
        self.spark_input_since_mark()


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        if "_delta_log" in root:
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".parquet"))
    return total


def old_band_keys(df, distance: int = 10):
    """The previous plan: distance + 1 bands of whole hex digits (exact pigeonhole)."""
    from pyspark.sql import functions as F

    n_bands, digits = distance + 1, 64
    bounds = [round(b * digits / n_bands) for b in range(n_bands + 1)]
    cols = [F.struct(F.lit(b).alias("band"), F.substring("phash", lo + 1, hi - lo).alias("key"))
            for b, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    return df.select("image_id", F.explode(F.array(*cols)).alias("bk")).select("image_id", "bk.band", "bk.key")


def near_dup_candidates(spark, catalogue, new) -> dict:
    from pyspark.sql import functions as F

    from vistarank.udfs.near_dup import KEYS_SCHEMA, keys_fn, plan_bands

    plan = plan_bands(10)
    t0 = time.perf_counter()
    look = new.mapInPandas(keys_fn(plan.widths, plan.radius), KEYS_SCHEMA)
    stored = catalogue.mapInPandas(keys_fn(plan.widths, 0), KEYS_SCHEMA)
    pairs_new = (look.alias("a").join(stored.alias("b"), ["band", "key"])
                 .where(F.col("a.image_id") != F.col("b.image_id")).count())
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs_old = (old_band_keys(new).alias("a").join(old_band_keys(catalogue).alias("b"), ["band", "key"])
                 .where(F.col("a.image_id") != F.col("b.image_id")).count())
    t_old = time.perf_counter() - t0
    n = new.count()
    return {"candidates_per_image": pairs_new / n, "seconds": round(t_new, 2),
            "keys_per_new_image": plan.keys_per_image, "bands": plan.bands, "radius": plan.radius,
            "previous_candidates_per_image": pairs_old / n, "previous_seconds": round(t_old, 2),
            "expected_random_candidates_per_image": plan.random_candidates(catalogue.count())}


def run_size(spark, root: str, n: int, model: tuple[str, str], base: bytes, new_version: bool,
             tree_arm: bool) -> dict:
    import datetime as dt

    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import load_config
    from vistarank.jobs import ingest_images, label_images
    from vistarank.vision import ingest, label

    lake, tree = os.path.join(root, f"n{n}"), os.path.join(root, f"n{n}", "tree")
    manifest = os.path.join(lake, "manifest")
    sets = [f"lakehouse.root={lake}", f"model.path={model[0]}", f"model.labels={model[1]}", "model.name=bench",
            "model.input_size=32", "model.preprocessing=included", "label.batch_size=256", "themes.n_themes=4"]
    cfg = load_config("local", sets)
    first = dt.date(2026, 1, 1)
    night = first + dt.timedelta(days=DAYS)
    t0 = time.perf_counter()
    # one commit per day and table, as nightly appends write them (Delta checkpoints every 10
    # commits): a single huge first commit would be re-read by every snapshot load
    for k in range(DAYS):
        imgs = images_df(spark, 0, n, first, DAYS, base, cfg.label.chunk_images, only_day=k)
        io.write(imgs, cfg, T.IMAGES, mode="append")
        labels = (imgs.select(
            "image_id", F.lit("bench:1").alias("model_version"),
            F.array(F.struct(F.lit("tag0").alias("label"), F.lit(1.0).cast("float").alias("probability")))
            .alias("labels"),
            F.array(*[F.lit(0.0).cast("float")] * 8).alias("embedding"),
            F.lit(None).cast("array<float>").alias("probabilities"), F.lit(None).cast("array<float>").alias("quality"),
            F.current_timestamp().alias("scored_at")))
        io.write(labels, cfg, T.IMAGE_LABELS, mode="append")
        history = sources_df(spark, 0, n, first, DAYS, tree, only_day=k)
        io.write(history.drop("ingest_date"), cfg, T.IMAGE_SOURCES, mode="append")
        (history.select("sale_id", "uri", "ingest_date").write.format("delta").mode("append")
         .partitionBy("ingest_date").save(manifest))
    for src in (f"manifest:{manifest}", f"tree:{tree}"):  # the last night's log
        io.write(spark.createDataFrame([(src, night - dt.timedelta(days=1), 0)], "source string, position date, files long")
                 .withColumn("logged_at", F.current_timestamp()), cfg, T.INGEST_LOG, mode="append")
    if tree_arm:
        write_tree_files(tree, n, first, DAYS, base)
    build_s = time.perf_counter() - t0
    meter = StorageBytes(spark)

    def timed(fn) -> dict:
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - t0
        return {"seconds": round(seconds, 2), "bytes_read": meter.since_mark(),
                "spark_input_bytes": meter.spark_input_since_mark(), "peak_rss_mb": round(rss.peak / 2**20),
                "outputs": out}

    # --- ingest: a manifest day of new files
    new, files_bytes = write_new_files(os.path.join(root, f"n{n}", "drop", night.isoformat()), INCREMENT, seed=n)
    spark.createDataFrame([(s_, u, night) for s_, u in new], "sale_id string, uri string, ingest_date date").write.format(
        "delta").mode("append").save(manifest)
    m_cfg = load_config("local", sets + [f"ingest.manifest={manifest}"])

    def ingest_ids(c) -> int:
        """The bytes of what an ingest must check every night, read apart (see the docstring)."""
        meter.mark()
        start = ingest.window_start(ingest.list_sources(spark, c))
        io.read(spark, c, T.IMAGES).select(F.sum(F.length("image_id") + F.length("phash"))).collect()
        ingest.known_uris(spark, c, start).select(F.sum(F.length("uri"))).collect()
        return meter.since_mark()

    ids = ingest_ids(m_cfg)
    man = timed(lambda: ingest_images.run(spark, m_cfg).outputs)
    man_own = files_bytes + dir_bytes(os.path.join(manifest, f"ingest_date={night.isoformat()}"))
    man.update(own_bytes=man_own, files_bytes=files_bytes, ids_bytes=ids)
    man["goal_bytes"] = man["bytes_read"] + files_bytes <= 2 * man_own + ids
    out = {"images": n, "build_seconds": round(build_s, 1), "ingest_manifest": man}

    # --- labelling the night's images
    images_dir = io.table_path(cfg, T.IMAGES)
    today = io.read(spark, cfg, T.IMAGES).agg(F.max("ingest_date")).first()[0]
    increment_bytes = dir_bytes(os.path.join(images_dir, f"ingest_date={today.isoformat()}"))

    def measured(c, version: str) -> dict:
        """label_images for ``version``: images labelled, seconds, bytes read, the ids-only
        bytes of its work list (measured first, apart), peak RSS."""
        meter.mark()
        label.todo_ids(spark, c, version).count()  # what an ids-only pass reads: any night's floor
        ids = meter.since_mark()
        r = timed(lambda: label_images.run(spark, c).outputs["image_labels"])
        r["images"] = r.pop("outputs")
        r["ids_bytes"] = ids
        return r

    inc = measured(cfg, "bench:1")
    inc["own_bytes"] = increment_bytes
    out["increment"] = inc
    out["goal_increment_bytes"] = inc["bytes_read"] <= 2 * increment_bytes + inc["ids_bytes"]
    out["night_seconds"] = round(man["seconds"] + inc["seconds"], 2)

    # --- ingest: a date-laid tree, a new day folder; then the full listing for contrast
    if tree_arm:
        new, files_bytes = write_new_files(os.path.join(tree, night.isoformat()), INCREMENT, seed=n + 1)
        t_cfg = load_config("local", sets + [f"ingest.source={tree}", "ingest.layout=dated"])
        ids = ingest_ids(t_cfg)
        listed_days = ingest.list_sources(spark, t_cfg).n_days
        meter.mark()
        dated = timed(lambda: ingest_images.run(spark, t_cfg).outputs)
        dated.update(own_bytes=files_bytes, files_bytes=files_bytes, ids_bytes=ids, listed_days=listed_days)
        dated["goal_bytes"] = dated["bytes_read"] + files_bytes <= 2 * files_bytes + ids
        flat_cfg = load_config("local", sets + [f"ingest.source={tree}", "ingest.layout=flat"])
        meter.mark()
        flat = timed(lambda: ingest_images.run(spark, flat_cfg).outputs)
        out["ingest_tree"] = {"files_on_disk": n + INCREMENT, "dated": dated, "full_listing_nothing_new": flat}

    table_bytes = dir_bytes(images_dir)
    out["images_table_bytes"] = table_bytes
    if new_version:
        nv = measured(load_config("local", sets + ["model.version=2"]), "bench:2")
        nv["read_ratio"] = round((nv["bytes_read"] - nv["ids_bytes"]) / table_bytes, 3)
        out["new_version"] = nv
        out["goal_new_version_reads_once"] = nv["bytes_read"] - nv["ids_bytes"] <= 1.10 * table_bytes
    catalogue = io.read(spark, cfg, T.IMAGES).where(F.col("ingest_date") < F.lit(night)).select("image_id", "phash")
    new_h = io.read(spark, cfg, T.IMAGES).where(F.col("ingest_date") == F.lit(today)).select("image_id", "phash")
    out["near_duplicates"] = near_dup_candidates(spark, catalogue, new_h)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--new-version-max", type=int, default=100_000,
                   help="measure the new-model-version pass for catalogues up to this size")
    p.add_argument("--tree-max", type=int, default=100_000,
                   help="measure the date-laid tree arm for catalogues up to this size (writes that many files)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "catalogue_scaling.json"))
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="catalogue_")
    # Parquet's vectored reads bypass Hadoop's FileSystem counters (StorageBytes)
    spark = _results.local_spark(root, "8g", {"spark.hadoop.parquet.hadoop.vectored.io.enabled": "false"})
    model = tiny_model(root)
    base = base_jpeg()
    results = [run_size(spark, root, n, model, base, n <= args.new_version_max, n <= args.tree_max)
               for n in sorted(args.sizes)]
    small, large = results[0], results[-1]
    goals = {
        "goal_increment_time_flat": large["night_seconds"] <= 1.5 * small["night_seconds"],
        "goal_increment_bytes": all(r["goal_increment_bytes"] and r["ingest_manifest"]["goal_bytes"]
                                    and r.get("ingest_tree", {}).get("dated", {}).get("goal_bytes", True)
                                    for r in results),
        "goal_new_version_reads_once": all(r.get("goal_new_version_reads_once", True) for r in results),
        "goal_near_dup_bounded": large["near_duplicates"]["candidates_per_image"] <= 1.0,
    }
    _results.write("catalogue_scaling", results, args.out, increment=INCREMENT, days=DAYS, **goals)
    print(json.dumps(goals))


if __name__ == "__main__":
    main()
