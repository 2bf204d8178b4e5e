"""The run report: one HTML page a person can open, with the pictures and tables of the
stages (themes, the re-ranker's evaluation, the recommendations and their review)."""
from __future__ import annotations

import datetime as dt
import html

RESULT_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
h2{margin-top:1.6em}.note{color:#666}"""


def table(rows: list[dict], columns: list[str] | None = None, digits: int = 3) -> str:
    if not rows:
        return "<p class='note'>(nothing)</p>"
    cols = columns or list(rows[0])

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, run_date: dt.date, sections: list[tuple[str, str]]) -> bytes:
    """``sections``: (heading, HTML body) pairs."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{RESULT_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>run date {run_date}; written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


def run_report(spark, cfg, d: dt.date, recs) -> tuple[str, dict]:
    """The run report ``reports/report_<run date>.html``: the stages' last runs, the
    recommendations (counts, contributing engines, the review picture), the re-ranker's
    held-out evaluation (all lists and by slice), the themes. Returns its path and the
    recommendations' summary."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import join
    from vistarank.files import write_bytes

    rr = cfg.rerank
    k = rr.top_n
    stats = recs.agg(F.countDistinct("user_id").alias("users"), F.count("*").alias("rows"),
                     F.avg("probability").alias("mean_probability")).first().asDict()
    engines = [r.asDict() for r in recs.groupBy("top_engine").count().orderBy(F.desc("count")).collect()]
    ev_rows = io.read(spark, cfg, T.RERANK_EVAL).where(F.col("model_version") == rr.model_version)
    has_slice = "slice" in ev_rows.columns
    all_lists = (F.col("slice").isNull() | (F.col("slice") == "all")) if has_slice else F.lit(True)
    evaluation = [r.asDict() for r in ev_rows.where(all_lists & F.col("metric").isin(
        "auc", f"ndcg_at_{k}", f"precision_at_{k}", f"revenue_at_{k}"))
                  .groupBy("arm").pivot("metric").agg(F.first("value")).orderBy("arm").collect()]
    by_slice = ([r.asDict() for r in ev_rows.where(~all_lists & (F.col("metric") == f"ndcg_at_{k}"))
                 .groupBy("slice").pivot("arm").agg(F.first("value")).orderBy("slice").collect()]
                if has_slice else [])
    stage_rows = [r.asDict() for r in io.read(spark, cfg, T.STAGE_RUNS)
                  .withColumn("r", F.row_number().over(Window.partitionBy("stage").orderBy(F.desc("started_at"))))
                  .where("r = 1").select("stage", "status", "seconds", "started_at").orderBy("started_at").collect()]
    themes = ([r.asDict() for r in io.read(spark, cfg, T.THEMES).select("theme_id", "name", "share", "n_images")
               .orderBy("theme_id").limit(30).collect()] if io.exists(spark, cfg, T.THEMES) else [])
    sections = [
        ("Stages (last run of each)", table(stage_rows)),
        ("Recommendations", table([stats]) + table(engines)
         + f"<p>Review (visited, CF only, images only, final mix):</p><img src='review_{d.isoformat()}.png'>"),
        ("Re-ranker: held-out evaluation", table(evaluation) + "<img src='rerank/evaluation.png'>"
         + f"<p>nDCG@{k} by slice (the bought sale's age in days; the buyer's history, in distinct sales):</p>"
         + table(by_slice)),
        ("Themes", table(themes) + "<img src='themes/overview.png'>"),
    ]
    path = join(cfg.reports_dir(), f"report_{d.isoformat()}.html")
    write_bytes(path, page(f"vistarank run {d}", d, sections))
    return path, stats
