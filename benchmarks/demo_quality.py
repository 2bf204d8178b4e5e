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
  engine could go at best on this world.
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


def themes(spark, cfg) -> dict:
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    rows = io.read(spark, cfg, T.THEMES).orderBy("theme_id").collect()  # k rows
    per = []
    for r in rows:
        w = np.array([t["weight"] for t in r["top_tags"]], dtype=float)
        strong = int((w >= 0.1 * w.max()).sum()) if len(w) else 0
        per.append({"theme_id": r["theme_id"], "name": r["name"], "share": r["share"], "tags_at_10pct": strong,
                    "top_tags": [(t["tag"], round(float(t["weight"]), 4)) for t in r["top_tags"][:5]]})
    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
    img = (io.read(spark, cfg, T.IMAGE_THEMES).where(F.col("dominant_theme").isNotNull())
           .join(io.read(spark, cfg, T.IMAGE_SOURCES).select("image_id", "uri"), "image_id")
           .join(truth.select("uri", "theme", "category"), "uri")
           .dropDuplicates(["image_id"]))
    purity = {}
    for col in ("theme", "category"):
        counts = img.groupBy("dominant_theme", col).count().toPandas()  # k x hidden groups
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


def _ndcg(order_ids, relevant: set, k: int = 10) -> float:
    gain = sum(1.0 / np.log2(r + 2) for r, s in enumerate(order_ids[:k]) if s in relevant)
    return gain / sum(1.0 / np.log2(r + 2) for r in range(min(len(relevant), k)))


def taste_ceiling(spark, cfg) -> dict:
    """What the pictures could give at best: nDCG@10 on the held-out buyer-days (the same
    lists as ``rerank_evaluation``: every sale open that day less those the buyer bought in
    the history window) of scores made from the world's hidden truth, not from data:
    ``taste`` = the user's hidden taste . the sale's hidden share of taste themes among its
    photos (the very term the world draws visits from, generate._behaviour_fn), and
    ``taste_and_quality`` = 4 x that + 0.5 x the sale's photo quality (the world's own
    weights). The demo's tables are small: they are read into pandas here."""
    import datetime as dt

    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.rerank import training as TR

    rr, hd = cfg.rerank, cfg.recsys.history_days
    visits = io.read(spark, cfg, T.VISITS)
    win = TR.windows(visits.agg(F.min("visit_date")).first()[0], cfg.effective_run_date(), rr)
    sales = io.read(spark, cfg, T.SALES).select("sale_id", "open_date", "close_date").toPandas()
    pur = io.read(spark, cfg, T.PURCHASES).select("user_id", "sale_id", "purchase_date").toPandas()
    users = io.read(spark, cfg, T.TRUTH_USERS, allow_truth=True).select("user_id", "taste").toPandas()
    imgs = (io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True)
            .select("sale_id", "photo_key", "theme", "aesthetic").toPandas())
    groups = sorted({k for t in users["taste"] for k in t})
    taste = {u: np.array([t.get(g, 0.0) for g in groups]) for u, t in zip(users["user_id"], users["taste"])}
    photos = imgs.drop_duplicates("photo_key")
    share = {}
    for sid, g in photos[photos["theme"].isin(groups)].groupby("sale_id"):
        v = np.array([(g["theme"] == t).sum() for t in groups], dtype=float)
        share[sid] = v / v.sum()
    quality = ((imgs.groupby("sale_id")["aesthetic"].mean() - 7.0) / 2.0).to_dict()  # generate.sale_photo_quality
    zero = np.zeros(len(groups))
    out = {"taste": [], "taste_and_quality": []}
    new = []
    day = win.eval_start
    while day <= win.end:
        open_ = sales[(sales["open_date"] <= day) & (sales["close_date"] >= day)].sort_values("sale_id")
        ids = open_["sale_id"].to_numpy()
        fit_s = np.array([share.get(s, zero) for s in ids])
        q = np.array([quality.get(s, 0.0) for s in ids])
        opened = dict(zip(open_["sale_id"], open_["open_date"]))
        before = pur[(pur["purchase_date"] < day) & (pur["purchase_date"] >= day - dt.timedelta(days=hd))]
        for u, g in pur[pur["purchase_date"] == day].groupby("user_id"):
            rel = set(g["sale_id"]) & set(ids)
            if not rel:
                continue
            keep = ~np.isin(ids, before.loc[before["user_id"] == u, "sale_id"].to_numpy()) if rr.exclude_bought \
                else np.ones(len(ids), dtype=bool)
            t = fit_s @ taste.get(u, zero)
            for arm, score in (("taste", t), ("taste_and_quality", 4.0 * t + 0.5 * q)):
                order = np.argsort(-score[keep], kind="stable")  # ties by sale id
                out[arm].append(_ndcg(list(ids[keep][order]), rel))
            new.append(any(opened[s] == day for s in rel))
        day += dt.timedelta(days=1)
    new_ = np.array(new, dtype=bool)
    res = {"n_lists": len(new)}
    for arm, vals in out.items():
        v = np.array(vals)
        res[arm] = {"all": float(v.mean()) if len(v) else float("nan"),
                    "sale_age=0": float(v[new_].mean()) if new_.any() else float("nan")}
    return res


def heads(spark, cfg) -> dict:
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.training import workflow as W

    rows = (io.read(spark, cfg, T.HEAD_EVAL).where(F.col("model_version") == cfg.training.model_version)
            .where(F.col("class").isNull()).collect())  # a few dozen rows
    v = {(r["task"], r["arm"], r["metric"]): r["value"] for r in rows}
    gal = W.gallery_report(io.read(spark, cfg, T.SALE_GALLERY), io.read(spark, cfg, T.IMAGE_SOURCES),
                           io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True))
    top1 = {arm: v.get(("areas", arm, "top1")) for arm in ("noisy", "cleaned", "transfer_head", "fine_tuned",
                                                            "from_scratch")}
    return {"aesthetics_spearman": v.get(("aesthetics", "emd_head", "spearman")),
            "aesthetics_emd": v.get(("aesthetics", "emd_head", "emd")), "gallery": gal, "areas_top1": top1,
            "transfer_minus_scratch": (top1["transfer_head"] - top1["from_scratch"]
                                       if top1["transfer_head"] is not None and top1["from_scratch"] is not None
                                       else None),
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
           "gallery": h["gallery"], "transfer - scratch": h["transfer_minus_scratch"],
           "ceiling": doc["hidden_truth_ceiling"]} | goals)


if __name__ == "__main__":
    main()
