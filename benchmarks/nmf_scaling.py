"""NMF scaling: our distributed fit against scikit-learn on the same matrix.

For each size (rows x 365 tags, each row the top-5 of a mix of 30 planted themes plus
noise, like Places365 top-5 labels), both fits run on the same CSR matrix:

  sklearn  sklearn.decomposition.NMF(30, init='nndsvda', solver='cd', tol=1e-4), one process
  ours     vistarank.themes.nmf.fit on local Spark (all cores), then the NNLS transform
           of every row in the pandas UDF, written to Parquet

and we report the reconstruction error ratio ||X - WH||_F (ours / sklearn; goal <= 1.01),
the wall-time ratio of the fits, and transform throughput in rows/s. Writes
benchmarks/results/nmf_scaling.json.

    python benchmarks/nmf_scaling.py                        # 10k, 100k, 1M rows
    python benchmarks/nmf_scaling.py --rows 10000 100000
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
N_TAGS, K, TOP = 365, 30, 5


def make_matrix(n: int, seed: int = 0) -> sp.csr_matrix:
    """Top-5 of (planted mixture + noise), row-normalised like probabilities."""
    rng = np.random.default_rng(seed)
    h = np.zeros((K, N_TAGS))
    for j in range(K):
        h[j, rng.choice(N_TAGS, 12, replace=False)] = rng.dirichlet(np.ones(12))
    indptr, idx, val = [0], [], []
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        w = rng.gamma(0.3, 1.0, (m, K)) * (rng.random((m, K)) < 0.15)
        w[np.arange(m), rng.integers(0, K, m)] += 1.0
        x = w @ h + rng.random((m, N_TAGS)) * 0.01
        top = np.argpartition(-x, TOP, axis=1)[:, :TOP]
        v = np.take_along_axis(x, top, axis=1)
        v = v / x.sum(axis=1, keepdims=True)
        idx.append(top.ravel())
        val.append(v.ravel())
    idx, val = np.concatenate(idx), np.concatenate(val)
    indptr = np.arange(0, n * TOP + 1, TOP)
    m = sp.csr_matrix((val, idx, indptr), shape=(n, N_TAGS))
    m.sort_indices()
    return m


def to_parquet(m: sp.csr_matrix, path: str) -> None:
    n = m.shape[0]
    offsets = pa.array(m.indptr.astype(np.int32))
    table = pa.table({
        "image_id": pa.array([f"i{i:08d}" for i in range(n)]),
        "idx": pa.ListArray.from_arrays(offsets, pa.array(m.indices.astype(np.int32))),
        "val": pa.ListArray.from_arrays(offsets, pa.array(m.data.astype(np.float32))),
    })
    pq.write_table(table, path, row_group_size=50_000)


def run_sklearn(m: sp.csr_matrix, max_iter: int) -> dict:
    from sklearn.decomposition import NMF

    t0 = time.perf_counter()
    model = NMF(K, init="nndsvda", solver="cd", tol=1e-4, max_iter=max_iter, random_state=0).fit(m)
    return {"seconds": time.perf_counter() - t0, "error": float(model.reconstruction_err_),
            "iterations": int(model.n_iter_)}


def run_ours(spark, path: str, m: sp.csr_matrix, out: str, tol: float) -> dict:
    from vistarank.themes import nmf
    from vistarank.udfs import themes as kernels

    x = spark.read.parquet(path)
    tags = [f"tag{i}" for i in range(N_TAGS)]
    t0 = time.perf_counter()
    model = nmf.fit(x, tags, nmf.NMFParams(n_themes=K, tol=tol, max_iter=100))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nmf.transform(x, model).write.mode("overwrite").parquet(out)
    transform_s = time.perf_counter() - t0
    # the error of the final (W, H), computed exactly on a sample of rows as a check
    rows = np.random.default_rng(1).choice(m.shape[0], min(m.shape[0], 20000), replace=False)
    w = kernels.solve_w(m[rows], model.h_fit)
    sample_err = float(np.linalg.norm((m[rows] - w @ model.h_fit)) / np.sqrt(len(rows) / m.shape[0]))
    return {"seconds": fit_s, "error": model.reconstruction_error(), "passes": len(model.losses),
            "converged": model.converged, "transform_seconds": transform_s,
            "transform_rows_per_s": m.shape[0] / transform_s, "error_from_sample": sample_err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--tol", type=float, default=1e-5, help="our stopping tolerance")
    ap.add_argument("--sklearn-max-iter", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "nmf_scaling.json"))
    args = ap.parse_args()

    from vistarank.config import load_config
    from vistarank.session import get_spark

    work = tempfile.mkdtemp(prefix="nmf_bench_")
    cfg = load_config("local", [f"lakehouse.root={work}/lakehouse", "spark.show_progress=false",
                                "spark.master=local[*]", "spark.driver_memory=8g"])
    spark = get_spark(cfg)
    results = []
    for n in args.rows:
        m = make_matrix(n)
        path = os.path.join(work, f"x_{n}.parquet")
        to_parquet(m, path)
        sk = run_sklearn(m, args.sklearn_max_iter)
        ours = run_ours(spark, path, m, os.path.join(work, f"w_{n}.parquet"), args.tol)
        row = {"rows": n, "tags": N_TAGS, "themes": K, "nnz_per_row": TOP, "sklearn": sk, "ours": ours,
               "error_ratio": ours["error"] / sk["error"], "time_ratio": ours["seconds"] / sk["seconds"]}
        print(json.dumps(row), flush=True)
        results.append(row)
    _results.write("nmf_scaling", results, args.out, spark_master="local[*]", goal="error_ratio <= 1.01")


if __name__ == "__main__":
    main()
