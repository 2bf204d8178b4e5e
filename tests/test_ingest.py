import os
import shutil

import numpy as np
from pyspark.sql import functions as F

from badfiles import write_corpus
from conftest import make_cfg
from vistarank import io
from vistarank import tables as T
from vistarank.jobs import ingest_images


def test_every_world_image_is_ingested_once(spark, ingested):
    cfg = ingested
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    sources = io.read(spark, cfg, T.IMAGE_SOURCES)
    images = io.read(spark, cfg, T.IMAGES)
    assert sources.count() == truth.count()  # every (sale, file) link kept
    assert sources.join(truth, "uri", "left_anti").count() == 0
    assert io.read(spark, cfg, T.IMAGES_REJECTED).count() == 0
    # exact duplicates (a hotel's photo reused by its next sale) collapse into one image
    assert images.count() == sources.select("image_id").distinct().count() < sources.count()
    assert images.groupBy("image_id").count().where("count > 1").count() == 0
    dup = (sources.join(truth.where("variant = 'original'"), "uri")
           .groupBy("photo_key").agg(F.countDistinct("image_id").alias("ids"), F.count("*").alias("n"))
           .where("n > 1"))
    assert dup.count() > 0 and dup.where("ids > 1").count() == 0
    # each image's no-reference quality statistics, computed once here (label.quality_size)
    from vistarank.udfs.quality import N_QUALITY, quality_of_bytes

    assert images.where(F.coalesce(F.size("quality"), F.lit(-1)) != N_QUALITY).count() == 0
    for r in images.orderBy("image_id").limit(2).collect():
        np.testing.assert_array_equal(np.asarray(r.quality, np.float32),
                                      quality_of_bytes(r.content, cfg.label.quality_size))


def test_near_duplicates_are_flagged_and_distinct_photos_are_not(spark, ingested):
    cfg = ingested
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True).select("uri", "photo_key", "variant")
    key = io.read(spark, cfg, T.IMAGE_SOURCES).join(truth, "uri").select("image_id", "photo_key", "variant")
    flagged = (io.read(spark, cfg, T.IMAGES).where("near_duplicate_of IS NOT NULL")
               .select("image_id", "near_duplicate_of"))
    pairs = (flagged.join(key, "image_id")
             .join(key.select(F.col("image_id").alias("near_duplicate_of"), F.col("photo_key").alias("other_key")),
                   "near_duplicate_of"))
    assert pairs.where("photo_key != other_key").count() == 0  # no false pairs
    # every re-encoded or resized copy is paired with its original. The pair's direction is the
    # documented one (an image already in the catalogue, else the smaller image_id, stays the
    # original: ingest.catalogue_matches), so when both arrive the same night the copy may be
    # the one kept, and the original the one flagged
    variants = (key.where("variant != 'original'").alias("v")
                .join(key.where("variant = 'original'").alias("o"), "photo_key")
                .select(F.col("v.image_id").alias("v_id"), F.col("o.image_id").alias("o_id")).distinct())
    ids = [r["image_id"] for r in flagged.select("image_id").collect()]  # a few on the tiny world
    found = variants.where(F.col("v_id").isin(ids) | F.col("o_id").isin(ids))
    assert variants.count() > 0 and found.count() == variants.count()  # all found (pairs are checked above)


def test_rerun_ingests_nothing(spark, ingested):
    before = {t.name: io.read(spark, ingested, t).count() for t in (T.IMAGES, T.IMAGE_SOURCES, T.IMAGES_REJECTED)}
    res = ingest_images.run(spark, ingested)
    assert res.outputs == {"images": 0, "image_sources": 0, "images_rejected": 0}
    after = {t.name: io.read(spark, ingested, t).count() for t in (T.IMAGES, T.IMAGE_SOURCES, T.IMAGES_REJECTED)}
    assert after == before


def test_bad_files_are_rejected_and_nothing_valid_is_lost(spark, tmp_path):
    tree = tmp_path / "tree"
    items = write_corpus(str(tree / "S1"))
    os.makedirs(tree / "S2")
    shutil.copy(tree / "S1" / "good.jpg", tree / "S2" / "same_photo.jpg")  # same bytes, another sale
    cfg = make_cfg(str(tmp_path / "lh"), f"ingest.source={tree}")
    res = ingest_images.run(spark, cfg)
    rejected = {os.path.basename(r.uri): r.reason for r in io.read(spark, cfg, T.IMAGES_REJECTED).collect()}
    # Spark's file listing never yields zero-byte files, so from a tree they are not seen at
    # all (docs/tables.md, images_rejected); from a manifest they are rejected as "empty" (test_manifest_input).
    expected_rejects = {n: v[1] for n, v in items.items() if v[1] and n != "zero.jpg"}
    assert rejected == expected_rejects
    sources = io.read(spark, cfg, T.IMAGE_SOURCES).collect()
    accepted = {os.path.basename(r.uri) for r in sources}
    assert accepted == {n for n, v in items.items() if v[1] is None} | {"same_photo.jpg"}
    by_name = {os.path.basename(r.uri): r for r in sources}
    assert by_name["good.jpg"].image_id == by_name["same_photo.jpg"].image_id
    assert {by_name["good.jpg"].sale_id, by_name["same_photo.jpg"].sale_id} == {"S1", "S2"}
    images = {r.image_id: r for r in io.read(spark, cfg, T.IMAGES).collect()}
    assert len(images) == len(accepted) - 1
    rot = images[by_name["exif_rotated.jpg"].image_id]
    assert (rot.width, rot.height) == (40, 80)  # EXIF orientation applied
    assert res.outputs["images_rejected"] == len(expected_rejects)
    # a rerun adds nothing; a new file is picked up alone
    assert ingest_images.run(spark, cfg).outputs == {"images": 0, "image_sources": 0, "images_rejected": 0}
    shutil.copy(tree / "S1" / "cmyk.jpg", tree / "S2" / "new_name.jpg")
    assert ingest_images.run(spark, cfg).outputs == {"images": 0, "image_sources": 1, "images_rejected": 0}


def test_manifest_input(spark, tmp_path):
    tree = tmp_path / "files"
    items = write_corpus(str(tree))
    manifest = tmp_path / "manifest.csv"
    names = ["good.jpg", "alpha.png", "zero.jpg", "missing.jpg"]
    manifest.write_text("sale_id,uri\n" + "".join(f"S9,{tree / n}\n" for n in names))
    cfg = make_cfg(str(tmp_path / "lh"), f"ingest.manifest={manifest}")
    ingest_images.run(spark, cfg)
    rejected = {os.path.basename(r.uri): r.reason for r in io.read(spark, cfg, T.IMAGES_REJECTED).collect()}
    assert rejected == {"zero.jpg": "empty", "missing.jpg": "missing"}
    assert {os.path.basename(r.uri) for r in io.read(spark, cfg, T.IMAGE_SOURCES).collect()} == {"good.jpg", "alpha.png"}
    assert items  # the corpus was written


def _jpeg(path, seed: int) -> None:
    import numpy as np
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = (np.random.default_rng(seed).random((48, 48, 3)) * 255).astype("uint8")
    Image.fromarray(arr).save(path, format="JPEG", quality=80)


def test_dated_tree_lists_only_new_day_folders(spark, tmp_path, caplog):
    from vistarank.vision import ingest

    tree = tmp_path / "tree"
    _jpeg(str(tree / "2026-03-01" / "S1" / "a.jpg"), 1)
    _jpeg(str(tree / "2026-03-02" / "S1" / "b.jpg"), 2)
    _jpeg(str(tree / "2026-03-03" / "S2" / "c.jpg"), 3)
    _jpeg(str(tree / "not-a-day" / "S3" / "x.jpg"), 4)
    cfg = make_cfg(str(tmp_path / "lh"), f"ingest.source={tree}", "ingest.layout=dated", "ingest.lookback_days=1")
    with caplog.at_level("WARNING"):
        assert ingest_images.run(spark, cfg).outputs["image_sources"] == 3  # the first run: every day
    assert "not-a-day" in caplog.text
    src = {os.path.basename(r.uri): r.sale_id for r in io.read(spark, cfg, T.IMAGE_SOURCES).collect()}
    assert src == {"a.jpg": "S1", "b.jpg": "S1", "c.jpg": "S2"}
    assert [r.position.isoformat() for r in io.read(spark, cfg, T.INGEST_LOG).collect()] == ["2026-03-03"]
    # the next night: a new day, a late file in the last day, and one in a day long past
    _jpeg(str(tree / "2026-03-04" / "S2" / "d.jpg"), 5)
    _jpeg(str(tree / "2026-03-03" / "S2" / "late.jpg"), 6)
    _jpeg(str(tree / "2026-03-01" / "S1" / "too_late.jpg"), 7)
    listing = ingest.list_sources(spark, cfg)
    assert (listing.since.isoformat(), listing.n_days) == ("2026-03-02", 3)
    listed = [r.uri for r in listing.files.collect()]
    assert all("/2026-03-01/" not in u for u in listed)  # days before the window are not listed
    assert ingest_images.run(spark, cfg).outputs["image_sources"] == 2
    got = {os.path.basename(r.uri) for r in io.read(spark, cfg, T.IMAGE_SOURCES).collect()}
    assert got == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "late.jpg"}  # too_late.jpg: older than the lookback
    assert ingest_images.run(spark, cfg).outputs == {"images": 0, "image_sources": 0, "images_rejected": 0}
    assert max(r.position for r in io.read(spark, cfg, T.INGEST_LOG).collect()).isoformat() == "2026-03-04"


def test_dated_manifest_is_read_from_its_last_day(spark, tmp_path):
    import datetime as dt

    import pytest

    from vistarank.vision import ingest

    files = tmp_path / "files"
    for i in range(4):
        _jpeg(str(files / f"p{i}.jpg"), 10 + i)
    manifest = str(tmp_path / "manifest")
    rows = [("S1", str(files / "p0.jpg"), dt.date(2026, 5, 1)), ("S1", str(files / "p1.jpg"), dt.date(2026, 5, 2))]
    schema = "sale_id string, uri string, ingest_date date"
    spark.createDataFrame(rows, schema).write.format("delta").partitionBy("ingest_date").save(manifest)
    cfg = make_cfg(str(tmp_path / "lh"), f"ingest.manifest={manifest}", "ingest.lookback_days=0")
    assert ingest_images.run(spark, cfg).outputs["image_sources"] == 2
    spark.createDataFrame([("S2", str(files / "p2.jpg"), dt.date(2026, 5, 3))], schema).write.format(
        "delta").mode("append").save(manifest)
    listing = ingest.list_sources(spark, cfg)
    assert listing.since == dt.date(2026, 5, 2)
    # partition pruning: only the window's days are read
    assert all("ingest_date=2026-05-01" not in f for f in listing.files.inputFiles())
    assert ingest_images.run(spark, cfg).outputs["image_sources"] == 1
    # an entry with no day cannot be placed in the incremental contract: a clear error
    spark.createDataFrame([("S2", str(files / "p3.jpg"), None)], schema).write.format(
        "delta").mode("append").save(manifest)
    with pytest.raises(io.SchemaError, match="no valid ingest_date"):
        ingest_images.run(spark, cfg)
