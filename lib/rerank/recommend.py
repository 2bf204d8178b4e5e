"""Each active user's top open sales on the run date, and the pictures a person reviews.

The top N per user comes from the scoring kernel (:mod:`vistarank.recsys.kernel`): the
re-ranker applied to every open sale inside the user's task, only the top N leaving it;
the contributing engine is the argmax of coefficient x standardised score.
"""
from __future__ import annotations

import io
import json
import logging

from PIL import Image, ImageDraw
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vistarank.config import join
from vistarank.files import read_text
from vistarank.rerank import model as M
from vistarank.themes.pictures import THUMB, _font, thumbnail

log = logging.getLogger(__name__)


def load(folder: str) -> M.Fitted:
    """The saved re-ranker: one MLlib PipelineModel (:func:`vistarank.rerank.model.load`);
    model.json beside it adds the grid it was chosen from (metadata)."""
    text = read_text(join(folder, "model.json"))
    if text is None:
        raise FileNotFoundError(f"no re-ranker in {folder}: run train_reranker first")
    fitted = M.load(join(folder, "model"))
    fitted.grid = json.loads(text).get("grid", [])
    return fitted


def top_n(srv, fitted: M.Fitted, n: int, model_version: str) -> DataFrame:
    """(run_date, user_id, rank, sale_id, probability, top_engine, model_version): the kernel's
    ``top`` mode over the run date's active users (:class:`vistarank.recsys.candidates.Serving`,
    built with the model's settings: ``fitted.engine.settings``), the model's stages applied
    fused: the same numbers as ``fitted.model.transform``, only the top ``n`` leaving a task."""
    from vistarank.recsys import kernel as K

    eng = fitted.engine
    differ = eng.differences(srv.rc)
    if differ:
        raise ValueError(f"top_n: the serving state was built with other settings than the model's "
                         f"({differ}); build it with fitted.engine.settings(rc)")
    states = srv.states(srv.active_keys())
    top = K.score_states(srv.spark, states, srv.blocks, srv.rc.price_sigma, "top", K.Reranker.of(fitted), n,
                         eng.getOrDefault(eng.excludeBought))
    return top.select(F.col("as_of").alias("run_date"), "user_id", "rank", "sale_id", "probability", "top_engine",
                      F.lit(model_version).alias("model_version"))


def review_users(srv, recs: DataFrame, n: int, seed: int) -> list[dict]:
    """A seeded sample of users with their visited sales, CF-only, images-only and final top 5."""
    d = srv.run_date
    users = [r["user_id"] for r in recs.select("user_id").distinct()
             .orderBy(F.xxhash64("user_id", F.lit(seed))).limit(n).collect()]
    if not users:
        return []
    keys = srv.active_keys().where(F.col("user_id").isin(users))
    cands = srv.scores(keys)
    visits = srv.inp.visits.where((F.col("visit_date") < F.lit(d)) & F.col("user_id").isin(users))

    def top(df, order, k=5):
        w = Window.partitionBy("user_id").orderBy(*order)
        out: dict[str, list[str]] = {}
        for r in df.withColumn("r", F.row_number().over(w)).where(F.col("r") <= k).orderBy("user_id", "r").collect():
            out.setdefault(r["user_id"], []).append(r["sale_id"])
        return out

    visited = top(visits.groupBy("user_id", "sale_id").agg(F.max("visit_ts").alias("t")), [F.col("t").desc()])
    cf = top(cands.where(F.col("cf") > 0), [F.col("cf").desc(), "sale_id"])
    img = top(cands, [F.col("image").desc(), "sale_id"])
    final = top(recs.where(F.col("user_id").isin(users)), ["rank"])
    return [{"user_id": u, "visited": visited.get(u, []), "CF only": cf.get(u, []), "images only": img.get(u, []),
             "final mix": final.get(u, [])} for u in users]


def sale_pictures(sources: DataFrame, images: DataFrame, sale_ids: list[str]) -> dict[str, bytes]:
    """One picture per sale (its first file by URI) for a few sales."""
    w = Window.partitionBy("sale_id").orderBy("uri")
    first = (sources.where(F.col("sale_id").isin(sale_ids)).withColumn("r", F.row_number().over(w))
             .where(F.col("r") == 1).select("sale_id", "image_id"))
    return {r["sale_id"]: bytes(r["content"]) for r in
            first.join(images.select("image_id", "content"), "image_id").collect()}  # a few dozen rows


def review_picture(users: list[dict], pictures: dict[str, bytes], per_row: int = 5) -> bytes:
    """Per user: the sales they visited, the CF-only top 5, the images-only top 5 and the
    final mix, one row each (like the seeds' result slides)."""
    label_w, band, head = 170, THUMB + 8, 30
    rows = ["visited", "CF only", "images only", "final mix"]
    block = head + len(rows) * band + 12
    page = Image.new("RGB", (label_w + per_row * (THUMB + 6) + 10, 10 + len(users) * block), (250, 250, 248))
    draw = ImageDraw.Draw(page)
    for i, u in enumerate(users):
        y0 = 10 + i * block
        draw.text((8, y0), f"user {u['user_id']}", fill=(30, 30, 30), font=_font(16))
        for j, key in enumerate(rows):
            y = y0 + head + j * band
            draw.text((8, y + THUMB // 2 - 8), key, fill=(90, 90, 90), font=_font(13))
            for k, sale in enumerate(u[key][:per_row]):
                x = label_w + k * (THUMB + 6)
                if sale in pictures:
                    page.paste(thumbnail(pictures[sale]), (x, y))
                draw.text((x + 3, y + THUMB - 15), sale, fill=(255, 255, 255), font=_font(11))
    buf = io.BytesIO()
    page.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
