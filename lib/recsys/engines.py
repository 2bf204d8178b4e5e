"""The recommendation engines. Each gives a score per (user, sale open on the run date),
computed only from data before the run date (what was known that morning).

- ``cf``: item-item collaborative filtering from co-visits. A user's weight on a sale is
  the time-decayed sum of their visits (a purchase counts ``purchase_weight`` visits);
  sim(i, j) is the cosine of two sales' user vectors shrunk by n / (n + shrinkage), n =
  the number of users who visited both; for each open sale j only its K most similar
  sales i are kept; score(u, j) = sum over the sales i that u visited of sim(i, j). A
  sale that opens on the run date has no visits yet, so no CF score.
- ``content``: a sale profile (sale_id, feature, value) from its attributes (destination,
  country, destination type, stars, price band: value 1) and the TF-IDF of its
  description words; a user profile is the time-decayed sum of the profiles of the
  sales they visited or bought; the score is the cosine, a sparse dot product by a join.
- ``image``: the cosine of the user's theme profile (from the same interactions) and
  the sale's theme mix (sale_themes).
- ``popularity`` (log of 1 + visits in the last ``popularity_days`` days), ``recency``
  (1 / (1 + days since the sale opened)) and ``price_fit`` (exp(-z^2 / 2), z = the
  distance of the sale's log price to the user's decayed mean log price, over
  ``price_sigma``).
"""
from __future__ import annotations

import datetime as dt

from pyspark.ml.feature import StopWordsRemover, Tokenizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.recsys.similarity import sparse_top_k
from vistarank.themes.profiles import interactions


def open_sales(sales: DataFrame, run_date: dt.date) -> DataFrame:
    """Sales open on ``run_date`` (open_date <= d <= close_date)."""
    d = F.lit(run_date)
    return sales.where((F.col("open_date") <= d) & (F.col("close_date") >= d))


def history(visits: DataFrame, purchases: DataFrame, run_date: dt.date, half_life_days: float,
            purchase_weight: float) -> DataFrame:
    """(user_id, sale_id, weight): decayed interactions strictly before ``run_date``."""
    return interactions(visits, purchases, run_date - dt.timedelta(days=1), half_life_days, purchase_weight)


def active_users(visits: DataFrame, run_date: dt.date, active_days: int) -> DataFrame:
    """Users with a visit in the ``active_days`` days before ``run_date``."""
    d = F.lit(run_date)
    return (visits.where((F.col("visit_date") < d) & (F.col("visit_date") >= F.date_sub(d, active_days)))
            .select("user_id").distinct())


# ----------------------------------------------------------------------------- collaborative filtering
def covisit_neighbors(hist: DataFrame, targets: DataFrame, k: int, shrinkage: float) -> DataFrame:
    """For each target sale j, its k most similar sales i by co-visits:
    (query_id = j, neighbor_id = i, similarity, rank)."""
    prof = hist.select(F.col("sale_id").alias("id"), F.col("user_id").alias("feature"), F.col("weight").alias("value"))
    tgt = prof.join(targets.select(F.col("sale_id").alias("id")), "id", "left_semi")
    return sparse_top_k(tgt, prof, k, shrinkage=shrinkage)


def cf_scores(hist: DataFrame, neighbors: DataFrame, users: DataFrame) -> DataFrame:
    """score(u, j) = sum over sales i that u visited of sim(i, j) -> (user_id, sale_id, cf)."""
    visited = hist.join(users, "user_id", "left_semi").select("user_id", F.col("sale_id").alias("neighbor_id"))
    return (visited.join(neighbors.select("query_id", "neighbor_id", "similarity"), "neighbor_id")
            .groupBy("user_id", F.col("query_id").alias("sale_id")).agg(F.sum("similarity").alias("cf")))


# ----------------------------------------------------------------------------- content-based
def price_band(price: F.Column) -> F.Column:
    """Price bands by powers of 2 (..., 64-128, 128-256, ...)."""
    lo = F.pow(F.lit(2.0), F.floor(F.log2(F.greatest(price, F.lit(1.0)))))
    return F.concat(lo.cast("int").cast("string"), F.lit("-"), (lo * 2).cast("int").cast("string"))


def sale_profiles(sales: DataFrame) -> DataFrame:
    """(sale_id, feature, value): attributes (value 1) and TF-IDF description words."""
    attrs = sales.select("sale_id", F.explode(F.array(
        F.concat(F.lit("destination="), F.col("destination")), F.concat(F.lit("country="), F.col("country")),
        F.concat(F.lit("type="), F.col("destination_type")), F.concat(F.lit("stars="), F.col("stars").cast("string")),
        F.concat(F.lit("price="), price_band(F.col("price"))))).alias("feature")).where(F.col("feature").isNotNull())
    attrs = attrs.withColumn("value", F.lit(1.0))
    text = sales.select("sale_id", F.lower(F.regexp_replace(F.coalesce("description", F.lit("")), "[^\\p{L}]+", " "))
                        .alias("text"))
    words = StopWordsRemover(inputCol="tokens", outputCol="words").transform(
        Tokenizer(inputCol="text", outputCol="tokens").transform(text))
    tf = (words.select("sale_id", F.explode("words").alias("w")).where(F.length("w") > 2)
          .groupBy("sale_id", "w").agg(F.count("*").alias("tf")))
    n = sales.select("sale_id").distinct().count()  # one number
    df_ = tf.groupBy("w").agg(F.count("*").alias("df"))
    tfidf = tf.join(df_, "w").select(
        "sale_id", F.concat(F.lit("word="), F.col("w")).alias("feature"),
        (F.col("tf") * (F.log((F.lit(n) + 1) / (F.col("df") + 1)) + 1)).alias("value"))
    return attrs.unionByName(tfidf)


def unit_profile(prof: DataFrame, key: str) -> DataFrame:
    norm = prof.groupBy(key).agg(F.sqrt(F.sum(F.col("value") ** 2)).alias("norm"))
    return prof.join(norm, key).where(F.col("norm") > 0).select(key, "feature", (F.col("value") / F.col("norm"))
                                                                .alias("value"))


def user_profiles(hist: DataFrame, sale_prof: DataFrame, users: DataFrame) -> DataFrame:
    """(user_id, feature, value): the decayed sum of the unit profiles of their sales."""
    return (hist.join(users, "user_id", "left_semi").join(unit_profile(sale_prof, "sale_id"), "sale_id")
            .groupBy("user_id", "feature").agg(F.sum(F.col("weight") * F.col("value")).alias("value")))


def content_scores(user_prof: DataFrame, sale_prof: DataFrame, targets: DataFrame) -> DataFrame:
    """Cosine of user and sale profiles for the target sales -> (user_id, sale_id, content)."""
    s = unit_profile(sale_prof.join(targets.select("sale_id"), "sale_id", "left_semi"), "sale_id")
    u = unit_profile(user_prof, "user_id")
    return (u.alias("u").join(s.alias("s"), "feature")
            .groupBy("user_id", "sale_id").agg(F.sum(F.col("u.value") * F.col("s.value")).alias("content")))


# ----------------------------------------------------------------------------- image themes
def cosine_arrays(a: F.Column, b: F.Column) -> F.Column:
    dot = F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0).cast("double"), lambda s, v: s + v)
    na = F.sqrt(F.aggregate(F.transform(a, lambda x: x * x), F.lit(0.0).cast("double"), lambda s, v: s + v))
    nb = F.sqrt(F.aggregate(F.transform(b, lambda x: x * x), F.lit(0.0).cast("double"), lambda s, v: s + v))
    return F.when((na > 0) & (nb > 0), dot / (na * nb))


def user_theme_vectors(hist: DataFrame, sale_themes: DataFrame, users: DataFrame) -> DataFrame:
    """(user_id, user_weights): decayed sum of the theme mixes of their sales."""
    rows = hist.join(users, "user_id", "left_semi").join(sale_themes.select("sale_id", "weights"), "sale_id")
    ex = rows.select("user_id", F.posexplode("weights").alias("pos", "w"), "weight")
    agg = ex.groupBy("user_id", "pos").agg(F.sum(F.col("w") * F.col("weight")).alias("w"))
    return (agg.groupBy("user_id").agg(F.array_sort(F.collect_list(F.struct("pos", "w"))).alias("pw"))
            .select("user_id", F.transform("pw", lambda s: s["w"]).alias("user_weights")))


# ----------------------------------------------------------------------------- popularity, recency, price
def popularity(visits: DataFrame, run_date: dt.date, days: int) -> DataFrame:
    """(sale_id, popularity = log(1 + visits in the ``days`` days before run_date))."""
    d = F.lit(run_date)
    return (visits.where((F.col("visit_date") < d) & (F.col("visit_date") >= F.date_sub(d, days)))
            .groupBy("sale_id").agg(F.log1p(F.count("*").cast("double")).alias("popularity")))


def user_log_price(hist: DataFrame, sales: DataFrame, users: DataFrame) -> DataFrame:
    """(user_id, log_price): decayed mean log price of the sales a user visited or bought."""
    return (hist.join(users, "user_id", "left_semi").join(sales.select("sale_id", "price"), "sale_id")
            .groupBy("user_id").agg((F.sum(F.col("weight") * F.log(F.col("price"))) / F.sum("weight"))
                                    .alias("log_price")))
