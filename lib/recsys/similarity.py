"""Similarity joins at scale: the top K most similar items per item, by cosine.

- :func:`dense_top_k` (exact, dense vectors such as theme mixes): items are hashed into
  query blocks and candidate blocks; each block becomes one row holding its ids and
  its L2-normalised float32 vectors; the (query block, candidate block) pairs are
  multiplied with numpy inside ``mapInPandas`` (:mod:`vistarank.udfs.topk`), each
  returning only its top K per query; with more than one candidate block the partial
  lists are merged by a window. At most one block pair is in a task's memory, so all
  pairs are never materialised at once.
- :func:`sparse_top_k` (exact, sparse profiles ``(id, feature, value)``): a join on
  feature, a sum per pair and a top-K window per key; optional shrinkage by the number
  of shared features (``sim * n / (n + shrinkage)``) and pruning of features shared by
  too many items (the join's cost is the sum of squared feature frequencies).
- :func:`lsh_top_k` (approximate): MLlib ``BucketedRandomProjectionLSH`` on unit vectors
  (Euclidean distance d and cosine are tied: cos = 1 - d^2 / 2) with a distance
  threshold; its recall is measured by benchmarks/similarity_scaling.py.

Outputs: (query_id, neighbor_id, similarity, rank), rank 1 = most similar; ties are
broken by neighbor_id, so results are deterministic.
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vistarank.udfs import topk as kernels

OUT_COLS = ["query_id", "neighbor_id", "similarity", "rank"]


def ranked(pairs: DataFrame, k: int, by: tuple[str, ...] = ()) -> DataFrame:
    """The ``k`` most similar neighbours per (by..., query_id), rank 1 first, ties by neighbor_id."""
    w = Window.partitionBy(*by, "query_id").orderBy(F.col("similarity").desc(), F.col("neighbor_id"))
    return pairs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k).select(*by, *OUT_COLS)


def _blocks(items: DataFrame, n_blocks: int, dim: int, salt: int) -> DataFrame:
    blocked = items.select(F.col("id"), F.col("vec"),
                           (F.abs(F.xxhash64("id", F.lit(salt))) % n_blocks).cast("int").alias("block"))
    return blocked.groupBy("block").applyInPandas(kernels.pack_blocks_fn(dim),
                                                  "block int, ids array<string>, blob binary")


def dense_top_k(queries: DataFrame, candidates: DataFrame, k: int, *, dim: int, n_queries: int,
                n_candidates: int, query_block_rows: int = 4096, candidate_block_rows: int = 200_000,
                exclude_self: bool = True, slice_rows: int = 512) -> DataFrame:
    """Exact top-k cosine neighbours among ``candidates`` for every row of ``queries``.

    Both frames have ``id`` (string) and ``vec`` (array of ``dim`` floats); the counts
    size the blocks (pass what a cheap count or the caller already knows).
    """
    nq = max(1, math.ceil(n_queries / query_block_rows))
    nc = max(1, math.ceil(n_candidates / candidate_block_rows))
    qb = _blocks(queries, nq, dim, 17).select(F.col("ids").alias("q_ids"), F.col("blob").alias("q_blob"))
    cb = _blocks(candidates, nc, dim, 29).select(F.col("ids").alias("c_ids"), F.col("blob").alias("c_blob"))
    pairs = qb.crossJoin(F.broadcast(cb) if nc <= 4 else cb).repartition(nq * nc)
    found = pairs.mapInPandas(kernels.block_pairs_fn(k, dim, exclude_self, slice_rows), kernels.TOPK_SCHEMA)
    if nc == 1:  # one candidate block: each query's list is already complete and sorted
        w = Window.partitionBy("query_id").orderBy(F.col("similarity").desc(), F.col("neighbor_id"))
        return found.withColumn("rank", F.row_number().over(w)).select(*OUT_COLS)
    return ranked(found, k)


def unit_profile(prof: DataFrame, keys: list[str]) -> DataFrame:
    """Sparse profiles (keys..., feature, value) scaled to unit L2 norm per key; an all-zero
    profile is dropped."""
    norm = prof.groupBy(*keys).agg(F.sqrt(F.sum(F.col("value") ** 2)).alias("norm"))
    return prof.join(norm, keys).where(F.col("norm") > 0).select(
        *keys, "feature", (F.col("value") / F.col("norm")).alias("value"))


def sparse_top_k(queries: DataFrame, candidates: DataFrame, k: int, *, shrinkage: float = 0.0,
                 max_feature_items: int = 0, exclude_self: bool = True, by: tuple[str, ...] = ()) -> DataFrame:
    """Exact top-k cosine neighbours between sparse profiles ``(id, feature, value)``.

    Profiles are L2-normalised here. With ``shrinkage`` > 0 the cosine is multiplied by
    n / (n + shrinkage), n = the number of shared features (co-visitors for item-item
    CF). ``max_feature_items`` > 0 drops features that more candidates than that share.
    ``by``: key columns of independent problems in the same frames (the day of a daily
    snapshot): profiles, pairs and ranks are per key, and the key columns lead the output.
    """
    q, c = unit_profile(queries, [*by, "id"]), unit_profile(candidates, [*by, "id"])
    if max_feature_items > 0:
        common = c.groupBy(*by, "feature").agg(F.count("*").alias("n")).where(F.col("n") > max_feature_items)
        q = q.join(common, [*by, "feature"], "left_anti")
        c = c.join(common, [*by, "feature"], "left_anti")
    pairs = (q.alias("q").join(c.alias("c"), [*by, "feature"])
             .groupBy(*by, F.col("q.id").alias("query_id"), F.col("c.id").alias("neighbor_id"))
             .agg(F.sum(F.col("q.value") * F.col("c.value")).alias("dot"), F.count("*").alias("n")))
    if exclude_self:
        pairs = pairs.where(F.col("query_id") != F.col("neighbor_id"))
    sim = F.col("dot") * (F.col("n") / (F.col("n") + F.lit(float(shrinkage)))) if shrinkage > 0 else F.col("dot")
    return ranked(pairs.select(*by, "query_id", "neighbor_id", sim.alias("similarity")), k, tuple(by))


def lsh_top_k(queries: DataFrame, candidates: DataFrame, k: int, *, dim: int, bucket_length: float = 0.5,
              num_hash_tables: int = 6, max_distance: float = 1.0, seed: int = 0,
              exclude_self: bool = True) -> DataFrame:
    """Approximate top-k cosine neighbours with MLlib BucketedRandomProjectionLSH.

    Pairs farther than ``max_distance`` (Euclidean, on unit vectors: cosine below
    1 - max_distance^2 / 2) are never considered; more hash tables raise recall and cost.
    """
    from pyspark.ml.feature import BucketedRandomProjectionLSH
    from pyspark.ml.functions import array_to_vector

    def unit(df: DataFrame) -> DataFrame:
        norm = F.sqrt(F.aggregate(F.transform("vec", lambda x: x * x), F.lit(0.0), lambda a, b: a + b))
        return df.select("id", array_to_vector(F.transform("vec", lambda x: x / F.greatest(norm, F.lit(1e-12))))
                         .alias("v"))

    lsh = BucketedRandomProjectionLSH(inputCol="v", outputCol="h", bucketLength=bucket_length,
                                      numHashTables=num_hash_tables, seed=seed)
    qv, cv = unit(queries), unit(candidates)
    model = lsh.fit(cv)
    joined = model.approxSimilarityJoin(qv, cv, max_distance, distCol="d")
    pairs = joined.select(F.col("datasetA.id").alias("query_id"), F.col("datasetB.id").alias("neighbor_id"),
                          (1 - F.col("d") ** 2 / 2).alias("similarity"))
    if exclude_self:
        pairs = pairs.where(F.col("query_id") != F.col("neighbor_id"))
    return ranked(pairs.dropDuplicates(["query_id", "neighbor_id"]), k)
