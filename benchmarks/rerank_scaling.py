"""Re-ranking at scale: candidates to each user's top 10 (the recommend stage's transform).

Synthetic candidates (users x 200 open sales, six engine scores drawn in Spark, nothing
on the driver), a re-ranker fitted on a 20,000-row sample, then
``vistarank.rerank.recommend.top_n`` (assemble, scale, logistic regression, contributing
engine, row_number window) written to Parquet. Reports rows/s and the peak summed RSS of
this process tree (driver JVM and Python workers), sampled every 0.2 s. Writes
benchmarks/results/rerank_scaling.json.

    python benchmarks/rerank_scaling.py                 # 10k and 100k users x 200 sales
    python benchmarks/rerank_scaling.py --users 10000
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ["cf", "content", "image", "popularity", "recency", "price_fit"]


class PeakRSS:
    def __init__(self) -> None:
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                rss = sum(p.memory_info().rss for p in [self.proc] + self.proc.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    def __enter__(self):
        self.peak = 0
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()


def candidates(spark, users: int, sales: int):
    from pyspark.sql import functions as F

    df = spark.range(users * sales).select(
        F.lit("2026-10-30").cast("date").alias("run_date"),
        F.concat(F.lit("U"), (F.col("id") / sales).cast("long").cast("string")).alias("user_id"),
        F.concat(F.lit("S"), (F.col("id") % sales).cast("string")).alias("sale_id"),
        *[F.rand(seed=i).alias(e) for i, e in enumerate(ENGINES)])
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--sales", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "rerank_scaling.json"))
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from vistarank.config import load_config
    from vistarank.rerank import model as M
    from vistarank.rerank.recommend import top_n
    from vistarank.session import get_spark

    work = tempfile.mkdtemp(prefix="rerank_bench_")
    cfg = load_config("local", [f"lakehouse.root={work}/lh", "spark.show_progress=false", "spark.master=local[*]",
                                "spark.driver_memory=8g", "spark.shuffle_partitions=16"])
    spark = get_spark(cfg)
    sample = candidates(spark, 100, args.sales).withColumn(
        "label", (F.rand(seed=99) < 1 / (1 + F.exp(-(3 * F.col("cf") + 2 * F.col("image") - 3)))).cast("double"))
    train, valid = sample.randomSplit([0.8, 0.2], seed=1)
    fitted = M.fit(train, valid, ENGINES, [0.01], [0.0], 50)
    results = []
    for users in args.users:
        rows = users * args.sales
        out = os.path.join(work, f"recs_{users}.parquet")
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            top_n(candidates(spark, users, args.sales), fitted, 10, "bench:1").write.mode("overwrite").parquet(out)
            seconds = time.perf_counter() - t0
        n_out = spark.read.parquet(out).count()
        row = {"users": users, "open_sales": args.sales, "candidate_rows": rows, "seconds": seconds,
               "rows_per_s": rows / seconds, "recommendations": n_out, "peak_mib": mem.peak / 2**20}
        print(json.dumps(row), flush=True)
        results.append(row)
    _results.write("rerank_scaling", results, args.out, spark_master="local[*]")


if __name__ == "__main__":
    main()
