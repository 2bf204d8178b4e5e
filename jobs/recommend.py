"""recommend: each active user's ``rerank.top_n`` open sales with the highest purchase probability
on the run date (rank, probability, the engine that contributed most), scored by the kernel
(the open sales broadcast, users partitioned, only the top N written), and the run report.
The scoring settings (half-life, history window, price sigma, ...) and the exclusion of
bought sales are the saved model's (its EngineFeatures stage), not the config's."""
from __future__ import annotations

import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from vistarank import io, report, runs
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.files import write_bytes
from vistarank.jobs.common import main_for, sale_themes_with_quality
from vistarank.jobs.train_reranker import model_folder
from vistarank.recsys import candidates as C
from vistarank.rerank import recommend as R
from vistarank.runs import StageResult

log = logging.getLogger(__name__)

INPUTS = [T.SALES, T.VISITS, T.PURCHASES, T.SALE_THEMES, T.SALE_GALLERY, T.RERANK_EVAL]
OUTPUTS = [T.RECOMMENDATIONS]


def _fp(spark: SparkSession, cfg: Config) -> dict:
    return runs.fingerprint(spark, cfg, INPUTS, rerank=cfg.rerank.model_dump(), recsys=cfg.recsys.model_dump())


def needed(spark: SparkSession, cfg: Config) -> bool:
    return not runs.is_current(spark, cfg, "recommend", OUTPUTS, _fp(spark, cfg))


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("recommend")
    rr, d = cfg.rerank, cfg.effective_run_date()
    fp = _fp(spark, cfg)
    fitted = R.load(model_folder(cfg))
    sale_themes = sale_themes_with_quality(spark, cfg)
    inp = C.Inputs(io.read(spark, cfg, T.SALES), io.read(spark, cfg, T.VISITS), io.read(spark, cfg, T.PURCHASES),
                   sale_themes)
    srv = C.serving(spark, inp, fitted.engine.settings(cfg.recsys), d)  # scored as the model was trained
    try:
        if srv.blocks.n_open() == 0:
            log.warning("no sale is open on %s: no recommendations that day", d)
        recs = R.top_n(srv, fitted, rr.top_n, rr.model_version)
        res.add(T.RECOMMENDATIONS, io.write(recs, cfg, T.RECOMMENDATIONS,
                                            replace_where=f"run_date = '{d.isoformat()}'"))
        recs = io.read(spark, cfg, T.RECOMMENDATIONS).where(F.col("run_date") == F.lit(d))
        # the side-by-side review
        users = R.review_users(srv, recs, rr.review_users, rr.seed)
    finally:
        srv.release()
    sales = sorted({s for u in users for k, v in u.items() if k != "user_id" for s in v})
    pics = R.sale_pictures(io.read(spark, cfg, T.IMAGE_SOURCES), io.read(spark, cfg, T.IMAGES), sales)
    review_png = join(cfg.reports_dir(), f"review_{d.isoformat()}.png")
    write_bytes(review_png, R.review_picture(users, pics))
    report_path, stats = report.run_report(spark, cfg, d, recs)
    runs.mark_current(cfg, "recommend", fp)
    res.notes.append(f"{stats['users']:,} users, {stats['rows']:,} recommendations; report: {report_path}")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("recommend", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
