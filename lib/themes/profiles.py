"""From labels to themes and back to the business: the tag matrix, image, sale and user
theme profiles, and tag/theme attractiveness. DataFrames in, DataFrames out.

Theme vectors are ``array<float>`` columns indexed by theme_id. Per-sale and per-user
means are computed with ``posexplode`` + ``groupBy`` (a shuffle of k numbers per row),
never on the driver.
"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from vistarank.tables import TAG_WEIGHT

log = logging.getLogger(__name__)


def tag_matrix(labels: DataFrame, tags: list[str], source: str = "topk") -> DataFrame:
    """The image x tag matrix as sparse rows: (image_id, idx array<int>, val array<float>).

    ``labels`` is image_labels for one model version; ``tags`` is that model's label list
    (the matrix's columns). ``topk`` uses the top-k labels (a label that is not in
    ``tags`` is dropped); ``full`` uses the full probability vectors, which must have
    been written (``label.full_probabilities``).
    """
    if source == "full":
        probs = F.col("probabilities")
        return (labels.where(probs.isNotNull())
                .select("image_id", F.sequence(F.lit(0), F.size(probs) - 1).alias("idx"), probs.alias("val")))
    if source != "topk":
        raise ValueError(f"themes.input must be topk or full, not {source!r}")
    vocab = F.array(*[F.lit(t) for t in tags])
    pairs = F.filter(F.transform("labels", lambda x: F.struct(
        (F.array_position(vocab, x["label"]) - 1).cast("int").alias("i"), x["probability"].alias("v"))),
        lambda s: (s["i"] >= 0) & (s["v"] > 0))
    return (labels.select("image_id", pairs.alias("p"))
            .select("image_id", F.col("p.i").alias("idx"), F.col("p.v").alias("val")))


def normalise(weights: F.Column, dtype: str = "float") -> F.Column:
    """Weights scaled to sum 1 (all zeros stay zeros), as ``dtype``."""
    total = F.aggregate(weights, F.lit(0.0).cast("double"), lambda acc, v: acc + v)
    return F.when(total > 0, F.transform(weights, lambda v: (v / total).cast(dtype))).otherwise(
        F.transform(weights, lambda v: F.lit(0.0).cast(dtype)))


def dominant(weights: F.Column) -> F.Column:
    """Index of the largest weight (first on ties), null if every weight is 0."""
    best = F.array_max(weights)
    return F.when(best > 0, (F.array_position(weights, best) - 1).cast("int"))


def image_themes(weights: DataFrame) -> DataFrame:
    """(image_id, weights summing to 1, dominant_theme, dominant_weight)."""
    w = normalise(F.col("weights"))
    return (weights.select("image_id", w.alias("weights"))
            .withColumn("dominant_theme", dominant(F.col("weights")))
            .withColumn("dominant_weight", F.when(F.col("dominant_theme").isNotNull(), F.array_max("weights"))))


def mean_vectors(rows: DataFrame, key: str | list[str], weight: str | None = None,
                 dtype: str = "float") -> DataFrame:
    """Weighted sum of the ``weights`` theme vectors per key -> (key..., weights in theme order)."""
    keys = [key] if isinstance(key, str) else list(key)
    ex = rows.select(*keys, F.posexplode("weights").alias("pos", "w"),
                     (F.col(weight) if weight else F.lit(1.0)).alias("_wt"))
    agg = ex.groupBy(*keys, "pos").agg(F.sum(F.col("w") * F.col("_wt")).alias("w"))
    return (agg.groupBy(*keys)
            .agg(F.array_sort(F.collect_list(F.struct("pos", "w"))).alias("pw"))
            .select(*keys, F.transform("pw", lambda s: s["w"].cast(dtype)).alias("weights")))


def sale_themes(images: DataFrame, sources: DataFrame) -> DataFrame:
    """The mean theme mix of each sale's distinct images (with tags), normalised."""
    links = sources.select("sale_id", "image_id").where(F.col("sale_id").isNotNull()).distinct()
    rows = links.join(images.where(F.col("dominant_theme").isNotNull()), "image_id")
    counts = rows.groupBy("sale_id").agg(F.count("*").cast("int").alias("n_images"))
    mean = mean_vectors(rows, "sale_id").withColumn("weights", normalise(F.col("weights")))
    return (mean.join(counts, "sale_id")
            .withColumn("dominant_theme", dominant(F.col("weights"))))


def interactions(visits: DataFrame, purchases: DataFrame, run_date: dt.date, half_life_days: float,
                 purchase_weight: float) -> DataFrame:
    """(user_id, sale_id, weight): visits and purchases up to ``run_date``, each weighted
    by 0.5 ** (age in days / half life); a purchase counts ``purchase_weight`` visits."""
    d = F.lit(run_date)

    def decay(col: str) -> F.Column:
        return F.pow(F.lit(0.5), F.datediff(d, F.col(col)) / F.lit(half_life_days))

    v = visits.where(F.col("visit_date") <= d).select("user_id", "sale_id", decay("visit_date").alias("wt"))
    p = (purchases.where(F.col("purchase_date") <= d)
         .select("user_id", "sale_id", (decay("purchase_date") * purchase_weight).alias("wt")))
    return v.unionByName(p).groupBy("user_id", "sale_id").agg(F.sum("wt").alias("weight"))


def user_themes(inter: DataFrame, sales: DataFrame, run_date: dt.date) -> DataFrame:
    """(user_id, weights, dominant_theme, n_sales, as_of) from weighted interactions."""
    rows = inter.join(sales.select("sale_id", "weights"), "sale_id")
    counts = rows.groupBy("user_id").agg(F.countDistinct("sale_id").cast("int").alias("n_sales"))
    mean = mean_vectors(rows, "user_id", "weight").withColumn("weights", normalise(F.col("weights")))
    return (mean.join(counts, "user_id")
            .withColumn("dominant_theme", dominant(F.col("weights")))
            .withColumn("as_of", F.lit(run_date)))


def themes_table(spark: SparkSession, h: np.ndarray, tags: list[str], names: list[str], model_version: str,
                 images: DataFrame, top_tags: int) -> DataFrame:
    """themes: id, name, top tags with weights, share (mean weight over images with tags)
    and the number of images whose dominant theme it is."""
    rows = []
    for j, name in enumerate(names):
        order = np.argsort(-h[j], kind="stable")[:top_tags]
        rows.append((j, name, model_version, [(tags[i], float(h[j, i])) for i in order if h[j, i] >= 1e-3]))
    meta = spark.createDataFrame(rows, f"theme_id int, name string, model_version string, "
                                       f"top_tags array<{TAG_WEIGHT.simpleString()}>")
    tagged = images.where(F.col("dominant_theme").isNotNull())
    share = mean_vectors(tagged.select(F.lit(1).alias("k"), "weights"), "k")
    share = share.select(F.posexplode("weights").alias("theme_id", "share"))
    n_img = tagged.groupBy(F.col("dominant_theme").alias("theme_id")).agg(F.count("*").alias("n_images"))
    n_tagged = tagged.count()  # one number
    return (meta.join(share, "theme_id", "left").join(n_img, "theme_id", "left")
            .select("theme_id", "name", "model_version", "top_tags",
                    (F.coalesce(F.col("share"), F.lit(0.0)) / F.lit(max(n_tagged, 1))).alias("share"),
                    F.coalesce(F.col("n_images"), F.lit(0)).alias("n_images"),
                    F.current_timestamp().alias("fitted_at")))


SEASONS = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
           6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}


def season(date_col: F.Column) -> F.Column:
    m = F.month(date_col)
    expr = None
    for month, name in SEASONS.items():
        expr = F.when(m == month, name) if expr is None else expr.when(m == month, name)
    return expr


def sale_items(labels: DataFrame, sources: DataFrame, sale_th: DataFrame, names: list[str],
               min_probability: float) -> DataFrame:
    """(sale_id, level, item, weight): a tag weighs 1 when one of the sale's images has it
    at ``min_probability`` or more; a theme weighs the sale's theme weight."""
    tag_rows = (labels.select("image_id", F.explode("labels").alias("l"))
                .where(F.col("l.probability") >= min_probability)
                .join(sources.select("image_id", "sale_id").where(F.col("sale_id").isNotNull()), "image_id")
                .select("sale_id", F.lit("tag").alias("level"), F.col("l.label").alias("item"))
                .distinct().withColumn("weight", F.lit(1.0)))
    theme_names = F.array(*[F.lit(n) for n in names])
    theme_rows = (sale_th.select("sale_id", F.posexplode("weights").alias("pos", "weight"))
                  .where(F.col("weight") > 0)
                  .select("sale_id", F.lit("theme").alias("level"),
                          F.element_at(theme_names, F.col("pos") + 1).alias("item"),
                          F.col("weight").cast("double").alias("weight")))
    return tag_rows.unionByName(theme_rows)


def attractiveness(visits: DataFrame, users: DataFrame, sales: DataFrame, items: DataFrame,
                   run_date: dt.date) -> DataFrame:
    """Attractiveness of each tag and theme = visit share / sale share - 1.

    visit share: the (weighted) share of visits whose sale has the item; sale share: the
    share of sales that have it. Segments: ``overall``; ``home_region`` of the visitor
    (against all sales); ``season`` of the visit (against sales that opened in that
    season); ``destination_type`` of the sale (against sales of that type). Only visits
    up to ``run_date`` and sales opened by then count; sales without images are left out
    of both shares.
    """
    d = F.lit(run_date)
    with_items = items.select("sale_id").distinct()
    s = sales.where(F.col("open_date") <= d).join(with_items, "sale_id", "left_semi")
    v = (visits.where(F.col("visit_date") <= d).join(s.select("sale_id", "destination_type"), "sale_id")
         .join(users.select("user_id", "home_region"), "user_id", "left"))
    seg_visits = (v.select(F.lit("overall").alias("segment"), F.lit("all").alias("segment_value"), "sale_id")
                  .unionByName(v.select(F.lit("home_region").alias("segment"),
                                        F.coalesce("home_region", F.lit("unknown")).alias("segment_value"),
                                        "sale_id"))
                  .unionByName(v.select(F.lit("season").alias("segment"), season(F.col("visit_date"))
                                        .alias("segment_value"), "sale_id"))
                  .unionByName(v.select(F.lit("destination_type").alias("segment"),
                                        F.col("destination_type").alias("segment_value"), "sale_id")))
    regions = v.select(F.coalesce("home_region", F.lit("unknown")).alias("segment_value")).distinct()
    seg_sales = (s.select(F.lit("overall").alias("segment"), F.lit("all").alias("segment_value"), "sale_id")
                 .unionByName(s.select("sale_id").crossJoin(regions)  # a handful of regions
                              .select(F.lit("home_region").alias("segment"), "segment_value", "sale_id"))
                 .unionByName(s.select(F.lit("season").alias("segment"), season(F.col("open_date"))
                                       .alias("segment_value"), "sale_id"))
                 .unionByName(s.select(F.lit("destination_type").alias("segment"),
                                       F.col("destination_type").alias("segment_value"), "sale_id")))
    keys = ["segment", "segment_value"]
    n_v = seg_visits.groupBy(keys).agg(F.count("*").alias("total_visits"))
    n_s = seg_sales.groupBy(keys).agg(F.count("*").alias("total_sales"))
    iv = (seg_visits.join(items, "sale_id").groupBy(keys + ["level", "item"])
          .agg(F.sum("weight").alias("vw"), F.count("*").alias("n_visits")))
    is_ = (seg_sales.join(items, "sale_id").groupBy(keys + ["level", "item"])
           .agg(F.sum("weight").alias("sw"), F.count("*").alias("n_sales")))
    out = (is_.join(iv, keys + ["level", "item"], "left").join(n_v, keys, "left").join(n_s, keys)
           .select("level", "item", "segment", "segment_value",
                   (F.coalesce("vw", F.lit(0.0)) / F.col("total_visits")).alias("visit_share"),
                   (F.col("sw") / F.col("total_sales")).alias("sale_share"),
                   F.coalesce("n_visits", F.lit(0)).alias("n_visits"), "n_sales", d.alias("as_of")))
    return out.withColumn("attractiveness", F.when(
        (F.col("sale_share") > 0) & F.col("visit_share").isNotNull(),
        F.col("visit_share") / F.col("sale_share") - 1))


def top_images(images: DataFrame, per_theme: int) -> DataFrame:
    """(theme_id, image_id, weight, rank): the most typical images of each theme (dominant
    theme, highest weight first; ties by image_id)."""
    w = Window.partitionBy("dominant_theme").orderBy(F.col("dominant_weight").desc(), F.col("image_id"))
    return (images.where(F.col("dominant_theme").isNotNull())
            .withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= per_theme)
            .select(F.col("dominant_theme").alias("theme_id"), "image_id",
                    F.col("dominant_weight").alias("weight"), "rank"))
