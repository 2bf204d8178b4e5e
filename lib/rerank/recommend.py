"""Each active user's top open sales on the run date, and the pictures a person reviews.

The top N per user is a ``row_number`` window over the scored candidates (no per-user
Python); the contributing engine is the argmax of coefficient x standardised score.
"""
from __future__ import annotations

import io
import json
import logging

from PIL import Image, ImageDraw
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from vistarank.config import join
from vistarank.files import read_text
from vistarank.rerank import model as M
from vistarank.themes.pictures import THUMB, _font, thumbnail

log = logging.getLogger(__name__)


def load(folder: str) -> M.Fitted:
    """The saved re-ranker (MLlib persistence) and its metadata."""
    text = read_text(join(folder, "model.json"))
    if text is None:
        raise FileNotFoundError(f"no re-ranker in {folder}: run train_reranker first")
    meta = json.loads(text)
    return M.Fitted(PipelineModel.load(join(folder, "model")), meta["features"], meta["reg_param"],
                    meta["elastic_net"], meta.get("grid", []))


def top_n(cands: DataFrame, fitted: M.Fitted, n: int, model_version: str) -> DataFrame:
    """(run_date, user_id, rank, sale_id, probability, top_engine, model_version)."""
    scored = M.probability(fitted.model, cands).withColumn("top_engine", M.top_engine(fitted))
    w = Window.partitionBy("run_date", "user_id").orderBy(F.col("probability").desc(), F.col("sale_id"))
    return (scored.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
            .select("run_date", "user_id", "rank", "sale_id", "probability", "top_engine",
                    F.lit(model_version).alias("model_version")))


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
