"""The one place a SparkSession is obtained.

:func:`get_spark` returns the session that already exists (Databricks, a notebook,
a test fixture, or one spark-submit started), or builds the embedded default:
local master, Delta extensions and catalog, Arrow on, Python worker reuse on, few
shuffle partitions, warehouse and checkpoints under the lakehouse. Jobs never set
the master: under spark-submit (``PYSPARK_GATEWAY_PORT`` is set) the master and the
jars come from the command line.
"""
from __future__ import annotations

import logging
import os
import sys

from pyspark import TaskContext
from pyspark.sql import SparkSession

from vistarank.config import Config, is_uri, join
from vistarank.jars import delta_package, local_jars

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def ensure_driver(what: str = "this function") -> None:
    """Refuse to run driver-only code inside a Spark task."""
    if TaskContext.get() is not None:
        raise RuntimeError(f"{what} must run on the driver, not inside a Spark task")


def show_progress(cfg: Config) -> bool:
    """Spark's console progress bar only on a terminal: in a log file it is a stream of
    ``\\r[Stage ...]`` lines that buries the stages' own summaries."""
    return bool(cfg.spark.show_progress) and sys.stderr.isatty()


def embedded_conf(cfg: Config) -> dict[str, str]:
    """The Spark settings of the embedded local lakehouse."""
    root = cfg.lakehouse.root
    local_root = root if is_uri(root) else os.path.abspath(root)
    conf = {
        **DELTA_CONF,
        "spark.app.name": cfg.spark.app_name,
        "spark.driver.memory": cfg.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.default.parallelism": str(max(2, os.cpu_count() or 2)),
        "spark.sql.warehouse.dir": join(local_root, "_warehouse"),
        "spark.checkpoint.dir": join(local_root, "_checkpoints"),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.spark.arrow_batch_size),
        "spark.python.worker.reuse": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": str(show_progress(cfg)).lower(),
        "spark.ui.enabled": "false",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.databricks.delta.properties.defaults.appendOnly": "false",
        "spark.driver.extraJavaOptions": "-Dderby.system.home=" + join(local_root, "_derby"),
    }
    jars = local_jars(cfg.spark.jars_dir)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    else:
        log.warning("no Delta jars in %s: resolving %s from Maven (run `make setup` once to cache them)",
                    cfg.spark.jars_dir, delta_package())
        conf["spark.jars.packages"] = delta_package()
        conf["spark.jars.ivy"] = os.path.abspath(cfg.spark.ivy_dir)
    conf.update(cfg.spark.extra_conf)
    return conf


def get_spark(cfg: Config) -> SparkSession:
    """Return the active session, or build the embedded local one from ``cfg``."""
    ensure_driver("get_spark")
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Started by spark-submit: master, jars and resources come from its command line.
        for key, value in DELTA_CONF.items():
            builder = builder.config(key, value)
        if not show_progress(cfg):
            builder = builder.config("spark.ui.showConsoleProgress", "false")
        spark = builder.appName(cfg.spark.app_name).getOrCreate()
    else:
        # Local workers run this interpreter (the venv), not whatever python3 is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(cfg.spark.master)
        for key, value in embedded_conf(cfg).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    return spark
