"""Stage durations and rows written by the last run of each stage in a lakehouse, as JSON.

    make demo && .venv/bin/python benchmarks/pipeline_times.py --lakehouse ./lakehouse

Reads the stage_runs table (one row per stage run); writes
benchmarks/results/pipeline_times.json. This is where the README's demo timings come from.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import _results

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--output", default=os.path.join(HERE, "results", "pipeline_times.json"))
    args = p.parse_args()
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T
    from vistarank.config import load_config
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={args.lakehouse}", "spark.show_progress=false"])
    spark = get_spark(cfg)
    runs = io.read(spark, cfg, T.STAGE_RUNS).where("status = 'ok'")
    last = (runs.withColumn("_n", F.row_number().over(Window.partitionBy("stage").orderBy(F.desc("started_at"))))
            .where("_n = 1").orderBy("started_at").collect())  # one row per stage
    stages = [{"stage": r.stage, "started_at": str(r.started_at), "seconds": round(r.seconds, 1),
               "rows_written": dict(r.outputs)} for r in last]
    out = {"lakehouse": os.path.abspath(args.lakehouse), "date": time.strftime("%Y-%m-%d"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "world_size": cfg.world.size, "stages": stages,
           "total_seconds": round(sum(s["seconds"] for s in stages), 1)}
    _results.dump({"benchmark": "pipeline_times", **out}, args.output)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
