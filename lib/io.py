"""All Delta reads and writes go through here.

Tables live at ``<lakehouse.root>/<name>`` (path-based Delta, so the embedded
lakehouse needs no metastore); when ``lakehouse.schema_name`` is set they are also
registered in the catalog for analysts. Writes conform the DataFrame to the
table's contract first, and return the number of rows written as Delta's own
commit metrics report it (no extra count over the data).
"""
from __future__ import annotations

import logging
from typing import Optional

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from vistarank.config import Config, join
from vistarank.tables import Table

log = logging.getLogger(__name__)


class SchemaError(ValueError):
    """A DataFrame does not fit a table contract."""


def table_path(cfg: Config, table: Table) -> str:
    return join(cfg.lakehouse.root, table.name)


def exists(spark: SparkSession, cfg: Config, table: Table) -> bool:
    return DeltaTable.isDeltaTable(spark, table_path(cfg, table))


def read(spark: SparkSession, cfg: Config, table: Table, *, allow_truth: bool = False,
         version: Optional[int] = None) -> DataFrame:
    """Read a table (optionally at a Delta version). Truth tables need ``allow_truth``."""
    if table.truth and not allow_truth:
        raise PermissionError(f"{table.name} is hidden truth of the demo world: only evaluation may read it")
    path = table_path(cfg, table)
    if not DeltaTable.isDeltaTable(spark, path):
        raise FileNotFoundError(f"table {table.name} does not exist at {path}: run the stage that writes it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    log.info("read %s%s from %s", table.name, f" (version {version})" if version is not None else "", path)
    return reader.load(path)


def read_or_empty(spark: SparkSession, cfg: Config, table: Table) -> DataFrame:
    """The table, or an empty DataFrame with its schema when it does not exist yet."""
    if exists(spark, cfg, table):
        return read(spark, cfg, table, allow_truth=table.truth)
    return spark.createDataFrame([], table.schema)


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select the contract's columns in order, cast to its types; missing columns fail clearly."""
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{table.name}: missing columns {missing} (have {df.columns})")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in table.schema.fields])


def _last_commit_rows(spark: SparkSession, path: str) -> int:
    row = DeltaTable.forPath(spark, path).history(1).select("operation", "operationMetrics").first()
    m = row["operationMetrics"] or {}
    for key in ("numTargetRowsInserted", "numOutputRows"):
        if key in m:
            return int(m[key])
    return 0


def _rows_since(spark: SparkSession, cfg: Config, table: Table, before: int) -> int:
    """Rows the last commit wrote, if the table moved past version ``before``: a write or a
    MERGE that changes nothing may not commit at all, and then the last commit is an earlier one's."""
    return _last_commit_rows(spark, table_path(cfg, table)) if version(spark, cfg, table) > before else 0


def _register(spark: SparkSession, cfg: Config, table: Table, path: str) -> None:
    if cfg.lakehouse.schema_name:
        schema = cfg.lakehouse.schema_name
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {schema}.{table.name} USING DELTA LOCATION '{path}'")


def write(df: DataFrame, cfg: Config, table: Table, *, mode: str = "overwrite",
          replace_where: Optional[str] = None, merge_schema: bool = False) -> int:
    """Write ``df`` to ``table``: ``overwrite`` (whole table, or the rows matching
    ``replace_where``) or ``append``. ``merge_schema``: a column the contract gained since
    the table was written is added to it (older rows read it as null). Returns rows written."""
    if mode not in ("overwrite", "append"):
        raise ValueError(f"mode must be overwrite or append, not {mode!r}")
    path = table_path(cfg, table)
    spark = df.sparkSession
    existed = DeltaTable.isDeltaTable(spark, path)
    if replace_where and not existed:
        replace_where = None  # no table yet: replacing those rows is writing the table
    before = version(spark, cfg, table) if existed else -1
    writer = conform(df, table).write.format("delta").mode(mode)
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    elif mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    _register(spark, cfg, table, path)
    rows = _rows_since(spark, cfg, table, before)
    log.info("wrote %s: %d rows (%s%s)", table.name, rows, mode,
             f", {replace_where}" if replace_where else "")
    return rows


def insert_new(df: DataFrame, cfg: Config, table: Table) -> int:
    """Insert the rows whose key is not in the table yet (MERGE, insert-only).

    Idempotent: re-inserting the same rows changes nothing, so a rerun (or a
    killed run, rerun) never duplicates a row. Returns rows inserted.
    """
    path = table_path(cfg, table)
    spark = df.sparkSession
    data = conform(df, table)
    if not DeltaTable.isDeltaTable(spark, path):
        return write(data.dropDuplicates(list(table.keys)), cfg, table, mode="overwrite")
    before = version(spark, cfg, table)
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in table.keys)
    for p in table.partition_by:  # lets Delta prune partitions of the target
        if p not in table.keys and table.partition_follows_key:
            cond += f" AND t.`{p}` <=> s.`{p}`"
    (DeltaTable.forPath(spark, path).alias("t")
     .merge(data.dropDuplicates(list(table.keys)).alias("s"), cond)
     .whenNotMatchedInsertAll().execute())
    rows = _rows_since(spark, cfg, table, before)
    log.info("inserted into %s: %d new rows", table.name, rows)
    return rows


def migrate_partitioning(spark: SparkSession, cfg: Config, table: Table, derived: dict[str, Column],
                         then=None) -> bool:
    """Rewrite ``table`` once when its Delta partitioning differs from its contract (a lakehouse
    written by an earlier version), adding the ``derived`` columns it lacks, then applying
    ``then`` (DataFrame -> DataFrame) when given. Returns whether it migrated. The rewrite
    reads and writes the whole table: a one-time cost, logged."""
    path = table_path(cfg, table)
    if not DeltaTable.isDeltaTable(spark, path):
        return False
    have = list(DeltaTable.forPath(spark, path).detail().first()["partitionColumns"])
    if have == list(table.partition_by):
        return False
    log.warning("%s is partitioned by %s, the contract says %s: rewriting it once (reads and writes every row)",
                table.name, have or "nothing", list(table.partition_by))
    df = spark.read.format("delta").load(path)
    for name, col in derived.items():
        if name not in df.columns:
            df = df.withColumn(name, col)
    if then is not None:
        df = then(df)
    write(df, cfg, table, mode="overwrite")
    return True


def version(spark: SparkSession, cfg: Config, table: Table) -> int:
    return int(DeltaTable.forPath(spark, table_path(cfg, table)).history(1).first()["version"])


def snapshot_id(spark: SparkSession, cfg: Config, table: Table) -> str:
    """``<table id>@<version>``: names one state of a table, even across a drop and re-create
    (a re-created table gets a new id while its versions restart at 0)."""
    dt_ = DeltaTable.forPath(spark, table_path(cfg, table))
    return f"{dt_.detail().first()['id']}@{int(dt_.history(1).first()['version'])}"


def drop(spark: SparkSession, cfg: Config, table: Table) -> bool:
    """Delete a table's files (and its catalog entry). Returns whether it existed."""
    from vistarank.files import remove_tree

    path = table_path(cfg, table)
    if not DeltaTable.isDeltaTable(spark, path):
        return False
    if cfg.lakehouse.schema_name:
        spark.sql(f"DROP TABLE IF EXISTS {cfg.lakehouse.schema_name}.{table.name}")
    remove_tree(path)
    log.info("dropped %s (%s)", table.name, path)
    return True


def delete_where(spark: SparkSession, cfg: Config, table: Table, condition: str) -> int:
    """Delete a table's rows matching a SQL condition (a retention rule: on a partition
    column, Delta removes whole files). Returns the rows deleted (Delta's commit metrics);
    0 when the table does not exist or nothing matched."""
    path = table_path(cfg, table)
    if not DeltaTable.isDeltaTable(spark, path):
        return 0
    before = version(spark, cfg, table)
    dt_ = DeltaTable.forPath(spark, path)
    dt_.delete(condition)
    n = 0
    if version(spark, cfg, table) > before:
        m = dt_.history(1).first()["operationMetrics"] or {}
        n = int(m.get("numDeletedRows", 0))
    if n:
        log.info("%s: %d row(s) deleted (%s)", table.name, n, condition)
    return n
