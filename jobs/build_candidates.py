"""build_candidates: sale neighbours (themes, content, co-visits) and, for a seeded sample of the
active users (``recsys.candidates_sample``), every engine's score of every sale open on the run
date (monitoring; the recommendations themselves are scored without writing pairs); one Delta
partition per run date, partitions older than ``recsys.candidates_retention_days`` deleted."""
from __future__ import annotations

import logging
import sys

from pyspark.sql import SparkSession

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config
from vistarank.jobs.common import main_for, sale_themes_with_quality
from vistarank.recsys import candidates as C
from vistarank import runs
from vistarank.runs import StageResult, record_metrics

log = logging.getLogger(__name__)


INPUTS = [T.SALES, T.VISITS, T.PURCHASES, T.SALE_THEMES, T.SALE_GALLERY]
OUTPUTS = [T.SALE_NEIGHBORS, T.CANDIDATES]


def needed(spark: SparkSession, cfg: Config) -> bool:
    """False when the run date's partition was written from these very inputs and settings."""
    return not runs.is_current(spark, cfg, "build_candidates", OUTPUTS,
                               runs.fingerprint(spark, cfg, INPUTS, recsys=cfg.recsys.model_dump()))


def run(spark: SparkSession, cfg: Config) -> StageResult:
    res = StageResult("build_candidates")
    d = cfg.effective_run_date()
    fp = runs.fingerprint(spark, cfg, INPUTS, recsys=cfg.recsys.model_dump())
    sale_themes = sale_themes_with_quality(spark, cfg)
    if sale_themes is None:
        log.warning("no sale_themes table (run fit_themes first): the image engine scores 0")
    inp = C.Inputs(io.read(spark, cfg, T.SALES), io.read(spark, cfg, T.VISITS), io.read(spark, cfg, T.PURCHASES),
                   sale_themes)
    built = C.build(spark, inp, cfg.recsys, d)
    try:
        where = f"run_date = '{d.isoformat()}'"  # a rerun of a date replaces exactly that date
        res.add(T.SALE_NEIGHBORS, io.write(built.neighbors, cfg, T.SALE_NEIGHBORS, replace_where=where))
        if built.candidates is not None:
            # merge_schema: a table written before the als column gains it
            res.add(T.CANDIDATES, io.write(built.candidates, cfg, T.CANDIDATES, replace_where=where,
                                           merge_schema=True))
            keep = cfg.recsys.candidates_retention_days
            if keep > 0:
                io.delete_where(spark, cfg, T.CANDIDATES, f"run_date < date_sub(DATE'{d.isoformat()}', {keep})")
    finally:
        built.release()
    runs.mark_current(cfg, "build_candidates", fp)
    s = built.stats
    res.add(T.MODEL_METRICS, record_metrics(spark, cfg, f"candidates@{d.isoformat()}", "build_candidates",
                                            {k: float(v) for k, v in s.items()}, int(s["open_sales"])))
    if s["open_sales"] == 0:
        log.warning("no sale is open on %s: nothing to recommend that day", d)
    res.notes.append(f"run date {d}: {s['active_users']:,} active users x {s['open_sales']:,} open sales; "
                     f"CF covers {100 * s['cf_coverage_open']:.0f}% of open sales and "
                     f"{100 * s['cf_coverage_new']:.0f}% of the {s['new_sales']} opened that day")
    return res


def main(argv: list[str] | None = None) -> int:
    return main_for("build_candidates", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
