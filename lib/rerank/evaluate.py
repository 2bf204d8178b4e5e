"""Offline evaluation on the held-out days, per arm: each engine alone, the meta-model and
the meta-model without the image features (does the picture help?).

- Pointwise, on the evaluation examples (purchases and their sampled negatives): AUC
  (every arm) and log loss (the meta-models, which give probabilities).
- Ranking, on every buyer of an evaluation day x every sale open that day: each arm's
  top 10 per (user, day), scored with Spark's RankingEvaluator (precision@10,
  recall@10, nDCG@10, MAP@10) against the sales bought that day, and revenue@10 = the
  mean over (user, day) of the price of the bought sales in the top 10.
Lift is each arm's value / popularity's value - 1.
"""
from __future__ import annotations

import logging

from pyspark.ml.evaluation import BinaryClassificationEvaluator, RankingEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

RANKING_METRICS = {"precision_at_10": "precisionAtK", "recall_at_10": "recallAtK", "ndcg_at_10": "ndcgAtK",
                   "map_at_10": "meanAveragePrecisionAtK"}


def log_loss(df: DataFrame, prob: str) -> float:
    p = F.least(F.greatest(F.col(prob), F.lit(1e-15)), F.lit(1 - 1e-15))
    return float(df.select(F.avg(-(F.col("label") * F.log(p) + (1 - F.col("label")) * F.log(1 - p)))).first()[0])


def pointwise(df: DataFrame, score: str, is_probability: bool) -> dict[str, float]:
    ev = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol=score, metricName="areaUnderROC")
    out = {"auc": float(ev.evaluate(df.withColumn(score, F.col(score).cast("double"))))}
    if is_probability:
        out["log_loss"] = log_loss(df, score)
    return out


def ranking(df: DataFrame, score: str, prices: DataFrame, k: int = 10) -> dict[str, float]:
    """``df``: (user_id, as_of, sale_id, label, <score>) for every open sale of every buyer-day."""
    # RankingEvaluator wants items as doubles: the first 52 bits of the id's SHA-256 (exact in a double)
    idx = prices.select("sale_id", F.conv(F.substring(F.sha2("sale_id", 256), 1, 13), 16, 10).cast("double")
                        .alias("item"))
    w = Window.partitionBy("user_id", "as_of").orderBy(F.col(score).desc(), F.col("sale_id"))
    ranked = df.join(F.broadcast(idx), "sale_id").withColumn("r", F.row_number().over(w)).where(F.col("r") <= k)
    pred = ranked.groupBy("user_id", "as_of").agg(
        F.transform(F.array_sort(F.collect_list(F.struct("r", "item"))), lambda s: s["item"]).alias("prediction"),
        F.sum(F.when(F.col("label") > 0, 1.0).otherwise(0.0)).alias("hits"))
    truth = (df.where(F.col("label") > 0).join(F.broadcast(idx), "sale_id")
             .groupBy("user_id", "as_of").agg(F.collect_list("item").alias("relevant")))
    lists = pred.join(truth, ["user_id", "as_of"])
    out = {}
    for name, metric in RANKING_METRICS.items():
        ev = RankingEvaluator(predictionCol="prediction", labelCol="relevant", metricName=metric, k=k)
        out[name] = float(ev.evaluate(lists))
    rev = (ranked.where(F.col("label") > 0).join(prices.select("sale_id", "price"), "sale_id")
           .groupBy("user_id", "as_of").agg(F.sum("price").alias("rev")))
    n_lists = lists.count()
    total = rev.agg(F.sum("rev")).first()[0] or 0.0
    out["revenue_at_10"] = float(total) / max(n_lists, 1)
    out["n_lists"] = float(n_lists)
    return out


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


def chart(rows: list[dict]) -> bytes:
    """Bar chart of nDCG@10 and revenue@10 per arm; returns PNG bytes."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in ((axes[0], "ndcg_at_10", "nDCG@10"), (axes[1], "revenue_at_10", "revenue@10 per buyer-day")):
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
