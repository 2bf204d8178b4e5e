"""Training throughput of the data-parallel head training: samples/s with 1 and 2 workers.

Synthetic features (``--rows`` x ``--dim``, 9 classes) written as a Parquet snapshot, the
area head (two dense layers, softmax), trained by vistarank.training.launcher on Spark
barrier tasks (local Spark, all cores). samples/s = rows x epochs / the training loop's
wall time of the whole launch (Spark barrier stage, child-process start, TensorFlow
import and model save included), per backend: ``tf`` (MultiWorkerMirroredStrategy) and
``horovod`` (workers in .venv-hvd: ``make horovod-env``; reported as not available when
that environment is missing). Writes benchmarks/results/train_throughput.json.

    python benchmarks/train_throughput.py [--backends tf horovod]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import _results  # benchmarks/_results.py

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backends", nargs="+", default=["tf", "horovod"], choices=["tf", "horovod"])
    ap.add_argument("--horovod-python", default=os.path.join(os.path.dirname(HERE), ".venv-hvd", "bin", "python"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "train_throughput.json"))
    args = ap.parse_args()

    from vistarank.config import load_config
    from vistarank.session import get_spark
    from vistarank.training.launcher import launch, write_snapshot

    work = tempfile.mkdtemp(prefix="train_bench_")
    cfg = load_config("local", [f"lakehouse.root={work}/lh", "spark.show_progress=false", "spark.master=local[*]"])
    spark = get_spark(cfg)
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 2, (9, args.dim))
    y = rng.integers(0, 9, args.rows)
    x = centers[y] + rng.normal(0, 1, (args.rows, args.dim))
    df = spark.createDataFrame([([float(v) for v in xi], int(yi), 1.0) for xi, yi in zip(x, y)],
                               "x array<float>, y long, weight float")
    data = write_snapshot(df, os.path.join(work, "data"), 8)
    results = []
    for backend in args.backends:
        if backend == "horovod" and not os.path.exists(args.horovod_python):
            results.append({"backend": "horovod", "available": False,
                            "why": f"no horovod environment at {args.horovod_python} (make horovod-env)"})
            continue
        for n in args.workers:
            spec = {"backend": backend, "data": data, "kind": "softmax", "n_out": 9, "hidden": [256, 128],
                    "dropout": 0.5, "seed": 0, "learning_rate": 0.003, "batch_size": args.batch_size,
                    "epochs": args.epochs, "timeout_s": 1800,
                    "artifact": os.path.join(work, f"head_{backend}_{n}.keras")}
            if backend == "horovod":
                spec["python"] = args.horovod_python
            t0 = time.perf_counter()
            res = launch(spark, spec, n)
            seconds = time.perf_counter() - t0
            samples = res[0]["steps_per_epoch"] * args.batch_size * n * args.epochs
            row = {"backend": backend, "workers": n, "seconds": seconds, "samples": samples,
                   "samples_per_s": samples / seconds, "final_loss": res[0]["losses"][-1],
                   "identical_weights": len({round(r["digest"], 6) for r in res}) == 1}
            print(row, flush=True)
            results.append(row)
    _results.write("train_throughput", results, args.out, spark_master="local[*]", rows=args.rows, dim=args.dim,
                   epochs=args.epochs, batch_size_per_worker=args.batch_size)


if __name__ == "__main__":
    main()
