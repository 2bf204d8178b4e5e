"""doctor: what the driver and every executor see (interpreter, where vistarank and pyspark
load from, sys.path, working directory), as JSON; with --forbid, fail if any of it lies
under a forbidden path (for example the source tree: executors must run what was shipped).

    ./spark-submit.sh --cluster doctor --forbid-on-executors "$PWD" --forbid "$PWD/.venv"

It runs one tiny task per executor core (``--tasks``) in a barrier stage, so that all start
at once and each executor reports; what it collects is one small row per task, never data.
``pipeline --doctor`` runs the same check first, in the pipeline's own submission.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

from vistarank.jobs.common import parser, start
from vistarank.udfs.probe import environment_report, forbidden_hits


def run_probe(spark, tasks: int) -> dict:
    """The driver's report and one report per task (with its partition and stage)."""
    from vistarank.udfs.probe import task_report

    sc = spark.sparkContext
    # a barrier stage: every task starts at once, one per free core, so each executor reports
    # (and the cluster is shown able to host barrier training of that many workers)
    rows = sc.parallelize(range(tasks), tasks).barrier().mapPartitions(task_report).collect()
    return {"master": sc.master, "app_id": sc.applicationId, "driver": environment_report(),
            "executors": [json.loads(r) for r in rows]}


def add_arguments(p) -> None:
    """The probe's options (the doctor's, and the pipeline's with ``--doctor``)."""
    p.add_argument("--tasks", type=int, default=0,
                   help="probe tasks to run (default: spark.default.parallelism, one per executor core)")
    p.add_argument("--forbid", action="append", default=[], metavar="PATH",
                   help="fail if the driver or an executor imports from, or runs in, this path (repeatable)")
    p.add_argument("--forbid-on-executors", action="append", default=[], metavar="PATH",
                   help="fail if an executor imports from, or runs in, this path (repeatable; the driver may)")


def check(spark, args) -> dict:
    """The probe's report with ``forbidden_hits``: the driver's and executors' paths under
    ``args.forbid`` (and the executors' under ``args.forbid_on_executors``)."""
    report = run_probe(spark, args.tasks or spark.sparkContext.defaultParallelism)
    hits = forbidden_hits(report["driver"], args.forbid)
    hits += [h for r in report["executors"] for h in forbidden_hits(r, args.forbid + args.forbid_on_executors)]
    report["forbidden_hits"] = hits
    if hits:
        print(f"error: {len(hits)} forbidden path(s) seen, first: {hits[0]}", file=sys.stderr)
    return report


def main(argv: Optional[list[str]] = None) -> int:
    p = parser("doctor", __doc__.splitlines()[0])
    add_arguments(p)
    args, cfg = start(p, argv)
    from vistarank.session import get_spark

    report = check(get_spark(cfg), args)
    print(json.dumps(report, indent=1, sort_keys=True))
    return 1 if report["forbidden_hits"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
