"""vistarank against the recommenders a user would run instead, on the demo world's held-out
protocol (issue #17):

    make demo && make peers-env && .venv/bin/python benchmarks/peers.py --lakehouse ./lakehouse

The protocol is train_reranker's: every buyer of each held-out day x every sale open that
day (less what they bought in their history window, as at serving), relevant = bought that
day; nDCG@10 (binary relevance, Spark RankingEvaluator's definition) and revenue@10 (what
the buyer paid for the bought sales in the top 10), the mean over buyer-days. Ties are
broken by sale id for every method.

1. **Here (Spark, .venv)**: the lists of the held-out days and of the validation days before
   them, with every engine's score (the scoring kernel), the trained re-ranker's
   probability, the no-image ablation's, and the ablations "meta minus one engine" (a
   regression refitted on the training set without it, at the model's regularisation);
   and every event before the last held-out day. Written as Parquet to a work folder.
2. **In the peers' environment (.venv-peers, ``make peers-env``: numpy < 2, Microsoft
   Recommenders 1.2.1 without its heavy dependencies, implicit)**:
   ``benchmarks/peers_models.py`` refits each peer for every day on the events strictly
   before it, chooses its hyper-parameters on the validation days (never the held-out
   ones), scores the held-out lists (ALS and BPR: 3 seeds), computes every method's
   metrics and cross-checks them against recommenders' ``python_evaluation`` on the same
   lists.
3. Goals: meta's nDCG@10 and revenue@10 at least 1.05 x the best peer's (seeded peers: the
   mean over seeds). Writes benchmarks/results/peers.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_PYTHON = os.path.join(ROOT, ".venv-peers", "bin", "python")


def export(lakehouse: str, work: str) -> dict:
    """Step 1: the lists, the arms' scores and the events, as Parquet under ``work``."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import join, load_config
    from vistarank.recsys import latent as LT
    from vistarank.recsys.engines import ENGINES
    from vistarank.rerank import model as M
    from vistarank.rerank import training as TR
    from vistarank.jobs.common import sale_themes_with_quality
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={lakehouse}", "spark.show_progress=false"])
    spark = get_spark(cfg)
    rr = cfg.rerank
    folder = cfg.versioned_dir(rr)
    fitted, no_img = M.load(join(folder, "model")), M.load(join(folder, "ablation_no_image"))
    rc = fitted.engine.settings(cfg.recsys)  # the scoring settings the model was trained with (its ALS too)
    sales, visits, purchases = (io.read(spark, cfg, t) for t in (T.SALES, T.VISITS, T.PURCHASES))
    themes = sale_themes_with_quality(spark, cfg)  # with the photo quality, as train_reranker reads it
    first_day = visits.agg(F.min("visit_date")).first()[0]
    win = TR.windows(first_day, cfg.effective_run_date(), rr)
    ctx = TR.context(spark, visits, purchases, sales, themes, win, rc)
    ctx.fit_als(LT.AlsSettings.of(rc))
    # meta minus each engine: refitted on the training set at the model's regularisation
    ex = io.read(spark, cfg, T.TRAINING_SET)
    train, valid = ex.where(F.col("split") == "train").cache(), ex.where(F.col("split") == "validation").cache()
    minus = {e: M.fit(train, valid, fitted.engine, [f for f in fitted.features if f != e], [fitted.reg_param],
                      [fitted.elastic_net], rr.max_iter, 1, rr.tol) for e in fitted.features}
    amount = (purchases.groupBy("user_id", "sale_id", F.col("purchase_date").alias("as_of"))
              .agg(F.sum("amount").alias("amount")))
    out = {}
    for split, start, end in (("validation", win.validation_start, win.eval_start - dt.timedelta(days=1)),
                              ("eval", win.eval_start, win.end)):
        lists = TR.eval_lists(ctx, TR.Windows(win.train_start, win.validation_start, start, end), rr.exclude_bought)
        if split == "eval":
            lists = M.probability(no_img, M.probability(fitted, lists).drop("top_engine"), "meta_no_image")
            lists = lists.drop("meta_no_image_top_engine").withColumnRenamed("probability", "meta")
            for e, m in minus.items():
                lists = M.probability(m, lists, f"meta_minus_{e}").drop(f"meta_minus_{e}_top_engine")
        lists = lists.join(amount, ["user_id", "sale_id", "as_of"], "left").fillna({"amount": 0.0})
        path = os.path.join(work, f"lists_{split}")
        lists.write.mode("overwrite").parquet(path)
        out[split] = {"start": str(start), "end": str(end)}
    (ctx.ev.where(F.col("date") <= F.lit(win.end)).select("user_id", "sale_id", "date", "w", "bought")
     .write.mode("overwrite").parquet(os.path.join(work, "events")))
    meta = {"windows": out, "engines": ENGINES, "features": fitted.features, "purchase_weight": rc.purchase_weight,
            "history_days": rc.history_days, "half_life_days": rc.half_life_days, "top_n": rr.top_n,
            "arms": [*ENGINES, "meta", "meta_no_image", *[f"meta_minus_{e}" for e in minus]],
            "reranker_evaluation": reranker_evaluation(spark, cfg)}
    ctx.release()
    spark.stop()
    return meta


def reranker_evaluation(spark, cfg) -> dict:
    """train_reranker's own figures for the held-out days ({arm: {metric: value}}, slice all)."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    rows = (io.read(spark, cfg, T.RERANK_EVAL).where((F.col("model_version") == cfg.rerank.model_version)
                                                     & (F.coalesce("slice", F.lit("all")) == "all"))
            .select("arm", "metric", "value").collect())  # a few dozen rows
    out: dict = {}
    for r in rows:
        out.setdefault(r["arm"], {})[r["metric"]] = r["value"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--work", default=os.path.join(ROOT, ".cache", "peers"), help="Parquet hand-over folder")
    p.add_argument("--peers-python", default=PEERS_PYTHON, help="the peers' interpreter (make peers-env)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one point per peer's grid (a smoke run)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "peers.json"))
    args = p.parse_args()
    if not os.path.exists(args.peers_python):
        sys.exit(f"no peers' environment at {args.peers_python}: run `make peers-env` first")
    lake, work = os.path.abspath(args.lakehouse), os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    t0 = time.perf_counter()
    meta = export(lake, work)
    with open(os.path.join(work, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    t1 = time.perf_counter()
    cmd = [args.peers_python, os.path.join(HERE, "peers_models.py"), "--work", work, "--seeds", str(args.seeds)]
    subprocess.run(cmd + (["--quick"] if args.quick else []), check=True)
    with open(os.path.join(work, "metrics.json")) as fh:
        doc = json.load(fh)
    doc["seconds"] = {"export": round(t1 - t0, 1), "peers": round(time.perf_counter() - t1, 1)}
    doc["lakehouse"] = lake
    _results.write("peers", [doc], args.out, **doc["goals"])
    print(json.dumps({"table": doc["table"], "goals": doc["goals"]}, indent=1))


if __name__ == "__main__":
    main()
