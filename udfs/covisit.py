"""Worker-side item-item co-visit similarities of many days at once (numpy and scipy).

A task gets the events of one block of users (every event of those users in the days'
history windows) and, for each asked day d, builds the (sale x user) matrix of decayed
weights A_d(i, u) = sum of w * 0.5 ** ((d - date) / half_life) over the user's events on
i in the ``history_days`` days before d. The cosine of two sales' user vectors, shrunk
by n / (n + shrinkage) (n = users who visited both), is then two sparse products: the
open sales' rows against every row, weights and ones.

- When one block holds every user (``final``), the similarities are complete in the task:
  it returns each open sale's ``k`` best neighbours, ties broken by neighbour id (rank 1 =
  most similar), the output of :func:`vistarank.recsys.similarity.sparse_top_k`.
- Otherwise it returns the block's partial sums: raw dot products and co-visitor counts
  per (day, open sale, sale), and each sale's squared norm per day (``query_id`` null);
  Spark adds the blocks up and ranks (:func:`vistarank.recsys.kernel.covisit_by_day`).

Days are integers (days after a reference date) in and out. Every event is read once per
day whose window holds it, inside the task: nothing is exploded per day in Spark.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from vistarank.udfs.topk import first_k_per_row

FINAL_SCHEMA = "t int, query_id string, neighbor_id string, similarity double, rank int"
PARTIAL_SCHEMA = "t int, query_id string, neighbor_id string, dot double, n long"


def _ones(m):
    b = m.tocsr(copy=True)
    b.data = np.ones_like(b.data)
    return b


def _on_pattern(n, dot) -> np.ndarray:
    """The values of the sparse product ``dot`` at the entries of ``n`` (the co-visitor
    counts, a product of the same operands' patterns), in n's order; 0 where a product of
    tiny weights underflowed (scipy drops exact zeros, so the patterns then differ)."""
    if np.array_equal(dot.indptr, n.indptr) and np.array_equal(dot.indices, n.indices):
        return dot.data  # the same pattern computed the same way: the entries line up
    n.sort_indices()
    dot = dot.tocsr()
    dot.sort_indices()
    width = np.int64(n.shape[1])
    key_n = np.repeat(np.arange(n.shape[0], dtype=np.int64), np.diff(n.indptr)) * width + n.indices
    key_d = np.repeat(np.arange(dot.shape[0], dtype=np.int64), np.diff(dot.indptr)) * width + dot.indices
    if not len(key_d):
        return np.zeros(len(key_n))
    pos = np.minimum(np.searchsorted(key_d, key_n), len(key_d) - 1)
    return np.where(key_d[pos] == key_n, dot.data[pos], 0.0)


def _top_k(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The k best (row, col, val) per row by value, ties broken by col (ids are sorted, so
    column order is id order); with each one's rank from 1. ``rows`` ascending."""
    starts = np.searchsorted(rows, np.unique(rows))
    ends = np.append(starts[1:], len(rows))
    keep = np.ones(len(rows), dtype=bool)
    for a, b in zip(starts, ends):  # only what can be in a row's top k: at least its k-th value
        if b - a > k:
            kth = -np.partition(-vals[a:b], k - 1)[k - 1]
            keep[a:b] = vals[a:b] >= kth
    return first_k_per_row(rows[keep], cols[keep], vals[keep], k)


def block_similarities(pdf: pd.DataFrame, open_by_day: dict[int, np.ndarray], *, k: int, shrinkage: float,
                       half_life_days: float, history_days: int, final: bool) -> pd.DataFrame:
    """One user block's events ``pdf`` (user_id, sale_id, t, w) against the open sales of
    each day ``open_by_day`` (t -> sale ids): see the module's docstring."""
    from scipy import sparse

    names = ["t", "query_id", "neighbor_id"] + (["similarity", "rank"] if final else ["dot", "n"])
    if pdf.empty:
        return pd.DataFrame({c: [] for c in names})
    sales, s_idx = np.unique(pdf["sale_id"].to_numpy(dtype=object), return_inverse=True)  # id order
    _, u_idx = np.unique(pdf["user_id"].to_numpy(dtype=object), return_inverse=True)
    t = pdf["t"].to_numpy(dtype=np.int64)
    w = pdf["w"].to_numpy(dtype=float)
    n_s, n_u = len(sales), int(u_idx.max()) + 1
    out = []
    for day in sorted(open_by_day):
        m = (t < day) & (t >= day - history_days)
        if not m.any():
            continue
        # decayed from the day before (not from the day): a factor common to every weight of
        # the day, which the cosine cancels, and the newest weights stay near 1 (no underflow
        # of the blocks' raw products where the half-life is short)
        vals = w[m] * np.power(0.5, (day - 1 - t[m]) / half_life_days)
        a = sparse.csr_matrix((vals, (s_idx[m], u_idx[m])), shape=(n_s, n_u))  # duplicates summed
        ids = np.asarray(open_by_day[day], dtype=object)
        at = np.searchsorted(sales, ids)
        at = np.unique(at[(at < n_s) & (sales[np.minimum(at, n_s - 1)] == ids)])
        q = a[at]
        if q.nnz == 0 and final:
            continue  # (partial: the block's norms still count for the other blocks' pairs)
        n = (_ones(q) @ _ones(a).T).tocsr()  # co-visitors per (open sale, sale)
        if final:
            norm = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel())
            unit = a.copy()  # rows scaled to unit length, the same structure as a
            unit.data = unit.data / np.where(norm > 0, norm, 1.0)[np.repeat(np.arange(n_s), np.diff(a.indptr))]
            dot = _on_pattern(n, unit[at] @ unit.T)
            rows, cols = np.repeat(np.arange(n.shape[0]), np.diff(n.indptr)), n.indices
            sim = dot * (n.data / (n.data + shrinkage)) if shrinkage > 0 else dot
            other = cols != at[rows]  # not the sale itself
            r, c, v, rank = _top_k(rows[other], cols[other], sim[other], k)
            out.append(pd.DataFrame({"t": day, "query_id": sales[at[r]], "neighbor_id": sales[c],
                                     "similarity": v, "rank": rank}))
        else:
            dot = _on_pattern(n, q @ a.T)
            rows, cols = np.repeat(np.arange(n.shape[0]), np.diff(n.indptr)), n.indices
            out.append(pd.DataFrame({"t": day, "query_id": sales[at[rows]], "neighbor_id": sales[cols],
                                     "dot": dot, "n": n.data.astype(np.int64)}))
            sq = np.asarray(a.multiply(a).sum(axis=1)).ravel()
            has = np.unique(s_idx[m])
            out.append(pd.DataFrame({"t": day, "query_id": None, "neighbor_id": sales[has], "dot": sq[has],
                                     "n": np.int64(0)}))
    if not out:
        return pd.DataFrame({c: [] for c in names})
    res = pd.concat(out, ignore_index=True)
    return res.astype({"t": "int32", **({"rank": "int32"} if final else {"n": "int64"})})


def similarities_fn(open_by_day: dict[int, np.ndarray], *, k: int, shrinkage: float, half_life_days: float,
                    history_days: int, final: bool):
    """applyInPandas over the events grouped by user block."""
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        return block_similarities(pdf, open_by_day, k=k, shrinkage=shrinkage, half_life_days=half_life_days,
                                  history_days=history_days, final=final)
    return fn
