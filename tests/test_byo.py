"""Bring your own data: inputs built from in-code rows in the documented contract
(docs/inputs.md), without generate_world or vistarank's own schemas, an image tree and a
foreign Keras model with a labels file, through every stage that serves them."""
from __future__ import annotations

import pytest

import datetime as dt
import io as pyio
import os

import numpy as np
from PIL import Image
from pyspark.sql import functions as F
from pyspark.sql.types import (DateType, DoubleType, IntegerType, StringType, StructField, StructType,
                               TimestampType)

from conftest import make_cfg
from vistarank import io
from vistarank import tables as T
from vistarank.jobs import pipeline

START = dt.date(2026, 5, 1)
DAYS = 14
UNICODE_HOTEL = "Hôtel Žlutý Kůň — 東京湾 Ünïcødé"
LABELS = ["beach", "pool", "mountain", "snow", "old_town", "tower", "river", "bedroom"]

SALES = StructType([StructField("sale_id", StringType(), False), StructField("hotel_id", StringType()),
                    StructField("hotel", StringType()), StructField("destination", StringType()),
                    StructField("country", StringType()), StructField("region", StringType()),
                    StructField("destination_type", StringType()), StructField("stars", IntegerType()),
                    StructField("price", DoubleType()), StructField("open_date", DateType()),
                    StructField("close_date", DateType()), StructField("description", StringType()),
                    StructField("n_images", IntegerType())])
USERS = StructType([StructField("user_id", StringType(), False), StructField("home_region", StringType()),
                    StructField("signup_date", DateType())])
VISITS = StructType([StructField("user_id", StringType(), False), StructField("sale_id", StringType(), False),
                     StructField("visit_ts", TimestampType()), StructField("visit_date", DateType())])
PURCHASES = StructType([StructField("user_id", StringType(), False), StructField("sale_id", StringType(), False),
                        StructField("purchase_ts", TimestampType()), StructField("purchase_date", DateType()),
                        StructField("amount", DoubleType())])


def _market(rng: np.random.Generator):
    kinds = ["seaside", "mountain", "city", "countryside"]
    sales = []
    for i in range(18):
        open_d = START + dt.timedelta(days=int(i * 0.7))
        close_d = min(open_d + dt.timedelta(days=int(rng.integers(5, 9))), START + dt.timedelta(days=DAYS - 1))
        kind = kinds[i % 4]
        sales.append((f"X{i:03d}", f"H{i % 15:02d}", UNICODE_HOTEL if i == 3 else f"Hotel {i}", f"Town {i % 5}",
                      "Elsewhere", ["north", "south", "east", "west"][i % 4], kind, int(2 + i % 4),
                      float(60 + 10 * (i % 7)), open_d, close_d, f"{kind} hotel with {LABELS[i % 8]} views", 3))
    users = [(f"C{u:04d}", ["north", "south", "east", "west"][u % 4], START - dt.timedelta(days=30))
             for u in range(40)]
    visits, purchases = [], []
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        open_ids = [s[0] for s in sales if s[9] <= day <= s[10]]
        price = {s[0]: s[8] for s in sales}
        for u in range(39):  # C0039 never visits: a customer with no history
            if rng.random() < 0.55:
                continue
            # users prefer sales of "their" kind: a signal for CF and content
            pref = [s for s in open_ids if int(s[1:]) % 4 == u % 4] or open_ids
            for s in set(rng.choice(pref, size=min(2, len(pref)), replace=False).tolist()):
                ts = dt.datetime.combine(day, dt.time(9 + int(rng.integers(0, 12)), int(rng.integers(0, 60))))
                visits.append((f"C{u:04d}", s, ts, day))
                if rng.random() < 0.18:
                    purchases.append((f"C{u:04d}", s, ts + dt.timedelta(minutes=5), day, price[s] * 2))
    return sales, users, visits, purchases


def _image_tree(root: str, sales, rng: np.random.Generator) -> None:
    for s in sales:
        os.makedirs(os.path.join(root, s[0]), exist_ok=True)
        for k in range(s[12]):
            arr = (rng.random((48 + 8 * k, 64, 3)) * 255).astype(np.uint8)
            arr[:, : 10 + k * 7] = (int(s[0][1:]) * 37) % 255  # a band that differs per sale and file
            buf = pyio.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=90)
            with open(os.path.join(root, s[0], f"photo_{k}.jpg"), "wb") as fh:
                fh.write(buf.getvalue())


def _foreign_model(d: str) -> tuple[str, str]:
    """A Keras model that is not vistarank's: its own layers, preprocessing inside, a labels file."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    path = os.path.join(d, "their_model.keras")
    keras.Model(inp, out).save(path)
    labels = os.path.join(d, "their_labels.txt")
    with open(labels, "w") as fh:
        fh.write("\n".join(LABELS) + "\n")
    return path, labels


@pytest.mark.pipeline
def test_own_data_through_every_stage(spark, tmp_path):
    rng = np.random.default_rng(11)
    root, src = str(tmp_path / "lake"), str(tmp_path / "their_images")
    sales, users, visits, purchases = _market(rng)
    _image_tree(src, sales, rng)
    model, labels = _foreign_model(str(tmp_path))
    last = START + dt.timedelta(days=DAYS - 1)
    # their tables: plain Spark, their own schemas, written as Delta where the lakehouse expects them
    spark.createDataFrame(sales, SALES).write.format("delta").save(f"{root}/sales")
    spark.createDataFrame(users, USERS).write.format("delta").save(f"{root}/users")
    spark.createDataFrame(visits, VISITS).write.format("delta").partitionBy("visit_date").save(f"{root}/visits")
    spark.createDataFrame(purchases, PURCHASES).write.format("delta").save(f"{root}/purchases")
    cfg = make_cfg(root, f"ingest.source={src}", f"model.path={model}", f"model.labels={labels}",
                   "model.name=theirs", "model.input_size=32", "model.preprocessing=included",
                   f"run_date={last.isoformat()}", "themes.n_themes=4",
                   # one grid point for the regression and for ALS: their grid searches are tested elsewhere
                   "rerank.reg_params=[0.01]", "rerank.elastic_net_params=[0.0]", "rerank.als_alphas=[]")

    ran = [r.stage for r in pipeline.run_pipeline(spark, cfg)]
    assert ran == ["ingest_images", "label_images", "fit_themes", "build_candidates", "train_reranker", "recommend"]

    n_files = sum(s[12] for s in sales)
    images = io.read(spark, cfg, T.IMAGES)
    assert images.count() == n_files
    labelled = io.read(spark, cfg, T.IMAGE_LABELS)
    assert labelled.count() == n_files
    assert set(r.label for r in labelled.select(F.explode("labels.label").alias("label")).distinct().collect()) \
        <= set(LABELS)
    # the unicode sale went through: its name unchanged, its images labelled, its theme mix computed
    row = io.read(spark, cfg, T.SALES).where("sale_id = 'X003'").first()
    assert row.hotel == UNICODE_HOTEL
    assert io.read(spark, cfg, T.SALE_THEMES).where("sale_id = 'X003'").count() == 1
    recs = io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(last))
    assert recs.count() > 0
    # the customer with no visits is not active: no list for them (docs/inputs.md)
    assert recs.where("user_id = 'C0039'").count() == 0
    per_user = recs.groupBy("user_id").count()
    assert per_user.agg(F.max("count")).first()[0] <= cfg.rerank.top_n
    open_last = {s[0] for s in sales if s[9] <= last <= s[10]}
    assert {r.sale_id for r in recs.select("sale_id").distinct().collect()} <= open_last
