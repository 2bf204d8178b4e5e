"""Offline evaluation on the held-out days, per arm: each engine alone, the meta-model and
the meta-model without the image features (does the picture help?).

- Pointwise, on the evaluation examples (purchases and their sampled negatives): AUC
  (every arm) and log loss (the meta-models, which give probabilities).
- Ranking, on every buyer of an evaluation day x every sale open that day (less the
  sales they bought in their history window, as at serving): each arm's top N per
  (user, day) (N = ``rerank.top_n``; the metrics are named after it) against the sales
  bought that day: precision, recall, nDCG and MAP at N with the definitions of Spark's
  RankingEvaluator (:func:`sliced` computes them per list, for every slice in one pass;
  :func:`ranking` runs RankingEvaluator itself and is what the tests check it against),
  and revenue at N = the mean over (user, day) of the amount paid (``purchases.amount``)
  for the bought sales in the top N.
Lift is each arm's value / popularity's value - 1.
"""
from __future__ import annotations

import logging

from pyspark.ml.evaluation import BinaryClassificationEvaluator, RankingEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

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
    """Ranking metrics at k per slice of the buyer-days, from per-list formulas (the same
    definitions as Spark's RankingEvaluator, which :func:`ranking` uses for all lists):

    - ``sale_age=0|1-2|3+``: relevant = that day's purchases of sales that old (days since
      opening, from the recency score); the lists with at least one such purchase;
    - ``history=0|1-4|5+``: the buyer-days whose user had that many distinct sales in their
      history window (``n_history``); relevant = every purchase that day.

    ``df``: (user_id, as_of, sale_id, label, recency, n_history, <score>) for every open
    sale of every buyer-day. -> {slice: {metric: value, "n_lists": n}}."""
    age = F.round(F.lit(1.0) / F.col("recency") - 1).cast("int")
    w = Window.partitionBy("user_id", "as_of").orderBy(F.col(score).desc(), F.col("sale_id"))
    amount = (purchases.select("user_id", "sale_id", F.col("purchase_date").alias("as_of"), "amount")
              .groupBy("user_id", "sale_id", "as_of").agg(F.sum("amount").alias("amount")))
    rel = {"all": F.col("label") > 0}
    rel |= {name: (F.col("label") > 0) & age.between(lo, hi) for name, (lo, hi) in AGE_SLICES.items()}
    rows = df.withColumn("r", F.row_number().over(w))
    for name, cond in rel.items():
        rows = rows.withColumn(f"rel:{name}", F.when(cond, 1).otherwise(0))
    cum_w = Window.partitionBy("user_id", "as_of").orderBy("r").rowsBetween(Window.unboundedPreceding, 0)
    for name in rel:
        rows = rows.withColumn(f"cum:{name}", F.sum(f"rel:{name}").over(cum_w))
    rows = rows.join(amount, ["user_id", "sale_id", "as_of"], "left")
    aggs = [F.max("n_history").alias("n_history")]
    top = F.col("r") <= k
    for name in rel:
        r_, c_ = F.col(f"rel:{name}"), F.col(f"cum:{name}")
        aggs += [F.sum(r_).alias(f"nrel:{name}"),
                 F.sum(F.when(top, r_)).alias(f"hits:{name}"),
                 F.sum(F.when(top & (r_ > 0), 1.0 / F.log2(F.col("r") + 1))).alias(f"dcg:{name}"),
                 F.sum(F.when(top & (r_ > 0), c_ / F.col("r"))).alias(f"ap:{name}"),
                 F.sum(F.when(top & (r_ > 0), F.coalesce("amount", F.lit(0.0)))).alias(f"rev:{name}")]
    lists = rows.groupBy("user_id", "as_of").agg(*aggs)
    per_slice = [(name, name, None) for name in rel] + [(name, "all", rng) for name, rng in HISTORY_SLICES.items()]
    out_aggs = []
    for i, (name, r, rng) in enumerate(per_slice):
        nrel, m = F.col(f"nrel:{r}"), F.least(F.col(f"nrel:{r}"), F.lit(k))
        idcg = F.aggregate(F.sequence(F.lit(1), m), F.lit(0.0), lambda acc, j: acc + 1.0 / F.log2(j + 1))
        keep = nrel > 0
        if rng is not None:
            keep = keep & F.col("n_history").between(*rng)
        vals = {"precision": F.coalesce(F.col(f"hits:{r}"), F.lit(0)) / k,
                "recall": F.coalesce(F.col(f"hits:{r}"), F.lit(0)) / nrel,
                "ndcg": F.coalesce(F.col(f"dcg:{r}"), F.lit(0.0)) / idcg,
                "map": F.coalesce(F.col(f"ap:{r}"), F.lit(0.0)) / m,
                "revenue": F.coalesce(F.col(f"rev:{r}"), F.lit(0.0))}
        out_aggs += [F.avg(F.when(keep, v)).alias(f"{i}:{metric}") for metric, v in vals.items()]
        out_aggs.append(F.sum(F.when(keep, 1).otherwise(0)).alias(f"{i}:n"))
    row = lists.agg(*out_aggs).first()
    result = {}
    for i, (name, _, _) in enumerate(per_slice):
        n = int(row[f"{i}:n"] or 0)
        value = {m: row[f"{i}:{m}"] for m in ("precision", "recall", "ndcg", "map", "revenue")}
        result[name] = {f"{m}_at_{k}": float("nan") if v is None else float(v) for m, v in value.items()} | {
            "n_lists": float(n)}
    return result


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
