"""Worker-side NMF: sparse rows in, theme weights (W rows) and Gram statistics out.

The fitted theme matrix ``H`` (themes x tags) is small; every worker gets it and solves
its own rows of ``W`` by non-negative least squares (coordinate descent, HALS):

    min_{w >= 0}  0.5 * ||x - w H||^2 + l1 * sum(w) + 0.5 * l2 * ||w||^2

vectorised over a whole Arrow batch (one numpy pass per theme and sweep). The same
solver serves the distributed fit (each pass returns the small Gram products ``W^T W``
and ``W^T X`` that update ``H``) and the final transform. The penalties follow
scikit-learn's NMF convention, so a fit here and ``sklearn.decomposition.NMF`` with
the same ``alpha_W``, ``alpha_H`` and ``l1_ratio`` minimise the same objective.
"""
from __future__ import annotations

import io
from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

# Arrow batches are solved in blocks of this many rows (bounds worker memory: rows x themes floats)
BLOCK_ROWS = 8192


def csr_from_arrays(idx: pd.Series, val: pd.Series, n_tags: int) -> sp.csr_matrix:
    """A CSR matrix from per-row arrays of tag indices and values (rows may be empty)."""
    lengths = np.fromiter((0 if a is None else len(a) for a in idx), dtype=np.int64, count=len(idx))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    if indptr[-1]:
        cols = np.concatenate([np.asarray(a, dtype=np.int64) for a in idx if a is not None and len(a)])
        data = np.concatenate([np.asarray(a, dtype=np.float64) for a in val if a is not None and len(a)])
    else:
        cols, data = np.zeros(0, np.int64), np.zeros(0, np.float64)
    m = sp.csr_matrix((data, cols, indptr), shape=(len(idx), n_tags))
    m.sum_duplicates()
    return m


def solve_w(x: sp.csr_matrix, h: np.ndarray, l1: float = 0.0, l2: float = 0.0,
            max_sweeps: int = 50, tol: float = 1e-6) -> np.ndarray:
    """Non-negative least squares for every row of ``x`` against ``h`` (HALS sweeps).

    Starts from the clipped unconstrained solution and sweeps the themes until the
    largest change of a weight is below ``tol`` times the largest weight.
    """
    n, k = x.shape[0], h.shape[0]
    hht = h @ h.T
    xht = np.asarray(x @ h.T)
    if n == 0:
        return np.zeros((0, k))
    w = np.maximum(xht @ np.linalg.pinv(hht + l2 * np.eye(k)), 0.0)
    diag = np.diag(hht) + l2
    for _ in range(max_sweeps):
        delta = 0.0
        for j in range(k):
            if diag[j] <= 0:  # a theme with no tags: its weight stays 0
                w[:, j] = 0.0
                continue
            new = np.maximum(w[:, j] + (xht[:, j] - w @ hht[:, j] - l2 * w[:, j] - l1) / diag[j], 0.0)
            delta = max(delta, float(np.abs(new - w[:, j]).max(initial=0.0)))
            w[:, j] = new
        if delta <= tol * max(float(w.max(initial=0.0)), 1e-12):
            break
    return w


def update_h(a: np.ndarray, b: np.ndarray, h: np.ndarray, l1: float = 0.0, l2: float = 0.0,
             max_sweeps: int = 50, tol: float = 1e-7) -> np.ndarray:
    """HALS update of ``H`` from the Gram products ``A = W^T W`` and ``B = W^T X``."""
    h = h.copy()
    k = h.shape[0]
    for _ in range(max_sweeps):
        delta = 0.0
        for j in range(k):
            d = a[j, j] + l2
            if d <= 0:  # a theme no row uses this pass: keep it as it was
                continue
            new = np.maximum(h[j] + (b[j] - a[j] @ h - l2 * h[j] - l1) / d, 0.0)
            delta = max(delta, float(np.abs(new - h[j]).max(initial=0.0)))
            h[j] = new
        if delta <= tol * max(float(h.max(initial=0.0)), 1e-12):
            break
    return h


def pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k] for k in z.files}


def add_stats(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: a[k] + b[k] for k in a}


STATS_SCHEMA = "blob binary"


def stats_fn(h_blob: bytes, n_tags: int, l1: float, l2: float, max_sweeps: int):
    """A mapInPandas function: for the rows of a partition, solve W against H and
    return one row with the partition's ``W^T W``, ``W^T X`` and penalty terms."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        h = unpack(h_blob)["h"]
        k = h.shape[0]
        acc = {"wtw": np.zeros((k, k)), "wtx": np.zeros((k, n_tags)), "xx": np.zeros(1),
               "w_l1": np.zeros(1), "w_l2": np.zeros(1), "rows": np.zeros(1)}
        seen = False
        for pdf in batches:
            for start in range(0, len(pdf), BLOCK_ROWS):
                part = pdf.iloc[start:start + BLOCK_ROWS]
                x = csr_from_arrays(part["idx"], part["val"], n_tags)
                w = solve_w(x, h, l1, l2, max_sweeps)
                acc["wtw"] += w.T @ w
                acc["wtx"] += np.asarray((x.T @ w).T)
                acc["xx"] += float(x.multiply(x).sum())
                acc["w_l1"] += w.sum()
                acc["w_l2"] += float((w * w).sum())
                acc["rows"] += len(part)
                seen = True
        if seen:
            yield pd.DataFrame({"blob": [pack(acc)]})

    return run


TRANSFORM_SCHEMA = "image_id string, weights array<float>"


def transform_fn(h_blob: bytes, n_tags: int, l1: float, l2: float, max_sweeps: int):
    """A mapInPandas function: theme weights of every row against the fitted H
    (the NNLS solution, rescaled by the theme scales stored with H)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = unpack(h_blob)
        h, scale = model["h"], model["scale"]
        for pdf in batches:
            for start in range(0, len(pdf), BLOCK_ROWS):
                part = pdf.iloc[start:start + BLOCK_ROWS]
                x = csr_from_arrays(part["idx"], part["val"], n_tags)
                w = (solve_w(x, h, l1, l2, max_sweeps) * scale).astype(np.float32)
                yield pd.DataFrame({"image_id": part["image_id"].to_numpy(), "weights": list(w)})

    return run
