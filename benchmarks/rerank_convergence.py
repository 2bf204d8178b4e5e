"""Does the re-ranker's regression converge, and how sure are the image lifts? On a finished
demo lakehouse (issue #15, item 2):

    make demo && .venv/bin/python benchmarks/rerank_convergence.py --lakehouse ./lakehouse

1. The held-out lists are scored again as train_reranker scores them: every buyer-day of the
   evaluation days x every sale open that day (``training.eval_lists``, ALS at the settings
   the saved model chose).
2. For each ``--max-iters`` (default: 100, the old default, and ``rerank.max_iter``), the
   meta-model and the meta-model without images are refitted exactly as train_reranker's
   final fit (the training and validation days of ``training_set``, the saved model's
   regParam and elasticNet, ``rerank.tol``), with their optimiser iterations.
3. nDCG@10 per list, overall and on the lists whose buyer bought a sale opened that day
   (``sale_age=0``, relevant: those purchases), as ``evaluate.sliced_arms``; the ratio meta /
   meta without images with a paired bootstrap over the lists (``--boot`` draws, 90%
   interval) and the number of lists with a hit.

Goals: the default fit converges; images lift meta by 5% overall and by 10% on sales opened
that day (the point estimates, as demo_quality.py; the intervals say how sure they are).
Writes benchmarks/results/rerank_convergence.json. About 5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
K = 10


def list_ndcg(d: pd.DataFrame, cols: list[str]) -> dict[str, pd.DataFrame]:
    """Per list (user, day) and score column: nDCG@K overall and on purchases of sales opened
    that day (lists without such a purchase left out of that slice), from the per-list
    statistics train_reranker's evaluation aggregates (``evaluate._list_stats_fn``: the same
    ranking, ties and slices)."""
    from vistarank.rerank import evaluate as EV

    stats = EV._list_stats_fn(len(cols), K)(d.rename(columns={c: f"s{a}" for a, c in enumerate(cols)})
                                             .assign(amount=0.0))
    disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))])  # idcg by relevant count
    out = {}
    for sl in ("all", "sale_age=0"):
        nrel = stats[f"nrel:{sl}"].to_numpy()
        keep = nrel > 0
        idcg = disc[np.minimum(nrel[keep], K)]
        out[sl] = pd.DataFrame({c: stats[f"dcg{a}:{sl}"].to_numpy()[keep] / idcg for a, c in enumerate(cols)})
    return out


def ratio(v: pd.DataFrame, a: str, b: str, boot: int, rng) -> dict:
    """meta / no-image of the means, with a paired bootstrap interval over the lists."""
    idx = rng.integers(0, len(v), (boot, len(v)))
    den = v[b].to_numpy()[idx].mean(axis=1)
    r = v[a].to_numpy()[idx].mean(axis=1) / np.where(den > 0, den, np.nan)
    return {"ratio": float(v[a].mean() / v[b].mean()) if v[b].mean() > 0 else float("nan"),
            "ci90": [float(np.nanquantile(r, 0.05)), float(np.nanquantile(r, 0.95))],
            "lists": len(v), "lists_with_a_hit": {a: int((v[a] > 0).sum()), b: int((v[b] > 0).sum())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--max-iters", default=None, help="comma-separated (default: 100 and rerank.max_iter)")
    p.add_argument("--boot", type=int, default=2000)
    p.add_argument("--out", default=os.path.join(HERE, "results", "rerank_convergence.json"))
    args = p.parse_args()
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import join, load_config
    from vistarank.files import read_text
    from vistarank.jobs.train_reranker import NO_IMAGE, model_folder
    from vistarank.recsys import latent as LT
    from vistarank.recsys.engines import ENGINES
    from vistarank.rerank import model as M
    from vistarank.rerank import training as TR
    from vistarank.jobs.common import sale_themes_with_quality
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={os.path.abspath(args.lakehouse)}", "spark.show_progress=false"])
    spark = get_spark(cfg)
    rr, rc = cfg.rerank, cfg.recsys
    meta = json.loads(read_text(join(model_folder(cfg), "model.json")) or "{}")
    if not meta:
        raise SystemExit(f"no re-ranker under {model_folder(cfg)}: run the demo (make demo) first")
    reg, en, als = meta["reg_param"], meta["elastic_net"], meta["als"]
    iters = [int(x) for x in args.max_iters.split(",")] if args.max_iters else sorted({100, rr.max_iter})
    t0 = time.perf_counter()

    sales, visits, purchases = (io.read(spark, cfg, t) for t in (T.SALES, T.VISITS, T.PURCHASES))
    win = TR.windows(visits.agg(F.min("visit_date")).first()[0], cfg.effective_run_date(), rr)
    ctx = TR.context(spark, visits, purchases, sales, sale_themes_with_quality(spark, cfg), win, rc)
    ctx.fit_als(LT.AlsSettings(als["rank"], als["reg_param"], als["alpha"], rc.als_max_iter,
                               rc.als_half_life_days))
    lists = TR.eval_lists(ctx, win, rr.exclude_bought).cache()
    ex = io.read(spark, cfg, T.TRAINING_SET)
    fit_rows = ex.where(F.col("split") != "eval").cache()
    scored, fits = lists.select("user_id", "as_of", "sale_id", "label", "recency", "n_history"), []
    for it in iters:
        for arm, feats in (("meta", ENGINES), ("meta_no_image", NO_IMAGE)):
            t = time.perf_counter()
            model = M.pipeline(feats, reg, en, it, rr.tol).fit(fit_rows)
            lr = model.stages[-1]
            n = int(lr.summary.totalIterations)
            col = f"{arm}@{it}"
            fits.append({"arm": arm, "max_iter": it, "iterations": n, "converged": n < it,
                         "objective": float(lr.summary.objectiveHistory[-1]),
                         "seconds": round(time.perf_counter() - t, 1),
                         "coefficients": dict(zip(feats, map(float, lr.coefficients.toArray())))})
            s = model.transform(lists).select("user_id", "as_of", "sale_id", vector_to_array("raw")[1].alias(col))
            scored = scored.join(s, ["user_id", "as_of", "sale_id"])
            print(fits[-1] | {"coefficients": None}, flush=True)
    d = scored.toPandas()  # the demo's held-out lists: about 220k rows (a benchmark on the demo, not a job)
    # train_reranker's own figures for its saved model, to compare with this run's rerun of its max_iter
    stored = {f"{r['arm']}|{r['slice'] or 'all'}": r["value"] for r in io.read(spark, cfg, T.RERANK_EVAL)
              .where((F.col("model_version") == rr.model_version) & (F.col("metric") == "ndcg_at_10")
                     & F.col("arm").isin("meta", "meta_no_image")).collect()}
    ctx.release()
    spark.stop()
    cols = [c for c in d.columns if "@" in c]
    per = list_ndcg(d, cols)
    rng = np.random.default_rng(0)
    by_iter = {}
    for it in iters:
        a, b = f"meta@{it}", f"meta_no_image@{it}"
        by_iter[str(it)] = {sl: {"ndcg_at_10": {"meta": float(v[a].mean()), "meta_no_image": float(v[b].mean())}}
                            | ratio(v, a, b, args.boot, rng) for sl, v in per.items()}
    res = by_iter[str(rr.max_iter)] if str(rr.max_iter) in by_iter else by_iter[str(iters[-1])]
    goals = {
        "goal_default_fit_converges": all(f["converged"] for f in fits if f["max_iter"] == rr.max_iter),
        "goal_images_lift_meta_5pct": res["all"]["ratio"] >= 1.05,
        "goal_images_lift_new_sales_10pct": bool(res["sale_age=0"]["ratio"] >= 1.10),
    }
    _results.write("rerank_convergence", [{"fits": fits, "by_max_iter": by_iter, "reg_param": reg,
                                           "elastic_net": en, "tol": rr.tol,
                                           "train_reranker_ndcg_at_10": stored}], args.out,
                   lakehouse=os.path.abspath(args.lakehouse), seconds=round(time.perf_counter() - t0, 1),
                   boot=args.boot, **goals)
    for it, r in by_iter.items():
        for sl, v in r.items():
            nd = v["ndcg_at_10"]
            print(f"max_iter {it} {sl}: meta {nd['meta']:.4f} no image {nd['meta_no_image']:.4f}"
                  f" ratio {v['ratio']:.3f} [{v['ci90'][0]:.3f}, {v['ci90'][1]:.3f}] lists {v['lists']} "
                  f"hits {v['lists_with_a_hit']}")
    print(goals)


if __name__ == "__main__":
    main()
