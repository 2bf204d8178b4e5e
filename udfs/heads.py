"""Applying the trained heads to every image's embedding, in the workers.

The mapInPandas function captures only paths and class names; each Python worker loads
the two Keras heads once (module cache) and predicts whole Arrow batches.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from vistarank.training.heads import mean_score

_CACHE: dict[str, object] = {}

APPLY_SCHEMA = ("image_id string, area string, area_probability float, area_probabilities array<float>, "
                "distribution array<float>, score float")


def _model(path: str):
    if path not in _CACHE:
        import keras

        _CACHE[path] = keras.models.load_model(path, compile=False, safe_mode=True)
    return _CACHE[path]


HEAD_COLUMNS = ["area", "area_probability", "area_probabilities", "distribution", "score"]


def quality_matrix(values, mean) -> np.ndarray:
    """Rows of quality statistics (``image_labels.quality``) as a matrix; an image without
    them (labelled with ``label.quality_size`` 0, or before the column existed) gets the
    aesthetics head's training mean, so it is scored as an average-quality photo."""
    mean = np.asarray(mean, np.float32)
    out = np.tile(mean, (len(values), 1))
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple, np.ndarray)):
            if len(v) != len(mean):
                raise ValueError(f"an image has {len(v)} quality statistics, the aesthetics head reads {len(mean)}: "
                                 "image_labels.quality and the registered heads come from different vistarank "
                                 "versions; retrain the heads (train_head)")
            out[i] = np.asarray(v, np.float32)
    return out


def apply_heads(area, aes, x: np.ndarray, classes: list[str], quality=None, quality_mean=None,
                batch: int = 1024, score_cap=None) -> dict:
    """The area and aesthetics heads on embeddings ``x``: the columns of HEAD_COLUMNS. With
    ``quality_mean`` (the manifest's, when the aesthetics head reads quality statistics) the
    aesthetics head gets [embedding, quality] (:func:`quality_matrix` of ``quality``). The
    score is the distribution's mean, capped at ``score_cap`` (the manifest's) when set."""
    pa = area.predict(x, batch_size=batch, verbose=0)
    xa = x
    if quality_mean is not None:
        xa = np.concatenate([x, quality_matrix(quality if quality is not None else [None] * len(x), quality_mean)],
                            axis=1)
    pd_ = aes.predict(xa, batch_size=batch, verbose=0)
    top = pa.argmax(axis=1)
    return {"area": np.asarray(classes, dtype=object)[top],
            "area_probability": pa[np.arange(len(top)), top].astype(np.float32),
            "area_probabilities": list(pa.astype(np.float32)), "distribution": list(pd_.astype(np.float32)),
            "score": capped(mean_score(pd_), score_cap)}


def capped(score: np.ndarray, score_cap) -> np.ndarray:
    """Aesthetic scores capped at ``score_cap`` (None: unchanged), float32."""
    return (score if score_cap is None else np.minimum(score, np.float32(score_cap))).astype(np.float32)


def load_heads(manifest_json: str):
    """(area model, aesthetics model, classes, quality mean or None, score cap or None) of a
    heads manifest (the models loaded once per worker)."""
    import json

    m = json.loads(manifest_json)
    return _model(m["area"]), _model(m["aesthetics"]), m["classes"], m.get("quality_mean"), m.get("score_cap")


def apply_fn(area_path: str, aesthetic_path: str, classes: list[str], quality_mean=None, batch: int = 1024,
             score_cap=None):
    """mapInPandas over (image_id, embedding[, quality]): the heads' columns (APPLY_SCHEMA)."""
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        area, aes = _model(area_path), _model(aesthetic_path)
        for pdf in batches:
            if pdf.empty:
                continue
            x = np.stack([np.asarray(v, np.float32) for v in pdf["embedding"]])
            q = list(pdf["quality"]) if "quality" in pdf.columns else None
            yield pd.DataFrame({"image_id": pdf["image_id"].to_numpy(),
                                **apply_heads(area, aes, x, classes, q, quality_mean, batch, score_cap)})

    return run


PREDICT_SCHEMA = "image_id string, probabilities array<float>"


def predict_images_fn(model_path: str, size: int, preprocessing: str, batch: int = 64):
    """mapInPandas over (image_id, content): a fine-tuned image model's outputs, images
    decoded by the scoring job's decode path (undecodable ones are dropped)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from vistarank.udfs.scoring import decode_for_model
        from vistarank.vision.models import preprocess

        model = _model(model_path)
        for pdf in batches:
            dec = [decode_for_model(b, size) for b in pdf["content"]]
            ok = [i for i, d in enumerate(dec) if d is not None]
            if not ok:
                continue
            x = preprocess(np.stack([dec[i] for i in ok]), preprocessing)
            p = model.predict(x, batch_size=batch, verbose=0).astype(np.float32)
            yield pd.DataFrame({"image_id": pdf["image_id"].to_numpy()[ok], "probabilities": list(p)})

    return run


GALLERY_SCHEMA = "sale_id string, rank int, image_id string, area string, score float"


def gallery_order(pdf: pd.DataFrame, diverse: int) -> pd.DataFrame:
    """One sale's images: best-looking first, but the first ``diverse`` cover different areas.

    Greedy: at each of the first ``diverse`` positions take the best-scored image whose area
    is not shown yet (if every remaining image repeats an area, the best of them); then the
    rest by score. Ties (a capped score ties the photos the head cannot order) by the
    distribution's uncapped mean when ``pdf`` has it (column ``mean``), then by image_id.
    """
    keys = ["score", "mean", "image_id"] if "mean" in pdf.columns else ["score", "image_id"]
    rest = pdf.sort_values(keys, ascending=[False] * (len(keys) - 1) + [True]).to_dict("records")
    out, seen = [], set()
    while rest:
        pick = 0
        if len(out) < diverse:
            pick = next((i for i, r in enumerate(rest) if r["area"] not in seen), 0)
        r = rest.pop(pick)
        seen.add(r["area"])
        out.append(r)
    return pd.DataFrame({"sale_id": [r["sale_id"] for r in out], "rank": np.arange(1, len(out) + 1, dtype=np.int32),
                         "image_id": [r["image_id"] for r in out], "area": [r["area"] for r in out],
                         "score": np.asarray([r["score"] for r in out], dtype=np.float32)})
