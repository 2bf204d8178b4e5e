"""Distributed non-negative matrix factorisation of the image x tag matrix.

``X`` (images x tags, sparse) ~ ``W`` (images x themes) ``H`` (themes x tags).

- ``H`` is small (30 x a few hundred): it lives on the driver and goes to every worker
  with each pass. ``W``'s rows never leave their partition: each pass solves them by
  non-negative least squares against the current ``H`` (:mod:`vistarank.udfs.themes`)
  and returns only the Gram products ``W^T W`` (themes x themes) and ``W^T X`` (themes
  x tags), summed with ``treeReduce``. The driver then updates ``H`` by HALS. This is
  alternating non-negative least squares; each pass is one Spark job over the cached
  matrix, and no pass grows with the number of images on the driver.
- ``H`` starts from scikit-learn's NMF (NNDSVDa, the seeds' reference) fitted on a
  seeded sample of at most ``themes.init_sample_rows`` rows, so the distributed passes
  only refine it.
- The loop stops when the objective improves by less than ``themes.tol`` times
  0.5 ||X||^2 (the objective at W = 0) or after ``themes.max_iter`` passes. Penalties follow scikit-learn's convention
  (``alpha_W``, ``alpha_H``, ``l1_ratio``; L1 gives sparse themes).
- Themes are then ordered by their share of the total weight (largest first) and each
  row of ``H`` is normalised to sum 1, so theme ids are stable for the same data and seed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vistarank.udfs import themes as kernels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NMFParams:
    n_themes: int = 30
    alpha_w: float = 0.0
    alpha_h: float = 0.0
    l1_ratio: float = 1.0
    max_iter: int = 100
    tol: float = 1e-4
    seed: int = 0
    init_sample_rows: int = 20000
    init_max_iter: int = 200
    solver_sweeps: int = 50


@dataclass
class NMFModel:
    """A fitted H: ``h`` (themes x tags, rows sum to 1) and the per-theme ``scale`` that
    maps the solver's weights to weights against the normalised rows."""
    h_fit: np.ndarray
    scale: np.ndarray
    tags: list[str]
    params: NMFParams
    n_rows: int = 0
    losses: list[float] = field(default_factory=list)
    converged: bool = False
    seconds: float = 0.0
    rec: float = 0.0  # 0.5 * ||X - W H||^2 at the last pass

    @property
    def h(self) -> np.ndarray:
        return self.h_fit / np.where(self.scale > 0, self.scale, 1.0)[:, None]

    @property
    def k(self) -> int:
        return self.h_fit.shape[0]

    def penalties(self, n_rows: int) -> tuple[float, float, float, float]:
        """(l1_W, l2_W, l1_H, l2_H) as scikit-learn scales them for this matrix."""
        return penalties(self.params, n_rows, len(self.tags))

    def blob(self) -> bytes:
        return kernels.pack({"h": self.h_fit, "scale": self.scale})

    def reconstruction_error(self) -> float:
        """||X - W H||_F at the last pass (what sklearn calls reconstruction_err_)."""
        return float(np.sqrt(max(2 * self.rec, 0.0)))


def penalties(p: NMFParams, n_rows: int, n_tags: int) -> tuple[float, float, float, float]:
    return (n_tags * p.alpha_w * p.l1_ratio, n_tags * p.alpha_w * (1 - p.l1_ratio),
            n_rows * p.alpha_h * p.l1_ratio, n_rows * p.alpha_h * (1 - p.l1_ratio))


def sample_rows(x: DataFrame, n_rows: int, want: int, seed: int) -> DataFrame:
    """About ``want`` rows chosen by a seeded hash of image_id: the same rows whatever
    the partitioning."""
    if n_rows <= want:
        return x
    frac = want / n_rows
    return x.where((F.abs(F.xxhash64("image_id", F.lit(seed))) % 1_000_000) < int(frac * 1_000_000))


def init_h(x: DataFrame, n_rows: int, n_tags: int, k: int, p: NMFParams) -> np.ndarray:
    """scikit-learn NMF on a seeded sample of rows (bounded by ``init_sample_rows``)."""
    from sklearn.decomposition import NMF

    pdf = sample_rows(x, n_rows, p.init_sample_rows, p.seed).toPandas().sort_values("image_id")
    m = kernels.csr_from_arrays(pdf["idx"], pdf["val"], n_tags)
    k = min(k, m.shape[0])
    model = NMF(n_components=k, init="nndsvda", random_state=p.seed, max_iter=p.init_max_iter,
                alpha_W=p.alpha_w, alpha_H=p.alpha_h, l1_ratio=p.l1_ratio, tol=1e-5)
    import warnings

    with warnings.catch_warnings():  # a sample that needs more iterations is still a fine start
        warnings.simplefilter("ignore")
        model.fit(m)
    h = model.components_.astype(np.float64)
    dead = h.sum(axis=1) <= 0  # a theme the sample left empty restarts from a seeded random row
    if dead.any():
        rng = np.random.default_rng(p.seed)
        h[dead] = rng.random((int(dead.sum()), n_tags)) * max(float(h.mean()), 1e-3)
    return h


def gram_pass(x: DataFrame, h: np.ndarray, n_tags: int, l1: float, l2: float, sweeps: int) -> dict:
    blob = kernels.pack({"h": h})
    fn = kernels.stats_fn(blob, n_tags, l1, l2, sweeps)
    return (x.select("idx", "val").mapInPandas(fn, kernels.STATS_SCHEMA).rdd
            .map(lambda r: kernels.unpack(r["blob"])).treeReduce(kernels.add_stats, depth=2))


def objective(s: dict, h: np.ndarray, pen: tuple[float, float, float, float]) -> tuple[float, float]:
    """(total objective, 0.5 * ||X - W H||^2) from the Gram products of one pass."""
    l1w, l2w, l1h, l2h = pen
    rec = 0.5 * (float(s["xx"][0]) - 2 * float((s["wtx"] * h).sum()) + float((s["wtw"] * (h @ h.T)).sum()))
    rec = max(rec, 0.0)
    total = (rec + l1w * float(s["w_l1"][0]) + 0.5 * l2w * float(s["w_l2"][0])
             + l1h * float(h.sum()) + 0.5 * l2h * float((h * h).sum()))
    return total, rec


def fit(x: DataFrame, tags: list[str], p: NMFParams, init: np.ndarray | None = None) -> NMFModel:
    """Fit H on the rows of ``x`` (columns image_id, idx array<int>, val array<float>).
    ``init``: a previous H (themes x these tags) to start from (a warm start: no
    scikit-learn start, and the themes keep their order, so their ids stay; a theme the
    new data empties restarts as :func:`init_h` restarts one)."""
    t0 = time.perf_counter()
    n_tags = len(tags)
    x = x.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_rows = x.count()
        if n_rows == 0:
            raise ValueError("no labelled images to fit themes on: run label_images first")
        k = min(p.n_themes, n_tags, n_rows)
        if k < p.n_themes:
            log.warning("themes.n_themes=%d reduced to %d (%d tags, %d images)", p.n_themes, k, n_tags, n_rows)
        if init is not None:
            if init.shape[1] != n_tags:
                raise ValueError(f"warm start: the previous themes have {init.shape[1]} tags, the data {n_tags}")
            h = np.array(init, dtype=np.float64)
            k = h.shape[0]
            dead = h.sum(axis=1) <= 0
            if dead.any():
                h[dead] = np.random.default_rng(p.seed).random((int(dead.sum()), n_tags)) * max(float(h.mean()), 1e-3)
        else:
            h = init_h(x, n_rows, n_tags, k, p)
        pen = penalties(p, n_rows, n_tags)
        losses: list[float] = []
        converged = False
        rec = 0.0
        for it in range(p.max_iter):
            s = gram_pass(x, h, n_tags, pen[0], pen[1], p.solver_sweeps)
            total, rec = objective(s, h, pen)
            losses.append(total)
            # the improvement relative to 0.5 ||X||^2 (the objective at W = 0): scale-free, and
            # it still stops when the fit is near exact (an objective shrinking towards 0)
            scale0 = max(0.5 * float(s["xx"][0]), 1e-300)
            change = (losses[-2] - total) / scale0 if len(losses) > 1 else float("inf")
            log.info("NMF pass %d: objective %.6g, relative change %.2e", it + 1, total, change)
            if abs(change) < p.tol:
                converged = True
                break
            h = kernels.update_h(s["wtw"], s["wtx"], h, pen[2], pen[3])
        else:
            log.warning("NMF stopped after themes.max_iter=%d passes without reaching tol=%g", p.max_iter, p.tol)
        if init is None:
            # order themes by their share of the total weight: stable ids for the same data and seed
            mass = s["wtx"].sum(axis=1)  # sum over images and tags of w_ij * x_it ~ weight of theme j
            order = np.lexsort((np.arange(h.shape[0]), -np.round(mass, 9)))
            h = h[order]
        scale = h.sum(axis=1)
        model = NMFModel(h, scale, list(tags), p, n_rows, losses, converged, time.perf_counter() - t0, rec)
        log.info("NMF: %d themes from %d images x %d tags in %d passes (%.1fs), ||X-WH|| = %.4g",
                 k, n_rows, n_tags, len(losses), model.seconds, model.reconstruction_error())
        return model
    finally:
        x.unpersist()


def transform(x: DataFrame, model: NMFModel) -> DataFrame:
    """(image_id, weights array<float>) for every row of ``x``, against the fitted H."""
    l1w, l2w, _, _ = model.penalties(model.n_rows)
    fn = kernels.transform_fn(model.blob(), len(model.tags), l1w, l2w, model.params.solver_sweeps)
    return x.select("image_id", "idx", "val").mapInPandas(fn, kernels.TRANSFORM_SCHEMA)


def theme_name(tags: list[str], weights: np.ndarray, n: int = 3, min_relative: float = 0.1) -> str:
    """The top ``n`` tags of a theme, each in CamelCase, joined by '_': ``Ocean_Coast_Sandbar``.
    A tag under ``min_relative`` times the top tag's weight is left out of the name."""
    order = np.argsort(-weights, kind="stable")[:n]
    parts = []
    for i in order:
        if weights[i] <= 0 or weights[i] < min_relative * weights[order[0]]:
            break
        words = tags[i].replace("/", "_").replace("-", "_").replace(" ", "_").split("_")
        parts.append("".join(w[:1].upper() + w[1:] for w in words if w))
    return "_".join(parts) or "Empty"


def theme_names(model: NMFModel, n: int = 3) -> list[str]:
    """Unique names: a repeated name gets a suffix (``_2``) in theme-id order."""
    names, seen = [], {}
    for row in model.h:
        name = theme_name(model.tags, row, n)
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def match_themes(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, similarity): the permutation of ``new``'s themes that best matches ``old``'s
    (``new[order][i]`` is old theme i's successor; the assignment maximising the summed
    cosine of the rows, scipy's linear_sum_assignment) and each matched pair's cosine.
    With more new themes than old, the extra ones come last in their own order."""
    from scipy.optimize import linear_sum_assignment

    def unit(m):
        n = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(n > 0, n, 1.0)

    sim = unit(old) @ unit(new).T
    rows, cols = linear_sum_assignment(-sim)
    order = np.full(old.shape[0], -1)
    order[rows] = cols
    matched = order[order >= 0]
    rest = [j for j in range(new.shape[0]) if j not in set(matched)]
    full = np.concatenate([matched, np.array(rest, dtype=int)]).astype(int)
    return full, sim[rows, cols][np.argsort(rows)]
