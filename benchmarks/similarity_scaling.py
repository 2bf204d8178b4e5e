"""Similarity joins: top-50 neighbours per sale by cosine of 30-theme vectors.

Arms, each in its own process (peak memory = summed RSS of the process tree, Spark's JVM
and Python workers included, sampled every 0.2 s), on local Spark with all cores:

  exact      vistarank.recsys.similarity.dense_top_k (blocked numpy products in mapInPandas)
  crossjoin  Spark SQL: crossJoin of all sales, cosine with higher-order functions, a
             row_number window (the plain way); stopped after --crossjoin-timeout seconds
  lsh        MLlib BucketedRandomProjectionLSH approxSimilarityJoin + window, with its
             recall@50 against the exact result

Vectors: sparse theme mixes like sale_themes (Dirichlet weights on 3-6 themes). Writes
benchmarks/results/similarity_scaling.json.

    python benchmarks/similarity_scaling.py                      # 10k, 50k, 200k sales
    python benchmarks/similarity_scaling.py --sales 10000 --arms exact lsh
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
K, DIM = 50, 30


def make_vectors(n: int, path: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = np.zeros((n, DIM), np.float32)
    for i in range(n):
        idx = rng.choice(DIM, rng.integers(3, 7), replace=False)
        x[i, idx] = rng.dirichlet(np.ones(len(idx)) * 0.7)
    offsets = pa.array(np.arange(0, n * DIM + 1, DIM, dtype=np.int32))
    pq.write_table(pa.table({"id": pa.array([f"S{i:07d}" for i in range(n)]),
                             "vec": pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))}), path)


def arm(name: str, n: int, data: str, out: str) -> None:
    """Run one arm in this process; writes the neighbours to ``out`` (Parquet)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from vistarank.config import load_config
    from vistarank.recsys import similarity as S
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={os.path.dirname(out)}/lh", "spark.show_progress=false",
                                "spark.master=local[*]", "spark.driver_memory=8g", "spark.shuffle_partitions=16"])
    spark = get_spark(cfg)
    df = spark.read.parquet(data)
    t0 = time.perf_counter()
    if name == "exact":
        res = S.dense_top_k(df, df, K, dim=DIM, n_queries=n, n_candidates=n)
    elif name == "lsh":
        res = S.lsh_top_k(df, df, K, dim=DIM)
    else:
        norm = F.sqrt(F.aggregate(F.transform("vec", lambda x: x * x), F.lit(0.0), lambda a, b: a + b))
        u = df.select("id", F.transform("vec", lambda x: x / norm).alias("v"))
        pairs = (u.alias("a").crossJoin(u.alias("b")).where(F.col("a.id") != F.col("b.id"))
                 .select(F.col("a.id").alias("query_id"), F.col("b.id").alias("neighbor_id"),
                         F.aggregate(F.zip_with("a.v", "b.v", lambda x, y: x * y), F.lit(0.0),
                                     lambda s, v: s + v).alias("similarity")))
        w = Window.partitionBy("query_id").orderBy(F.col("similarity").desc(), F.col("neighbor_id"))
        res = pairs.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= K)
    res.write.mode("overwrite").parquet(out)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def run_arm(name: str, n: int, data: str, out: str, timeout: float) -> dict:
    import psutil

    proc = subprocess.Popen([sys.executable, __file__, "--arm", name, "--n", str(n), "--data", data, "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    p = psutil.Process(proc.pid)
    peak, t0 = 0, time.perf_counter()
    while proc.poll() is None:
        try:
            rss = sum(c.memory_info().rss for c in [p] + p.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        if time.perf_counter() - t0 > timeout:
            for c in p.children(recursive=True):
                c.kill()
            proc.kill()
            proc.wait()
            return {"arm": name, "timed_out": True, "seconds": None, "limit_s": timeout, "peak_mib": peak / 2**20}
        time.sleep(0.2)
    line = [x for x in proc.stdout.read().splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not line:
        return {"arm": name, "failed": True, "returncode": proc.returncode, "peak_mib": peak / 2**20}
    return {"arm": name, "timed_out": False, "seconds": json.loads(line[-1])["seconds"], "peak_mib": peak / 2**20}


def recall(exact: str, other: str) -> float:
    import pandas as pd

    a = pd.read_parquet(exact, columns=["query_id", "neighbor_id"])
    b = pd.read_parquet(other, columns=["query_id", "neighbor_id"])
    hit = a.merge(b, on=["query_id", "neighbor_id"]).shape[0]
    return hit / max(len(a), 1)


def same(exact: str, other: str) -> bool:
    import pandas as pd

    cols = ["query_id", "neighbor_id", "rank"]
    a = pd.read_parquet(exact, columns=cols).sort_values(cols).reset_index(drop=True)
    b = pd.read_parquet(other, columns=cols).sort_values(cols).reset_index(drop=True)
    return bool(a.shape == b.shape and (a.astype(str) == b.astype(str)).mean().mean() > 0.999)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sales", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--arms", nargs="+", default=["exact", "crossjoin", "lsh"])
    ap.add_argument("--crossjoin-timeout", type=float, default=600)
    ap.add_argument("--crossjoin-max", type=int, default=50_000, help="skip crossJoin above this many sales")
    ap.add_argument("--arm-timeout", type=float, default=1200, help="limit for the exact and LSH arms")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "similarity_scaling.json"))
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        out = args.out
        return arm(args.arm, args.n, args.data, out)

    work = tempfile.mkdtemp(prefix="sim_bench_")
    results = []
    crossjoin_timed_out_at = None
    for n in args.sales:
        data = os.path.join(work, f"v_{n}.parquet")
        make_vectors(n, data)
        row = {"sales": n, "dim": DIM, "k": K}
        for name in args.arms:
            if name == "crossjoin" and n > args.crossjoin_max:
                row[name] = {"arm": name, "skipped": f"more than --crossjoin-max={args.crossjoin_max} sales"}
                continue
            if name == "crossjoin" and crossjoin_timed_out_at:
                # n^2 pairs: (n / n0)^2 times the work that already ran past the limit
                row[name] = {"arm": name, "timed_out": True, "seconds": None, "limit_s": args.crossjoin_timeout,
                             "skipped": f"timed out at {crossjoin_timed_out_at} sales, "
                                        f"{(n / crossjoin_timed_out_at) ** 2:.0f}x fewer pairs"}
                continue
            out = os.path.join(work, f"{name}_{n}.parquet")
            limit = args.crossjoin_timeout if name == "crossjoin" else args.arm_timeout
            row[name] = run_arm(name, n, data, out, limit)
            if name == "crossjoin" and row[name].get("timed_out"):
                crossjoin_timed_out_at = n
            if name != "exact" and "exact" in row and row[name].get("seconds") is not None:
                row[name]["recall_at_50"] = recall(os.path.join(work, f"exact_{n}.parquet"), out)
                if name == "crossjoin":
                    row[name]["identical_to_exact"] = same(os.path.join(work, f"exact_{n}.parquet"), out)
        ex, cj = row.get("exact", {}), row.get("crossjoin", {})
        if ex.get("seconds") and cj.get("arm"):
            cj_s = cj.get("seconds") or cj.get("limit_s")
            if cj_s:
                row["speedup_vs_crossjoin"] = {"value": cj_s / ex["seconds"], "lower_bound": bool(cj.get("timed_out"))}
        print(json.dumps(row), flush=True)
        results.append(row)
    _results.write("similarity_scaling", results, args.out, goal="exact, and at least 10x faster than crossJoin at 50k")


if __name__ == "__main__":
    main()
