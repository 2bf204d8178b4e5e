"""Offline evaluation on the held-out days, per arm: each engine alone, the meta-model and
the meta-model without the image features (does the picture help?).

- Pointwise, on the evaluation examples (purchases and their sampled negatives): AUC
  (every arm) and log loss (the meta-models, which give probabilities).
- Ranking, on every buyer of an evaluation day x every sale open that day (less the
  sales they bought in their history window, as at serving): each arm's top N per
  (user, day) (N = ``rerank.top_n``; the metrics are named after it) against the sales
  bought that day: precision, recall, nDCG and MAP at N with the definitions of Spark's
  RankingEvaluator (:func:`sliced_arms` computes them per list, for every arm and slice in one pass;
  :func:`ranking` runs RankingEvaluator itself and is what the tests check it against),
  and revenue at N = the mean over (user, day) of the amount paid (``purchases.amount``)
  for the bought sales in the top N.
Lift is each arm's value / popularity's value - 1.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.ml.evaluation import BinaryClassificationEvaluator, RankingEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger(__name__)

RANKING_METRICS = {"precision": "precisionAtK", "recall": "recallAtK", "ndcg": "ndcgAtK",
                   "map": "meanAveragePrecisionAtK"}


def metric_names(k: int) -> list[str]:
    """The ranking metrics' names at cut-off k (ndcg_at_10 for k = 10, ...)."""
    return [f"{m}_at_{k}" for m in RANKING_METRICS] + [f"revenue_at_{k}"]


def log_loss(df: DataFrame, prob: str) -> float:
    p = F.least(F.greatest(F.col(prob), F.lit(1e-15)), F.lit(1 - 1e-15))
    v = df.select(F.avg(-(F.col("label") * F.log(p) + (1 - F.col("label")) * F.log(1 - p)))).first()[0]
    return float("nan") if v is None else float(v)


def pointwise(df: DataFrame, score: str, is_probability: bool) -> dict[str, float]:
    """AUC (and log loss for probabilities); NaN when the rows do not hold both labels."""
    counts = df.agg(F.count("*").alias("n"), F.sum("label").alias("pos")).first()
    if not counts["n"] or not counts["pos"] or counts["pos"] == counts["n"]:
        log.warning("%s: the evaluation rows need both purchases and negatives (%d rows): AUC is NaN", score,
                    counts["n"] or 0)
        return {"auc": float("nan")} | ({"log_loss": float("nan")} if is_probability else {})
    ev = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol=score, metricName="areaUnderROC")
    out = {"auc": float(ev.evaluate(df.withColumn(score, F.col(score).cast("double"))))}
    if is_probability:
        out["log_loss"] = log_loss(df, score)
    return out


def ranking(df: DataFrame, score: str, purchases: DataFrame, k: int = 10) -> dict[str, float]:
    """``df``: (user_id, as_of, sale_id, label, <score>) for every open sale of every
    buyer-day. Precision, recall, nDCG and MAP at k (Spark's RankingEvaluator) and
    revenue at k: the mean over lists of the ``purchases.amount`` of that day's purchases
    in the top k. No lists (no purchases on the held-out days): every metric is NaN and
    ``n_lists`` 0."""
    # RankingEvaluator wants items as doubles: the first 52 bits of the id's SHA-256 (exact in a double)
    item = F.conv(F.substring(F.sha2("sale_id", 256), 1, 13), 16, 10).cast("double")
    w = Window.partitionBy("user_id", "as_of").orderBy(F.col(score).desc(), F.col("sale_id"))
    ranked = df.withColumn("item", item).withColumn("r", F.row_number().over(w)).where(F.col("r") <= k)
    pred = ranked.groupBy("user_id", "as_of").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("r", "item"))), lambda s: s["item"]).alias("prediction"))
    truth = (df.where(F.col("label") > 0).withColumn("item", item)
             .groupBy("user_id", "as_of").agg(F.collect_list("item").alias("relevant")))
    lists = pred.join(truth, ["user_id", "as_of"]).cache()
    n_lists = lists.count()
    out: dict[str, float] = {}
    if n_lists == 0:
        log.warning("no purchases to rank on the held-out days: the ranking metrics are NaN")
        lists.unpersist()
        return {name: float("nan") for name in metric_names(k)} | {"n_lists": 0.0}
    for name, metric in RANKING_METRICS.items():
        ev = RankingEvaluator(predictionCol="prediction", labelCol="relevant", metricName=metric, k=k)
        out[f"{name}_at_{k}"] = float(ev.evaluate(lists))
    amount = (purchases.select("user_id", "sale_id", F.col("purchase_date").alias("as_of"), "amount")
              .groupBy("user_id", "sale_id", "as_of").agg(F.sum("amount").alias("amount")))
    total = (ranked.where(F.col("label") > 0).join(amount, ["user_id", "sale_id", "as_of"])
             .agg(F.sum("amount")).first()[0] or 0.0)
    lists.unpersist()
    out[f"revenue_at_{k}"] = float(total) / n_lists
    out["n_lists"] = float(n_lists)
    return out


# Slices where the pictures should matter: the bought sale's age on the day (a sale that
# opened that day has no visits, so no CF) and the buyer's history length.
AGE_SLICES = {"sale_age=0": (0, 0), "sale_age=1-2": (1, 2), "sale_age=3+": (3, 10**6)}
HISTORY_SLICES = {"history=0": (0, 0), "history=1-4": (1, 4), "history=5+": (5, 10**6)}


def sliced(df: DataFrame, score: str, purchases: DataFrame, k: int) -> dict[str, dict[str, float]]:
    """Ranking metrics at k per slice of the buyer-days for one score column (see
    :func:`sliced_arms`)."""
    return sliced_arms(df, {score: score}, purchases, k)[score]


def sliced_arms(df: DataFrame, arms: dict[str, str], purchases: DataFrame, k: int
                ) -> dict[str, dict[str, dict[str, float]]]:
    """Ranking metrics at k per slice of the buyer-days for every arm (name -> score column)
    in one pass (one shuffle by list, one sort per arm), from per-list formulas (the same
    definitions as Spark's RankingEvaluator, which :func:`ranking` uses for all lists):

    - ``sale_age=0|1-2|3+``: relevant = that day's purchases of sales that old (days since
      opening, from the recency score); the lists with at least one such purchase;
    - ``history=0|1-4|5+``: the buyer-days whose user had that many distinct sales in their
      history window (``n_history``); relevant = every purchase that day.

    ``df``: (user_id, as_of, sale_id, label, recency, n_history, <scores>) for every open
    sale of every buyer-day. -> {arm: {slice: {metric: value, "n_lists": n}}}.
    Each list's numbers come from pandas over buckets of whole lists
    (:func:`_list_stats_fn`), then one aggregation over the lists."""
    amount = (purchases.select("user_id", "sale_id", F.col("purchase_date").alias("as_of"), "amount")
              .groupBy("user_id", "sale_id", "as_of").agg(F.sum("amount").alias("amount")))
    names = list(arms)
    rel = ["all", *AGE_SLICES]
    cols = [("n_history", T.IntegerType())] + [(f"nrel:{r}", T.LongType()) for r in rel]
    cols += [(f"{m}{a}:{r}", T.DoubleType()) for a in range(len(names)) for r in rel for m in ("hits", "dcg", "ap", "rev")]
    schema = T.StructType([T.StructField("user_id", T.StringType()), T.StructField("as_of", T.DateType())]
                          + [T.StructField(c, t) for c, t in cols])
    scores = [F.col(c).cast("double").alias(f"s{a}") for a, c in enumerate(arms.values())]
    rows = df.join(amount, ["user_id", "sale_id", "as_of"], "left").select(
        "user_id", "as_of", "sale_id", "label", "recency", "n_history",
        F.coalesce("amount", F.lit(0.0)).alias("amount"), *scores)
    # buckets of whole lists, one pandas call each (a few per task, not one per list)
    conf = str(df.sparkSession.conf.get("spark.sql.shuffle.partitions", "200"))
    buckets = int(conf) if conf.isdigit() else 200  # Databricks may say "auto"
    bucket = F.pmod(F.xxhash64("user_id", "as_of"), F.lit(buckets)).alias("bucket")
    lists = rows.groupBy(bucket).applyInPandas(_list_stats_fn(len(names), k), schema)
    per_slice = [(name, name, None) for name in rel] + [(name, "all", rng) for name, rng in HISTORY_SLICES.items()]
    out_aggs = []
    for i, (name, r, rng) in enumerate(per_slice):
        nrel, m = F.col(f"nrel:{r}"), F.least(F.col(f"nrel:{r}"), F.lit(k))
        idcg = F.aggregate(F.sequence(F.lit(1), m), F.lit(0.0), lambda acc, j: acc + 1.0 / F.log2(j + 1))
        keep = nrel > 0
        if rng is not None:
            keep = keep & F.col("n_history").between(*rng)
        out_aggs.append(F.sum(F.when(keep, 1).otherwise(0)).alias(f"{i}:n"))
        for a in range(len(names)):
            vals = {"precision": F.col(f"hits{a}:{r}") / k, "recall": F.col(f"hits{a}:{r}") / nrel,
                    "ndcg": F.col(f"dcg{a}:{r}") / idcg, "map": F.col(f"ap{a}:{r}") / m,
                    "revenue": F.col(f"rev{a}:{r}")}
            out_aggs += [F.avg(F.when(keep, v)).alias(f"{i}:{a}:{metric}") for metric, v in vals.items()]
    row = lists.agg(*out_aggs).first()
    result: dict[str, dict[str, dict[str, float]]] = {arm: {} for arm in names}
    for i, (name, _, _) in enumerate(per_slice):
        n = int(row[f"{i}:n"] or 0)
        for a, arm in enumerate(names):
            value = {m: row[f"{i}:{a}:{m}"] for m in ("precision", "recall", "ndcg", "map", "revenue")}
            result[arm][name] = {f"{m}_at_{k}": float("nan") if v is None else float(v)
                                 for m, v in value.items()} | {"n_lists": float(n)}
    return result


def _list_stats_fn(n_arms: int, k: int):
    """applyInPandas over a bucket of whole lists (user, day): for each list, per arm
    (scores ``s0``, ``s1``, ...; ranked by score, ties by sale_id, as :func:`ranking`
    builds RankingEvaluator's input) and per relevance (any purchase; purchases of sales
    of each age slice): hits, DCG, the sum of precisions at the hits (AP's numerator) and
    the amount paid, in the top k. Vectorised over the bucket's lists."""
    bounds = list(AGE_SLICES.values())
    names = ["all", *AGE_SLICES]

    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        lid, keys = pd.MultiIndex.from_frame(pdf[["user_id", "as_of"]]).factorize()
        n_lists = len(keys)
        bought = pdf["label"].to_numpy(dtype=float) > 0
        with np.errstate(divide="ignore"):
            age = np.round(1.0 / pdf["recency"].to_numpy(dtype=float) - 1)
        rels = [bought] + [bought & (age >= lo) & (age <= hi) for lo, hi in bounds]
        ids = pdf["sale_id"].to_numpy(dtype=object)
        amount = pdf["amount"].to_numpy(dtype=float)
        hist = pd.Series(pdf["n_history"].to_numpy()).groupby(lid).max().reindex(range(n_lists))
        out = {"user_id": keys.get_level_values(0), "as_of": keys.get_level_values(1),
               "n_history": hist.astype("Int32").to_numpy()}
        for r, rel in zip(names, rels):
            out[f"nrel:{r}"] = np.bincount(lid, weights=rel, minlength=n_lists).astype(np.int64)
        sum_by = lambda lo, w: np.bincount(lo, weights=w, minlength=n_lists)  # noqa: E731
        for a in range(n_arms):
            order = np.lexsort((ids, -pdf[f"s{a}"].to_numpy(dtype=float), lid))  # list, score desc, id
            lo = lid[order]
            start = np.searchsorted(lo, lo, side="left")
            rank = (np.arange(len(lo)) - start + 1).astype(float)
            top = rank <= k
            for r, rel in zip(names, rels):
                hit = (rel[order] & top).astype(float)
                cum = np.cumsum(hit)
                within = cum - (cum[start] - hit[start])  # hits so far in the list
                out[f"hits{a}:{r}"] = sum_by(lo, hit)
                out[f"dcg{a}:{r}"] = sum_by(lo, hit / np.log2(rank + 1))
                out[f"ap{a}:{r}"] = sum_by(lo, hit * within / rank)
                out[f"rev{a}:{r}"] = sum_by(lo, hit * amount[order])
        return pd.DataFrame(out)
    return fn


def lift_table(results: dict[str, dict[str, float]], baseline: str = "popularity") -> list[dict]:
    """Rows (arm, metric, value, lift_vs_popularity); lower-is-better log loss lifts as base/value - 1."""
    rows = []
    base = results.get(baseline, {})
    for arm, metrics in results.items():
        for metric, value in metrics.items():
            b = base.get(metric)
            if metric == "n_lists" or b in (None, 0):
                lift = None
            elif metric == "log_loss":
                lift = b / value - 1 if value else None
            else:
                lift = value / b - 1
            rows.append({"arm": arm, "metric": metric, "value": value, "lift_vs_popularity": lift})
    return rows


def evaluation_rows(results: dict[str, dict[str, float]],
                    slices: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    """The rerank_evaluation rows: (arm, slice, metric, value, lift_vs_popularity, n) for
    every arm's metrics on all lists (``results``) and on each slice (``slices``)."""
    rows = []
    for r in lift_table(results):
        rows.append(r | {"slice": "all", "n": int(results[r["arm"]].get("n_lists", 0))})
    for name in AGE_SLICES | HISTORY_SLICES:
        per_arm = {arm: sl[name] for arm, sl in slices.items()}
        rows += [r | {"slice": name, "n": int(per_arm[r["arm"]]["n_lists"])} for r in lift_table(per_arm)]
    return rows


def evaluation_frame(spark, model_version: str, rows: list[dict]) -> DataFrame:
    """``rows`` (:func:`evaluation_rows`) as a DataFrame in the rerank_evaluation contract."""
    return (spark.createDataFrame([(model_version, r["arm"], r["slice"], r["metric"], float(r["value"]),
                                    None if r["lift_vs_popularity"] is None else float(r["lift_vs_popularity"]),
                                    r["n"]) for r in rows],
                                  "model_version string, arm string, slice string, metric string, value double, "
                                  "lift_vs_popularity double, n long")
            .withColumn("evaluated_at", F.current_timestamp()))


def chart(rows: list[dict]) -> bytes:
    """Bar chart of nDCG@10 and revenue@10 per arm; returns PNG bytes."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    k = next((r["metric"][len("ndcg_at_"):] for r in rows if r["metric"].startswith("ndcg_at_")), "10")
    for ax, metric, title in ((axes[0], f"ndcg_at_{k}", f"nDCG@{k}"),
                              (axes[1], f"revenue_at_{k}", f"revenue@{k} per buyer-day")):
        vals = {r["arm"]: r["value"] for r in rows if r["metric"] == metric}
        colors = ["#2c7fb8" if a.startswith("meta") else "#a6bddb" for a in arms]
        ax.bar(arms, [vals.get(a, 0.0) for a in arms], color=colors)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=35)
    fig.suptitle("held-out days: each engine alone, the meta-model, the meta-model without images")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
