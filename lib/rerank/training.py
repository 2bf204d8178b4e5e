"""The re-ranker's examples: purchases and sampled negatives, with the engines' scores as
they could have been known on the day.

- Positives: every purchase (user, sale, date) in the training and evaluation windows of
  a sale open that day.
- Negatives: for each purchase, ``rerank.negatives`` sales that were open that day and
  that the user did not buy that day, drawn by a seeded hash of (user, sale, date): the
  same draw whatever the partitioning.
- Features: the scoring kernel (:mod:`vistarank.recsys.kernel`) with as_of = the day, so
  only earlier data counts, and with the same day blocks and user states as the nightly
  serving: CF from that day's own snapshot of the ``recsys.history_days`` before it.
- The latent-factor engine (:mod:`vistarank.recsys.latent`): its hyper-parameters are
  chosen on the validation days (:func:`tune_als`), then its snapshots are fitted for
  every day (:meth:`Context.fit_als`).
- Windows: training from ``warmup_days`` after the first visit, at most ``train_days``
  days before validation; validation and evaluation days after it. Every day is joined
  by equality (sales exploded into their open days), never by a range.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vistarank.config import RecsysConfig, RerankConfig
from vistarank.recsys import engines as E
from vistarank.recsys import kernel as K
from vistarank.recsys import latent as LT
from vistarank.rerank import evaluate as EV

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
    ``validation_days`` before those; training: from ``warmup_days`` after the first day,
    at most ``train_days`` days (0: no limit)."""
    end = run_date - dt.timedelta(days=1)
    eval_start = run_date - dt.timedelta(days=rr.eval_days)
    validation_start = eval_start - dt.timedelta(days=rr.validation_days)
    train_start = first_day + dt.timedelta(days=rr.warmup_days)
    if rr.train_days > 0:
        train_start = max(train_start, validation_start - dt.timedelta(days=rr.train_days))
    if train_start >= validation_start:
        raise ValueError(f"not enough history for the re-ranker: training would start on {train_start} but "
                         f"validation starts on {validation_start}; lower rerank.warmup_days, "
                         "rerank.validation_days or rerank.eval_days, or use a later run date")
    return Windows(train_start, validation_start, eval_start, end)


def negatives(bought: DataFrame, open_days: DataFrame, n_neg: int, seed: int) -> DataFrame:
    """(user_id, sale_id, as_of, label 0): per (user, day) ``n_neg`` x purchases that day of
    the sales open that day that the user did not buy that day.

    ``bought``: (user_id, sale_id, as_of) distinct; ``open_days``: (as_of, sale_id), each
    sale on each day it is open (:func:`vistarank.recsys.kernel.open_by_day`): an
    equi-join on the day."""
    per_day = bought.groupBy("user_id", "as_of").agg(F.count("*").alias("n_bought"))
    cand = (per_day.join(open_days.select("as_of", "sale_id"), "as_of")
            .join(bought, ["user_id", "sale_id", "as_of"], "left_anti"))
    draw = F.xxhash64("user_id", "sale_id", F.col("as_of").cast("string"), F.lit(seed))
    w = Window.partitionBy("user_id", "as_of").orderBy(draw, "sale_id")
    return (cand.withColumn("r", F.row_number().over(w)).where(F.col("r") <= F.col("n_bought") * n_neg)
            .select("user_id", "sale_id", "as_of", F.lit(0.0).alias("label")))


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass
class Context:
    """What every feature computation of one training run shares (built once): events,
    the catalogue's content profiles and the day blocks of every day in the windows."""
    spark: object
    ev: DataFrame
    sale_prof: DataFrame
    sales: DataFrame
    purchases: DataFrame
    sale_themes: DataFrame | None
    open_days: DataFrame
    blocks: K.Blocks
    rc: RecsysConfig

    def scores(self, keys: DataFrame, mode: str, exclude_bought: bool = False) -> DataFrame:
        """The kernel over ``keys`` (user_id, as_of, targets, labels)."""
        rc = self.rc
        states = K.user_states(keys, self.ev, half_life_days=rc.half_life_days, history_days=rc.history_days,
                               als_half_life_days=rc.als_half_life_days,
                               visit_days=rc.image_score == "choice")
        return K.score_states(self.spark, states, self.blocks, rc.price_sigma, mode, exclude_bought=exclude_bought)

    def fit_als(self, settings: LT.AlsSettings, known: dict | None = None) -> None:
        """The ALS factors of every day of the blocks (a snapshot every ``als_refit_days``,
        refreshed on the days between; ``known``: snapshots fitted already, by day)."""
        rc = self.rc
        self.blocks.als = (LT.fit_days(self.ev, self.blocks.days(), settings, refit_days=rc.als_refit_days,
                                       history_days=rc.history_days, known=known) if settings.rank > 0 else None)

    def release(self) -> None:
        for df in (self.ev, self.sale_prof, self.open_days):
            df.unpersist()


def context(spark, visits: DataFrame, purchases: DataFrame, sales: DataFrame, sale_themes: DataFrame | None,
            win: Windows, rc: RecsysConfig) -> Context:
    """Events, content profiles and the day blocks of every day from the first training
    day to the last evaluation day (CF from each day's own snapshot, as at serving), without
    ALS snapshots yet (:func:`tune_als`, then :meth:`Context.fit_als`)."""
    return context_for_days(spark, visits, purchases, sales, sale_themes, days(win.train_start, win.end), rc,
                            with_als=False)


def context_for_days(spark, visits: DataFrame, purchases: DataFrame, sales: DataFrame,
                     sale_themes: DataFrame | None, all_days: list[dt.date], rc: RecsysConfig,
                     persist: bool = True, with_als: bool = True) -> Context:
    """The :class:`Context` of the days ``all_days``; ``persist=False`` leaves nothing
    cached (a lazily used result, as :class:`vistarank.rerank.stages.EngineFeatures` returns);
    ``with_als``: the ALS snapshots with ``rc``'s settings."""
    first, last = min(all_days), max(all_days)
    keep = (lambda df: df.persist(StorageLevel.MEMORY_AND_DISK)) if persist else (lambda df: df)
    ev = keep(E.events(visits, purchases, rc.purchase_weight).where(
        (F.col("date") < F.lit(last)) & (F.col("date") >= F.date_sub(F.lit(first), rc.history_days))))
    catalogue = sales.where(F.col("open_date") <= F.lit(last))
    sale_prof = keep(E.sale_profiles(catalogue))
    open_days = keep(K.open_by_day(sales, K.days_frame(spark, all_days), first, last).select("as_of", "sale_id"))
    blocks = K.day_blocks(spark, all_days, sales, visits, ev, sale_prof, sale_themes, k=rc.neighbors_k,
                          shrinkage=rc.shrinkage, half_life_days=rc.half_life_days, history_days=rc.history_days,
                          popularity_days=rc.popularity_days, als=LT.AlsSettings.of(rc) if with_als else None,
                          als_refit_days=rc.als_refit_days, theme_idf=rc.theme_idf, image_score=rc.image_score,
                          **K.taste_settings(rc))
    return Context(spark, ev, sale_prof, sales, purchases, sale_themes, open_days, blocks, rc)


def bought_when_open(purchases: DataFrame, open_days: DataFrame, start: dt.date, end: dt.date,
                     warn: bool = False) -> DataFrame:
    """(user_id, sale_id, as_of) purchases in [start, end] of sales open that day. A purchase
    of a sale not open that day (a booking after the sale closed, a date error upstream)
    has no day block to score it against: left out, and with ``warn`` counted in the log."""
    p = (purchases.where((F.col("purchase_date") >= F.lit(start)) & (F.col("purchase_date") <= F.lit(end)))
         .select("user_id", "sale_id", F.col("purchase_date").alias("as_of")).distinct())
    if warn:
        dropped = p.join(open_days, ["as_of", "sale_id"], "left_anti").count()  # one number
        if dropped:
            log.warning("%d purchase(s) between %s and %s are of sales not open that day: left out of the "
                        "re-ranker's examples (no open-sales block to score them against)", dropped, start, end)
    return p.join(open_days, ["as_of", "sale_id"], "left_semi")


def _bought(ctx: Context, start: dt.date, end: dt.date, warn: bool = False) -> DataFrame:
    return bought_when_open(ctx.purchases, ctx.open_days, start, end, warn)


def _as_keys(pairs: DataFrame) -> DataFrame:
    """(user_id, as_of, targets, labels) from (user_id, sale_id, as_of, label) pairs."""
    return (pairs.groupBy("user_id", "as_of")
            .agg(F.array_sort(F.collect_list(F.struct("sale_id", "label"))).alias("t"))
            .select("user_id", "as_of", F.col("t.sale_id").alias("targets"), F.col("t.label").alias("labels")))


def examples(ctx: Context, win: Windows, rr: RerankConfig) -> DataFrame:
    """Training, validation and evaluation examples with their features (the kernel's
    ``targets`` mode: each purchase and its negatives, as of the purchase day)."""
    pos = _bought(ctx, win.train_start, win.end, warn=True)
    pairs = pos.withColumn("label", F.lit(1.0)).unionByName(negatives(pos, ctx.open_days, rr.negatives, rr.seed))
    return (ctx.scores(_as_keys(pairs), "targets").withColumn("split", win.split_of(F.col("as_of")))
            .select("as_of", "user_id", "sale_id", "label", "split", *E.ENGINES))


def eval_lists(ctx: Context, win: Windows, exclude_bought: bool) -> DataFrame:
    """Every buyer of each evaluation day x every sale open that day, labelled 1 if bought,
    with their features: the lists the top N is chosen from (the kernel's ``all`` mode;
    with ``exclude_bought``, less the sales the buyer bought in their history window, as
    at serving)."""
    pos = _bought(ctx, win.eval_start, win.end).withColumn("label", F.lit(1.0))
    return ctx.scores(_as_keys(pos), "all", exclude_bought)


def als_grid(rc: RecsysConfig, rr: RerankConfig) -> list[LT.AlsSettings]:
    """The (rank, regParam, alpha) settings to choose from: ``rerank.als_*`` lists, each
    empty list standing for the ``recsys.als_*`` value."""
    return [LT.AlsSettings(r, g, a, rc.als_max_iter, rc.als_half_life_days) for r in (rr.als_ranks or [rc.als_rank])
            for g in (rr.als_reg_params or [rc.als_reg_param]) for a in (rr.als_alphas or [rc.als_alpha])]


def tune_als(ctx: Context, win: Windows, rr: RerankConfig) -> tuple[LT.AlsSettings, list[dict], dict]:
    """The ALS settings with the best nDCG@top_n of the ALS engine alone on the validation
    days (every buyer-day x every sale open that day, as the held-out evaluation), each
    a snapshot on the events before the first validation day refreshed on each later one
    (as :meth:`Context.fit_als` does), user factors folded in on each day. Never looks at
    the held-out days. -> (the choice, the grid with its scores, {day: the choice's
    snapshot}); one setting: no fit, no grid."""
    grid = als_grid(ctx.rc, rr)
    if len(grid) == 1:
        return grid[0], [], {}
    rc, start, end = ctx.rc, win.validation_start, win.eval_start - dt.timedelta(days=1)
    pos = _bought(ctx, start, end).withColumn("label", F.lit(1.0))
    states = K.user_states(_as_keys(pos), ctx.ev, half_life_days=rc.half_life_days, history_days=rc.history_days,
                           als_half_life_days=rc.als_half_life_days).persist(StorageLevel.MEMORY_AND_DISK)
    nd = EV.metric_names(rr.top_n)[2]
    results, snaps = [], []
    vdays = days(start, end)
    for s in grid:
        fac = LT.fit(ctx.ev, start, s, history_days=rc.history_days)
        snaps.append(fac)
        blocks = replace(ctx.blocks, als=LT.fit_days(ctx.ev, vdays, s, refit_days=len(vdays),
                                                     history_days=rc.history_days, known={start: fac}))
        lists = K.score_states(ctx.spark, states, blocks, rc.price_sigma, "all", exclude_bought=rr.exclude_bought)
        m = EV.sliced_arms(lists, {"als": "als"}, ctx.purchases, rr.top_n)["als"]["all"]
        results.append({"rank": s.rank, "reg_param": s.reg_param, "alpha": s.alpha, f"validation_{nd}": m[nd]})
        log.info("ALS rank %d, regParam %g, alpha %g: validation %s %.4f", s.rank, s.reg_param, s.alpha, nd, m[nd])
    states.unpersist()
    best = max(range(len(grid)), key=lambda i: (np.nan_to_num(results[i][f"validation_{nd}"], nan=-1.0), -i))
    return grid[best], results, {start: snaps[best]}
