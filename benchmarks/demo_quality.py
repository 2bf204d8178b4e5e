"""The demo world's picture figures (issue #15), read from a finished demo lakehouse:

    make demo && .venv/bin/python benchmarks/demo_quality.py --lakehouse ./lakehouse

- **Themes** (table ``themes``, ``image_themes``): per theme, the tags holding at least 10%
  of its top tag's weight (goal: a median of 3 or more), its name, and purity against the
  world's hidden scene theme of each image (``truth_images.theme``: the share of images
  whose dominant theme's majority hidden theme is theirs; goal 0.8).
- **Images in the re-ranker** (``rerank_evaluation``, the current model): the image engine
  alone against popularity (goal: above), meta against meta without images overall (goal
  1.05 x) and on sales opened that day (goal 1.10 x).
- **Aesthetics and galleries** (``head_evaluation``; the gallery figure recomputed from
  ``sale_gallery`` and the hidden scores): Spearman of predicted and hidden score (goal
  0.8); the share of sales with 6+ photos whose first gallery image is among their hidden
  best three (goal 0.8).
- **The ceiling** (``hidden_truth_ceiling``): the same held-out lists ranked by the
  world's hidden taste and photo quality, which no engine can know: how far the image
  engine could go at best on this world. And for aesthetics (``heads.aesthetics_ceiling``):
  what a perfect detector of each photo's degradations alone would reach, Spearman and
  gallery (a head that also sees a clean photo's light goes past it).
- **Heads**: transfer against from scratch (top-1; goal +10 points), noisy against cleaned
  labels. Single run: the spread over seeds is not measured here.

Writes benchmarks/results/demo_quality.json.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))


def hidden_counts(spark, cfg, col: str):
    """pandas (dominant_theme, ``col``, count): how many images of each theme carry each
    value of their hidden ``col`` in truth_images (``theme`` or ``category``), an image once
    however many files show it: k x hidden groups rows."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    img = (io.read(spark, cfg, T.IMAGE_THEMES).where(F.col("dominant_theme").isNotNull())
           .join(io.read(spark, cfg, T.IMAGE_SOURCES).select("image_id", "uri"), "image_id")
           .join(truth.select("uri", col), "uri")
           .dropDuplicates(["image_id"]))
    return img.groupBy("dominant_theme", col).count().toPandas()


def themes(spark, cfg) -> dict:
    from vistarank import io
    from vistarank import tables as T

    rows = io.read(spark, cfg, T.THEMES).orderBy("theme_id").collect()  # k rows
    per = []
    for r in rows:
        w = np.array([t["weight"] for t in r["top_tags"]], dtype=float)
        strong = int((w >= 0.1 * w.max()).sum()) if len(w) else 0
        per.append({"theme_id": r["theme_id"], "name": r["name"], "share": r["share"], "tags_at_10pct": strong,
                    "top_tags": [(t["tag"], round(float(t["weight"]), 4)) for t in r["top_tags"][:5]]})
    purity = {}
    for col in ("theme", "category"):
        counts = hidden_counts(spark, cfg, col)
        purity[col] = float(counts.groupby("dominant_theme")["count"].max().sum() / counts["count"].sum())
    return {"n_themes": len(per), "median_tags_at_10pct": float(np.median([p["tags_at_10pct"] for p in per])),
            "purity_hidden_theme": purity["theme"], "purity_hidden_category": purity["category"], "themes": per}


def rerank(spark, cfg) -> dict:
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    rows = (io.read(spark, cfg, T.RERANK_EVAL).where(F.col("model_version") == cfg.rerank.model_version)
            .where(F.col("metric") == "ndcg_at_10").select("arm", "slice", "value", "n").collect())
    v = {(r["arm"], r["slice"] or "all"): r["value"] for r in rows}
    return {"ndcg_at_10": {f"{a}|{s}": x for (a, s), x in sorted(v.items())},
            "image_vs_popularity": v[("image", "all")] / v[("popularity", "all")],
            "meta_vs_no_image": v[("meta", "all")] / v[("meta_no_image", "all")],
            "meta_vs_no_image_new_sales": (v[("meta", "sale_age=0")] / v[("meta_no_image", "sale_age=0")]
                                           if v.get(("meta_no_image", "sale_age=0")) else float("nan"))}


def taste_ceiling(spark, cfg) -> dict:
    """What the pictures could give at best: nDCG@10 on the held-out buyer-days (the lists
    of ``rerank_evaluation``: every sale open that day less those the buyer bought in the
    history window, ranked and sliced by the same code, evaluate.sliced_arms) of scores made
    from the world's hidden truth, not from data: ``taste`` = the user's hidden taste . the
    sale's hidden share of taste themes among its photos (the very term the world draws
    visits from, generate._behaviour_fn; generate.sale_taste_shares), and
    ``taste_and_quality`` = 4 x that + 0.5 x the sale's photo quality (the world's own
    weights; generate.sale_photo_quality)."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.recsys import engines as E
    from vistarank.recsys import kernel as K
    from vistarank.rerank import evaluate as EV
    from vistarank.rerank import training as TR
    from vistarank.world import generate as G

    rr, hd = cfg.rerank, cfg.recsys.history_days
    sales, visits, purchases = (io.read(spark, cfg, t) for t in (T.SALES, T.VISITS, T.PURCHASES))
    truth_images = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    win = TR.windows(visits.agg(F.min("visit_date")).first()[0], cfg.effective_run_date(), rr)
    open_days = K.open_by_day(sales, K.days_frame(spark, TR.days(win.eval_start, win.end)), win.eval_start, win.end)
    bought = TR.bought_when_open(purchases, open_days.select("as_of", "sale_id"), win.eval_start, win.end)
    lists = (bought.select("user_id", "as_of").distinct().join(open_days, "as_of")
             .join(bought.withColumn("label", F.lit(1.0)), ["user_id", "as_of", "sale_id"], "left")
             .withColumn("label", F.coalesce("label", F.lit(0.0)))
             .withColumn("recency", 1.0 / (1.0 + F.datediff("as_of", "open_date"))))
    in_window = lambda d: (F.col(d) < F.col("as_of")) & (F.col(d) >= F.date_sub("as_of", hd))  # noqa: E731
    keys = lists.select("user_id", "as_of").distinct()
    if rr.exclude_bought:
        earlier = (keys.join(purchases, "user_id").where(in_window("purchase_date"))
                   .select("user_id", "as_of", "sale_id"))
        lists = lists.join(earlier, ["user_id", "as_of", "sale_id"], "left_anti")
    n_history = (keys.join(E.events(visits, purchases, 1.0), "user_id").where(in_window("date"))
                 .groupBy("user_id", "as_of").agg(F.countDistinct("sale_id").cast("int").alias("n_history")))
    # the hidden share of each taste theme among a sale's photos (the world's own term)
    taste = io.read(spark, cfg, T.TRUTH_USERS, allow_truth=True).select(
        "user_id", F.explode("taste").alias("theme", "w"))
    share = G.sale_taste_shares(truth_images)
    fit = (lists.select("user_id", "as_of", "sale_id").join(share, "sale_id").join(taste, ["user_id", "theme"])
           .groupBy("user_id", "as_of", "sale_id").agg(F.sum(F.col("share") * F.col("w")).alias("taste")))
    scored = (lists.join(fit, ["user_id", "as_of", "sale_id"], "left")
              .join(G.sale_photo_quality(truth_images), "sale_id", "left")
              .join(n_history, ["user_id", "as_of"], "left")
              .select("user_id", "as_of", "sale_id", "label", "recency",
                      F.coalesce("n_history", F.lit(0)).alias("n_history"),
                      F.coalesce("taste", F.lit(0.0)).alias("taste"),
                      (4.0 * F.coalesce("taste", F.lit(0.0)) + 0.5 * F.coalesce("quality", F.lit(0.0)))
                      .alias("taste_and_quality")))
    res = EV.sliced_arms(scored, {"taste": "taste", "taste_and_quality": "taste_and_quality"}, purchases,
                         rr.top_n)
    out = {arm: {sl: res[arm][sl][f"ndcg_at_{rr.top_n}"] for sl in ("all", "sale_age=0")} for arm in res}
    return {"n_lists": int(res["taste"]["all"]["n_lists"])} | out


def aesthetics_ceiling(spark, cfg) -> dict:
    """What a perfect detector of the world's degradations alone reaches, from the truth
    table: each image predicted by how many degradations it carries (0, 1 or 2; the names
    are in ``truth_images.degradation``), its Spearman against the hidden score, and the
    galleries it would order (ties, most of all among clean photos, by image id). A clean
    photo's score is its light (``udfs/render.compose``), which this detector ignores: a
    head that sees the light too goes past it (before render version 3 the light was not
    drawn, and this bounded every head). The same detector with its ties broken at random
    (``spearman_degradation_oracle_untied``) is what a continuous score reaches when it
    detects the flaws perfectly but orders the clean photos at random."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.training import workflow as W

    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    n_deg = (F.when(F.coalesce(F.col("degradation"), F.lit("")) == "", 0)
             .otherwise(F.size(F.split("degradation", "[+]"))))
    oracle = truth.select("uri", "aesthetic", (-n_deg).cast("double").alias("pred"))

    def avg_rank(c):  # Spearman is the correlation of average ranks (ties share their mean rank)
        return F.rank().over(Window.orderBy(c)) + (F.count("*").over(Window.partitionBy(c)) - 1) / 2.0

    # one window over the world's images (about 15,000 on the demo): a benchmark of the demo world
    rho = (oracle.select(avg_rank("pred").alias("a"), avg_rank("aesthetic").alias("b"))
           .agg(F.corr("a", "b")).first())
    # the same detector with its ties broken in an order unrelated to the score (a hash of the
    # uri), as a continuous score that cannot order the clean photos breaks them
    untied = (oracle.select(F.rank().over(Window.orderBy("pred", F.xxhash64("uri"))).alias("a"),
                            avg_rank("aesthetic").alias("b")).agg(F.corr("a", "b")).first())
    src = io.read(spark, cfg, T.IMAGE_SOURCES)
    ranked = (src.select("sale_id", "image_id", "uri").where(F.col("sale_id").isNotNull())
              .join(oracle, "uri").groupBy("sale_id", "image_id").agg(F.max("pred").alias("pred"))
              .withColumn("rank", F.row_number().over(Window.partitionBy("sale_id")
                                                      .orderBy(F.desc("pred"), "image_id"))))
    gal = W.gallery_report(ranked, src, truth)
    return {"spearman_degradation_oracle": float(rho[0]), "spearman_degradation_oracle_untied": float(untied[0]),
            "gallery_degradation_oracle": gal, "detection_auc": detection_auc(spark, cfg, truth, src)}


def detection_auc(spark, cfg, truth, src) -> dict:
    """How well the heads' uncapped mean score (``image_aesthetics.distribution``) tells the
    photos carrying each degradation from the clean ones: the AUC over every image (one
    row per image: about 13,000 on the demo), and over all flawed photos (``any``)."""
    import numpy as np
    from pyspark.sql import functions as F
    from sklearn.metrics import roc_auc_score

    from vistarank import io
    from vistarank import tables as T
    from vistarank.training.heads import mean_score

    aes = (io.read(spark, cfg, T.IMAGE_AESTHETICS).where(F.col("model_version") == cfg.training.model_version)
           .select("image_id", "distribution"))
    pdf = (src.select("image_id", "uri").join(truth.select("uri", "degradation"), "uri")
           .groupBy("image_id").agg(F.first("degradation").alias("degradation"))
           .join(aes, "image_id").toPandas())
    mean = mean_score(np.stack(pdf["distribution"].to_numpy()).astype(np.float64))
    names = pdf["degradation"].fillna("").to_numpy()
    clean = names == ""
    out = {"any": float(roc_auc_score(clean, mean))}
    for d in sorted({n for v in names for n in v.split("+") if n}):
        has = np.array([d in v.split("+") for v in names])
        out[d] = float(roc_auc_score(clean[clean | has], mean[clean | has]))
    return out


def heads(spark, cfg) -> dict:
    from vistarank import io
    from vistarank import tables as T
    from vistarank.training import workflow as W

    v = _results.head_figures(spark, cfg)
    gal = W.gallery_report(io.read(spark, cfg, T.SALE_GALLERY), io.read(spark, cfg, T.IMAGE_SOURCES),
                           io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True))
    top1 = {arm: v.get(f"areas.{arm}.top1") for arm in ("noisy", "cleaned", "transfer_head", "fine_tuned",
                                                         "from_scratch")}
    return {"aesthetics_spearman": v.get("aesthetics.emd_head.spearman"),
            "aesthetics_spearman_uncapped_mean": v.get("aesthetics.emd_head.spearman_mean"),
            "aesthetics_tied_at_cap": v.get("aesthetics.emd_head.tied_at_cap"),
            "aesthetics_ceiling": aesthetics_ceiling(spark, cfg),
            "aesthetics_emd": v.get("aesthetics.emd_head.emd"), "gallery": gal, "areas_top1": top1,
            "transfer_minus_scratch": _results.transfer_minus_scratch(v),
            "labels_per_class": cfg.training.labels_per_class, "aesthetic_labels": cfg.training.aesthetic_labels,
            "seeds": 1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--out", default=os.path.join(HERE, "results", "demo_quality.json"))
    args = p.parse_args()
    from vistarank.config import load_config
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={os.path.abspath(args.lakehouse)}", "spark.show_progress=false"])
    spark = get_spark(cfg)
    doc = {"themes": themes(spark, cfg), "rerank": rerank(spark, cfg), "heads": heads(spark, cfg),
           "hidden_truth_ceiling": taste_ceiling(spark, cfg)}
    spark.stop()
    t, r, h = doc["themes"], doc["rerank"], doc["heads"]
    goals = {
        "goal_themes_group_tags": t["median_tags_at_10pct"] >= 3,
        "goal_theme_purity": t["purity_hidden_theme"] >= 0.8,
        "goal_image_beats_popularity": r["image_vs_popularity"] > 1.0,
        "goal_images_lift_meta_5pct": r["meta_vs_no_image"] >= 1.05,
        "goal_images_lift_new_sales_10pct": bool(r["meta_vs_no_image_new_sales"] >= 1.10),
        "goal_aesthetics_spearman": (h["aesthetics_spearman"] or 0) >= 0.8,
        "goal_gallery_first_in_top3": h["gallery"]["first_in_hidden_top3"] >= 0.8,
        "goal_transfer_10_points": (h["transfer_minus_scratch"] or 0) >= 0.10,
    }
    _results.write("demo_quality", [doc], args.out, lakehouse=os.path.abspath(args.lakehouse), **goals)
    print({"median_tags_at_10pct": t["median_tags_at_10pct"], "purity": round(t["purity_hidden_theme"], 3),
           "image/popularity": round(r["image_vs_popularity"], 3), "meta/no image": round(r["meta_vs_no_image"], 3),
           "new sales": round(r["meta_vs_no_image_new_sales"], 3), "spearman": h["aesthetics_spearman"],
           "spearman of the uncapped mean": h["aesthetics_spearman_uncapped_mean"], "gallery": h["gallery"],
           "aesthetics ceiling": h["aesthetics_ceiling"],
           "transfer - scratch": h["transfer_minus_scratch"],
           "ceiling": doc["hidden_truth_ceiling"]} | goals)


if __name__ == "__main__":
    main()
