"""Worker-side exact top-k by blocked matrix multiplication (numpy).

A task gets one block of query vectors and one block of candidate vectors (both
L2-normalised, packed as float32 bytes) and returns, for every query, its ``k`` most
similar candidates by cosine. Queries are multiplied in slices of ``slice_rows`` so a
task holds at most ``slice_rows x block`` similarities at once.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

TOPK_SCHEMA = "query_id string, neighbor_id string, similarity double"


def first_k_per_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Sparse (row, col, val) entries sorted by (row, -val, col) and cut at k per row, with
    each kept entry's rank in its row (from 1). Columns in id order make ties resolve by id."""
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    place = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = place < k
    return rows[keep], cols[keep], vals[keep], place[keep] + 1


def block_top_k(q_ids: np.ndarray, q: np.ndarray, c_ids: np.ndarray, c: np.ndarray, k: int,
                exclude_self: bool = True, slice_rows: int = 512) -> pd.DataFrame:
    """Top-k candidates per query (cosine of unit vectors); ties broken by candidate id."""
    out_q, out_c, out_s = [], [], []
    order_ids = np.argsort(c_ids, kind="stable")  # candidates in id order: ties resolve by id
    c, c_ids = c[order_ids], c_ids[order_ids]
    kk = min(k + (1 if exclude_self else 0), len(c_ids))
    if kk == 0:
        return pd.DataFrame({"query_id": [], "neighbor_id": [], "similarity": []})
    pos = {cid: i for i, cid in enumerate(c_ids)} if exclude_self else {}
    for start in range(0, len(q_ids), slice_rows):
        qs, ids = q[start:start + slice_rows], q_ids[start:start + slice_rows]
        sims = qs @ c.T
        if exclude_self:
            for r, qid in enumerate(ids):
                j = pos.get(qid)
                if j is not None:
                    sims[r, j] = -np.inf
        # Every candidate at least as similar as the row's k-th best (so a tie at the k-th place
        # keeps all its members: argpartition alone would keep an arbitrary one of them), then
        # sorted by (row, -sim, candidate position = id order) and cut at k per row.
        kth = -np.partition(-sims, kk - 1, axis=1)[:, kk - 1]
        rows, cols = np.nonzero(sims >= kth[:, None])
        rows, cols, vals, _ = first_k_per_row(rows, cols, sims[rows, cols], k)
        keep = np.isfinite(vals)  # the query itself (-inf) sorts last in its row
        out_q.append(ids[rows[keep]])
        out_c.append(c_ids[cols[keep]])
        out_s.append(vals[keep].astype(np.float64))
    return pd.DataFrame({"query_id": np.concatenate(out_q), "neighbor_id": np.concatenate(out_c),
                         "similarity": np.concatenate(out_s)})


def unpack_block(ids, blob: bytes, dim: int) -> tuple[np.ndarray, np.ndarray]:
    vec = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim)
    return np.asarray(ids, dtype=object), vec


def block_pairs_fn(k: int, dim: int, exclude_self: bool, slice_rows: int):
    """mapInPandas over (q_ids, q_blob, c_ids, c_blob) rows: one block pair per row."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            for row in pdf.itertuples(index=False):
                q_ids, q = unpack_block(row.q_ids, row.q_blob, dim)
                c_ids, c = unpack_block(row.c_ids, row.c_blob, dim)
                yield block_top_k(q_ids, q, c_ids, c, k, exclude_self, slice_rows)

    return run


def pack_blocks_fn(dim: int):
    """applyInPandas per block: (block, ids array, blob of float32 vectors)."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values("id")
        v = np.stack([np.asarray(x, np.float32) for x in pdf["vec"]]) if len(pdf) else np.zeros((0, dim), np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = np.where(norms > 0, v / np.where(norms > 0, norms, 1), 0).astype(np.float32)
        return pd.DataFrame({"block": [int(pdf["block"].iloc[0])], "ids": [pdf["id"].to_numpy()],
                             "blob": [np.ascontiguousarray(v).tobytes()]})

    return run
