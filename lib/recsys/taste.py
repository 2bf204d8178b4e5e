"""The image engine as a choice model (``recsys.image_score = choice``, the default): what
a user's visits say about the pictures they like, against what was on offer the day they
chose, plus how good a sale's pictures look.

Each visit is read as a choice among the sales open that day (a conditional logit, the
model of discrete choice): P(s) ~ (1 + visits of s that day) x exp(b_u . x_s), x_s the
sale's theme mix, b_u the user's theme affinities. The popularity offset takes out what
everybody visits; a plain mean of the visited mixes (``fit``) keeps it, and so credits
every user with the themes that are merely common on the day's offer.

- **Themes that carry taste** (:func:`theme_relevance`). Every hotel shows bedrooms and
  bathrooms; such themes dilute a sale's mix without saying anything a user chooses by.
  A theme carries taste when users are consistent about it: its intra-class correlation
  (the share of the variance of a visit's theme weight that lies between users rather
  than within a user's visits; ~0 for a theme that is on every hotel). Themes whose ICC
  reaches ``recsys.taste_relevance`` x the highest theme's are kept; the sale mix x_s is
  the (distinctive) mix restricted to them, rescaled to sum 1: the shares of what sets
  the sale apart.
- **The offer of each day** (:func:`offer_by_day`): the visit-weighted mean mu_d of the
  open sales' mixes and their covariance H_d (the logit's gradient and curvature at
  b = 0, which depend on the day, not on the user). One row per day, collected.
- **A user's affinities**: one Newton step of the logit from b = 0 with a Gaussian prior
  of precision lambda (``recsys.taste_prior``): b_u = (lambda I + sum_v H_d(v))^-1 sum_v
  (x_s(v) - mu_d(v)), over the user's visits v in the history window (undecayed: each
  visit is one choice). Per user this is one k x k solve inside the scoring kernel, from
  the visits per sale and per day (:func:`affinities`).
- **Photo quality** (:func:`quality_weight`): q_s, the sale's mean predicted aesthetic
  score (``sale_gallery``) standardised over the sales, with weight beta fitted on the
  same visits as a one-parameter conditional logit (P(s) ~ exp(beta q_s) among the day's
  open sales; a few Newton steps, each a small aggregation).

The engine's score is the logistic of b_u . x_s + beta q_s (in [0, 1], as every engine's).
The population figures (which themes count, beta) come from the events before the first
day scored, so a training day never reads its own future. See docs/models.md for why
this works where the mean profile did not, and the figures it reaches.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.themes.profiles import normalise

log = logging.getLogger(__name__)

EPOCH = dt.date(1970, 1, 1)
MIN_VISITS = 2  # a user's visits needed to count in a theme's intra-class correlation
NEWTON_STEPS = 6  # quality_weight


def day_number(col: F.Column) -> F.Column:
    """A date as days since 1970-01-01 (the user states' visit days)."""
    return F.datediff(col, F.lit(EPOCH))


@dataclass
class TasteModel:
    """What the kernel needs of the population: which themes count, each offer day's mean
    and covariance, the quality weight and the prior."""
    relevant: np.ndarray  # (k,) bool
    icc: np.ndarray  # (k,)
    days: np.ndarray  # (n,) int, days since 1970-01-01
    offer_mean: np.ndarray  # (n, k)
    offer_cov: np.ndarray  # (n, k * k)
    beta: float
    prior: float
    day_pos: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.day_pos = {int(d): i for i, d in enumerate(self.days)}

    @property
    def k(self) -> int:
        return len(self.relevant)


# ----------------------------------------------------------------------------- population
def theme_relevance(visits: DataFrame, mixes: DataFrame, before: dt.date, history_days: int,
                    max_users: int, seed: int = 0) -> np.ndarray:
    """Each theme's intra-class correlation over users' visits in the ``history_days``
    before ``before`` (at most ``max_users`` users, a seeded hash sample; 0: all): the
    variance of the users' mean weights less its sampling part (the mean within-user
    variance over n), over that plus the mean within-user variance. ``mixes``: (sale_id,
    weights; broadcast: one row per sale). Users with fewer than MIN_VISITS visits are left
    out. One shuffle, of the visits' (user, sale) pairs by user; then two aggregations of
    k-vectors (MLlib's Summarizer): per user, where the pairs are, then over the users.
    Zeros when nothing can be measured."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.ml.stat import Summarizer

    v = (visits.where((F.col("visit_date") < F.lit(before))
                      & (F.col("visit_date") >= F.date_sub(F.lit(before), history_days)))
         .select("user_id", "sale_id"))
    if max_users:
        n_users = v.select("user_id").distinct().count()  # one number
        if n_users > max_users:
            cut = int(max_users / n_users * 1_000_000)
            v = v.where(F.abs(F.xxhash64("user_id", F.lit(seed))) % 1_000_000 < F.lit(cut))
    x = array_to_vector(F.col("weights").cast("array<double>"))
    # the (user, sale) pairs go to their user's partition first: the per-user vectors are
    # then summed where they are (Summarizer's buffers are large: never shuffled per user)
    mix = F.broadcast(mixes.select("sale_id", "weights"))
    per = (v.repartition("user_id").join(mix, "sale_id").groupBy("user_id")
           .agg(Summarizer.metrics("mean", "variance", "count").summary(x).alias("s"))
           .where(F.col("s.count") >= MIN_VISITS))
    n = F.col("s.count").cast("double")
    users = per.select(F.col("s.mean").alias("m"), F.col("s.variance").alias("within"),
                       array_to_vector(F.transform(vector_to_array(F.col("s.variance")), lambda w: w / n))
                       .alias("noise")).persist()
    try:
        if users.count() < 2:  # one number; a Summarizer over no rows fails
            return np.zeros(0)
        row = users.select(Summarizer.metrics("variance", "count").summary(F.col("m")).alias("m"),
                           Summarizer.mean(F.col("within")).alias("within"),
                           Summarizer.mean(F.col("noise")).alias("noise")).first()
    finally:
        users.unpersist()
    between = row["m"]["variance"].toArray() - row["noise"].toArray()
    total = between + row["within"].toArray()
    return np.divide(between, total, out=np.zeros_like(between), where=total > 0)


def relevant_themes(icc: np.ndarray, k: int, share: float) -> np.ndarray:
    """Themes whose ICC reaches ``share`` x the highest; every theme when none is positive
    (no users to measure) or ``share`` is 0."""
    out = np.ones(k, dtype=bool)
    if share <= 0 or len(icc) == 0 or not np.isfinite(icc).all() or icc.max() <= 0:
        return out
    out[: len(icc)] = icc >= share * icc.max()
    return out


def restrict(weights: F.Column, relevant: np.ndarray) -> F.Column:
    """A mix restricted to the relevant themes, rescaled to sum 1 (zeros when none is shown)."""
    mask = F.array(*[F.lit(1.0 if r else 0.0) for r in relevant])
    return normalise(F.zip_with(weights.cast("array<double>"), mask, lambda w, r: w * r), "double")


def _open_with_visits(open_days: DataFrame, visits: DataFrame) -> DataFrame:
    """``open_days`` (as_of, sale_id) with n: the sale's visits that day (null: none)."""
    daily = visits.groupBy("sale_id", F.col("visit_date").alias("as_of")).agg(F.count("*").alias("n"))
    return open_days.select("as_of", "sale_id").join(daily, ["as_of", "sale_id"], "left")


def _offer_fn(k: int):
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        x = np.zeros((len(pdf), k))
        for i, m in enumerate(pdf["mix"]):
            if m is not None and len(m) == k:
                x[i] = np.asarray(m, dtype=float)
        p = 1.0 + pdf["n"].fillna(0).to_numpy(dtype=float)
        p /= p.sum()
        mu = p @ x
        cov = (x * p[:, None]).T @ x - np.outer(mu, mu)
        return pd.DataFrame({"day": [int(pdf["day"].iloc[0])], "mean": [mu.tolist()], "cov": [cov.ravel().tolist()]})
    return fn


def offer_by_day(open_days: DataFrame, visits: DataFrame, mixes: DataFrame, k: int) -> pd.DataFrame:
    """(day, mean, cov) per day of ``open_days`` (as_of, sale_id): the mean and covariance
    of the open sales' mixes, each sale weighted by 1 + its visits that day (the logit's
    choice probabilities at b = 0). A sale without a mix counts with zeros. One row per day."""
    rows = (_open_with_visits(open_days, visits)
            .join(mixes.select("sale_id", F.col("weights").cast("array<double>").alias("mix")), "sale_id", "left")
            .select(day_number(F.col("as_of")).alias("day"), "n", "mix"))
    out = rows.groupBy("day").applyInPandas(_offer_fn(k), "day int, mean array<double>, cov array<double>")
    return out.toPandas().sort_values("day").reset_index(drop=True)  # a row per day of the window


def quality_weight(open_days: DataFrame, visits: DataFrame, quality: DataFrame, steps: int = NEWTON_STEPS) -> float:
    """beta of P(s) ~ exp(beta q_s) among the sales open on the day of each visit, by Newton
    steps from 0 over ``open_days`` (as_of, sale_id) and the visits of those days;
    ``quality``: (sale_id, quality), a sale without one counts 0 (the mean). 0 when the
    visits cannot tell (no visits, or one quality for all)."""
    rows = (_open_with_visits(open_days, visits)
            .join(quality.select("sale_id", "quality"), "sale_id", "left")
            .select("as_of", F.coalesce("n", F.lit(0)).cast("double").alias("n"),
                    F.coalesce("quality", F.lit(0.0)).cast("double").alias("q"))
            .cache())
    beta = 0.0
    try:
        for _ in range(steps):
            e = F.exp(F.lit(beta) * F.col("q"))
            per_day = rows.groupBy("as_of").agg(
                F.sum("n").alias("c"), F.sum(F.col("n") * F.col("q")).alias("cq"), F.sum(e).alias("z"),
                F.sum(e * F.col("q")).alias("zq"), F.sum(e * F.col("q") * F.col("q")).alias("zqq"))
            m = per_day.where(F.col("c") > 0).select(
                F.sum(F.col("cq") - F.col("c") * F.col("zq") / F.col("z")).alias("g"),
                F.sum(F.col("c") * (F.col("zqq") / F.col("z") - F.pow(F.col("zq") / F.col("z"), 2))).alias("h")
            ).first()
            if m is None or not m["h"] or m["h"] <= 1e-12:
                return 0.0
            step = m["g"] / m["h"]
            beta += float(np.clip(step, -2.0, 2.0))
            if abs(step) < 1e-6:
                break
    finally:
        rows.unpersist()
    return float(beta)


def sale_quality(gallery: DataFrame) -> DataFrame:
    """(sale_id, quality): the mean predicted aesthetic score of each sale's pictures
    (``sale_gallery``), standardised over the sales (0 mean, unit deviation)."""
    per = gallery.groupBy("sale_id").agg(F.avg("score").alias("q"))
    st = per.agg(F.avg("q").alias("m"), F.stddev_pop("q").alias("s")).first()
    if st is None or st["m"] is None:
        return per.select("sale_id", F.lit(0.0).alias("quality"))
    s = st["s"] if st["s"] and st["s"] > 0 else 1.0
    return per.select("sale_id", ((F.col("q") - F.lit(st["m"])) / F.lit(s)).alias("quality"))


def with_quality(sale_themes: DataFrame | None, gallery: DataFrame | None) -> DataFrame | None:
    """``sale_themes`` with a ``quality`` column from ``gallery`` (null where a sale has
    none); as it is when either is missing."""
    if sale_themes is None or gallery is None:
        return sale_themes
    return sale_themes.drop("quality").join(sale_quality(gallery), "sale_id", "left")


def build(spark, sales: DataFrame, visits: DataFrame, mixes: DataFrame, k: int, first: dt.date, last: dt.date, *,
          history_days: int, prior: float, relevance: float, max_users: int,
          quality: DataFrame | None = None) -> tuple[TasteModel, DataFrame]:
    """The model for scoring the days ``first``..``last`` and the mixes restricted to the
    themes that carry taste (sale_id, weights). ``mixes``: (sale_id, weights), as the
    engine uses them (distinctive or not); ``quality``: (sale_id, quality) or None (beta 0).
    Population figures from the ``history_days`` before ``first``; offer rows for every
    day a user's history can hold (``first`` - ``history_days`` to ``last`` - 1)."""
    from vistarank.recsys import kernel as K

    icc = theme_relevance(visits, mixes, first, history_days, max_users)
    relevant = relevant_themes(icc, k, relevance)
    restricted = mixes.select("sale_id", restrict(F.col("weights"), relevant).alias("weights"))
    lo, hi = first - dt.timedelta(days=history_days), last - dt.timedelta(days=1)
    days = [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]
    open_days = K.open_by_day(sales, K.days_frame(spark, days), lo, hi).select("as_of", "sale_id")
    window = visits.where((F.col("visit_date") >= F.lit(lo)) & (F.col("visit_date") <= F.lit(hi)))
    offer = offer_by_day(open_days, window, restricted, k)
    beta = 0.0
    if quality is not None and first > lo:
        before = open_days.where(F.col("as_of") < F.lit(first))
        beta = quality_weight(before, window.where(F.col("visit_date") < F.lit(first)), quality)
    mean = np.stack([np.asarray(m, dtype=float) for m in offer["mean"]]) if len(offer) else np.zeros((0, k))
    cov = np.stack([np.asarray(c, dtype=float) for c in offer["cov"]]) if len(offer) else np.zeros((0, k * k))
    model = TasteModel(relevant, icc, offer["day"].to_numpy(dtype=np.int64), mean, cov, beta, prior)
    log.info("image engine (choice): %d of %d themes carry taste (ICC %s); %d offer days; photo quality weight %.3f",
             int(relevant.sum()), k, np.round(icc, 3).tolist(), len(offer), beta)
    return model, restricted


# ----------------------------------------------------------------------------- users (in the kernel)
def affinities(model: TasteModel, counts, mix: np.ndarray, day_lists: list, day_counts: list) -> np.ndarray:
    """(users x k) affinities b_u: one Newton step from 0 with the prior. ``counts``: sparse
    (users x recent sales) visit counts; ``mix``: the recent sales' restricted mixes;
    ``day_lists`` and ``day_counts``: per user, the days (since 1970-01-01) of their visits
    and how many visits each. The model covers every day of the history window; a day
    outside it would add its sales' mixes without the day's offer terms."""
    from scipy import sparse

    k, n_u = model.k, counts.shape[0]
    lens = np.array([0 if d is None else len(d) for d in day_lists], dtype=int)
    grad = np.asarray(counts @ mix, dtype=float)
    curv = np.zeros((n_u, k * k))
    if lens.sum():
        flat = np.concatenate([np.asarray(d, dtype=np.int64) for d, n in zip(day_lists, lens) if n])
        vals = np.concatenate([np.asarray(c, dtype=float) for c, n in zip(day_counts, lens) if n])
        cols = np.array([model.day_pos.get(int(d), -1) for d in flat], dtype=int)
        rows = np.repeat(np.arange(n_u), lens)
        ok = cols >= 0
        per_day = sparse.csr_matrix((vals[ok], (rows[ok], cols[ok])), shape=(n_u, len(model.days)))
        grad -= per_day @ model.offer_mean
        curv = np.asarray(per_day @ model.offer_cov)
    h = curv.reshape(n_u, k, k) + model.prior * np.eye(k)[None]
    return np.linalg.solve(h, grad[..., None])[..., 0]


def scores(b: np.ndarray, sale_mix: np.ndarray, quality: np.ndarray, beta: float) -> np.ndarray:
    """(users x sales): the logistic of b_u . x_s + beta q_s."""
    z = b @ sale_mix.T + beta * quality[None, :]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
