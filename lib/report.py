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
