"""Candidates for one run date: every active user x every sale open that day, one score
column per engine (see :mod:`vistarank.recsys.engines`), and the sale neighbour lists.

Everything is computed from data before the run date, by the same
:func:`vistarank.recsys.engines.features` that builds the re-ranker's training set.
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
    candidates: DataFrame
    neighbors: DataFrame
    stats: dict[str, float] = field(default_factory=dict)
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


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


def build(inp: Inputs, rc: RecsysConfig, run_date: dt.date) -> Built:
    d = run_date
    catalogue = inp.sales.where(F.col("open_date") <= F.lit(d))
    open_ = E.open_sales(inp.sales, d).select("sale_id", "open_date").persist()
    ev = E.events(inp.visits, inp.purchases, rc.purchase_weight).where(F.col("date") < F.lit(d)).persist(
        StorageLevel.MEMORY_AND_DISK)
    users = E.active_users(inp.visits, d, rc.active_days).persist()

    # neighbour lists
    cov = E.covisit_neighbors(ev, d, open_, rc.neighbors_k, rc.shrinkage, rc.half_life_days).persist(
        StorageLevel.MEMORY_AND_DISK)
    sale_prof = E.sale_profiles(catalogue).persist(StorageLevel.MEMORY_AND_DISK)
    prof = sale_prof.select(F.col("sale_id").alias("id"), "feature", "value")
    content_nb = S.sparse_top_k(prof, prof, rc.neighbors_k, max_feature_items=rc.max_feature_sales)
    neighbors = _neighbor_rows(cov, "covisit", d).unionByName(_neighbor_rows(content_nb, "content", d))
    if inp.sale_themes is not None:
        th = theme_neighbors(inp.sale_themes, catalogue, rc, d)
        if th is not None:
            neighbors = neighbors.unionByName(_neighbor_rows(th, "themes", d))

    # engines: active users x open sales (a few hundred per day, broadcast), all as of d
    pairs = (users.crossJoin(F.broadcast(open_.select("sale_id")))
             .withColumn("as_of", F.lit(d)).withColumn("snapshot", F.lit(d)))
    sims = cov.withColumn("snapshot", F.lit(d))
    feats = E.features(pairs, inp.sales, ev, inp.visits, sale_prof, inp.sale_themes, sims,
                       half_life_days=rc.half_life_days, popularity_days=rc.popularity_days,
                       price_sigma=rc.price_sigma)
    cands = feats.select(F.col("as_of").alias("run_date"), "user_id", "sale_id", *ENGINES)

    # CF coverage of the open sales: how many get a CF score for someone (new sales cannot)
    covered = cov.select(F.col("query_id").alias("sale_id")).distinct().withColumn("has_cf", F.lit(1))
    o = open_.join(covered, "sale_id", "left")
    agg = o.agg(F.count("*").alias("open"), F.sum(F.coalesce("has_cf", F.lit(0))).alias("covered"),
                F.sum(F.when(F.col("open_date") == F.lit(d), 1).otherwise(0)).alias("new"),
                F.sum(F.when((F.col("open_date") == F.lit(d)) & F.col("has_cf").isNotNull(), 1).otherwise(0))
                .alias("new_covered")).first()
    stats = {"open_sales": agg["open"], "active_users": users.count(),
             "cf_coverage_open": (agg["covered"] or 0) / max(agg["open"], 1),
             "new_sales": agg["new"] or 0,
             "cf_coverage_new": (agg["new_covered"] or 0) / max(agg["new"] or 0, 1) if agg["new"] else 0.0}
    return Built(cands, neighbors, stats, [open_, ev, users, cov, sale_prof])
