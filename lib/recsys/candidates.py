"""One run date's scoring state (:func:`serving`), its sale neighbour lists and a monitoring
sample of the engine scores (:func:`build`).

Everything is computed from data before the run date by the scoring kernel
(:mod:`vistarank.recsys.kernel`), which also computes the re-ranker's training features.
Scores are null-safe (an engine without an opinion gives 0) and in [0, 1].
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.config import RecsysConfig
from vistarank.recsys import engines as E
from vistarank.recsys import kernel as K
from vistarank.recsys import latent as LT
from vistarank.recsys import similarity as S
from vistarank.recsys.engines import ENGINES

log = logging.getLogger(__name__)



@dataclass
class Inputs:
    sales: DataFrame
    visits: DataFrame
    purchases: DataFrame
    sale_themes: DataFrame | None  # None before themes exist: the image engine then gives 0


@dataclass
class Built:
    candidates: DataFrame | None
    neighbors: DataFrame
    stats: dict[str, float] = field(default_factory=dict)
    serving: "Serving | None" = None

    def release(self) -> None:
        if self.serving is not None:
            self.serving.release()


def theme_neighbors(sale_themes: DataFrame, catalogue: DataFrame, rc: RecsysConfig, run_date: dt.date) -> DataFrame:
    """The K most similar catalogue sales per catalogue sale by theme mix."""
    items = (sale_themes.join(catalogue.select("sale_id"), "sale_id", "left_semi")
             .select(F.col("sale_id").alias("id"), F.col("weights").alias("vec")))
    first = items.select(F.size("vec").alias("d")).first()
    if first is None:
        return None
    n = items.count()  # one number: sizes the blocks
    if rc.similarity == "approximate":
        found = S.lsh_top_k(items, items, rc.neighbors_k, dim=first["d"], bucket_length=rc.lsh_bucket_length,
                            num_hash_tables=rc.lsh_num_hash_tables, max_distance=rc.lsh_max_distance)
    else:
        found = S.dense_top_k(items, items, rc.neighbors_k, dim=first["d"], n_queries=n, n_candidates=n,
                              query_block_rows=rc.query_block_rows, candidate_block_rows=rc.candidate_block_rows)
    return found


def _neighbor_rows(found: DataFrame, kind: str, run_date: dt.date) -> DataFrame:
    return found.select(F.lit(run_date).alias("run_date"), F.lit(kind).alias("kind"),
                        F.col("query_id").alias("sale_id"), "neighbor_id", "similarity", "rank")


@dataclass
class Serving:
    """What one run date's scoring shares: events of the history window, the catalogue's
    content profiles, the day block of the run date and its active users."""
    spark: object
    inp: Inputs
    rc: RecsysConfig
    run_date: dt.date
    ev: DataFrame
    sale_prof: DataFrame
    blocks: K.Blocks
    covisit: DataFrame

    def active_keys(self) -> DataFrame:
        """(user_id, as_of): users with a visit in the ``active_days`` before the run date."""
        return E.active_users(self.inp.visits, self.run_date, self.rc.active_days).withColumn(
            "as_of", F.lit(self.run_date))

    def states(self, keys: DataFrame) -> DataFrame:
        return K.user_states(keys, self.ev, half_life_days=self.rc.half_life_days, history_days=self.rc.history_days,
                             als_half_life_days=self.rc.als_half_life_days,
                             visit_days=self.rc.image_score == "choice")

    def scores(self, keys: DataFrame) -> DataFrame:
        """Every engine's score of every open sale for ``keys`` (run_date, user_id, sale_id, engines...)."""
        out = K.score_states(self.spark, self.states(keys), self.blocks, self.rc.price_sigma, "all")
        return out.select(F.col("as_of").alias("run_date"), "user_id", "sale_id", *ENGINES)

    def release(self) -> None:
        for df in (self.ev, self.sale_prof, self.covisit):
            df.unpersist()


def serving(spark, inp: Inputs, rc: RecsysConfig, run_date: dt.date) -> Serving:
    """The shared state of one run date (see :class:`Serving`)."""
    d = run_date
    ev = (E.events(inp.visits, inp.purchases, rc.purchase_weight)
          .where((F.col("date") < F.lit(d)) & (F.col("date") >= F.date_sub(F.lit(d), rc.history_days)))
          .persist(StorageLevel.MEMORY_AND_DISK))
    catalogue = inp.sales.where(F.col("open_date") <= F.lit(d))
    sale_prof = E.sale_profiles(catalogue).persist(StorageLevel.MEMORY_AND_DISK)
    dd = K.days_frame(spark, [d])
    covisit = K.covisit_by_day(ev, K.open_by_day(inp.sales, dd, d, d), d, d, rc.neighbors_k, rc.shrinkage,
                               rc.half_life_days, rc.history_days).persist(StorageLevel.MEMORY_AND_DISK)
    blocks = K.day_blocks(spark, [d], inp.sales, inp.visits, ev, sale_prof, inp.sale_themes, k=rc.neighbors_k,
                          shrinkage=rc.shrinkage, half_life_days=rc.half_life_days, history_days=rc.history_days,
                          popularity_days=rc.popularity_days, covisit=covisit, als=LT.AlsSettings.of(rc),
                          theme_idf=rc.theme_idf, image_score=rc.image_score, **K.taste_settings(rc))
    return Serving(spark, inp, rc, d, ev, sale_prof, blocks, covisit)


def sampled(keys: DataFrame, share: float, seed: int = 0) -> DataFrame:
    """A seeded share of the keys' users (the same users whatever the partitioning)."""
    if share >= 1.0:
        return keys
    bucket = F.abs(F.xxhash64("user_id", F.lit(seed))) % 1_000_000
    return keys.where(bucket < F.lit(int(round(share * 1_000_000))))


def build(spark, inp: Inputs, rc: RecsysConfig, run_date: dt.date) -> Built:
    """The run date's sale neighbours (co-visits, content, themes) and the engine scores of a
    sample of its active users (``recsys.candidates_sample``; monitoring: the nightly
    recommendations are scored by the kernel without writing pairs)."""
    d = run_date
    srv = serving(spark, inp, rc, d)
    catalogue = inp.sales.where(F.col("open_date") <= F.lit(d))
    prof = srv.sale_prof.select(F.col("sale_id").alias("id"), "feature", "value")
    content_nb = S.sparse_top_k(prof, prof, rc.neighbors_k, max_feature_items=rc.max_feature_sales)
    cov = srv.covisit.drop("as_of")
    neighbors = _neighbor_rows(cov, "covisit", d).unionByName(_neighbor_rows(content_nb, "content", d))
    if inp.sale_themes is not None:
        th = theme_neighbors(inp.sale_themes, catalogue, rc, d)
        if th is not None:
            neighbors = neighbors.unionByName(_neighbor_rows(th, "themes", d))
    keys = srv.active_keys()
    cands = srv.scores(sampled(keys, rc.candidates_sample)) if rc.candidates_sample > 0 else None

    # CF coverage of the open sales: how many have co-visit neighbours (a sale that opens today cannot)
    rows = srv.blocks.open
    n_open = len(rows)
    has_cf = [x is not None and len(x) > 0 for x in rows["nb_ids"]] if n_open else []
    new = [o == d for o in rows["open_date"]] if n_open else []
    n_new = sum(new)
    stats = {"open_sales": n_open, "active_users": keys.count(),
             "cf_coverage_open": sum(has_cf) / n_open if n_open else 0.0, "new_sales": n_new,
             "cf_coverage_new": sum(h and n for h, n in zip(has_cf, new)) / n_new if n_new else 0.0}
    return Built(cands, neighbors, stats, srv)
