"""Running a stage: timing, what it wrote, a stage_runs row, a readable summary."""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage wrote: rows per table (as Delta's commit metrics report them)."""
    stage: str
    outputs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, table: T.Table, rows: int) -> None:
        self.outputs[table.name] = self.outputs.get(table.name, 0) + int(rows)


def run_stage(name: str, fn, spark: SparkSession, cfg: Config) -> StageResult:
    """Run ``fn(spark, cfg) -> StageResult``, log it and record it in stage_runs."""
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    t0 = time.perf_counter()
    log.info("stage %s: start (run date %s, env %s)", name, cfg.effective_run_date(), cfg.env)
    status = "ok"
    result = StageResult(name)
    try:
        result = fn(spark, cfg)
        return result
    except BaseException:
        status = "failed"
        raise
    finally:
        result.seconds = time.perf_counter() - t0
        row = [(name, cfg.effective_run_date(), started, result.seconds, status,
                {k: int(v) for k, v in result.outputs.items()}, cfg.env)]
        try:
            io.write(spark.createDataFrame(row, T.STAGE_RUNS.schema), cfg, T.STAGE_RUNS, mode="append")
        except Exception as exc:  # the stage's own error matters more than its bookkeeping
            log.warning("could not record stage_runs for %s: %s", name, exc)
        written = ", ".join(f"{k}={v:,}" for k, v in result.outputs.items()) or "nothing"
        log.info("stage %s: %s in %.1fs; wrote %s", name, status, result.seconds, written)


def record_metrics(spark: SparkSession, cfg: Config, model_version: str, stage: str,
                   metrics: dict[str, float], n: int) -> int:
    """Write a model's metrics to model_metrics, replacing that model's earlier rows for
    this stage (a rerun or refit never duplicates a metric). Returns rows written."""
    from pyspark.sql import functions as F

    rows = [(model_version, stage, k, float(v), int(n)) for k, v in metrics.items()]
    df = (spark.createDataFrame(rows, "model_version string, stage string, metric string, value double, n long")
          .withColumn("recorded_at", F.current_timestamp()))
    mv = model_version.replace("'", "''")
    return io.write(df, cfg, T.MODEL_METRICS, replace_where=f"model_version = '{mv}' AND stage = '{stage}'")


# ----------------------------------------------------------------------------- up-to-date checks
def _state_path(cfg: Config, stage: str) -> str:
    from vistarank.config import join

    return join(cfg.lakehouse.root, "_state", f"{stage}.json")


def fingerprint(spark: SparkSession, cfg: Config, inputs: list[T.Table], **extra) -> dict:
    """What a stage's outputs depend on: each input table's state (id@version), the run
    date and any extra settings (JSON-serialisable)."""
    import json

    fp = {"tables": {t.name: io.snapshot_id(spark, cfg, t) for t in inputs if io.exists(spark, cfg, t)},
          "run_date": cfg.effective_run_date().isoformat(), **extra}
    return json.loads(json.dumps(fp, default=str))


def is_current(spark: SparkSession, cfg: Config, stage: str, outputs: list[T.Table], fp: dict) -> bool:
    """True when every output exists and the stage last succeeded on these very inputs."""
    import json

    from vistarank.files import read_text

    if not all(io.exists(spark, cfg, t) for t in outputs):
        return False
    last = read_text(_state_path(cfg, stage))
    return last is not None and json.loads(last) == fp


def mark_current(cfg: Config, stage: str, fp: dict) -> None:
    import json

    from vistarank.files import write_bytes

    write_bytes(_state_path(cfg, stage), json.dumps(fp, indent=1).encode())
