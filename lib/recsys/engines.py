"""The recommendation engines, as features of (user, sale, as_of) pairs: their definitions,
stated as relational Spark plans.

The jobs compute these numbers with the scoring kernel (:mod:`vistarank.recsys.kernel`),
which never materialises the pairs; :func:`features` here is the reference the kernel is
tested against (tests/test_recsys.py), and is practical for a few thousand pairs. Every
feature of a pair uses only data from before its ``as_of`` date (what was known that
morning).

- ``cf``: item-item collaborative filtering from co-visits. A user's weight on a sale is
  the time-decayed sum of their visits (a purchase counts ``purchase_weight`` visits);
  sim(i, j) is the cosine of two sales' user vectors shrunk by n / (n + shrinkage), n =
  the number of users who visited both, computed from a *snapshot* of the history
  before a snapshot date s <= as_of (s = as_of for nightly candidates); for each target
  sale j only its K most similar sales i are kept; score(u, j) = sum over the distinct
  sales i that u visited before as_of of sim(i, j). A sale that opens on as_of has no
  visits yet, so no CF score.
- ``content``: a sale profile (sale_id, feature, value) from its attributes (destination,
  country, destination type, stars, price band: value 1) and the TF-IDF of its
  description words; a user profile is the decayed sum of the unit profiles of the
  sales they visited or bought; the score is their cosine, a sparse dot product by a join.
- ``image``: how the sale's pictures fit the user's taste. With ``recsys.image_score =
  choice`` (the default) it is a choice model of the user's visits plus the pictures'
  quality, which only the kernel computes (:mod:`vistarank.recsys.taste`); the relational
  forms here are the two simpler scores. The user's theme profile is
  the same decayed sum over sale_themes, scaled to sum 1 (their shares of the themes);
  with ``recsys.image_score = fit`` the score is its dot product with the
  sale's theme mix (sum 1): the share of the sale's pictures in the themes the user
  visits, in [0, 1]; with ``cosine``, the cosine of the two. With ``recsys.theme_idf``
  (the default) both use the *distinctive* mix (:func:`distinctive_mix`): each theme's
  weight times its inverse document frequency over the sales, so themes every hotel
  shows (bedrooms, bathrooms) weigh about nothing and the themes that set a sale apart
  carry the score.
- ``popularity``: log(1 + the sale's visits in the ``popularity_days`` days before as_of);
  ``recency``: 1 / (1 + days since the sale opened); ``new_sale``: 1 when the sale opens
  on as_of, else 0 (such a sale has no visits yet, so no popularity, CF or ALS score: the
  indicator lets the regression tell "unknown" from "unpopular", and weigh the engines
  that do know a new sale, content and images, for it); ``price_fit``: exp(-z^2 / 2), z =
  the distance of the sale's log price to the user's decayed mean log price, over
  ``price_sigma``.

- ``als``: the latent-factor engine (implicit ALS, :mod:`vistarank.recsys.latent`): the
  kernel computes it (a user's factor is a least-squares solve); it has no relational
  form here, and tests/test_recsys.py checks it against MLlib's own user factors.

Scaling is fixed (the same for every date, so training and serving agree): cf and
popularity x go through x / (1 + x); the others are in [0, 1] already; a missing value is 0.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
from pyspark.ml.feature import StopWordsRemover, Tokenizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.recsys.similarity import sparse_top_k, unit_profile
from vistarank.themes.profiles import mean_vectors, normalise

ENGINES = ["cf", "content", "image", "popularity", "recency", "price_fit", "als", "new_sale"]
RELATIONAL = [e for e in ENGINES if e != "als"]  # what features() computes; als (vistarank.recsys.latent) is the kernel's only
IMAGE_SCORES = ("choice", "fit", "cosine")  # recsys.image_score
RELATIONAL_IMAGE_SCORES = ("fit", "cosine")  # what features() computes; choice (vistarank.recsys.taste) is the kernel's


def open_sales(sales: DataFrame, run_date: dt.date) -> DataFrame:
    """Sales open on ``run_date`` (open_date <= d <= close_date)."""
    d = F.lit(run_date)
    return sales.where((F.col("open_date") <= d) & (F.col("close_date") >= d))


def active_users(visits: DataFrame, run_date: dt.date, active_days: int) -> DataFrame:
    """Users with a visit in the ``active_days`` days before ``run_date``."""
    d = F.lit(run_date)
    return (visits.where((F.col("visit_date") < d) & (F.col("visit_date") >= F.date_sub(d, active_days)))
            .select("user_id").distinct())


def events(visits: DataFrame, purchases: DataFrame, purchase_weight: float) -> DataFrame:
    """(user_id, sale_id, date, w, bought): every visit (w = 1) and purchase (w =
    ``purchase_weight``, bought = true)."""
    return (visits.select("user_id", "sale_id", F.col("visit_date").alias("date"), F.lit(1.0).alias("w"),
                          F.lit(False).alias("bought"))
            .unionByName(purchases.select("user_id", "sale_id", F.col("purchase_date").alias("date"),
                                          F.lit(float(purchase_weight)).alias("w"), F.lit(True).alias("bought"))))


def history_as_of(ev: DataFrame, keys: DataFrame, half_life_days: float) -> DataFrame:
    """(user_id, as_of, sale_id, weight) for each (user_id, as_of) in ``keys``: the user's
    events strictly before as_of, each decayed by 0.5 ** (age in days / half life)."""
    decay = F.pow(F.lit(0.5), F.datediff(F.col("as_of"), F.col("date")) / F.lit(half_life_days))
    return (ev.join(keys, "user_id").where(F.col("date") < F.col("as_of"))
            .groupBy("user_id", "as_of", "sale_id").agg(F.sum(F.col("w") * decay).alias("weight")))


# ----------------------------------------------------------------------------- collaborative filtering
def covisit_neighbors(ev: DataFrame, snapshot: dt.date, targets: DataFrame, k: int, shrinkage: float,
                      half_life_days: float) -> DataFrame:
    """For each target sale j, its k most similar sales i by co-visits before ``snapshot``:
    (query_id = j, neighbor_id = i, similarity, rank)."""
    users = ev.select("user_id").distinct().withColumn("as_of", F.lit(snapshot))
    hist = history_as_of(ev, users, half_life_days)
    prof = hist.select(F.col("sale_id").alias("id"), F.col("user_id").alias("feature"), F.col("weight").alias("value"))
    tgt = prof.join(targets.select(F.col("sale_id").alias("id")), "id", "left_semi")
    return sparse_top_k(tgt, prof, k, shrinkage=shrinkage)


def cf_scores(hist: DataFrame, sims: DataFrame) -> DataFrame:
    """score(u, j, as_of) = sum over the sales i that u visited before as_of of sim(i, j).

    ``sims``: (snapshot, query_id = j, neighbor_id = i, similarity); ``hist`` carries the
    ``snapshot`` each as_of uses. -> (user_id, as_of, sale_id, cf)."""
    return (hist.select("user_id", "as_of", "snapshot", F.col("sale_id").alias("neighbor_id"))
            .join(sims.select("snapshot", "query_id", "neighbor_id", "similarity"), ["snapshot", "neighbor_id"])
            .groupBy("user_id", "as_of", F.col("query_id").alias("sale_id")).agg(F.sum("similarity").alias("cf")))


# ----------------------------------------------------------------------------- content-based
def price_band(price: F.Column) -> F.Column:
    """Price bands by powers of 2 (..., 64-128, 128-256, ...)."""
    lo = F.pow(F.lit(2.0), F.floor(F.log2(F.greatest(price, F.lit(1.0)))))
    return F.concat(lo.cast("int").cast("string"), F.lit("-"), (lo * 2).cast("int").cast("string"))


def sale_profiles(sales: DataFrame) -> DataFrame:
    """(sale_id, feature, value): attributes (value 1) and TF-IDF description words, L2-normalised."""
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
    return unit_profile(attrs.unionByName(tfidf), ["sale_id"])


def content_scores(hist: DataFrame, sale_prof: DataFrame, pairs: DataFrame) -> DataFrame:
    """Cosine of the user's decayed profile and the sale's -> (user_id, as_of, sale_id, content)."""
    user = unit_profile(hist.join(sale_prof, "sale_id").groupBy("user_id", "as_of", "feature")
                        .agg(F.sum(F.col("weight") * F.col("value")).alias("value")), ["user_id", "as_of"])
    sale = pairs.select("user_id", "as_of", "sale_id").join(sale_prof, "sale_id")
    return (sale.alias("s").join(user.alias("u"), ["user_id", "as_of", "feature"])
            .groupBy("user_id", "as_of", "sale_id").agg(F.sum(F.col("s.value") * F.col("u.value")).alias("content")))


# ----------------------------------------------------------------------------- image themes
def _sum(col: F.Column) -> F.Column:
    return F.aggregate(col, F.lit(0.0).cast("double"), lambda s, v: s + v)


def dot_arrays(a: F.Column, b: F.Column) -> F.Column:
    """The dot product of two equal-length arrays (null when either is null)."""
    return _sum(F.zip_with(a, b, lambda x, y: x * y))


def cosine_arrays(a: F.Column, b: F.Column) -> F.Column:
    dot = dot_arrays(a, b)
    na, nb = F.sqrt(_sum(F.transform(a, lambda x: x * x))), F.sqrt(_sum(F.transform(b, lambda x: x * x)))
    return F.when((na > 0) & (nb > 0), dot / (na * nb))


PRESENT = 0.05  # a sale "has" a theme (for its document frequency) at this share of its mix or more


def distinctive_mix(sale_themes: DataFrame) -> DataFrame:
    """``sale_themes`` with ``weights`` replaced by the TF-IDF mix: weight_j x
    log((1 + N) / (1 + n_j)), N the sales of the table, n_j those whose mix holds theme j
    at ``PRESENT`` or more; renormalised to sum 1 (a sale showing only ubiquitous themes
    gets zeros, and the image engine scores it 0). Two small jobs: N and the k counts."""
    n = sale_themes.count()
    counts = (sale_themes.select(F.posexplode("weights").alias("pos", "w"))
              .groupBy("pos").agg(F.sum((F.col("w") >= PRESENT).cast("long")).alias("n")).collect())  # k rows
    if not counts:
        return sale_themes
    df = [0] * (max(r["pos"] for r in counts) + 1)
    for r in counts:
        df[r["pos"]] = int(r["n"])
    idf = F.array(*[F.lit(float(np.log((1.0 + n) / (1.0 + c)))) for c in df])
    return sale_themes.withColumn("weights", normalise(F.zip_with("weights", idf, lambda w, f: w * f)))


def user_theme_vectors(hist: DataFrame, sale_themes: DataFrame) -> DataFrame:
    """(user_id, as_of, user_weights): decayed sum of the theme mixes of their sales."""
    rows = hist.join(sale_themes.select("sale_id", "weights"), "sale_id")
    return (mean_vectors(rows, ["user_id", "as_of"], "weight", dtype="double")
            .withColumnRenamed("weights", "user_weights"))


# ----------------------------------------------------------------------------- popularity, price
def popularity(visits: DataFrame, keys: DataFrame, days: int) -> DataFrame:
    """(sale_id, as_of, popularity = log(1 + visits in the ``days`` days before as_of))."""
    daily = visits.groupBy("sale_id", F.col("visit_date").alias("date")).agg(F.count("*").alias("n"))
    return (keys.join(daily, "sale_id")
            .where((F.col("date") < F.col("as_of")) & (F.col("date") >= F.date_sub(F.col("as_of"), days)))
            .groupBy("sale_id", "as_of").agg(F.log1p(F.sum("n").cast("double")).alias("popularity")))


def user_log_price(hist: DataFrame, sales: DataFrame) -> DataFrame:
    """(user_id, as_of, log_price): decayed mean log price of the sales a user visited or bought."""
    return (hist.join(sales.select("sale_id", "price"), "sale_id")
            .groupBy("user_id", "as_of").agg((F.sum(F.col("weight") * F.log(F.col("price"))) / F.sum("weight"))
                                             .alias("log_price")))


# ----------------------------------------------------------------------------- all engines for pairs
def squash(x: F.Column) -> F.Column:
    """x / (1 + x): a fixed map of [0, inf) onto [0, 1)."""
    return x / (1.0 + x)


def features(pairs: DataFrame, sales: DataFrame, ev: DataFrame, visits: DataFrame, sale_prof: DataFrame,
             sale_themes: DataFrame | None, sims: DataFrame, *, half_life_days: float, popularity_days: int,
             price_sigma: float, theme_idf: bool = True, image_score: str = "fit") -> DataFrame:
    """Every engine's score for ``pairs`` (user_id, sale_id, as_of, snapshot, ...): the input
    columns plus cf, content, image, popularity, recency, price_fit, new_sale (each in [0, 1],
    never null).

    ``snapshot`` names the CF similarity snapshot a pair uses (``sims`` has that column).
    """
    if image_score not in IMAGE_SCORES:
        raise ValueError(f"image_score must be one of {IMAGE_SCORES}, not {image_score!r}")
    if image_score not in RELATIONAL_IMAGE_SCORES:
        raise ValueError(f"image_score {image_score!r} has no relational form (the scoring kernel computes it, "
                         "vistarank.recsys.taste); use one of {RELATIONAL_IMAGE_SCORES} here")
    keys = pairs.select("user_id", "as_of", "snapshot").distinct()
    hist = history_as_of(ev, keys.select("user_id", "as_of").distinct(), half_life_days).join(
        keys, ["user_id", "as_of"])
    out = (pairs.join(cf_scores(hist, sims), ["user_id", "as_of", "sale_id"], "left")
           .join(content_scores(hist, sale_prof, pairs), ["user_id", "as_of", "sale_id"], "left")
           .join(popularity(visits, pairs.select("sale_id", "as_of").distinct(), popularity_days),
                 ["sale_id", "as_of"], "left")
           .join(user_log_price(hist, sales), ["user_id", "as_of"], "left")
           .join(sales.select("sale_id", "open_date", F.col("price").alias("_price")), "sale_id", "left"))
    if sale_themes is not None:
        if theme_idf:
            sale_themes = distinctive_mix(sale_themes)
        out = (out.join(user_theme_vectors(hist, sale_themes), ["user_id", "as_of"], "left")
               .join(sale_themes.select("sale_id", F.col("weights").alias("sale_weights")), "sale_id", "left")
               .withColumn("image", cosine_arrays(F.col("user_weights"), F.col("sale_weights"))
                           if image_score == "cosine" else
                           dot_arrays(normalise(F.col("user_weights"), "double"), F.col("sale_weights")))
               .drop("user_weights", "sale_weights"))
    else:
        out = out.withColumn("image", F.lit(None).cast("double"))
    z = (F.log(F.col("_price")) - F.col("log_price")) / F.lit(price_sigma)
    zero = F.lit(0.0)
    return (out.withColumn("cf", F.coalesce(squash(F.col("cf")), zero))
            .withColumn("content", F.coalesce(F.col("content"), zero))
            .withColumn("image", F.coalesce(F.col("image"), zero))
            .withColumn("popularity", F.coalesce(squash(F.col("popularity")), zero))
            .withColumn("recency", F.coalesce(1.0 / (1.0 + F.datediff(F.col("as_of"), F.col("open_date"))), zero))
            .withColumn("new_sale", F.coalesce((F.col("open_date") == F.col("as_of")).cast("double"), zero))
            .withColumn("price_fit", F.coalesce(F.exp(-(z * z) / 2), zero))
            .drop("log_price", "open_date", "_price"))
