"""One scoring kernel for serving and training: every engine's score for a user against a
day's open sales, computed with numpy inside ``mapInPandas``, per user partition.

The engines are those of :mod:`vistarank.recsys.engines` (the formulas are there); this
module computes them without a pair-level shuffle:

- **Blocks** (:func:`day_blocks`), collected once and broadcast: for each day ``as_of``
  to score, the sales open that day with their CF neighbour lists (their K most similar
  sales by co-visits before that day, with similarities), popularity before that day and
  opening date (a few hundred a day); and the *recent* sales (open at some point in the
  history window: every sale a user's history can hold) with their content profiles,
  theme mixes and prices (a few thousand).
- **User states** (:func:`user_states`): one row per (user_id, as_of): the sales the user
  visited or bought in the ``recsys.history_days`` before that day with their decayed
  weights, the sales bought among them, and, for training, the sales to score with their
  labels. One shuffle of the events by user: its cost grows with the events, not with
  users x sales.
- **The kernel** (:func:`score_states`): per batch of states, per day, the user's content
  profile, theme vector and mean log price as sparse products of their weights with the
  recent sales' matrices, then the engines as (users x open sales) matrices: cf from a
  sparse (sale x open sale) similarity matrix, content as a cosine, image as a fit (or a
  cosine; ``recsys.image_score``), als
  from the user's factor folded in on the day (:mod:`vistarank.recsys.latent`), the rest
  elementwise. Then either the feature rows of the asked sales (training, evaluation,
  monitoring samples) or the re-ranker applied and only each user's ``top_n``
  (serving). The (user, sale) rows exist only inside a task.

CF policy (serving and training alike): each day's similarities come from the co-visits
of the ``history_days`` days before that very day (an exact daily snapshot). A sale that
opened the day before has one day of visits in its CF column, in training as at serving.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.recsys import latent as LT
from vistarank.recsys import taste as TS
from vistarank.recsys.engines import ENGINES, IMAGE_SCORES, distinctive_mix
from vistarank.recsys.similarity import ranked

log = logging.getLogger(__name__)

FEATURES_SCHEMA = ("user_id string, as_of date, sale_id string, label double, cf double, content double, "
                   "image double, popularity double, recency double, price_fit double, als double, new_sale double, "
                   "n_history int")
TOP_SCHEMA = "user_id string, as_of date, rank int, sale_id string, probability double, top_engine string"
COVISIT_BLOCK_EVENTS = 1_000_000  # events per user block of the co-visit similarities (a task's pandas frame)
COVISIT_SEED = 7  # the user blocks' hash seed
SLICE_USERS = 1024  # users scored at once in a task: 1024 x 300 sales x 8 features x 8 bytes = 20 MB


# ----------------------------------------------------------------------------- days
def days_frame(spark, days: list[dt.date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in sorted(set(days))], "as_of date")


def open_by_day(sales: DataFrame, days: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """(as_of, sale_id, open_date, price): each sale on each asked day it is open (``days``,
    between ``first`` and ``last``). Each sale's open range within [first, last] is exploded
    into its days and equi-joined with the asked days."""
    valid = sales.where(F.col("open_date").isNotNull() & F.col("close_date").isNotNull()
                        & (F.col("close_date") >= F.col("open_date"))
                        & (F.col("open_date") <= F.lit(last)) & (F.col("close_date") >= F.lit(first)))
    span = F.sequence(F.greatest("open_date", F.lit(first)), F.least("close_date", F.lit(last)))
    return (valid.select("sale_id", "open_date", "price", F.explode(span).alias("as_of"))
            .join(F.broadcast(days), "as_of"))


def _spread(date: F.Column, after: int, first: dt.date, last: dt.date) -> F.Column:
    """The days in [date + 1, date + after] within [first, last] (an event counts for them)."""
    lo = F.greatest(F.date_add(date, 1), F.lit(first))
    hi = F.least(F.date_add(date, after), F.lit(last))
    return F.when(lo <= hi, F.sequence(lo, hi)).otherwise(F.array().cast("array<date>"))


def popularity_by_day(visits: DataFrame, days: DataFrame, first: dt.date, last: dt.date,
                      popularity_days: int) -> DataFrame:
    """(as_of, sale_id, popularity = log(1 + visits in the ``popularity_days`` days before))."""
    daily = (visits.where((F.col("visit_date") >= F.date_sub(F.lit(first), popularity_days))
                          & (F.col("visit_date") < F.lit(last)))
             .groupBy("sale_id", F.col("visit_date").alias("date")).agg(F.count("*").alias("n")))
    return (daily.select("sale_id", "n", F.explode(_spread(F.col("date"), popularity_days, first, last)).alias("as_of"))
            .join(F.broadcast(days), "as_of")
            .groupBy("as_of", "sale_id").agg(F.log1p(F.sum("n").cast("double")).alias("popularity")))


def user_blocks(ev: DataFrame, first: dt.date, last: dt.date, history_days: int, block_events: int):
    """(the events of the history windows of the days ``first``..``last`` as (user_id,
    sale_id, t = days after ``first``, w), grouped by user block; the number of blocks,
    about ``block_events`` events each). What the daily co-visits and the daily ALS refresh
    compute from, a task per block."""
    ev_in = (ev.where((F.col("date") >= F.date_sub(F.lit(first), history_days)) & (F.col("date") < F.lit(last)))
             .select("user_id", "sale_id", F.datediff(F.col("date"), F.lit(first)).alias("t"), "w"))
    n_blocks = max(1, -(-ev_in.count() // max(1, block_events)))  # one number
    block = F.pmod(F.xxhash64("user_id", F.lit(COVISIT_SEED)), F.lit(n_blocks))
    return ev_in.withColumn("block", block).groupBy("block"), n_blocks


def covisit_by_day(ev: DataFrame, open_days: DataFrame, first: dt.date, last: dt.date, k: int, shrinkage: float,
                   half_life_days: float, history_days: int, block_events: int = COVISIT_BLOCK_EVENTS) -> DataFrame:
    """(as_of, query_id, neighbor_id, similarity, rank): for each open sale j of each day
    (``open_days``: as_of, sale_id), its k most similar sales by co-visits in the
    ``history_days`` days before that day (the formula of
    :func:`vistarank.recsys.engines.covisit_neighbors`, one snapshot per day).

    The events are grouped by user block (about ``block_events`` events each) and every
    day's similarities are sparse products inside the task (:mod:`vistarank.udfs.covisit`):
    an event is never copied per day. With one block the task returns the top k itself;
    with more, the blocks' partial dot products, co-visitor counts and norms are summed by
    key and ranked (a shuffle of the pairs that share users, as a join on users would)."""
    from vistarank.udfs import covisit as CV

    by_day: dict[int, list[str]] = {}
    # the open sales of the asked days (a few hundred a day, as the day blocks)
    for r in open_days.select(F.datediff(F.col("as_of"), F.lit(first)).alias("t"), "sale_id").collect():
        by_day.setdefault(int(r["t"]), []).append(r["sale_id"])
    opened = {t: np.array(sorted(ids), dtype=object) for t, ids in by_day.items()}
    grouped, n_blocks = user_blocks(ev, first, last, history_days, block_events)
    fn = CV.similarities_fn(opened, k=k, shrinkage=shrinkage, half_life_days=half_life_days,
                            history_days=history_days, final=n_blocks == 1)
    as_of = F.date_add(F.lit(first), F.col("t")).alias("as_of")
    if n_blocks == 1:
        return grouped.applyInPandas(fn, CV.FINAL_SCHEMA).select(as_of, "query_id", "neighbor_id", "similarity",
                                                                  "rank")
    log.info("co-visits: %d user blocks, partial sums added up by key", n_blocks)
    summed = (grouped.applyInPandas(fn, CV.PARTIAL_SCHEMA).groupBy("t", "query_id", "neighbor_id")
              .agg(F.sum("dot").alias("dot"), F.sum("n").alias("n")))
    norms = summed.where(F.col("query_id").isNull()).select("t", F.col("neighbor_id").alias("id"),
                                                            F.sqrt("dot").alias("norm"))
    pairs = (summed.where(F.col("query_id").isNotNull() & (F.col("query_id") != F.col("neighbor_id")))
             .join(norms.withColumnRenamed("id", "query_id").withColumnRenamed("norm", "qn"), ["t", "query_id"])
             .join(norms.withColumnRenamed("id", "neighbor_id").withColumnRenamed("norm", "cn"),
                   ["t", "neighbor_id"]))
    cos = F.col("dot") / (F.col("qn") * F.col("cn"))
    sim = cos * (F.col("n") / (F.col("n") + F.lit(float(shrinkage)))) if shrinkage > 0 else cos
    return ranked(pairs.select("t", "query_id", "neighbor_id", sim.alias("similarity")), k, ("t",)).select(
        as_of, "query_id", "neighbor_id", "similarity", "rank")


@dataclass
class Blocks:
    """What the kernel needs about sales, collected once and broadcast:

    - ``open``: one row per (as_of, open sale): popularity before that day, opening date,
      CF neighbour lists (a few hundred rows a day);
    - ``recent``: one row per sale open at some point in the history window of any asked
      day (every sale a user's history can hold, as visits and purchases are of open
      sales): content profile, theme mix, price (a few thousand rows);
    - ``als``: {day: the ALS snapshot it uses} (item factors; None or a missing day: the
      latent-factor engine scores 0)."""
    open: pd.DataFrame
    recent: pd.DataFrame
    n_themes: int
    als: dict | None = None
    image_score: str = "fit"
    taste: TS.TasteModel | None = None

    def days(self) -> list[dt.date]:
        return sorted(set(self.open["as_of"]))

    def n_open(self) -> int:
        return len(self.open)


def taste_settings(rc) -> dict:
    """The ``choice`` image engine's settings of a RecsysConfig, as :func:`day_blocks` takes them."""
    return dict(taste_prior=rc.taste_prior, taste_relevance=rc.taste_relevance, taste_users=rc.taste_users)


def day_blocks(spark, days: list[dt.date], sales: DataFrame, visits: DataFrame, ev: DataFrame,
               sale_prof: DataFrame, sale_themes: DataFrame | None, *, k: int, shrinkage: float,
               half_life_days: float, history_days: int, popularity_days: int,
               covisit: DataFrame | None = None, als: LT.AlsSettings | None = None, als_refit_days: int = 1,
               theme_idf: bool = True, image_score: str = "fit", taste_prior: float = 1.0,
               taste_relevance: float = 0.1, taste_users: int = 50_000) -> Blocks:
    """The blocks of ``days`` (see :class:`Blocks`); ``covisit``: the days'
    :func:`covisit_by_day` when the caller has it already; ``als``: the ALS settings of
    the snapshots (one every ``als_refit_days`` days; None: none fitted, the engine scores 0);
    ``theme_idf``: the image engine uses :func:`vistarank.recsys.engines.distinctive_mix`;
    ``image_score``: ``choice``, ``fit`` or ``cosine`` (:data:`vistarank.recsys.engines.IMAGE_SCORES`);
    with ``choice``, the ``taste_*`` settings of :func:`vistarank.recsys.taste.build`, and
    the photo quality of a ``quality`` column of ``sale_themes`` when it has one."""
    if image_score not in IMAGE_SCORES:
        raise ValueError(f"image_score must be one of {IMAGE_SCORES}, not {image_score!r}")
    if not days:
        raise ValueError("day_blocks: no day asked")
    first, last = min(days), max(days)
    dd = days_frame(spark, days)
    open_days = open_by_day(sales, dd, first, last)
    if covisit is None:
        covisit = covisit_by_day(ev, open_days, first, last, k, shrinkage, half_life_days, history_days)
    nb = (covisit.groupBy("as_of", F.col("query_id").alias("sale_id"))
          .agg(F.array_sort(F.collect_list(F.struct("neighbor_id", "similarity"))).alias("nb")))
    pop = popularity_by_day(visits, dd, first, last, popularity_days)
    open_rows = (open_days.join(nb, ["as_of", "sale_id"], "left").join(pop, ["as_of", "sale_id"], "left")
                 .select("as_of", "sale_id", "open_date", "popularity", F.col("nb.neighbor_id").alias("nb_ids"),
                         F.col("nb.similarity").alias("nb_sims"))
                 .toPandas())  # the open sales of the asked days: a few hundred a day
    recent = sales.where((F.col("open_date") <= F.lit(last))
                         & (F.col("close_date") >= F.date_sub(F.lit(first), history_days))).select("sale_id", "price")
    prof = (sale_prof.groupBy("sale_id")
            .agg(F.array_sort(F.collect_list(F.struct("feature", "value"))).alias("prof")))
    recent = recent.join(prof, "sale_id", "left")
    n_themes, taste = 0, None
    if sale_themes is not None:
        if theme_idf:
            sale_themes = distinctive_mix(sale_themes)
        mixes = sale_themes.select("sale_id", F.col("weights").cast("array<double>").alias("weights"))
        first_mix = sale_themes.select(F.size("weights").alias("d")).first()
        n_themes = int(first_mix["d"]) if first_mix else 0
        has_quality = "quality" in sale_themes.columns
        if image_score == "choice" and n_themes:
            taste, mixes = TS.build(spark, sales, visits, mixes, n_themes, first, last, history_days=history_days,
                                    prior=taste_prior, relevance=taste_relevance, max_users=taste_users,
                                    quality=sale_themes.select("sale_id", "quality") if has_quality else None)
        recent = recent.join(mixes.select("sale_id", F.col("weights").alias("mix")), "sale_id", "left")
        quality = F.col("quality").cast("double") if has_quality else F.lit(None).cast("double")
        recent = recent.join(sale_themes.select("sale_id", quality.alias("quality")), "sale_id", "left")
    else:
        recent = (recent.withColumn("mix", F.lit(None).cast("array<double>"))
                  .withColumn("quality", F.lit(None).cast("double")))
    recent_rows = recent.select("sale_id", "price", F.col("prof.feature").alias("feats"),
                                F.col("prof.value").alias("fvals"), "mix", "quality").toPandas()  # a few thousand sales
    open_rows = open_rows.sort_values(["as_of", "sale_id"], kind="stable").reset_index(drop=True)
    recent_rows = recent_rows.sort_values("sale_id", kind="stable").reset_index(drop=True)
    log.info("day blocks: %d day(s), %d open sale-days, %d neighbour entries; %d recent sales", len(days),
             len(open_rows), int(sum(len(x) for x in open_rows["nb_ids"] if x is not None)), len(recent_rows))
    factors = None
    if als is not None and als.rank > 0:
        factors = LT.fit_days(ev, days, als, refit_days=als_refit_days, history_days=history_days)
    return Blocks(open_rows, recent_rows, n_themes, factors, image_score, taste)


# ----------------------------------------------------------------------------- user states
def user_states(keys: DataFrame, ev: DataFrame, *, half_life_days: float, history_days: int,
                als_half_life_days: float = 0.0, visit_days: bool = False) -> DataFrame:
    """One row per key (user_id, as_of, [targets, labels]): the user's decayed events of the
    ``history_days`` before as_of (h_sales, h_weights; h_als: the same decayed by the
    ALS half-life, their ALS ratings of the day) and the sales bought in that window
    (bought); with ``visit_days`` (the ``choice`` image engine), h_visits: per sale of
    h_sales, its visits (undecayed), and v_days, v_counts: the days (since 1970-01-01) the
    user visited anything, with that day's visits. ``ev``:
    :func:`vistarank.recsys.engines.events`. One shuffle of the events and keys by user;
    with ``visit_days``, the same rows are also counted by (user, day) (numeric aggregates,
    then one short list per user: no list is built per sale)."""
    age = F.datediff(F.col("as_of"), F.col("date"))
    decay = F.pow(F.lit(0.5), age / F.lit(half_life_days))
    aggs = [F.sum(F.col("w") * decay).alias("weight"), F.max(F.col("bought").cast("int")).alias("b"),
            F.sum(F.col("w") * LT.decay(age, als_half_life_days)).alias("als")]
    if visit_days:
        aggs.append(F.sum((~F.col("bought")).cast("int")).alias("nv"))
    window = ev.join(keys.select("user_id", "as_of"), "user_id").where(
        (F.col("date") < F.col("as_of")) & (F.col("date") >= F.date_sub(F.col("as_of"), history_days)))
    hist = window.groupBy("user_id", "as_of", "sale_id").agg(*aggs)
    fields = ["sale_id", "weight", "als"] + (["nv"] if visit_days else [])
    state = hist.groupBy("user_id", "as_of").agg(
        F.array_sort(F.collect_list(F.struct(*fields))).alias("h"),
        F.array_sort(F.collect_list(F.when(F.col("b") > 0, F.col("sale_id")))).alias("bought"))
    extra = []
    if visit_days:
        days = (window.where(~F.col("bought"))
                .groupBy("user_id", "as_of", TS.day_number(F.col("date")).alias("day")).agg(F.count("*").alias("n"))
                .groupBy("user_id", "as_of").agg(F.array_sort(F.collect_list(F.struct("day", "n"))).alias("vd")))
        state = state.join(days, ["user_id", "as_of"], "left")
        extra = [F.col("h.nv").alias("h_visits"), F.col("vd.day").alias("v_days"), F.col("vd.n").alias("v_counts")]
    return keys.join(state, ["user_id", "as_of"], "left").select(
        *keys.columns, F.col("h.sale_id").alias("h_sales"), F.col("h.weight").alias("h_weights"),
        F.col("h.als").alias("h_als"), "bought", *extra)


# ----------------------------------------------------------------------------- the kernel
def _csr(lists, index: dict, weights=None, n_cols: int = 0):
    """A sparse (rows x n_cols) matrix from per-row lists of keys (and weights); keys not in
    ``index`` are left out."""
    from scipy import sparse

    lens = np.array([0 if x is None else len(x) for x in lists], dtype=int)
    if lens.sum() == 0:
        return sparse.csr_matrix((len(lists), n_cols))
    flat = np.concatenate([np.asarray(x, dtype=object) for x, n in zip(lists, lens) if n])
    cols = pd.Series(flat).map(index).to_numpy(dtype=float)
    rows = np.repeat(np.arange(len(lists)), lens)
    if weights is None:
        vals = np.ones(len(flat))
    else:
        vals = np.concatenate([np.asarray(w, dtype=float) for w, n in zip(weights, lens) if n])
    ok = ~np.isnan(cols)
    return sparse.csr_matrix((vals[ok], (rows[ok], cols[ok].astype(int))), shape=(len(lists), n_cols))


class _Recent:
    """The recent sales as matrices (built once per Python worker)."""

    def __init__(self, rows: pd.DataFrame, n_themes: int, image_score: str = "fit",
                 taste: TS.TasteModel | None = None) -> None:
        self.image_score = image_score
        self.taste = taste if image_score == "choice" else None
        self.ids = np.asarray(rows["sale_id"], dtype=object)
        self.pos = {s: i for i, s in enumerate(self.ids)}
        f_index: dict[str, int] = {}
        for fs in rows["feats"]:
            for f in (fs if fs is not None else []):
                f_index.setdefault(f, len(f_index))
        self.f_index = f_index
        self.prof = _csr(list(rows["feats"]), f_index, list(rows["fvals"]), len(f_index))  # unit rows
        k = max(n_themes, 1)
        mix = np.zeros((len(self.ids), k))
        for j, m in enumerate(rows["mix"]):
            if m is not None and n_themes and len(m) == n_themes:
                mix[j] = np.asarray(m, dtype=float)
        self.mix = mix  # as stored (choice: restricted to the themes that carry taste)
        q = (np.asarray(rows["quality"], dtype=float) if "quality" in rows.columns
             else np.full(len(self.ids), np.nan))
        self.quality = np.nan_to_num(q, nan=0.0)  # standardised; a sale without one counts the mean
        price = np.asarray(rows["price"], dtype=float)
        ok = np.isfinite(price) & (price > 0)
        self.has_price = ok.astype(float)
        self.log_price = np.where(ok, np.log(np.where(ok, price, 1.0)), 0.0)


class _Day:
    """One day's open sales as matrices, against the recent sales (built once per day per worker)."""

    def __init__(self, rows: pd.DataFrame, as_of: dt.date, recent: _Recent, factors: LT.Factors | None = None) -> None:
        from scipy import sparse

        self.ids = np.asarray(rows["sale_id"], dtype=object)  # sorted: ties resolve by id
        n = len(self.ids)
        self.pos = {s: i for i, s in enumerate(self.ids)}
        # cf: sparse (neighbour sale x open sale) similarities
        nb_index: dict[str, int] = {}
        r, c, v = [], [], []
        for j, (ids, sims) in enumerate(zip(rows["nb_ids"], rows["nb_sims"])):
            if ids is None:
                continue
            for i, s in zip(ids, sims):
                r.append(nb_index.setdefault(i, len(nb_index)))
                c.append(j)
                v.append(float(s))
        self.nb_index = nb_index
        self.cf = sparse.csr_matrix((v, (r, c)), shape=(len(nb_index), n))
        at = np.array([recent.pos.get(s, -1) for s in self.ids], dtype=int)
        known = at >= 0
        # content: the open sales' unit profiles, transposed (feature x open sale)
        sel = sparse.csr_matrix((np.ones(int(known.sum())), (np.flatnonzero(known), at[known])),
                                shape=(n, len(recent.ids)))
        self.content = (sel @ recent.prof).T.tocsr()
        mix = sel @ recent.mix  # as stored: sums to 1 (or 0)
        if recent.image_score == "cosine":
            norms = np.linalg.norm(mix, axis=1, keepdims=True)
            mix = np.where(norms > 0, mix / np.where(norms > 0, norms, 1.0), 0.0)
        self.mix = mix
        self.quality = sel @ recent.quality
        pop = np.nan_to_num(np.asarray(rows["popularity"], dtype=float), nan=0.0)
        self.popularity = pop / (1.0 + pop)
        opened = np.array([(as_of - d).days if d is not None else np.nan for d in rows["open_date"]], dtype=float)
        self.recency = np.nan_to_num(1.0 / (1.0 + opened), nan=0.0)
        self.new = (opened == 0).astype(float)  # opens that day (NaN compares False)
        has = sel @ recent.has_price
        self.log_price = np.where(has > 0, sel @ recent.log_price, np.nan)
        # als: the snapshot's factors of the open sales (0 without) and the recent sales' columns in it
        self.factors = factors
        if factors is not None and factors.rank > 0:
            f_pos = {s: i for i, s in enumerate(factors.ids)}
            self.als_open = np.zeros((n, factors.rank))
            fo = np.array([f_pos.get(s, -1) for s in self.ids], dtype=int)
            self.als_open[fo >= 0] = factors.matrix[fo[fo >= 0]]
            fr = np.array([f_pos.get(s, -1) for s in recent.ids], dtype=int)
            ok = np.flatnonzero(fr >= 0)
            self.als_columns = sparse.csr_matrix((np.ones(len(ok)), (ok, fr[ok])),
                                                 shape=(len(recent.ids), len(factors.ids)))


def engine_matrix(day: _Day, recent: _Recent, pdf: pd.DataFrame, price_sigma: float) -> np.ndarray:
    """(users x open sales x engines) in ENGINES order, every value in [0, 1]."""
    n_u, n = len(pdf), len(day.ids)
    out = np.zeros((n_u, n, len(ENGINES)))
    if n == 0 or n_u == 0:
        return out
    sales, weights = list(pdf["h_sales"]), list(pdf["h_weights"])
    # cf: the sum of sim(i, j) over the distinct sales i the user has, squashed
    visited = _csr(sales, day.nb_index, n_cols=len(day.nb_index))
    raw = np.asarray((visited @ day.cf).todense())
    out[:, :, 0] = raw / (1.0 + raw)
    # the user's decayed weights over the recent sales
    w = _csr(sales, recent.pos, weights, len(recent.ids))
    # content: the cosine of the user's decayed profile (every feature) and the sale's
    u = w @ recent.prof
    norm = np.sqrt(np.asarray(u.multiply(u).sum(axis=1))).ravel()
    dot = np.asarray((u @ day.content).todense())
    out[:, :, 1] = np.where(norm[:, None] > 0, dot / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
    # image: choice, the logistic of the user's affinities (one Newton step of the logit over
    # their visits) . the sale's mix + beta x its photo quality (vistarank.recsys.taste); fit,
    # the user's theme shares (their decayed theme vector scaled to sum 1) times the sale's
    # mix (sum 1); or the cosine of the two
    if recent.image_score == "choice":
        if recent.taste is not None:
            cols = ("h_visits", "v_days", "v_counts")
            visits, days, day_counts = ([None] * n_u,) * 3 if not set(cols) <= set(pdf.columns) else (
                list(pdf[c]) for c in cols)
            counts = _csr([s if v is not None else None for s, v in zip(sales, visits)], recent.pos,
                          [v if v is not None else [] for v in visits], len(recent.ids))
            b = TS.affinities(recent.taste, counts, recent.mix, days, day_counts)
            out[:, :, 2] = TS.scores(b, day.mix, day.quality, recent.taste.beta)
    else:
        ut = w @ recent.mix
        un = (np.linalg.norm(ut, axis=1, keepdims=True) if recent.image_score == "cosine"
              else ut.sum(axis=1, keepdims=True))
        ut = np.where(un > 0, ut / np.where(un > 0, un, 1.0), 0.0)
        out[:, :, 2] = ut @ day.mix.T
    out[:, :, 3] = day.popularity[None, :]
    out[:, :, 4] = day.recency[None, :]
    out[:, :, 7] = day.new[None, :]
    # price fit: the distance of the sale's log price to the user's decayed mean log price
    total = np.asarray(w.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        lp = np.where(total > 0, (w @ recent.log_price) / np.where(total > 0, total, 1.0), np.nan)
        z = (day.log_price[None, :] - lp[:, None]) / price_sigma
        out[:, :, 5] = np.nan_to_num(np.exp(-(z * z) / 2), nan=0.0)
    # als: the user's factor folded in from their ratings of the day (the decayed weights)
    if day.factors is not None and day.factors.rank > 0:
        r = _csr(sales, recent.pos, list(pdf["h_als"]), len(recent.ids)) if "h_als" in pdf.columns else w
        out[:, :, 6] = LT.score(LT.fold_in(day.factors, r @ day.als_columns), day.als_open)
    return out


@dataclass(frozen=True)
class Reranker:
    """The logistic regression on standardised scores, as numbers the kernel applies."""
    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float

    @classmethod
    def of(cls, fitted) -> "Reranker":
        coef = fitted.coefficients()
        mean, std = fitted.scaler()
        return cls(tuple(fitted.features), tuple(mean), tuple(std), tuple(coef[f] for f in fitted.features),
                   float(coef["intercept"]))

    def apply(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, index of the top contributing feature or -1) for (..., engines) scores."""
        cols = [ENGINES.index(f) for f in self.features]
        std = np.array([s if s > 0 else 1.0 for s in self.std])
        contrib = np.array(self.coefficients) * (x[..., cols] - np.array(self.mean)) / std
        z = self.intercept + contrib.sum(axis=-1)
        prob = 1.0 / (1.0 + np.exp(-z))
        top = np.argmax(contrib, axis=-1)
        best = np.take_along_axis(contrib, top[..., None], axis=-1)[..., 0]
        return prob, np.where(best > 0, top, -1)


def score_fn(blocks_bc, price_sigma: float, mode: str, reranker: Reranker | None = None,
             top_n: int = 10, exclude_bought: bool = True):
    """The mapInPandas function over user states.

    mode ``targets``: the feature rows of each state's ``targets`` (with ``labels``);
    ``all``: of every open sale of the day (label 1 when in ``targets``);
    ``top``: the re-ranker applied, each state's ``top_n``. With ``exclude_bought``, the
    sales bought in the history window are left out (modes ``all`` and ``top``)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        blocks: Blocks = blocks_bc.value
        recent = _Recent(blocks.recent, blocks.n_themes, blocks.image_score, blocks.taste)
        rows = blocks.open
        cache: dict = {}
        for pdf in batches:
            for as_of, part in pdf.groupby("as_of", sort=False):
                day = cache.get(as_of)
                if day is None:
                    day = cache[as_of] = _Day(rows[rows["as_of"] == as_of], as_of, recent,
                                              (blocks.als or {}).get(as_of))
                part = part.reset_index(drop=True)
                for start in range(0, len(part), SLICE_USERS):  # bounds the (users x sales x engines) array
                    sl = part.iloc[start:start + SLICE_USERS].reset_index(drop=True)
                    x = engine_matrix(day, recent, sl, price_sigma)
                    if mode == "top":
                        out = _top(day, sl, x, as_of, reranker, top_n, exclude_bought)
                    else:
                        out = _features(day, sl, x, as_of, mode, exclude_bought)
                    if len(out):  # an empty frame has no column types to convert
                        yield out

    return run


def _features(day: _Day, part: pd.DataFrame, x: np.ndarray, as_of, mode: str,
              exclude_bought: bool = False) -> pd.DataFrame:
    n_u, n = x.shape[0], x.shape[1]
    if mode == "all":
        idx_u, idx_s = np.repeat(np.arange(n_u), n), np.tile(np.arange(n), n_u)
        labels = np.zeros(n_u * n)
        keep = np.ones(n_u * n, dtype=bool)
        for i, targets in enumerate(part["targets"] if "targets" in part.columns else []):
            for s in (targets if targets is not None else []):
                j = day.pos.get(s)
                if j is not None:
                    labels[i * n + j] = 1.0
        if exclude_bought:  # as at serving: a sale bought in the history window is not in the list
            for i, b in enumerate(part["bought"]):
                for s in (b if b is not None else []):
                    j = day.pos.get(s)
                    if j is not None:
                        keep[i * n + j] = False
        idx_u, idx_s, labels = idx_u[keep], idx_s[keep], labels[keep]
    else:
        iu, js, lab = [], [], []
        for i, (targets, tl) in enumerate(zip(part["targets"], part["labels"])):
            for t, s in enumerate(targets if targets is not None else []):
                j = day.pos.get(s)
                if j is None:
                    continue  # not open that day: no score (the callers keep targets to open sales)
                iu.append(i)
                js.append(j)
                lab.append(float(tl[t]) if tl is not None else 0.0)
        idx_u, idx_s, labels = np.asarray(iu, dtype=int), np.asarray(js, dtype=int), np.asarray(lab, dtype=float)
    vals = x[idx_u, idx_s] if len(idx_u) else np.zeros((0, len(ENGINES)))
    out = pd.DataFrame({"user_id": np.asarray(part["user_id"], dtype=object)[idx_u], "as_of": [as_of] * len(idx_u),
                        "sale_id": day.ids[idx_s] if len(idx_s) else np.array([], dtype=object), "label": labels})
    for e, name in enumerate(ENGINES):
        out[name] = vals[:, e]
    n_hist = np.array([0 if h is None else len(h) for h in part["h_sales"]], dtype="int32")
    out["n_history"] = n_hist[idx_u]
    return out


def _top(day: _Day, part: pd.DataFrame, x: np.ndarray, as_of, rr: Reranker, top_n: int,
         exclude_bought: bool) -> pd.DataFrame:
    prob, top = rr.apply(x)
    if exclude_bought:
        for i, b in enumerate(part["bought"]):
            for s in (b if b is not None else []):
                j = day.pos.get(s)
                if j is not None:
                    prob[i, j] = -np.inf
    k = min(top_n, len(day.ids))
    order = np.argsort(-prob, axis=1, kind="stable")[:, :k]  # open sales sorted by id: ties by id
    p = np.take_along_axis(prob, order, axis=1)
    t = np.take_along_axis(top, order, axis=1)
    ok = np.isfinite(p)  # excluded sales sort last
    rank = np.cumsum(ok, axis=1)
    users = np.repeat(np.asarray(part["user_id"], dtype=object), k).reshape(-1, k) if k else np.zeros((len(part), 0))
    names = np.array(list(rr.features) + [None], dtype=object)
    return pd.DataFrame({"user_id": users[ok], "as_of": [as_of] * int(ok.sum()), "rank": rank[ok].astype("int32"),
                         "sale_id": day.ids[order[ok]] if ok.any() else np.array([], dtype=object),
                         "probability": p[ok], "top_engine": names[t[ok]]})


def score_states(spark, states: DataFrame, blocks: Blocks, price_sigma: float, mode: str,
                 reranker: Reranker | None = None, top_n: int = 10, exclude_bought: bool = False) -> DataFrame:
    """The kernel over ``states`` (see :func:`score_fn`)."""
    if mode == "top" and reranker is None:
        raise ValueError("mode 'top' needs the re-ranker")
    bc = spark.sparkContext.broadcast(blocks)
    fn = score_fn(bc, price_sigma, mode, reranker, top_n, exclude_bought)
    cols = ["user_id", "as_of", "h_sales", "h_weights", "bought"]
    cols += [c for c in ("h_als", "h_visits", "v_days", "v_counts") if c in states.columns]
    cols += [c for c in ("targets", "labels") if c in states.columns]
    return states.select(*cols).mapInPandas(fn, TOP_SCHEMA if mode == "top" else FEATURES_SCHEMA)
