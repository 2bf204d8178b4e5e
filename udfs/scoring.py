"""The labelling pandas UDF: bytes in, top-k labels and an embedding out.

Built once per job by :func:`make_label_udf`, which captures only strings and
numbers (the resolved model spec as JSON, k, batch size). Inside the worker the
model comes from :mod:`vistarank.udfs.model_cache` (once per Python process); each
Arrow batch is decoded by a small thread pool (Pillow releases the GIL while
decoding, with JPEG draft-mode downscaling) that works ahead of the model, and the
model sees fixed-size batches (the last one padded) so its graph is traced once.
Each image's no-reference quality statistics (:mod:`vistarank.udfs.quality`) come in
beside its bytes, as ingest computed them once per image; the UDF passes them on, and
computes them (at ``quality_size``) only for an image ingested without them.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional, Tuple

import numpy as np
import pandas as pd
from pyspark.sql.functions import pandas_udf

from vistarank.udfs.heads import HEAD_COLUMNS, apply_heads
from vistarank.udfs.images import ImageRejected, decode_rgb, to_model_input

LABEL_UDF_SCHEMA = ("label_names array<string>, label_probs array<float>, embedding array<float>, "
                    "probabilities array<float>, quality array<float>, area string, area_probability float, "
                    "area_probabilities array<float>, distribution array<float>, score float, "
                    "failure string, failure_detail string")
_COLUMNS = ["label_names", "label_probs", "embedding", "probabilities", "quality", "area", "area_probability",
            "area_probabilities", "distribution", "score", "failure", "failure_detail"]
_DECODE_MAX_PIXELS = 1 << 31  # images were checked at ingest


def decode_with_quality(data: bytes, size: int, quality_size: int = 0, known=None
                        ) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[tuple[str, str]]]:
    """(model input, quality statistics or None, None), or (None, None, (reason, detail)) for
    an image that cannot be decoded. The statistics are ``known`` (the image's own, from
    ingest) when given; else, with ``quality_size`` > 0, they come from a second decode at
    that size (the model input stays exactly what the model was trained on)."""
    try:
        data = bytes(data)
        x = to_model_input(decode_rgb(data, max_pixels=_DECODE_MAX_PIXELS, draft_size=size).image, size)
        if known is not None:
            return x, np.asarray(known, dtype=np.float32), None
        q = None
        if quality_size:
            from vistarank.udfs.quality import quality_of_bytes

            q = quality_of_bytes(data, quality_size, _DECODE_MAX_PIXELS)
        return x, q, None
    except ImageRejected as exc:
        return None, None, (exc.reason, str(exc)[:500])
    except Exception as exc:  # a decoder crash on one file must not fail the whole batch
        return None, None, ("decode_error", f"{type(exc).__name__}: {exc}"[:500])


def decode_or_reason(data: bytes, size: int) -> tuple[Optional[np.ndarray], Optional[tuple[str, str]]]:
    """The model input, or None and (reason, detail) for an image that cannot be decoded."""
    x, _, why = decode_with_quality(data, size)
    return x, why


def decode_for_model(data: bytes, size: int) -> Optional[np.ndarray]:
    return decode_or_reason(data, size)[0]


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest per row, in descending order."""
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(probs, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def score_batches(contents: Iterator, model_json: str, k: int, batch_size: int, full: bool,
                  threads: int = 2, heads_json: Optional[str] = None,
                  precision: str = "float32", quality_size: int = 0) -> Iterator[pd.DataFrame]:
    """The UDF body, usable without Spark (the benchmark's no-Spark arm calls it too): an
    iterator of image bytes as a Series, or of (bytes, known quality statistics) Series pairs.
    ``quality`` out: the known statistics, else with ``quality_size`` > 0 computed, else null.
    With ``heads_json`` (a registered heads manifest) the area and aesthetics heads run on
    the embeddings (and the quality statistics, where the aesthetics head reads them) in the
    same pass; else their columns are null."""
    from vistarank.udfs.model_cache import get_scorer

    scorer = get_scorer(model_json, precision)
    heads = None
    if heads_json:
        from vistarank.udfs.heads import load_heads

        heads = load_heads(heads_json)
    size = scorer.rm.input_size
    labels = np.array(scorer.labels, dtype=object)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in contents:
            series, known = batch if isinstance(batch, tuple) else (batch, None)
            values = series.tolist()
            known = [None] * len(values) if known is None else known.tolist()
            chunks = [(values[i:i + batch_size], known[i:i + batch_size]) for i in range(0, len(values), batch_size)]
            futures = [pool.map(decode_with_quality, chunk, [size] * len(chunk), [quality_size] * len(chunk), kq)
                       for chunk, kq in chunks]
            out: list[dict] = []
            for results in futures:
                decoded, quality, reasons = (list(c) for c in zip(*results))
                ok = [i for i, a in enumerate(decoded) if a is not None]
                rows: list[dict] = [dict.fromkeys(_COLUMNS) for _ in decoded]
                for i, why in enumerate(reasons):
                    if why is not None:
                        rows[i]["failure"], rows[i]["failure_detail"] = why
                if ok:
                    x = np.zeros((batch_size, size, size, 3), np.float32)  # fixed shape: one trace
                    x[:len(ok)] = np.stack([decoded[i] for i in ok])
                    probs, emb = scorer.predict(x)
                    probs, emb = probs[:len(ok)], emb[:len(ok)]
                    idx, vals = top_k(probs, k)
                    h = None
                    if heads:
                        area, aes, classes, q_mean, cap = heads
                        h = apply_heads(area, aes, emb.astype(np.float32), classes, [quality[i] for i in ok],
                                        q_mean, score_cap=cap)
                    for j, i in enumerate(ok):
                        rows[i] = dict(rows[i], label_names=labels[idx[j]].tolist(), label_probs=vals[j].astype(np.float32),
                                       embedding=emb[j].astype(np.float32),
                                       probabilities=probs[j].astype(np.float32) if full else None,
                                       quality=quality[i])
                        if h:
                            rows[i].update({c: h[c][j] for c in HEAD_COLUMNS})
                out.extend(rows)
            yield pd.DataFrame(out, columns=_COLUMNS)


def make_label_udf(model_json: str, k: int, batch_size: int, full: bool, heads_json: Optional[str] = None,
                   threads: int = 2, precision: str = "float32", quality_size: int = 0):
    """An iterator pandas UDF over the ``content`` and ``quality`` columns (build once per job)."""

    @pandas_udf(LABEL_UDF_SCHEMA)
    def label_images(batches: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        yield from score_batches(batches, model_json, k, batch_size, full, threads, heads_json, precision,
                                 quality_size)

    # Nondeterministic so the optimizer never copies it: otherwise a filter on its output
    # (undecodable images) and the projection each evaluate it, scoring every image twice.
    return label_images.asNondeterministic()
