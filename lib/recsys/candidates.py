"""Candidates for one run date: every active user x every sale open that day, one score
column per engine (see :mod:`vistarank.recsys.engines`), and the sale neighbour lists.

Everything is computed from data before the run date. Scores are null-safe (an engine
without an opinion gives 0) and scaled to [0, 1]: content, image (cosines of
non-negative profiles), recency and price fit are in [0, 1] by construction; cf and
popularity are divided by their maximum on the run date.
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

log = logging.getLogger(__name__)

ENGINES = ["cf", "content", "image", "popularity", "recency", "price_fit"]


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
    open_ = E.open_sales(inp.sales, d).select("sale_id", "open_date", "price").persist()
    hist = E.history(inp.visits, inp.purchases, d, rc.half_life_days, rc.purchase_weight).persist(
        StorageLevel.MEMORY_AND_DISK)
    users = E.active_users(inp.visits, d, rc.active_days).persist()

    # neighbour lists
    cov = E.covisit_neighbors(hist, open_, rc.neighbors_k, rc.shrinkage).persist(StorageLevel.MEMORY_AND_DISK)
    sale_prof = E.sale_profiles(catalogue).persist(StorageLevel.MEMORY_AND_DISK)
    content_nb = S.sparse_top_k(
        sale_prof.select(F.col("sale_id").alias("id"), "feature", "value"),
        sale_prof.select(F.col("sale_id").alias("id"), "feature", "value"), rc.neighbors_k,
        max_feature_items=rc.max_feature_sales)
    neighbors = _neighbor_rows(cov, "covisit", d).unionByName(_neighbor_rows(content_nb, "content", d))
    if inp.sale_themes is not None:
        th = theme_neighbors(inp.sale_themes, catalogue, rc, d)
        if th is not None:
            neighbors = neighbors.unionByName(_neighbor_rows(th, "themes", d))

    # engines
    pairs = users.crossJoin(F.broadcast(open_))  # active users x open sales (a few hundred per day)
    cf = E.cf_scores(hist, cov, users)
    content = E.content_scores(E.user_profiles(hist, sale_prof, users), sale_prof, open_)
    pop = E.popularity(inp.visits, d, rc.popularity_days)
    price = E.user_log_price(hist, inp.sales, users)
    c = (pairs.join(cf, ["user_id", "sale_id"], "left").join(content, ["user_id", "sale_id"], "left")
         .join(pop, "sale_id", "left").join(price, "user_id", "left"))
    if inp.sale_themes is not None:
        c = (c.join(E.user_theme_vectors(hist, inp.sale_themes, users), "user_id", "left")
             .join(inp.sale_themes.select("sale_id", F.col("weights").alias("sale_weights")), "sale_id", "left")
             .withColumn("image", E.cosine_arrays(F.col("user_weights"), F.col("sale_weights"))))
    else:
        c = c.withColumn("image", F.lit(None).cast("double"))
    z = (F.log(F.col("price")) - F.col("log_price")) / F.lit(rc.price_sigma)
    c = c.select("user_id", "sale_id", "cf", "content", "image", "popularity",
                 (1.0 / (1.0 + F.datediff(F.lit(d), F.col("open_date")))).alias("recency"),
                 F.exp(-(z * z) / 2).alias("price_fit")).persist(StorageLevel.MEMORY_AND_DISK)
    mx = c.agg(F.max("cf").alias("cf"), F.max("popularity").alias("popularity")).first()  # two numbers

    def scaled(col: str, top) -> F.Column:
        return F.coalesce(F.col(col) / F.lit(float(top)), F.lit(0.0)) if top else F.lit(0.0)

    cands = c.select(F.lit(d).alias("run_date"), "user_id", "sale_id", scaled("cf", mx["cf"]).alias("cf"),
                     *[F.coalesce(F.col(x), F.lit(0.0)).alias(x) for x in ("content", "image")],
                     scaled("popularity", mx["popularity"]).alias("popularity"),
                     *[F.coalesce(F.col(x), F.lit(0.0)).alias(x) for x in ("recency", "price_fit")])

    # CF coverage of the open sales: how many get a CF score for someone (new sales cannot)
    cov_sales = cf.select("sale_id").distinct()
    o = open_.join(cov_sales.withColumn("has_cf", F.lit(1)), "sale_id", "left")
    agg = o.agg(F.count("*").alias("open"), F.sum(F.coalesce("has_cf", F.lit(0))).alias("covered"),
                F.sum(F.when(F.col("open_date") == F.lit(d), 1).otherwise(0)).alias("new"),
                F.sum(F.when((F.col("open_date") == F.lit(d)) & F.col("has_cf").isNotNull(), 1).otherwise(0))
                .alias("new_covered")).first()
    stats = {"open_sales": agg["open"], "active_users": users.count(),
             "cf_coverage_open": (agg["covered"] or 0) / max(agg["open"], 1),
             "new_sales": agg["new"] or 0,
             "cf_coverage_new": (agg["new_covered"] or 0) / max(agg["new"] or 0, 1) if agg["new"] else 0.0}
    return Built(cands, neighbors, stats, [open_, hist, users, cov, sale_prof, c])
