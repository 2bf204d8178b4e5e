"""train_reranker: purchases and sampled negatives with the engines' scores as of their day,
an MLlib logistic regression chosen on a time split, and its offline evaluation on the
held-out days (each engine alone, the meta-model, the meta-model without images)."""
from __future__ import annotations

import json
import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io, runs
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.files import write_bytes
from vistarank.jobs.common import main_for, sale_themes_with_quality
from vistarank.recsys.engines import ENGINES
from vistarank.rerank import evaluate as EV
from vistarank.rerank import model as M
from vistarank.rerank import training as TR
from vistarank.rerank.stages import EngineFeatures
from vistarank.runs import StageResult, record_metrics

log = logging.getLogger(__name__)

INPUTS = [T.SALES, T.VISITS, T.PURCHASES, T.SALE_THEMES, T.SALE_GALLERY]
OUTPUTS = [T.TRAINING_SET, T.RERANK_EVAL]
NO_IMAGE = [e for e in ENGINES if e != "image"]
MODEL_FORMAT = 4  # 2: one PipelineModel with EngineFeatures and TopEngine; 3: the imageScore Param; 4: the choice image engine's taste Params (a model saved before is retrained)


def model_folder(cfg: Config) -> str:
    return cfg.versioned_dir(cfg.rerank)


def _fp(spark: SparkSession, cfg: Config) -> dict:
    return runs.fingerprint(spark, cfg, INPUTS, rerank=cfg.rerank.model_dump(), recsys=cfg.recsys.model_dump(),
                            model_format=MODEL_FORMAT)


def needed(spark: SparkSession, cfg: Config) -> bool:
    return not runs.is_current(spark, cfg, "train_reranker", OUTPUTS, _fp(spark, cfg))


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("train_reranker")
    rr, rc, d = cfg.rerank, cfg.recsys, cfg.effective_run_date()
    fp = _fp(spark, cfg)
    sales, visits, purchases = (io.read(spark, cfg, t) for t in (T.SALES, T.VISITS, T.PURCHASES))
    sale_themes = sale_themes_with_quality(spark, cfg)
    first_day = visits.agg(F.min("visit_date")).first()[0]  # one value
    if first_day is None:
        raise ValueError("no visits: the re-ranker needs history (run generate_world or load visits first)")
    win = TR.windows(first_day, d, rr)
    log.info("re-ranker windows: train %s.., validation %s.., evaluation %s..%s", win.train_start,
             win.validation_start, win.eval_start, win.end)
    ctx = TR.context(spark, visits, purchases, sales, sale_themes, win, rc)
    try:
        als, als_grid, known = TR.tune_als(ctx, win, rr)  # on the validation days
        ctx.fit_als(als, known)
        rc = rc.model_copy(update={"als_rank": als.rank, "als_reg_param": als.reg_param, "als_alpha": als.alpha})
        res.add(T.TRAINING_SET, io.write(TR.examples(ctx, win, rr), cfg, T.TRAINING_SET))
        ex = io.read(spark, cfg, T.TRAINING_SET)
        train, valid, held = (ex.where(F.col("split") == s).cache() for s in ("train", "validation", "eval"))
        eng = EngineFeatures.of(rc, rr.exclude_bought)  # the scoring settings, saved with the model
        fitted = M.fit(train, valid, eng, ENGINES, rr.reg_params, rr.elastic_net_params, rr.max_iter, rr.parallelism,
                       rr.tol)
        # the ablation keeps the meta-model's regularisation: only the features differ
        no_img = M.fit(train, valid, eng, NO_IMAGE, [fitted.reg_param], [fitted.elastic_net], rr.max_iter,
                       rr.parallelism, rr.tol)
        folder = model_folder(cfg)
        fitted.model.write().overwrite().save(join(folder, "model"))
        no_img.model.write().overwrite().save(join(folder, "ablation_no_image"))
        coef = fitted.coefficients()
        meta = {"model_version": rr.model_version, "features": fitted.features, "reg_param": fitted.reg_param,
                "elastic_net": fitted.elastic_net, "iterations": fitted.iterations, "converged": fitted.converged,
                "grid": fitted.grid, "coefficients": coef,
                "als": {"rank": als.rank, "reg_param": als.reg_param, "alpha": als.alpha,
                        "refit_days": rc.als_refit_days, "grid": als_grid},
                "windows": {k: str(v) for k, v in win.__dict__.items()}, "run_date": str(d)}
        write_bytes(join(folder, "model.json"), json.dumps(meta, indent=1).encode())

        # offline evaluation on the held-out days
        results: dict[str, dict[str, float]] = {}
        scored = M.probability(no_img, M.probability(fitted, held), "p_no_image")
        lists = TR.eval_lists(ctx, win, rr.exclude_bought)
        rank_scored = M.probability(no_img, M.probability(fitted, lists), "p_no_image").cache()
        arms = {e: (e, False) for e in ENGINES} | {"meta": ("probability", True),
                                                   "meta_no_image": ("p_no_image", True)}
        # one pass for every arm's and slice's ranking metrics (the formulas of Spark's
        # RankingEvaluator, which tests/test_rerank.py checks them against)
        slices = EV.sliced_arms(rank_scored, {arm: col for arm, (col, _) in arms.items()}, purchases, rr.top_n)
        for arm, (col, is_prob) in arms.items():
            results[arm] = EV.pointwise(scored, col, is_prob) | slices[arm].pop("all")
        rows = EV.evaluation_rows(results, slices)
        edf = EV.evaluation_frame(spark, rr.model_version, rows)
        # merge_schema: tables written before the slice column gain it
        res.add(T.RERANK_EVAL, io.write(edf, cfg, T.RERANK_EVAL, merge_schema=True,
                                        replace_where=f"model_version = '{rr.model_version}'"))
        out = join(cfg.reports_dir(), "rerank")
        write_bytes(join(out, "evaluation.json"), json.dumps({"model": meta, "results": results, "slices": slices},
                                                             indent=1).encode())
        write_bytes(join(out, "evaluation.png"), EV.chart([r for r in rows if r["slice"] == "all"]))
        nd, rv = f"ndcg_at_{rr.top_n}", f"revenue_at_{rr.top_n}"
        metrics = {f"coef_{k}": v for k, v in coef.items()} | {
            "reg_param": fitted.reg_param, "elastic_net": fitted.elastic_net, "iterations": fitted.iterations,
            "validation_auc": max(g["validation_auc"] for g in fitted.grid),
            "eval_auc": results["meta"]["auc"], f"eval_{nd}": results["meta"][nd]}
        res.add(T.MODEL_METRICS, record_metrics(spark, cfg, rr.model_version, "train_reranker", metrics,
                                                int(results["meta"]["n_lists"])))
        for df in (train, valid, held, rank_scored):
            df.unpersist()
    finally:
        ctx.release()
    runs.mark_current(cfg, "train_reranker", fp)
    m, p, ni = results["meta"], results["popularity"], results["meta_no_image"]
    res.notes.append(f"ALS rank {als.rank}, regParam {als.reg_param:g}, alpha {als.alpha:g}"
                     + (f" (chosen on the validation days from {len(als_grid)})" if als_grid else ""))
    conv = "" if fitted.converged else ", NOT converged: raise rerank.max_iter"
    res.notes.append(f"{rr.model_version}: regParam {fitted.reg_param:g}, elasticNet {fitted.elastic_net:g} "
                     f"({fitted.iterations} iterations{conv}); "
                     + ", ".join(f"{k} {v:+.2f}" for k, v in coef.items() if k != "intercept"))
    k = rr.top_n
    res.notes.append(f"held-out: AUC {m['auc']:.3f} (no image {ni['auc']:.3f}), nDCG@{k} {m[nd]:.3f} "
                     f"(popularity {p[nd]:.3f}, no image {ni[nd]:.3f}), revenue@{k} "
                     f"{m[rv]:.1f} (popularity {p[rv]:.1f}) over {int(m['n_lists'])} buyer-days")
    res.notes.append(f"evaluation: {join(out, 'evaluation.png')}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("train_reranker", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
