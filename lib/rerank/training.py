"""The re-ranker's examples: purchases and sampled negatives, with the engines' scores as
they could have been known on the day.

- Positives: every purchase (user, sale, date) in the training and evaluation windows.
- Negatives: for each purchase, ``rerank.negatives`` sales that were open that day and
  that the user did not buy that day, drawn by a seeded hash of (user, sale, date): the
  same draw whatever the partitioning.
- Features: :func:`vistarank.recsys.engines.features` with as_of = the day, so only
  earlier data counts. CF similarities come from a snapshot of the co-visits at most
  ``rerank.cf_snapshot_days`` old (the snapshot date is <= the day: still no leakage);
  evaluation days use an exact snapshot (the day itself), as the nightly candidates do.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vistarank.config import RecsysConfig, RerankConfig
from vistarank.recsys import engines as E

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Windows:
    """Day ranges (inclusive): train (with its validation tail) and evaluation."""
    train_start: dt.date
    validation_start: dt.date
    eval_start: dt.date
    end: dt.date

    def split_of(self, col: F.Column) -> F.Column:
        return (F.when(col >= F.lit(self.eval_start), "eval")
                .when(col >= F.lit(self.validation_start), "validation").otherwise("train"))


def windows(first_day: dt.date, run_date: dt.date, rr: RerankConfig) -> Windows:
    """Evaluation: the ``eval_days`` days before the run date; validation: the
    ``validation_days`` before those; training: from ``warmup_days`` after the first day."""
    end = run_date - dt.timedelta(days=1)
    eval_start = run_date - dt.timedelta(days=rr.eval_days)
    validation_start = eval_start - dt.timedelta(days=rr.validation_days)
    train_start = first_day + dt.timedelta(days=rr.warmup_days)
    if train_start >= validation_start:
        raise ValueError(f"not enough history for the re-ranker: training would start on {train_start} but "
                         f"validation starts on {validation_start}; lower rerank.warmup_days, "
                         "rerank.validation_days or rerank.eval_days, or use a later run date")
    return Windows(train_start, validation_start, eval_start, end)


def negatives(purchases: DataFrame, sales: DataFrame, n_neg: int, seed: int) -> DataFrame:
    """(user_id, sale_id, as_of, label 0): per (user, day) ``n_neg`` x purchases that day of
    the sales open that day that the user did not buy that day."""
    bought = purchases.select("user_id", "sale_id", F.col("purchase_date").alias("as_of")).distinct()
    per_day = bought.groupBy("user_id", "as_of").agg(F.count("*").alias("n_bought"))
    open_ = sales.select("sale_id", "open_date", "close_date")
    cand = (per_day.join(F.broadcast(open_), (F.col("open_date") <= F.col("as_of")) & (F.col("close_date") >= F.col("as_of")))
            .select("user_id", "as_of", "sale_id", "n_bought")
            .join(bought, ["user_id", "sale_id", "as_of"], "left_anti"))
    draw = F.xxhash64("user_id", "sale_id", F.col("as_of").cast("string"), F.lit(seed))
    w = Window.partitionBy("user_id", "as_of").orderBy(draw, "sale_id")
    return (cand.withColumn("r", F.row_number().over(w)).where(F.col("r") <= F.col("n_bought") * n_neg)
            .select("user_id", "sale_id", "as_of", F.lit(0.0).alias("label")))


def snapshot_of(day: F.Column, start: dt.date, every: int) -> F.Column:
    """The CF snapshot date a day uses: the latest of start, start + every, ... not after it."""
    return F.date_add(F.lit(start), (F.floor(F.datediff(day, F.lit(start)) / every) * every).cast("int"))


def cf_snapshots(ev: DataFrame, sales: DataFrame, snapshots: list[tuple[dt.date, dt.date]], rc: RecsysConfig) -> DataFrame:
    """Co-visit neighbours per snapshot: (snapshot, query_id, neighbor_id, similarity, rank),
    for the sales open at some day in each snapshot's range [snapshot, last day]."""
    parts = []
    for snap, last in snapshots:
        targets = sales.where((F.col("open_date") <= F.lit(last)) & (F.col("close_date") >= F.lit(snap)))
        nb = E.covisit_neighbors(ev.where(F.col("date") < F.lit(snap)), snap, targets, rc.neighbors_k,
                                 rc.shrinkage, rc.half_life_days)
        parts.append(nb.withColumn("snapshot", F.lit(snap)))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


@dataclass
class Context:
    """What every feature computation of one training run shares (built once)."""
    ev: DataFrame
    sims: DataFrame
    sale_prof: DataFrame
    sales: DataFrame
    visits: DataFrame
    sale_themes: DataFrame | None

    def features(self, pairs: DataFrame, rc: RecsysConfig) -> DataFrame:
        return E.features(pairs, self.sales, self.ev, self.visits, self.sale_prof, self.sale_themes, self.sims,
                          half_life_days=rc.half_life_days, popularity_days=rc.popularity_days,
                          price_sigma=rc.price_sigma)

    def release(self) -> None:
        for df in (self.ev, self.sims, self.sale_prof):
            df.unpersist()


def context(visits: DataFrame, purchases: DataFrame, sales: DataFrame, sale_themes: DataFrame | None,
            win: Windows, rc: RecsysConfig, rr: RerankConfig) -> Context:
    """Events, CF snapshots (weekly over the training days, daily over the evaluation
    days) and sale profiles."""
    snaps, d = [], win.train_start
    while d < win.eval_start:
        last = min(d + dt.timedelta(days=rr.cf_snapshot_days - 1), win.eval_start - dt.timedelta(days=1))
        snaps.append((d, last))
        d += dt.timedelta(days=rr.cf_snapshot_days)
    d = win.eval_start
    while d <= win.end:
        snaps.append((d, d))
        d += dt.timedelta(days=1)
    ev = E.events(visits, purchases, rc.purchase_weight).persist(StorageLevel.MEMORY_AND_DISK)
    sims = cf_snapshots(ev, sales, snaps, rc).persist(StorageLevel.MEMORY_AND_DISK)
    catalogue = sales.where(F.col("open_date") <= F.lit(win.end))
    return Context(ev, sims, E.sale_profiles(catalogue).persist(StorageLevel.MEMORY_AND_DISK), sales, visits,
                   sale_themes)


def examples(ctx: Context, purchases: DataFrame, win: Windows, rc: RecsysConfig, rr: RerankConfig) -> DataFrame:
    """Training, validation and evaluation examples with their features."""
    p = purchases.where((F.col("purchase_date") >= F.lit(win.train_start)) & (F.col("purchase_date") <= F.lit(win.end)))
    pos = p.select("user_id", "sale_id", F.col("purchase_date").alias("as_of"), F.lit(1.0).alias("label")).distinct()
    pairs = pos.unionByName(negatives(p, ctx.sales, rr.negatives, rr.seed))
    # training days: weekly snapshots from train_start; evaluation days: the day itself
    snap = F.when(F.col("as_of") >= F.lit(win.eval_start), F.col("as_of")).otherwise(
        F.least(snapshot_of(F.col("as_of"), win.train_start, rr.cf_snapshot_days), F.col("as_of")))
    pairs = pairs.withColumn("snapshot", snap).withColumn("split", win.split_of(F.col("as_of")))
    return ctx.features(pairs, rc).select("as_of", "user_id", "sale_id", "label", "split", *E.ENGINES)


def eval_pairs(purchases: DataFrame, sales: DataFrame, win: Windows) -> DataFrame:
    """Every buyer of each evaluation day x every sale open that day, labelled 1 if bought:
    the lists the top 10 is chosen from. (user_id, sale_id, as_of, snapshot, label)."""
    p = purchases.where(F.col("purchase_date") >= F.lit(win.eval_start)).where(F.col("purchase_date") <= F.lit(win.end))
    buyers = p.select("user_id", F.col("purchase_date").alias("as_of")).distinct()
    open_ = sales.select("sale_id", "open_date", "close_date")
    pairs = (buyers.join(F.broadcast(open_), (F.col("open_date") <= F.col("as_of")) & (F.col("close_date") >= F.col("as_of")))
             .select("user_id", "sale_id", "as_of"))
    bought = p.select("user_id", "sale_id", F.col("purchase_date").alias("as_of"), F.lit(1.0).alias("label")).distinct()
    return (pairs.join(bought, ["user_id", "sale_id", "as_of"], "left").fillna(0.0, ["label"])
            .withColumn("snapshot", F.col("as_of")))
