
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from conftest import make_cfg
from vistarank import io
from vistarank import tables as T
from vistarank.jobs import label_images
from vistarank.udfs.scoring import score_batches, top_k
from vistarank.vision import models
from vistarank.vision.models import parse_labels, preprocess

LABELS = ["beach", "bedroom", "forest", "city_skyline", "pool"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny Keras model with preprocessing inside, saved as .keras with its labels."""
    from vistarank.vision.scene_model import build_model

    d = tmp_path_factory.mktemp("model")
    model = build_model(len(LABELS), 32, 4, seed=1)
    path = str(d / "model.keras")
    model.save(path)
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return path, str(d / "labels.txt"), model


def _cfg(root, tiny_model, *extra):
    path, labels, _ = tiny_model
    return make_cfg(str(root), f"model.path={path}", f"model.labels={labels}", "model.name=tiny",
                    "model.input_size=32", "model.preprocessing=included", "model.version=1", *extra)


def test_parse_labels_plain_and_places365():
    assert parse_labels("a\nb\n\n") == ["a", "b"]
    assert parse_labels("/a/abbey 0\n/b/bamboo_forest 12\n/s/ski_slope 300\n") == ["abbey", "bamboo_forest",
                                                                                    "ski_slope"]
    with pytest.raises(ValueError, match="duplicate"):
        parse_labels("x\nx\n")


def test_preprocessing_modes():
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    x[..., 0] = 0.0
    assert np.allclose(preprocess(x, "unit")[0, 0, 0], [0, 1, 1])
    assert np.allclose(preprocess(x, "symmetric")[0, 0, 0], [-1, 1, 1])
    assert np.allclose(preprocess(x, "caffe")[0, 0, 0], [255 - 103.939, 255 - 116.779, 0 - 123.68])
    assert np.allclose(preprocess(x, "torch")[0, 0, 0], [(0 - .485) / .229, (1 - .456) / .224, (1 - .406) / .225])
    assert preprocess(x, "included") is x


def test_top_k_order():
    idx, vals = top_k(np.array([[0.1, 0.5, 0.2, 0.2]]), 3)
    assert idx[0].tolist()[0] == 1 and np.all(np.diff(vals[0]) <= 0)


def test_udf_topk_equals_keras_predict(tiny_model, tmp_path):
    from vistarank.udfs.images import decode_rgb, to_model_input
    from vistarank.udfs.render import encode_jpeg, render_scene

    cfg = _cfg(tmp_path, tiny_model)
    rm = models.resolve(cfg)
    imgs = [encode_jpeg(render_scene(c, np.random.default_rng(i), 90, 70)) for i, c in
            enumerate(["beach", "forest", "bedroom", "tower", "lake", "desert", "kitchen"])]
    out = pd.concat(score_batches(iter([pd.Series(imgs)]), rm.to_json(), 3, 4, True))
    x = np.stack([to_model_input(decode_rgb(b, max_pixels=10**8, draft_size=32).image, 32) for b in imgs])
    ref = tiny_model[2].predict(x, verbose=0)
    for i, row in enumerate(out.itertuples()):
        order = np.argsort(-ref[i])[:3]
        assert list(row.label_names) == [LABELS[j] for j in order]
        assert np.allclose(row.label_probs, ref[i][order], atol=1e-5)
        assert np.allclose(row.probabilities, ref[i], atol=1e-5)
        assert len(row.embedding) == 32  # width * 8 channels, globally pooled
        assert row.quality is None  # quality_size 0: no statistics
    # with quality statistics: the same labels (the model input is unchanged), 45 finite numbers
    # per image, equal to the statistics of the image decoded at that size
    from vistarank.udfs.quality import N_QUALITY, pixel_stats

    out_q = pd.concat(score_batches(iter([pd.Series(imgs)]), rm.to_json(), 3, 4, True, quality_size=64))
    assert [list(r) for r in out_q["label_names"]] == [list(r) for r in out["label_names"]]
    np.testing.assert_allclose(np.stack(out_q["label_probs"]), np.stack(out["label_probs"]), atol=1e-6)
    q = np.stack(out_q["quality"])
    assert q.shape == (len(imgs), N_QUALITY) and np.isfinite(q).all()
    at_64 = decode_rgb(imgs[2], max_pixels=10**8, draft_size=64).image
    np.testing.assert_allclose(q[2], pixel_stats(np.asarray(at_64)), rtol=1e-6)
    # statistics known from ingest are passed on as they are, not computed again; an image
    # without them gets them computed
    known = pd.Series([np.full(N_QUALITY, i, np.float32) for i in range(len(imgs) - 1)] + [None], dtype=object)
    out_k = pd.concat(score_batches(iter([(pd.Series(imgs), known)]), rm.to_json(), 3, 4, True, quality_size=64))
    assert [list(r) for r in out_k["label_names"]] == [list(r) for r in out["label_names"]]
    for i in range(len(imgs) - 1):
        np.testing.assert_array_equal(out_k["quality"].iloc[i], np.full(N_QUALITY, i, np.float32))
    np.testing.assert_array_equal(out_k["quality"].iloc[-1], q[-1])


def test_application_source_with_weights_file(tmp_path):
    import keras

    from vistarank.udfs.model_cache import get_scorer

    m = keras.applications.MobileNetV2(weights=None, classes=3, input_shape=(32, 32, 3))
    weights = str(tmp_path / "mnv2.weights.h5")
    m.save_weights(weights)
    (tmp_path / "labels.txt").write_text("/a/abbey 0\n/b/beach 1\n/c/castle 2\n")
    cfg = make_cfg(str(tmp_path), "model.source=application", "model.architecture=MobileNetV2",
                   f"model.weights={weights}", f"model.labels={tmp_path / 'labels.txt'}", "model.input_size=32",
                   "model.preprocessing=symmetric")
    scorer = get_scorer(models.resolve(cfg).to_json())
    assert scorer.labels == ["abbey", "beach", "castle"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    probs, emb = scorer.predict(x)
    assert np.allclose(probs, m.predict(x / 127.5 - 1, verbose=0), atol=1e-5)
    assert emb.shape == (2, 1280)


def test_savedmodel_source(tmp_path, tiny_model):
    from vistarank.udfs.model_cache import get_scorer

    _, labels, model = tiny_model
    out = str(tmp_path / "sm")
    model.export(out)
    cfg = make_cfg(str(tmp_path), "model.source=savedmodel", f"model.path={out}", f"model.labels={labels}",
                   "model.input_size=32", "model.name=sm")
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    probs, _ = get_scorer(models.resolve(cfg).to_json()).predict(x)
    assert np.allclose(probs, model.predict(x, verbose=0), atol=1e-5)


def test_safe_mode_refuses_code_in_model_files(tmp_path):
    import keras

    from vistarank.vision.models import ResolvedModel, Scorer

    inp = keras.Input((8, 8, 3))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2)(inp)))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inp, out).save(path)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    rm = ResolvedModel("x:1", "keras_file", path, str(tmp_path / "labels.txt"), None, 8, "included", None)
    with pytest.raises(ValueError, match="(?i)safe_mode|lambda"):
        Scorer(rm)


def test_labels_mismatch_is_a_clear_error(tmp_path, tiny_model):
    from vistarank.vision.models import ResolvedModel, Scorer

    (tmp_path / "labels.txt").write_text("only\ntwo\n")
    rm = ResolvedModel("x:1", "keras_file", tiny_model[0], str(tmp_path / "labels.txt"), None, 32, "included", None)
    with pytest.raises(ValueError, match="5 outputs but .* has 2 labels"):
        Scorer(rm)


def _labels(spark, cfg):
    return io.read(spark, cfg, T.IMAGE_LABELS)


def test_label_images_incremental_versioned_and_exactly_once(spark, ingested, tiny_model, tmp_path, monkeypatch):
    # a private lakehouse sharing the ingested images (image_labels is written here)
    cfg = _cfg(tmp_path, tiny_model, "label.chunk_images=40", "label.top_k=3")
    # their quality statistics marked (+1), so that labels that copy them are told from labels
    # that compute them again
    io.write(io.read(spark, ingested, T.IMAGES).withColumn("quality", F.transform("quality", lambda q: q + 1.0)),
             cfg, T.IMAGES)
    n_images = io.read(spark, cfg, T.IMAGES).count()

    # a run killed after its first chunk keeps that chunk ...
    real_write, calls = io.write, []

    def dying_write(df, c, table, **kw):
        if table.name == "image_labels":  # labels are appended, one commit per chunk
            calls.append(table.name)
            if len(calls) == 2:
                raise RuntimeError("executor lost")
        return real_write(df, c, table, **kw)

    monkeypatch.setattr(label_images.io, "write", dying_write)
    with pytest.raises(RuntimeError, match="executor lost"):
        label_images.run(spark, cfg)
    monkeypatch.setattr(label_images.io, "write", real_write)
    partial = _labels(spark, cfg).count()
    assert 0 < partial < n_images
    # ... and the rerun scores the rest: every image exactly once
    res = label_images.run(spark, cfg)
    assert res.outputs["image_labels"] == n_images - partial
    df = _labels(spark, cfg)
    assert df.count() == n_images
    assert df.groupBy("image_id", "model_version").count().where("count > 1").count() == 0
    assert df.where(F.size("labels") != 3).count() == 0
    assert df.where(F.size("embedding") != 32).count() == 0
    # a rerun scores nothing
    assert label_images.run(spark, cfg).outputs["image_labels"] == 0
    assert df.where(F.coalesce(F.size("quality"), F.lit(-1)) != 45).count() == 0  # label.quality_size's statistics
    # the statistics are the image's own, from ingest (images.quality), copied: not computed again
    same = df.alias("l").join(io.read(spark, cfg, T.IMAGES).alias("i"), "image_id").where(
        F.col("l.quality") == F.col("i.quality"))
    assert same.count() == n_images
    assert df.join(io.read(spark, ingested, T.IMAGES), ["image_id", "quality"]).count() == 0  # not the unmarked
    # a new version scores everything again and leaves the old rows untouched, here in a table an
    # earlier vistarank wrote, before image_labels had a quality column: the append adds it
    v1 = {r.image_id: r.scored_at for r in df.collect()}
    (df.drop("quality").write.format("delta").mode("overwrite").option("overwriteSchema", "true")
     .partitionBy("model_version").save(io.table_path(cfg, T.IMAGE_LABELS)))
    from vistarank.training.workflow import embeddings

    assert embeddings(spark, cfg, "tiny:1").where("q IS NULL").count() == n_images  # read as null
    cfg2 = _cfg(tmp_path, tiny_model, "model.version=2")
    assert label_images.run(spark, cfg2).outputs["image_labels"] == n_images
    df2 = _labels(spark, cfg2)
    assert df2.groupBy("model_version").count().orderBy("model_version").collect() == [
        ("tiny:1", n_images), ("tiny:2", n_images)]
    assert {r.image_id: r.scored_at for r in df2.where("model_version = 'tiny:1'").collect()} == v1
    assert df2.where("quality IS NULL").select("model_version").distinct().collect() == [("tiny:1",)]


def test_missing_model_is_a_clear_error(spark, tmp_path):
    cfg = make_cfg(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run pretrain_scene_model"):
        label_images.run(spark, cfg)


def test_an_image_that_fails_at_scoring_gets_a_reason_and_is_not_retried(spark, ingested, tiny_model, tmp_path):
    cfg = _cfg(tmp_path, tiny_model)
    good = io.read(spark, ingested, T.IMAGES).orderBy("image_id").limit(3)
    # bytes that passed ingest once but no longer decode (a truncated copy in the table)
    bad = good.limit(1).select(*[F.lit("broken-image").alias(c) if c == "image_id" else
                                 (F.substring("content", 1, 40).alias(c) if c == "content" else F.col(c))
                                 for c in good.columns])
    io.write(good.unionByName(bad), cfg, T.IMAGES)
    res = label_images.run(spark, cfg)
    assert res.outputs["image_labels"] == 3 and res.outputs["image_label_failures"] == 1
    failed = io.read(spark, cfg, T.IMAGE_LABEL_FAILURES).collect()
    assert [(r.image_id, r.model_version) for r in failed] == [("broken-image", "tiny:1")]
    assert failed[0].reason and failed[0].detail
    # not on the work list again for this version: the rerun scores nothing and records nothing
    again = label_images.run(spark, cfg)
    assert again.outputs["image_labels"] == 0 and again.outputs.get("image_label_failures", 0) == 0
    # a new model version tries it again (and records its own failure)
    v2 = label_images.run(spark, _cfg(tmp_path, tiny_model, "model.version=2"))
    assert v2.outputs["image_labels"] == 3 and v2.outputs["image_label_failures"] == 1


def test_chunks_are_whole_ingest_days_and_a_big_day_is_split():
    import datetime as dt

    from vistarank.vision.label import plan_chunks

    d = [dt.date(2026, 11, i) for i in range(1, 6)]
    # days packed in order up to the chunk size; each day in exactly one chunk
    u = [(x, 0) for x in d]  # (ingest_date, ingest_part) units
    assert plan_chunks([(u[2], 30), (u[0], 50), (u[1], 40), (u[3], 100)], 100) == [
        ([u[0], u[1]], 0, 1), ([u[2]], 0, 1), ([u[3]], 0, 1)]
    # parts of one day in order; a part a little above the size (hashes vary) is a chunk of its own, read once
    parts = [((d[0], 1), 60), ((d[0], 0), 30), ((d[1], 0), 150), ((d[2], 0), 20)]
    assert plan_chunks(parts, 100) == [([(d[0], 0), (d[0], 1)], 0, 1), ([(d[1], 0)], 0, 1), ([(d[2], 0)], 0, 1)]
    # a unit above twice the size (written with a larger label.chunk_images): hash splits of that unit only
    assert plan_chunks([(u[0], 10), (u[4], 250)], 100) == [([u[0]], 0, 1), ([u[4]], 0, 3), ([u[4]], 1, 3),
                                                           ([u[4]], 2, 3)]
    assert plan_chunks([], 100) == []


def test_a_night_reads_only_its_own_ingest_day_and_old_layouts_are_migrated(spark, ingested, tiny_model, tmp_path):
    import datetime as dt

    from delta.tables import DeltaTable

    from vistarank.vision import label

    from vistarank.vision import ingest

    cfg = _cfg(tmp_path, tiny_model, "label.chunk_images=5")
    imgs = io.read(spark, ingested, T.IMAGES).orderBy("image_id").limit(12)
    # a lakehouse written before images were partitioned: no ingest_date, no partitioning, and
    # before ingest computed the quality statistics
    old = imgs.drop("ingest_date", "ingest_part", "quality")
    old.write.format("delta").save(io.table_path(cfg, T.IMAGES))
    assert ingest.migrate_images_layout(spark, cfg)
    detail = DeltaTable.forPath(spark, io.table_path(cfg, T.IMAGES)).detail().first()
    assert list(detail["partitionColumns"]) == ["ingest_date", "ingest_part"]
    assert io.read(spark, cfg, T.IMAGES).where("ingest_date IS NULL").count() == 0
    # the day's 12 images in 3 parts of about label.chunk_images (5); each chunk reads its own parts' files
    _, units, every = label.work_list(spark, cfg, "tiny:1")
    assert every and sum(c for _, c in units) == 12
    assert len(units) >= 2 and {p for (_, p), _ in units} <= {0, 1, 2}  # 3 hash parts (a part may be empty)
    chunks = label.plan_chunks(units, 5)
    assert len(chunks) >= 2 and all(c[2] == 1 for c in chunks)  # no part split
    files = [set(label.chunk_images(io.read(spark, cfg, T.IMAGES), c).inputFiles()) for c in chunks]
    assert all(files) and sum(len(f) for f in files) == len(set().union(*files))  # each file in one chunk
    assert not ingest.migrate_images_layout(spark, cfg)  # once
    assert io.read(spark, cfg, T.IMAGES).where("quality IS NULL").count() == 12
    assert label_images.run(spark, cfg).outputs["image_labels"] == 12
    # the statistics the images lack are computed in labelling: equal to ingest's, bit for bit
    labelled = io.read(spark, cfg, T.IMAGE_LABELS).select("image_id", F.col("quality").alias("lq"))
    assert labelled.join(imgs, "image_id").where(F.col("lq") == F.col("quality")).count() == 12
    # the next night: 3 new images ingested on another day
    night = dt.date(2030, 1, 2)
    new = (imgs.limit(3).withColumn("image_id", F.concat(F.lit("night-"), "image_id"))
           .withColumn("ingest_date", F.lit(night)))
    io.insert_new(new, cfg, T.IMAGES)
    todo = label.todo_ids(spark, cfg, "tiny:1")
    units = [((r["ingest_date"], r["ingest_part"]), r["count"])
             for r in todo.groupBy("ingest_date", "ingest_part").count().collect()]
    assert sum(c for _, c in units) == 3 and {d for (d, _), _ in units} == {night}
    chunk = label.chunk_images(io.read(spark, cfg, T.IMAGES), label.plan_chunks(units, 1000)[0])
    # Delta prunes to that day's partition: only its files are read
    files = chunk.inputFiles()
    assert files and all("ingest_date=2030-01-02" in f for f in files), files
    assert label_images.run(spark, cfg).outputs["image_labels"] == 3
    # the same bytes ingested again on a later day are the same image: not stored twice
    again = imgs.limit(2).withColumn("ingest_date", F.lit(dt.date(2030, 1, 9)))
    assert io.insert_new(again, cfg, T.IMAGES) == 0
    assert io.read(spark, cfg, T.IMAGES).count() == 15
