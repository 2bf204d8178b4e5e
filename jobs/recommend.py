"""recommend: each active user's 10 open sales with the highest purchase probability on the
run date (rank, probability, the engine that contributed most), and the run report."""
from __future__ import annotations

import logging
import sys

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from vistarank import io, report, runs
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.files import write_bytes
from vistarank.jobs.common import main_for
from vistarank.jobs.train_reranker import model_folder
from vistarank.rerank import recommend as R
from vistarank.runs import StageResult

log = logging.getLogger(__name__)

INPUTS = [T.CANDIDATES, T.RERANK_EVAL]
OUTPUTS = [T.RECOMMENDATIONS]


def _fp(spark: SparkSession, cfg: Config) -> dict:
    return runs.fingerprint(spark, cfg, INPUTS, rerank=cfg.rerank.model_dump())


def needed(spark: SparkSession, cfg: Config) -> bool:
    return not runs.is_current(spark, cfg, "recommend", OUTPUTS, _fp(spark, cfg))


def review_users(spark: SparkSession, cfg: Config, recs, n: int) -> list[dict]:
    """A seeded sample of users with their visited sales, CF-only, images-only and final top 5."""
    d = cfg.effective_run_date()
    users = [r["user_id"] for r in recs.select("user_id").distinct()
             .orderBy(F.xxhash64("user_id", F.lit(cfg.rerank.seed))).limit(n).collect()]
    cands = io.read(spark, cfg, T.CANDIDATES).where((F.col("run_date") == F.lit(d)) & F.col("user_id").isin(users))
    visits = io.read(spark, cfg, T.VISITS).where((F.col("visit_date") < F.lit(d)) & F.col("user_id").isin(users))

    def top(df, order, k=5):
        w = Window.partitionBy("user_id").orderBy(*order)
        return {u: [r["sale_id"] for r in rows] for u, rows in _group(
            df.withColumn("r", F.row_number().over(w)).where(F.col("r") <= k).orderBy("user_id", "r").collect())}

    visited = top(visits.groupBy("user_id", "sale_id").agg(F.max("visit_ts").alias("t")), [F.col("t").desc()])
    cf = top(cands.where(F.col("cf") > 0), [F.col("cf").desc(), "sale_id"])
    img = top(cands, [F.col("image").desc(), "sale_id"])
    final = top(recs.where(F.col("user_id").isin(users)), ["rank"])
    return [{"user_id": u, "visited": visited.get(u, []), "CF only": cf.get(u, []), "images only": img.get(u, []),
             "final mix": final.get(u, [])} for u in users]


def _group(rows):
    out = {}
    for r in rows:
        out.setdefault(r["user_id"], []).append(r)
    return out.items()


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("recommend")
    rr, d = cfg.rerank, cfg.effective_run_date()
    fp = _fp(spark, cfg)
    fitted = R.load(model_folder(cfg))
    cands = io.read(spark, cfg, T.CANDIDATES).where(F.col("run_date") == F.lit(d))
    if cands.limit(1).count() == 0:
        raise ValueError(f"no candidates for {d}: run build_candidates for that date first")
    recs = R.top_n(cands, fitted, rr.top_n, rr.model_version)
    res.add(T.RECOMMENDATIONS, io.write(recs, cfg, T.RECOMMENDATIONS,
                                        replace_where=f"run_date = '{d.isoformat()}'"))
    recs = io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d))

    # the side-by-side review and the run report
    users = review_users(spark, cfg, recs, rr.review_users)
    sales = sorted({s for u in users for k, v in u.items() if k != "user_id" for s in v})
    pics = R.sale_pictures(io.read(spark, cfg, T.IMAGE_SOURCES), io.read(spark, cfg, T.IMAGES), sales)
    review_png = join(cfg.reports_dir(), f"review_{d.isoformat()}.png")
    write_bytes(review_png, R.review_picture(users, pics))
    stats = recs.agg(F.countDistinct("user_id").alias("users"), F.count("*").alias("rows"),
                     F.avg("probability").alias("mean_probability")).first().asDict()
    engines = [r.asDict() for r in recs.groupBy("top_engine").count().orderBy(F.desc("count")).collect()]
    evaluation = [r.asDict() for r in io.read(spark, cfg, T.RERANK_EVAL)
                  .where((F.col("model_version") == rr.model_version)
                         & F.col("metric").isin("auc", "ndcg_at_10", "precision_at_10", "revenue_at_10"))
                  .groupBy("arm").pivot("metric").agg(F.first("value")).orderBy("arm").collect()]
    stage_rows = [r.asDict() for r in io.read(spark, cfg, T.STAGE_RUNS)
                  .withColumn("r", F.row_number().over(Window.partitionBy("stage").orderBy(F.desc("started_at"))))
                  .where("r = 1").select("stage", "status", "seconds", "started_at").orderBy("started_at").collect()]
    themes = ([r.asDict() for r in io.read(spark, cfg, T.THEMES).select("theme_id", "name", "share", "n_images")
               .orderBy("theme_id").limit(30).collect()] if io.exists(spark, cfg, T.THEMES) else [])
    sections = [
        ("Stages (last run of each)", report.table(stage_rows)),
        ("Recommendations", report.table([stats]) + report.table(engines)
         + f"<p>Review (visited, CF only, images only, final mix):</p><img src='review_{d.isoformat()}.png'>"),
        ("Re-ranker: held-out evaluation", report.table(evaluation) + "<img src='rerank/evaluation.png'>"),
        ("Themes", report.table(themes) + "<img src='themes/overview.png'>"),
    ]
    report_path = join(cfg.reports_dir(), f"report_{d.isoformat()}.html")
    write_bytes(report_path, report.page(f"vistarank run {d}", d, sections))
    runs.mark_current(cfg, "recommend", fp)
    res.notes.append(f"{stats['users']:,} users, {stats['rows']:,} recommendations; report: {report_path}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("recommend", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
